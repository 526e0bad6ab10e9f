"""Hand-worked numbers for what edge-bus reports as results: the clip verdict, the eval summary and
the lesion threshold chosen by calibration. Each expected value is worked out in the docstring."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_model_dir

from edge_bus.calibrate import choose_thresholds
from edge_bus.evaluation import ImageResult, summarize
from edge_bus.summary import clip_verdict
from edge_bus.telemetry.series import FrameSeries, SeriesBuilder
from edge_bus.zoo import load_manifest


def _series(frames: list[tuple[bool, float]], frozen: tuple[int, ...] = ()) -> FrameSeries:
    """(lesion, P(malignant | lesion)) per frame; the indexes in ``frozen`` were shown while frozen."""
    b = SeriesBuilder()
    for i, (lesion, malignancy) in enumerate(frames):
        b.add_values(i, 5.0, {}, "benign" if lesion else "normal", malignancy, lesion, frozen=i in frozen)
    return b.build()


def test_clip_verdict_malignant_at_the_threshold_and_its_confidence() -> None:
    """4 lesion frames of malignancy 0.6, 0.8, 0.7, 0.7 (mean 0.7) and 2 without (malignancy 0.0,
    which must not pull the mean down): at threshold 0.7 the clip is malignant (>=), confidence
    0.7; at 0.71 benign, confidence 1 - 0.7 = 0.3."""
    s = _series([(True, 0.6), (False, 0.0), (True, 0.8), (True, 0.7), (False, 0.0), (True, 0.7)])
    v = clip_verdict(s, 0.7)
    assert (v.label, v.confidence, v.lesion_frames, v.frames) == ("malignant", pytest.approx(0.7), 4, 6)
    assert v.mean_malignancy == pytest.approx(0.7)
    b = clip_verdict(s, 0.71)
    assert (b.label, b.confidence) == ("benign", pytest.approx(0.3))


def test_clip_verdict_normal_below_a_tenth_of_the_frames() -> None:
    """20 answered frames: 2 with a lesion is exactly a tenth (not below it), so the clip is read;
    1 is below, so the clip is normal with confidence 1 - 1/20 = 0.95. Frozen frames don't count."""
    two = _series([(i < 2, 0.9 if i < 2 else 0.0) for i in range(20)])
    assert clip_verdict(two, 0.5).label == "malignant"
    one = _series([(i < 1, 0.9 if i < 1 else 0.0) for i in range(20)] + [(True, 0.9)] * 5, frozen=(20, 21, 22, 23, 24))
    v = clip_verdict(one, 0.5)
    assert (v.label, v.confidence, v.lesion_frames, v.frames) == ("normal", pytest.approx(0.95), 1, 20)


def test_eval_summary_means_rates_and_three_class_accuracy(tmp_path: Path) -> None:
    """Two lesion images (Dice 0.8 and 0.4 → 0.6; IoU 2/3 and 1/4 → 0.4583) and two normals, one
    with P(lesion) exactly at the lesion threshold (flagged: >=) → normals flagged 0.5. Predicted
    labels right for 3 of the 4 images (the flagged normal is the wrong one) → 3-class accuracy 0.75."""
    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    t = m.lesion_threshold
    results = [
        ImageResult("b.png", "benign", 0.99, 0.2, "benign", 0.8, 2 / 3),
        ImageResult("m.png", "malignant", 0.99, 0.9, "malignant", 0.4, 0.25),
        ImageResult("n1.png", "normal", t, 0.1, "benign", None, None),
        ImageResult("n2.png", "normal", 0.0, 0.1, "normal", None, None),
    ]
    r = summarize(m, results, "onnxruntime", "f32", "hand")
    assert (r.dice, r.iou) == (pytest.approx(0.6), pytest.approx((2 / 3 + 0.25) / 2))
    assert (r.normal_fp_rate, r.accuracy_3class, r.auc, r.n_images) == (0.5, 0.75, 1.0, 4)
    assert r.counts == {"normal": 2, "benign": 1, "malignant": 1}


def test_calibration_reports_the_share_of_normals_flagged() -> None:
    """P(lesion) of lesion images 0.9, 0.8, 0.95, 0.85 and of normals 0.1, 0.2, 0.85: Youden's J is
    best at 0.5 (between 0.2 and 0.8): every lesion found, 1 of 3 normals flagged → recall 1.0,
    normals flagged 0.3333 (1 - specificity)."""
    results = [ImageResult(f"{i}", label, p, 0.5, label, None, None) for i, (label, p) in enumerate([
        ("benign", 0.9), ("malignant", 0.8), ("benign", 0.95), ("malignant", 0.85),
        ("normal", 0.1), ("normal", 0.2), ("normal", 0.85)])]
    th = choose_thresholds(results, "hand")
    assert th["lesion"] == pytest.approx(0.5)
    assert (th["lesion_val"]["lesion_recall"], th["lesion_val"]["normal_flagged"]) == (1.0, 0.3333)


def test_calibration_takes_the_balanced_presence_point_and_lesion_images_only() -> None:
    """Lesion threshold: P(lesion) of lesion images 0.9, 0.8, 0.95, 0.6 and of normals 0.1, 0.2, 0.7.
    J is 2/3 at 0.4 (the point a SEN ≥ 0.94 rule would pick) and 0.75 at 0.75 (0.6 missed, 0.7 not
    flagged): the lesion threshold is 0.75. Malignancy points on lesion images only: benign 0.2 /
    malignant 0.8 splits at 0.5; counting the normal images' own malignancy outputs (0.5) as benign
    would have moved it to 0.65."""
    results = [ImageResult(f"{i}", label, p, m, label, None, None) for i, (label, p, m) in enumerate([
        ("benign", 0.9, 0.2), ("malignant", 0.8, 0.8), ("benign", 0.95, 0.2), ("malignant", 0.6, 0.8),
        ("normal", 0.1, 0.5), ("normal", 0.2, 0.5), ("normal", 0.7, 0.5)])]
    th = choose_thresholds(results, "hand")
    assert th["lesion"] == pytest.approx(0.75)
    assert th["operating_points"]["balanced"]["threshold"] == pytest.approx(0.5)


def test_eval_reads_p_lesion_as_benign_plus_malignant_and_scores_the_ungated_mask(tmp_path: Path) -> None:
    """On the fake device: a disk drawn with P(lesion) 0.02 (below any lesion threshold) still counts
    for Dice, which scores the segmentation whatever the presence head says (the runtime's mask gate
    is for display); and P(lesion) is benign + malignant: 0.6 × (1 − 0.3) + 0.6 × 0.3 = 0.6."""
    import cv2
    import numpy as np

    from edge_bus.datasets import LabeledImage
    from edge_bus.engines import EngineConfig
    from edge_bus.engines.fake import FakeBehaviour, FakeEngine
    from edge_bus.evaluation import run_images

    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))  # 32x32 input: the fake's disk has radius 4 of 16
    image, mask = tmp_path / "x.png", tmp_path / "x_mask.png"
    cv2.imwrite(str(image), np.full((64, 64), 100, np.uint8))
    truth = np.zeros((64, 64), np.uint8)
    cv2.circle(truth, (32, 32), 16, 255, -1)
    cv2.imwrite(str(mask), truth)
    item = LabeledImage(image, (mask,), "benign", None, "hand")
    doubtful = FakeEngine(m, EngineConfig(), FakeBehaviour(presence=0.02, malignancy=0.3))
    [r] = run_images(m, doubtful, [item])
    assert r.dice is not None and r.dice > 0.8 and r.lesion_prob == pytest.approx(0.02, abs=1e-4)
    [r] = run_images(m, FakeEngine(m, EngineConfig(), FakeBehaviour(presence=0.6, malignancy=0.3)), [item])
    assert r.lesion_prob == pytest.approx(0.6, abs=1e-4) and r.malignancy == pytest.approx(0.3, abs=1e-4)
