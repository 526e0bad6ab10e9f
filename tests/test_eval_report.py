"""``edge-bus eval --html``: the page (ROC curve with the operating points, Dice distribution, pictures
of the worst images) from a real evaluation of a tiny model on a small BUSI-layout folder."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import tiny_model_dir

from edge_bus.eval_report import THUMB_SIDE
from edge_bus.evaluation import GALLERY_SIZE, evaluate


def _busi_like(root: Path, per_class: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for label in ("normal", "benign", "malignant"):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 255, (96, 128), dtype=np.uint8)
            mask = np.zeros((96, 128), np.uint8)
            if label != "normal":
                cv2.circle(mask, (40 + 4 * i, 48), 10 + i, 255, -1)
            cv2.imwrite(str(folder / f"{label} ({i + 1}).png"), img)
            cv2.imwrite(str(folder / f"{label} ({i + 1})_mask.png"), mask)
    return root


def test_the_page_shows_the_roc_the_dice_and_the_worst_images(tmp_path: Path) -> None:
    html = tmp_path / "out" / "eval.html"  # its folder is made
    report = evaluate(_busi_like(tmp_path / "data"), model=str(tiny_model_dir(tmp_path / "model")),
                      backend="onnxruntime", precision="fp32", html_path=html)
    page = html.read_text()
    assert "ROC curve, benign vs malignant" in page and "Dice over the lesion images" in page
    for name in report.operating_points:  # each operating point is marked on the curve
        assert f"{name} (≥ {report.operating_points[name].threshold:.3f})" in page
    assert f"Lowest Dice ({GALLERY_SIZE} of 16 lesion images)" in page  # as many shown, of how many
    summary = page.split("Summary", 1)[1].split("</section>", 1)[0]
    assert report.n_crops > 0 and f"({report.n_crops})" in summary  # 2 lesion-free crops a lesion image by default
    lowest = sorted((r.dice, r.name) for r in report.results if r.dice is not None)[0]
    assert lowest[1] in page.split("Lowest Dice", 1)[1].split("</section>", 1)[0]  # in its own gallery
    wrong = sum(r.predicted != r.label for r in report.results)
    assert (f"Wrong class ({wrong} images)" in page) == (wrong > 0)
    confusion = page.split("rows: truth; columns: the call", 1)[1].split("</table>", 1)[0]
    hits = [int(n) for n in re.findall(r'<span class="hit">(\d+)</span>', confusion)]
    assert sum(hits) == sum(r.predicted == r.label for r in report.results) and len(hits) == 3
    counts = [int(n) for n in re.findall(r'<span class="[a-z]*">(\d+)</span>', confusion)]
    assert len(counts) == 9 and sum(counts) == report.n_images == 24
    pictures = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(pictures) == GALLERY_SIZE + min(wrong, GALLERY_SIZE)
    img = cv2.imdecode(np.frombuffer(base64.b64decode(pictures[0]), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and max(img.shape[:2]) == THUMB_SIDE and img.shape[:2] == (165, THUMB_SIDE)  # 96×128


def test_without_html_no_picture_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_bus.evaluation as evaluation

    def refuse(*_a: object, **_k: object) -> bytes:
        raise AssertionError("a picture was drawn without --html")

    monkeypatch.setattr(evaluation, "case_picture", refuse)
    report = evaluate(_busi_like(tmp_path / "data", per_class=2), model=str(tiny_model_dir(tmp_path / "model")),
                      backend="onnxruntime", precision="fp32")
    assert report.n_images == 6 and not list(tmp_path.rglob("*.html"))


def test_scores_by_scanner_only_when_the_images_come_from_more_than_one() -> None:
    from edge_bus.evaluation import UNNAMED_DEVICE, ImageResult, by_device

    def result(i: int, label: str, malignancy: float, dice: float, device: str | None) -> ImageResult:
        return ImageResult(f"{i}.png", label, 0.99, malignancy, label, dice, dice, device)

    results = [result(0, "benign", 0.2, 0.8, "A"), result(1, "malignant", 0.9, 0.6, "A"),
               result(2, "malignant", 0.1, 0.4, "A"), result(3, "benign", 0.5, 0.2, None)]
    groups = by_device(results, 0.5)
    assert list(groups) == ["A", UNNAMED_DEVICE]  # the most images first
    a = groups["A"]
    assert (a.n_images, a.n_lesion) == (3, 3) and a.dice == pytest.approx(0.6) and a.auc == pytest.approx(0.5)
    assert groups[UNNAMED_DEVICE].auc != groups[UNNAMED_DEVICE].auc  # NaN: no malignant image of its own
    assert by_device(results[:3], 0.5) == {}  # one scanner: nothing to compare


def test_the_page_shows_the_lesion_free_crops_called_lesion(tmp_path: Path) -> None:
    """An engine that calls every input a lesion (P 0.99): every crop is flagged, so the gallery shows
    GALLERY_SIZE of them, each a square picture of a crop that misses the lesion, and the page says how
    many of how many."""
    from edge_bus.datasets import read_dataset
    from edge_bus.engines import EngineConfig
    from edge_bus.engines.fake import FakeBehaviour, FakeEngine
    from edge_bus.eval_report import render_eval_html
    from edge_bus.evaluation import cut_crop, pick_gallery, run_images, summarize
    from edge_bus.zoo import load_manifest

    m = load_manifest(tiny_model_dir(tmp_path / "model"))
    items = read_dataset(_busi_like(tmp_path / "data"))
    engine = FakeEngine(m, EngineConfig(), FakeBehaviour(presence=0.99))
    results = run_images(m, engine, items, crops=2)
    n_crops = sum(len(r.crop_lesion_probs) for r in results)
    gallery = pick_gallery(items, results, engine, m)
    assert gallery.n_flagged_crops == n_crops > GALLERY_SIZE and len(gallery.flagged_crops) == GALLERY_SIZE
    first = gallery.flagged_crops[0]
    item = next(it for it in items if it.image.name == first.image)
    _, truth = item.load()
    crop = cut_crop(item, first.index)
    assert crop.shape[0] == crop.shape[1] and not _contains(truth, crop, item)
    img = cv2.imdecode(np.frombuffer(first.picture, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert img.shape == (THUMB_SIDE, THUMB_SIDE)
    page = render_eval_html(summarize(m, results, "fake", "fake", "hand"), gallery)
    assert f"Lesion-free crops called lesion ({n_crops} of {n_crops})" in page
    assert f"{first.image}</b>, crop {first.index + 1}" in page


def _contains(truth: np.ndarray, crop: np.ndarray, item: object) -> bool:
    """Whether the crop (a view of the image) overlaps the true lesion: found by where it sits in the image."""
    from edge_bus.datasets import LabeledImage

    assert isinstance(item, LabeledImage)
    gray, _ = item.load()
    h, w = crop.shape
    for y in range(gray.shape[0] - h + 1):
        for x in range(gray.shape[1] - w + 1):
            if np.array_equal(gray[y : y + h, x : x + w], crop):
                return bool(truth[y : y + h, x : x + w].any())
    raise AssertionError("the crop is not a square of its image")


def test_two_operating_points_at_one_threshold_both_show_on_the_roc(tmp_path: Path) -> None:
    """The shipped model's sensitive and balanced points share a threshold: the second marker hid the first,
    whose legend entry named a point nowhere to be seen. The page also names the default operating point."""
    from dataclasses import replace

    from edge_bus.eval_report import roc_chart

    report = evaluate(_busi_like(tmp_path / "data"), model=str(tiny_model_dir(tmp_path / "model")),
                      backend="onnxruntime", precision="fp32")
    first, second = list(report.operating_points)[:2]
    same = replace(report, operating_points={first: report.operating_points[first],
                                             second: report.operating_points[first]})
    svg = roc_chart(same)
    circles = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="(\d+)"', svg)
    assert [c[:2] for c in circles[:2]] == [circles[0][:2]] * 2 and [c[2] for c in circles[:2]] == ["6", "3"]
    assert f"the same point as {first}" in svg
    assert report.default_operating_point and report.default_operating_point in report.operating_points
