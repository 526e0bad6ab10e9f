"""The bundled demo clip: determinism, truth masks/labels, and the bundled assets."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_bus.sources import DemoSource, DemoTruth, open_source
from edge_bus.sources.demo import DEMO_FPS, MIN_VISIBLE_PX

ASSETS = Path(__file__).resolve().parents[2] / "edge_bus" / "assets" / "demo"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_demo_assets.py"


@pytest.fixture(scope="module")
def demo() -> DemoSource:
    return DemoSource()


@pytest.fixture(scope="module")
def truths(demo: DemoSource) -> list[DemoTruth]:
    return list(demo.truths())


def _digest(source: DemoSource) -> list[str]:
    return [hashlib.sha256(f.pixels.tobytes()).hexdigest() for f in source]


def test_clip_facts(demo: DemoSource) -> None:
    info = demo.info
    assert (info.kind, info.width, info.height, info.fps) == ("demo", 320, 320, 30.0)
    assert info.frame_count is not None and 8 * DEMO_FPS <= info.frame_count <= 10 * DEMO_FPS
    assert len(demo) == info.frame_count
    assert "bus_" in info.name


def test_same_frames_every_time() -> None:
    with DemoSource() as a, DemoSource() as b:
        first, second = _digest(a), _digest(b)
    assert first == second
    assert len(set(first)) == len(first)  # every frame differs (motion + speckle)


def test_random_access_matches_iteration(demo: DemoSource) -> None:
    with DemoSource() as src:
        frames = [next(src) for _ in range(5)]
    for f in frames:
        assert np.array_equal(demo.render(f.index), f.pixels)
        assert f.t_source == pytest.approx(f.index / DEMO_FPS)
    assert np.array_equal(demo.render(100), demo.render(100))
    with pytest.raises(IndexError):
        demo.render(len(demo))


def test_seed_changes_speckle_not_truth(demo: DemoSource) -> None:
    other = DemoSource(seed=1)
    assert not np.array_equal(other.render(10), demo.render(10))
    assert np.abs(other.render(10).astype(int) - demo.render(10).astype(int)).mean() < 25
    assert np.array_equal(other.truth_mask(10), demo.truth_mask(10))


def test_labels_cover_normal_benign_malignant(truths: list[DemoTruth]) -> None:
    counts = Counter(t.label for t in truths)
    assert set(counts) == {"normal", "benign", "malignant"}
    assert min(counts.values()) >= DEMO_FPS  # at least a second of each
    longest_normal, run = 0, 0
    for t in truths:
        run = run + 1 if t.label == "normal" else 0
        longest_normal = max(longest_normal, run)
    assert longest_normal >= DEMO_FPS  # the probe leaves the lesions for a whole second at least


def test_truth_masks_agree_with_labels(demo: DemoSource, truths: list[DemoTruth]) -> None:
    for t in truths:
        assert t.mask.shape == (320, 320) and t.mask.dtype == bool
        assert t.lesion == (t.label != "normal") == bool(t.mask.any())
        assert t.mask.sum() == 0 or t.mask.sum() >= MIN_VISIBLE_PX
    assert demo.truth_label(0) == truths[0].label
    assert np.array_equal(demo.truth_mask(0), truths[0].mask)


def test_truth_masks_follow_the_lesions(demo: DemoSource, truths: list[DemoTruth]) -> None:
    """The lesions are hypoechoic: inside the moved mask the image must be darker than just
    around it, frame after frame — which fails if mask and image were transformed differently."""
    kernel = np.ones((15, 15), np.uint8)
    checked = 0
    for t in truths[::10]:
        if t.mask.sum() < 400:
            continue
        gray = cv2.cvtColor(demo.render(t.index), cv2.COLOR_BGR2GRAY).astype(float)
        ring = cv2.dilate(t.mask.astype(np.uint8), kernel).astype(bool) & ~t.mask
        assert gray[t.mask].mean() < gray[ring].mean() - 10, f"frame {t.index}"
        checked += 1
    assert checked >= 10


def test_open_source_demo_with_seed() -> None:
    with open_source("demo:2", max_frames=3) as src:
        assert src.info.kind == "demo" and src.info.frame_count == 3
        assert len(list(src)) == 3


def test_bundled_assets() -> None:
    manifest = json.loads((ASSETS / "manifest.json").read_text())
    images = manifest["images"]
    assert 3 <= len(images) <= 4
    assert {"benign", "malignant"} <= {e["label"] for e in images}
    assert all(e["kfold_5"] in (2, 3, 4, 5) for e in images)
    for e in images:
        img = cv2.imread(str(ASSETS / e["image"]), cv2.IMREAD_GRAYSCALE)
        mask = cv2.imread(str(ASSETS / e["mask"]), cv2.IMREAD_GRAYSCALE)
        assert img is not None and mask is not None and img.shape == mask.shape and max(img.shape) <= 320
    assert sum(p.stat().st_size for p in ASSETS.iterdir()) < 500_000
    citation = (ASSETS / "CITATION.md").read_text()
    assert "BUS-BRA" in citation and "10.5281/zenodo.7730709" in citation and "Medical Physics" in citation
    assert "Permission is hereby granted" in citation


@pytest.mark.data
def test_assets_script_reproduces_the_bundle(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("make_demo_assets", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # dataclasses look their module up
    spec.loader.exec_module(script)
    entries = script.build(shared_data / "busbra", tmp_path)
    script.write_docs(shared_data / "busbra", tmp_path, entries)
    bundled = json.loads((ASSETS / "manifest.json").read_text())
    assert json.loads((tmp_path / "manifest.json").read_text()) == bundled
    for e in bundled["images"]:
        for key in ("image", "mask"):
            fresh = cv2.imread(str(tmp_path / e[key]), cv2.IMREAD_UNCHANGED)
            bundled_px = cv2.imread(str(ASSETS / e[key]), cv2.IMREAD_UNCHANGED)
            assert fresh is not None and bundled_px is not None and np.array_equal(fresh, bundled_px)
    assert (tmp_path / "CITATION.md").read_text() == (ASSETS / "CITATION.md").read_text()
