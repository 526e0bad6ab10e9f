"""Postprocess: class decision, mask mapped back through the ROI, smoothing, lesion size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import tiny_model_dir

from edge_bus.errors import ConfigError, SourceError
from edge_bus.postprocess import (
    PostprocessConfig,
    Postprocessor,
    keep_main_components,
    longest_axis_mm,
    main_region,
    presence_malignancy,
)
from edge_bus.preprocess import InputSpec, Preprocessor, area_resize, detect_scan_area
from edge_bus.types import ROI, ModelOutputs, PreprocessMeta
from edge_bus.zoo import Manifest, load_manifest


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    return load_manifest(tiny_model_dir(tmp_path / "tiny"))


def outputs(mask_logits: np.ndarray, presence: float, malignancy: float) -> ModelOutputs:
    return ModelOutputs(mask_logits=mask_logits.astype(np.float32), class_logits=np.array([presence, malignancy]))


def test_mask_mapped_back_through_roi(manifest: Manifest) -> None:
    logits = np.full((32, 32), -10.0)
    logits[8:16, 8:24] = 10.0  # rows 8-15, cols 8-23 of the 32x32 model input
    meta = PreprocessMeta(frame_h=200, frame_w=300, roi=ROI(50, 20, 128, 64))  # 4x horizontally, 2x vertically
    pred = Postprocessor(manifest).postprocess(outputs(logits, 5.0, 3.0), meta)
    assert pred.mask.shape == (200, 300)
    assert pred.lesion and pred.label == "malignant"
    x, y, w, h = pred.bbox
    assert abs(x - (50 + 32)) <= 2 and abs(y - (20 + 16)) <= 2 and abs(w - 64) <= 3 and abs(h - 16) <= 3
    assert pred.mask_area == pytest.approx(pred.mask.sum() / (200 * 300))
    assert not pred.mask[:20].any() and not pred.mask[:, :50].any()  # nothing outside the ROI


def test_half_resolution_mask_maps_to_the_same_place(manifest: Manifest) -> None:
    """Stride-2 mask logits (the shipped models') land where full-resolution ones do."""
    full = np.full((32, 32), -10.0)
    full[8:16, 8:24] = 10.0
    half = full.reshape(16, 2, 16, 2).mean(axis=(1, 3))  # the same lesion at 16x16
    meta = PreprocessMeta(frame_h=200, frame_w=300, roi=ROI(50, 20, 128, 64))
    a = Postprocessor(manifest).postprocess(outputs(full, 5.0, 3.0), meta)
    b = Postprocessor(manifest).postprocess(outputs(half, 5.0, 3.0), meta)
    assert b.bbox is not None and a.bbox is not None
    assert all(abs(p - q) <= 2 for p, q in zip(a.bbox, b.bbox, strict=True))
    assert (a.mask & b.mask).sum() / (a.mask | b.mask).sum() > 0.9


def test_no_lesion_gives_normal_and_empty_mask(manifest: Manifest) -> None:
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    pred = Postprocessor(manifest).postprocess(outputs(np.full((32, 32), 5.0), -4.0, 2.0), meta)
    assert not pred.lesion and pred.label == "normal" and pred.bbox is None and not pred.mask.any()
    assert sum(pred.probs.values()) == pytest.approx(1.0)
    ungated = Postprocessor(manifest, PostprocessConfig(gate_mask=False)).postprocess(
        outputs(np.full((32, 32), 5.0), -4.0, 2.0), meta)
    assert ungated.mask.all()


def test_operating_points_change_the_label(manifest: Manifest) -> None:
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    out = outputs(np.zeros((32, 32)), 5.0, 0.0)  # P(malignant | lesion) = 0.5
    labels = {op: Postprocessor(manifest, PostprocessConfig(operating_point=op)).postprocess(out, meta).label
              for op in ("sensitive", "balanced", "specific")}
    assert labels == {"sensitive": "malignant", "balanced": "malignant", "specific": "benign"}


def test_smoothing_is_an_ema(manifest: Manifest) -> None:
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    post = Postprocessor(manifest, PostprocessConfig(smoothing=0.5))
    first = post.postprocess(outputs(np.zeros((32, 32)), 5.0, 4.0), meta)
    second = post.postprocess(outputs(np.zeros((32, 32)), 5.0, -4.0), meta)
    lo, hi = presence_malignancy(manifest, np.array([5.0, -4.0]))[1], first.malignancy
    assert second.malignancy == pytest.approx(0.5 * hi + 0.5 * lo)


def test_warm_ups_leave_the_stream_state_alone(manifest: Manifest) -> None:
    """The warm-ups run the real calls at the source's size but change nothing a stream keeps: the
    smoothing history, the scan area, the frame count (the first frame still detects its scan area)."""
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    warm, cold = (Postprocessor(manifest, PostprocessConfig(smoothing=0.5)) for _ in range(2))
    warm.warm_up((640, 480))
    warm.warm_up((0, 0))  # a source that does not know its size: nothing to do
    for z in (4.0, -4.0):
        a, b = (post.postprocess(outputs(np.zeros((32, 32)), 5.0, z), meta) for post in (warm, cold))
        assert (a.malignancy, a.probs, a.bbox) == (b.malignancy, b.probs, b.bbox) and np.array_equal(a.mask, b.mask)
    frame = np.zeros((120, 160), np.uint8)
    frame[10:110, 30:130] = 120  # a scan area with dark margins
    warm_pre, cold_pre = (Preprocessor(InputSpec(32, 32, 0.5, 0.25)) for _ in range(2))
    warm_pre.warm_up((160, 120))  # a blank frame: its "scan area" is the whole frame
    warm_pre.warm_up((8, 8))  # too small to prepare: nothing to do
    (t1, m1), (t2, m2) = warm_pre.preprocess(frame), cold_pre.preprocess(frame)
    assert m1 == m2 and m1.roi == ROI(30, 10, 100, 100) and np.array_equal(t1, t2)


def test_components_below_a_fraction_of_the_largest_are_dropped() -> None:
    mask = np.zeros((60, 80), bool)
    mask[5:25, 5:25] = True  # 400 px, the largest
    mask[40:50, 40:50] = True  # 100 px = 25% of it: kept at 0.2
    mask[50:54, 70:75] = True  # 20 px = 5%: dropped
    mask[0, 79] = mask[1, 78] = True  # 2 px joined diagonally (8-connectivity): dropped together
    kept = keep_main_components(mask, 0.2)
    assert kept.dtype == bool and kept.shape == mask.shape
    assert kept[5:25, 5:25].all() and kept[40:50, 40:50].all()
    assert kept.sum() == 500
    assert keep_main_components(mask, 1.0).sum() == 400  # only the largest
    assert keep_main_components(mask, 0.0).sum() == mask.sum()  # everything
    one = np.zeros((10, 10), bool)
    one[2:5, 2:5] = True
    assert np.array_equal(keep_main_components(one, 0.2), one)


@pytest.mark.parametrize("seed", range(12))
def test_main_region_keeps_the_pixels_labelling_the_whole_mask_keeps(seed: int) -> None:
    """Labelling only inside the mask's bounding box (the fast path for large frames) keeps exactly the
    pixels that labelling the whole mask keeps, and its box is theirs."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(20, 200)), int(rng.integers(20, 200))
    mask = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 6))):  # blobs of any size, some touching the edges, some merging
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        ry, rx = int(rng.integers(1, h // 3 + 2)), int(rng.integers(1, w // 3 + 2))
        yy, xx = np.ogrid[:h, :w]
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    mask |= rng.random((h, w)) > 0.995  # and specks
    fraction = float(rng.choice([0.0, 0.2, 0.5, 1.0]))
    expected = keep_main_components(mask, fraction)
    region = main_region(mask, fraction)
    assert region is not None
    got = np.zeros_like(mask)
    rh, rw = region.pixels.shape
    got[region.y : region.y + rh, region.x : region.x + rw] = region.pixels
    assert np.array_equal(got, expected)
    ys, xs = np.nonzero(expected)
    assert (region.x, region.y, rw, rh) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert main_region(np.zeros((h, w), bool), fraction) is None


def test_longest_axis_uses_pixel_spacing() -> None:
    mask = np.zeros((50, 50), bool)
    mask[10:12, 5:45] = True  # 40 px long horizontally
    assert longest_axis_mm(mask, (0.1, 0.2)) == pytest.approx(np.hypot(40 * 0.2, 2 * 0.1))


def test_longest_axis_is_the_largest_distance_across_the_lesion() -> None:
    """The min-area rectangle's long side read a diamond 101 px tip to tip as 7.07 mm (at 0.1 mm) and a
    pixel as 0: the longest axis is the maximum Feret diameter, pixel edges included."""
    diamond = np.zeros((120, 120), np.uint8)
    cv2.fillPoly(diamond, [np.array([[60, 10], [110, 60], [60, 110], [10, 60]], np.int32)], 1)
    assert longest_axis_mm(diamond.astype(bool), (0.1, 0.1)) == pytest.approx(10.1, abs=0.01)  # 101 px, tip to tip
    rect = np.zeros((50, 50), bool)
    rect[10:30, 5:45] = True  # 40 x 20 px: its diagonal
    assert longest_axis_mm(rect, (0.1, 0.1)) == pytest.approx(np.hypot(4.0, 2.0))
    pixel = np.zeros((5, 5), bool)
    pixel[2, 2] = True
    assert longest_axis_mm(pixel, (0.5, 0.5)) == pytest.approx(0.5 * np.sqrt(2))
    rng = np.random.default_rng(3)
    for _ in range(20):  # a ragged lesion: the brute-force largest distance between pixel corners
        blob = rng.random((30, 40)) < 0.15
        ys, xs = np.nonzero(blob)
        sy, sx = rng.uniform(0.05, 0.3, 2)
        corners = np.concatenate([np.stack([(xs + dx) * sx, (ys + dy) * sy], 1)
                                  for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)])
        brute = np.sqrt(((corners[:, None] - corners[None]) ** 2).sum(2).max())
        assert longest_axis_mm(blob, (sy, sx)) == pytest.approx(brute, rel=1e-5)
    assert longest_axis_mm(np.zeros((4, 4), bool), (0.1, 0.1)) is None


def test_scan_area_detection_crops_margins() -> None:
    frame = np.zeros((480, 640), np.uint8)
    rng = np.random.default_rng(0)
    frame[60:420, 100:540] = rng.integers(30, 200, (360, 440))
    frame[10:20, 10:200] = 255  # burned-in text line in the margin
    roi = detect_scan_area(frame)
    assert roi == ROI(100, 60, 440, 360)  # edges on the 4-pixel grid of the detection's shrunken copy: exact
    tensor, meta = Preprocessor(InputSpec(64, 64, 0.5, 0.25)).preprocess(np.dstack([frame] * 3))
    assert tensor.shape == (1, 1, 64, 64) and tensor.dtype == np.float32 and meta.roi == roi

def _display_frame(picture: bool = True) -> np.ndarray:
    """An 800x600 display frame: a 320x320 scan picture at (240, 140), 21% of the frame, and UI text."""
    frame = np.zeros((600, 800), np.uint8)
    if picture:
        frame[140:460, 240:560] = np.random.default_rng(1).integers(30, 200, (320, 320))
    for y in (20, 40, 560):
        cv2.putText(frame, "GE LOGIQ  12L-RS  Gn 54  D 4.0cm  FR 30", (20, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 1)
    return frame


def test_a_small_scan_area_that_is_the_one_bright_region_is_found() -> None:
    """Under a quarter of the frame the whole frame was taken, UI included: a lesion in 0 of 60 frames of a
    cine shown this way, 23 of 60 with --roi on its picture."""
    assert detect_scan_area(_display_frame()) == ROI(240, 140, 320, 320)
    assert detect_scan_area(_display_frame(picture=False)) == ROI(0, 0, 800, 600)  # only text: nothing found


def test_a_blank_frame_at_a_re_detection_keeps_the_scan_area() -> None:
    """The probe lifted at a re-detection (every 30 frames) took the whole frame, UI and all, for the next
    30 frames of the picture. A cut (the next file of a folder) forgets it: the new picture is detected
    afresh, and with nothing found there the whole frame is taken."""
    pre = Preprocessor(InputSpec(64, 64, 0.5, 0.25), redetect_every=2)
    frames = [_display_frame(), _display_frame(), _display_frame(picture=False), _display_frame()]
    assert [pre.preprocess(f)[1].roi for f in frames] == [ROI(240, 140, 320, 320)] * 4
    pre.new_scene()
    assert pre.preprocess(_display_frame(picture=False))[1].roi == ROI(0, 0, 800, 600)


def test_a_new_frame_size_is_detected_again_at_once() -> None:
    """A grabber that switched from 320x240 to a larger mode kept the small frame's scan area (it
    still fit) for up to 29 frames: the model read the large frame's black corner and said normal."""
    def frame(h: int, w: int, x: int, y: int, bw: int, bh: int) -> np.ndarray:
        img = np.zeros((h, w), np.uint8)
        img[y : y + bh, x : x + bw] = 120
        return img

    pre = Preprocessor(InputSpec(64, 64, 0.5, 0.25))
    small, big = frame(240, 320, 40, 20, 240, 200), frame(480, 640, 200, 100, 400, 360)
    rois = [pre.preprocess(img)[1].roi for img in (small, big, big, small)]
    assert rois == [ROI(40, 20, 240, 200), ROI(200, 100, 400, 360), ROI(200, 100, 400, 360), ROI(40, 20, 240, 200)]


def test_fixed_roi_outside_the_frame_is_a_config_error() -> None:
    """Clipping it (to 1x1 px at worst) gave confident answers about the wrong pixels; now it is refused."""
    pre = Preprocessor(InputSpec(32, 32, 0.5, 0.25), roi=ROI(10, 10, 500, 500))
    with pytest.raises(ConfigError, match=r"source.roi\) 10,10,500,500 reaches past the 120x100 frame"):
        pre.preprocess(np.zeros((100, 120), np.uint8))
    _, meta = Preprocessor(InputSpec(32, 32, 0.5, 0.25), roi=ROI(10, 10, 110, 90)).preprocess(
        np.zeros((100, 120), np.uint8))
    assert meta.roi == ROI(10, 10, 110, 90)  # exactly to the edge fits


@pytest.mark.parametrize("shape", [(1, 64), (64, 1), (15, 200), (1, 1, 3)])
def test_a_frame_too_small_is_a_source_error(shape: tuple[int, ...]) -> None:
    """A 1-pixel-high frame reached cv2.resize with a zero size: a cv2.error traceback in the CLI."""
    with pytest.raises(SourceError, match=r"too small to read a lesion in \(edge-bus needs at least 16×16\)"):
        Preprocessor(InputSpec(64, 64, 0.5, 0.25)).preprocess(np.full(shape, 100, np.uint8))
    assert detect_scan_area(np.full((3, 3), 200, np.uint8)) == ROI(0, 0, 3, 3)  # no margins to find in 3x3
    tensor, _ = Preprocessor(InputSpec(64, 64, 0.5, 0.25)).preprocess(np.full((16, 17), 100, np.uint8))
    assert tensor.shape == (1, 1, 64, 64)  # the smallest frame taken


def test_smoothing_weighs_the_past_by_its_factor(manifest: Manifest) -> None:
    """smoothing 0.8: the second frame's value is 0.8 × the first's + 0.2 × its own, for the
    malignancy and for the mask (a pixel sure on the first frame, p ≈ 1, and clear on the second,
    p ≈ 0, reads 0.8: still lesion at the 0.5 cut)."""
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    post = Postprocessor(manifest, PostprocessConfig(smoothing=0.8))
    first = post.postprocess(outputs(np.full((32, 32), 12.0), 5.0, 4.0), meta)
    second = post.postprocess(outputs(np.full((32, 32), -12.0), 5.0, -4.0), meta)
    lo = presence_malignancy(manifest, np.array([5.0, -4.0]))[1]
    assert second.malignancy == pytest.approx(0.8 * first.malignancy + 0.2 * lo)
    assert second.mask.all()


def test_smoothing_draws_the_same_mask_as_no_smoothing_on_the_same_outputs(manifest: Manifest) -> None:
    """With smoothing the mask was cut on its probabilities resized (at 0.5), without it on its logits
    resized (at 0): bilinear resizing does not commute with the sigmoid, so one model output gave two
    masks (35-53 of 15-20k pixels on a cine frame; a BUSI bbox 99 or 100 px wide), and a stream's masks
    were not the ones eval scores. On a first frame (nothing to smooth with) and on a repeated one they
    are now the same pixels."""
    rng = np.random.default_rng(3)
    logits = cv2.resize(rng.normal(0.0, 6.0, (8, 8)), (32, 32), interpolation=cv2.INTER_CUBIC)  # blobs near 0
    meta = PreprocessMeta(frame_h=480, frame_w=640, roi=ROI(40, 30, 560, 420))  # upsampled 17x
    plain = Postprocessor(manifest, PostprocessConfig(smoothing=0.0)).postprocess(outputs(logits, 5.0, 0.0), meta)
    smoothed = Postprocessor(manifest, PostprocessConfig(smoothing=0.5))
    first = smoothed.postprocess(outputs(logits, 5.0, 0.0), meta)
    again = smoothed.postprocess(outputs(logits, 5.0, 0.0), meta)  # the EMA of a picture with itself
    assert plain.mask.any() and not plain.mask.all()
    assert np.array_equal(first.mask, plain.mask) and first.bbox == plain.bbox
    assert np.count_nonzero(again.mask != plain.mask) <= 2  # float rounding of log(sigmoid) at most


def test_the_mask_threshold_applies_without_smoothing_too(manifest: Manifest) -> None:
    """A manifest's mask threshold of 0.8 cuts the logits at ln(0.8 / 0.2) = 1.386: a pixel of logit
    1.0 (p 0.73) is out, one of 2.0 (p 0.88) is in."""
    from dataclasses import replace

    strict = replace(manifest, mask_threshold=0.8)
    logits = np.full((32, 32), 1.0)
    logits[:, 16:] = 2.0
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    pred = Postprocessor(strict, PostprocessConfig(smoothing=0.0)).postprocess(outputs(logits, 5.0, 0.0), meta)
    assert not pred.mask[:, :15].any() and pred.mask[:, 17:].all()


def test_class_probabilities_from_presence_and_malignancy(manifest: Manifest) -> None:
    """P(lesion) = σ(5) = 0.99331 exactly at the lesion threshold counts as a lesion;
    P(malignant | lesion) = σ(ln(1/3)) = 0.25, so benign = 0.99331 × 0.75, malignant = 0.99331 × 0.25."""
    from dataclasses import replace

    p_lesion = float(1.0 / (1.0 + np.exp(-np.float64(5.0))))
    at_threshold = replace(manifest, lesion_threshold=p_lesion)
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    pred = Postprocessor(at_threshold).postprocess(outputs(np.zeros((32, 32)), 5.0, float(np.log(1 / 3))), meta)
    assert pred.lesion and pred.malignancy == pytest.approx(0.25)
    assert pred.probs == pytest.approx({"normal": 1 - p_lesion, "benign": p_lesion * 0.75,
                                        "malignant": p_lesion * 0.25})


def test_a_lesion_threshold_set_for_the_run_replaces_the_models(manifest: Manifest) -> None:
    """P(lesion) = σ(−1) = 0.269: under the tiny model's own lesion threshold (0.5) the frame is
    normal with an empty mask; with 0.25 set in the config it is a lesion frame, its mask kept; an
    out-of-range threshold is a config error."""
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    out = outputs(np.full((32, 32), 4.0), -1.0, 0.0)
    own = Postprocessor(manifest)
    assert own.lesion_threshold == manifest.lesion_threshold == 0.5
    assert own.postprocess(out, meta).label == "normal" and not own.postprocess(out, meta).mask.any()
    set_here = Postprocessor(manifest, PostprocessConfig(lesion_threshold=0.25))
    pred = set_here.postprocess(out, meta)
    assert set_here.lesion_threshold == 0.25 and pred.lesion and pred.mask.all()
    for bad in (0.0, 1.0, float("nan")):
        with pytest.raises(ConfigError, match="lesion_threshold"):
            PostprocessConfig(lesion_threshold=bad)


def test_a_three_class_head_gives_malignancy_given_a_lesion(manifest: Manifest) -> None:
    """softmax of (0, 0, ln 3) = (0.2, 0.2, 0.6): P(lesion) 0.8, P(malignant | lesion) 0.6 / 0.8 = 0.75."""
    from dataclasses import replace

    three = replace(manifest, head="softmax3")
    assert presence_malignancy(three, np.array([0.0, 0.0, np.log(3.0)])) == pytest.approx((0.8, 0.75))


def test_colour_frames_are_read_as_opencv_bgr() -> None:
    """A pure blue frame in OpenCV's BGR order is gray 0.114 × 255 = 29 (ITU-R 601); read as RGB it
    would be 0.299 × 255 = 76. With mean 0 and std 1 the tensor holds gray / 255."""
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[:, :, 0] = 255
    tensor, _ = Preprocessor(InputSpec(32, 32, 0.0, 1.0), roi=ROI(0, 0, 64, 64)).preprocess(blue)
    assert float(tensor.mean()) == pytest.approx(29 / 255, abs=0.5 / 255)


def test_the_bbox_is_the_masks_exact_extent(manifest: Manifest) -> None:
    """At the model's own size (no resize) the lesion block rows 8-15, cols 8-23 is the bbox (8, 8, 16, 8)."""
    logits = np.full((32, 32), -10.0)
    logits[8:16, 8:24] = 10.0
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    pred = Postprocessor(manifest).postprocess(outputs(logits, 5.0, 3.0), meta)
    assert pred.bbox == (8, 8, 16, 8) and pred.mask.sum() == 16 * 8


def test_the_mask_is_resized_bilinearly_before_the_cut(manifest: Manifest) -> None:
    """Logits 10 inside a 2x2 block and -2 around it, resized ×8 to the 32-pixel scan area: across the
    middle row the interpolated logit stays >= 0 over 22 pixels (x = 5..26, where the straight line
    from 10 at the block's pixel centre to -2 at the next centre crosses 0), not the 16 of a
    nearest-neighbour resize. Counted here with np.interp on the pixel centres."""
    logits = np.full((4, 4), -2.0)
    logits[1:3, 1:3] = 10.0
    meta = PreprocessMeta(frame_h=32, frame_w=32, roi=ROI(0, 0, 32, 32))
    pred = Postprocessor(manifest, PostprocessConfig(smoothing=0.0)).postprocess(outputs(logits, 5.0, 3.0), meta)
    source_x = (np.arange(32) + 0.5) / 8 - 0.5  # output pixel centres in input pixel coordinates
    row = np.interp(source_x, np.arange(4), logits[1])
    assert int((row >= 0).sum()) == 22 and int(pred.mask[16].sum()) == 22


def test_the_input_tensor_is_normalised_as_the_manifest_says() -> None:
    """(pixel / 255 − mean) / std with mean 0.5, std 0.25: white → 2.0, black → −2.0, and a 2×2
    checkerboard of the two shrunk by area averaging to one pixel → mid-grey (127.5) → 0.0."""
    spec = InputSpec(16, 16, 0.5, 0.25)
    white, _ = Preprocessor(spec, roi=ROI(0, 0, 32, 32)).preprocess(np.full((32, 32), 255, np.uint8))
    black, _ = Preprocessor(spec, roi=ROI(0, 0, 32, 32)).preprocess(np.zeros((32, 32), np.uint8))
    assert float(white.min()) == pytest.approx(2.0) and float(black.max()) == pytest.approx(-2.0)
    checker = (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8)
    grey, _ = Preprocessor(spec, roi=ROI(0, 0, 32, 32)).preprocess(checker)
    assert np.abs(grey).max() <= 0.5 / 255 / 0.25 + 1e-6  # area averaging, not a pick of one pixel


def test_crops_under_three_times_the_input_are_resized_in_one_area_step() -> None:
    """Under 3× the model input on either side (every image of BUSI, BUS-BRA and the cine clips) the
    resize is OpenCV's INTER_AREA alone, bit for bit."""
    rng = np.random.default_rng(2)
    for h, w in [(64, 64), (100, 191), (191, 191), (600, 150)]:
        crop = rng.integers(0, 256, (h, w), np.uint8)
        np.testing.assert_array_equal(area_resize(crop, 64, 64),
                                      cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize(("h", "w"), [(672, 672), (890, 890), (921, 1101), (1080, 1920)])
def test_a_large_crop_is_first_decimated_by_a_whole_number(h: int, w: int) -> None:
    """An HD scan area is first divided by a whole number (OpenCV's fast integer path, the last rows
    and columns that don't divide left out), then area-resized: within a grey level of one-step
    INTER_AREA on smooth content, and a uniform frame stays uniform."""
    rng = np.random.default_rng(3)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (h, w)).astype(np.uint8), (0, 0), 4)
    two_step = area_resize(smooth, 224, 224).astype(float)
    one_step = cv2.resize(smooth, (224, 224), interpolation=cv2.INTER_AREA).astype(float)
    assert two_step.shape == (224, 224) and np.abs(two_step - one_step).mean() < 1.0
    assert np.unique(area_resize(np.full((h, w), 77, np.uint8), 224, 224)).tolist() == [77]


def test_the_crop_is_the_roi_rows_then_columns() -> None:
    """A 40-row × 60-column frame, white exactly inside ROI(x=30, y=5, w=20, h=20): the tensor is
    all white (2.0 with mean 0.5, std 0.25)."""
    frame = np.zeros((40, 60), np.uint8)
    frame[5:25, 30:50] = 255
    tensor, _ = Preprocessor(InputSpec(16, 16, 0.5, 0.25), roi=ROI(30, 5, 20, 20)).preprocess(frame)
    assert float(tensor.min()) == pytest.approx(2.0)


@pytest.mark.parametrize("channels", [3, 4])
def test_a_colour_frame_gives_the_tensor_of_its_gray_frame(channels: int) -> None:
    """Only the scan area is made gray (the whole frame only on the frames that detect it): the tensors
    of a colour clip are those of the same clip converted to gray first, frame by frame."""
    rng = np.random.default_rng(1)
    spec = InputSpec(64, 64, 0.5, 0.25)
    colour_pre, gray_pre = Preprocessor(spec, redetect_every=2), Preprocessor(spec, redetect_every=2)
    code = cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY
    for shift in range(4):  # the scan area moves; frames 0 and 2 detect it, 1 and 3 reuse it
        frame = np.zeros((240, 320, channels), np.uint8)
        frame[30 + 4 * shift : 210, 40 : 280 - 4 * shift] = rng.integers(30, 220, (180 - 4 * shift, 240 - 4 * shift,
                                                                                    channels))
        tensor, meta = colour_pre.preprocess(frame)
        expected, expected_meta = gray_pre.preprocess(cv2.cvtColor(frame, code))
        np.testing.assert_array_equal(tensor, expected)
        assert meta == expected_meta and (meta.frame_w, meta.frame_h) == (320, 240)
