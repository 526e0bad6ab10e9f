"""Hand-worked numbers for what edge-bus reports as results: the clip verdict, the eval summary and
the lesion threshold chosen by calibration. Each expected value is worked out in the docstring."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_model_dir

from edge_bus.calibrate import choose_thresholds
from edge_bus.evaluation import ImageResult, summarize
from edge_bus.summary import MAX_LISTED_EPISODES, EpisodeFinder, LesionEpisode, VerdictTally, clip_verdict
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
    # the report says why a clip with a lesion frame is normal, and what that frame read (was null)
    assert v.mean_malignancy == pytest.approx(0.9)
    assert v.evidence().startswith("lesion in 1 of 20 frames (under 10% of them: called normal)")


def test_lesion_episodes_bridge_short_gaps_and_drop_flickers() -> None:
    """Lesion frames 0-3 (malignancy 0.2), a gap of 2, frames 6-7 (0.2), a gap of 4, frame 12 alone,
    a gap of 3, frames 16-19 (0.9). With max_gap 2 and min_frames 2: 0-7 is one episode (6 lesion
    frames, mean 0.2, benign), frame 12 is a flicker (1 < 2, left out), 16-19 another (4 frames,
    mean 0.9, malignant at 0.5). With max_gap 3, frame 12 joins 16-19 (gap 3): 5 frames, mean
    (0.5 + 4 × 0.9) / 5 = 0.82."""
    lesion = {0: 0.2, 1: 0.2, 2: 0.2, 3: 0.2, 6: 0.2, 7: 0.2, 12: 0.5, 16: 0.9, 17: 0.9, 18: 0.9, 19: 0.9}

    def episodes(max_gap: int) -> tuple[LesionEpisode, ...]:
        finder = EpisodeFinder(0.5, max_gap=max_gap, min_frames=2)
        for i in sorted(lesion):
            finder.add(i, lesion[i])
        return finder.result()[0]

    first, second = episodes(max_gap=2)
    assert (first.first_frame, first.last_frame, first.lesion_frames, first.label) == (0, 7, 6, "benign")
    assert first.mean_malignancy == pytest.approx(0.2)
    assert (second.first_frame, second.last_frame, second.lesion_frames, second.label) == (16, 19, 4, "malignant")
    wide = episodes(max_gap=3)
    assert [(e.first_frame, e.last_frame, e.lesion_frames) for e in wide] == [(0, 7, 6), (12, 19, 5)]
    assert wide[1].mean_malignancy == pytest.approx(0.82)


def test_the_clip_verdict_lists_episodes_for_a_video_only() -> None:
    """The same clip at 10 fps (gap 0.5 s → 5 frames, shortest 0.2 s → 2 frames): frames 0-19 are
    one episode and the verdict's evidence says nothing more; two lesions 30 frames apart are two
    episodes, named in the evidence. Independent stills (fps 0) get none. Frozen frames are left out,
    so a 10-frame freeze inside a lesion splits it."""
    one = _series([(True, 0.9 if i % 7 else 0.2) if i % 4 else (False, 0.0) for i in range(20)])
    v = clip_verdict(one, 0.5, fps=10.0)
    assert [(e.first_frame, e.last_frame) for e in v.episodes] == [(1, 19)] and "episodes" not in v.evidence()
    two = _series([(True, 0.1)] * 10 + [(False, 0.0)] * 30 + [(True, 0.95)] * 10)
    v = clip_verdict(two, 0.5, fps=10.0)
    assert [(e.first_frame, e.last_frame, e.label) for e in v.episodes] == [(0, 9, "benign"), (40, 49, "malignant")]
    assert v.evidence().endswith("; 2 lesion episodes, 1 malignant")
    assert v.to_json()["episodes"][1] == {"first_frame": 40, "last_frame": 49, "lesion_frames": 10,
                                          "mean_malignancy": 0.95, "label": "malignant"}
    assert clip_verdict(two, 0.5).episodes == ()
    frozen = _series([(True, 0.9)] * 30, frozen=tuple(range(10, 20)))
    assert [(e.first_frame, e.last_frame) for e in clip_verdict(frozen, 0.5, fps=10.0).episodes] == [(0, 9), (20, 29)]


def test_an_endless_run_keeps_its_episode_count_but_lists_only_the_first() -> None:
    """3,000 episodes of 10 lesion frames 100 frames apart at 10 fps (gap 5, shortest 2), every third
    malignant (0.9, else 0.1): the tally lists the first MAX_LISTED_EPISODES, counts all 3,000 and the
    1,000 malignant ones, and the evidence says so; the verdict mid-run counts the open episode without
    closing it (the next frame still joins it)."""
    tally = VerdictTally(0.5, fps=10.0)
    for k in range(3000):
        for i in range(10):
            tally.add(100 * k + i, True, 0.9 if k % 3 == 0 else 0.1)
            tally.add(100 * k + 50 + i, False, 0.0)
    v = tally.verdict()
    assert (v.episode_count, v.malignant_episodes, len(v.episodes)) == (3000, 1000, MAX_LISTED_EPISODES)
    assert v.evidence().endswith("; 3,000 lesion episodes, 1,000 malignant")
    assert v.to_json()["episode_count"] == 3000
    tally.add(299_910, True, 0.9)  # joins the last episode (ended at 299,909), left open by verdict()
    assert tally.verdict().episode_count == 3000 and tally.episodes is not None
    assert tally.episodes.result()[1] == 3000


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


def test_eval_summary_counts_lesions_found_and_lesion_free_crops_flagged(tmp_path: Path) -> None:
    """Lesion images at P(lesion) 0.99, t (found: >=) and 0.0 → 2 of 3 found. Their crops: 0.99 for
    the first, t and 0.0 for the second, none for the third → 2 of 3 flagged. By scanner: A has the
    first two (both found; crops 2 of 3 flagged), B the third and a normal (none found, no crops)."""
    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    t = m.lesion_threshold
    results = [
        ImageResult("b.png", "benign", 0.99, 0.2, "benign", 0.8, 0.7, "A", crop_lesion_probs=(0.99,)),
        ImageResult("m.png", "malignant", t, 0.9, "malignant", 0.4, 0.3, "A", crop_lesion_probs=(t, 0.0)),
        ImageResult("m2.png", "malignant", 0.0, 0.9, "normal", 0.0, 0.0, "B"),
        ImageResult("n.png", "normal", 0.0, 0.1, "normal", None, None, "B"),
    ]
    r = summarize(m, results, "onnxruntime", "f32", "hand")
    assert (r.lesion_recall, r.n_crops, r.crop_fp_rate) == (pytest.approx(2 / 3), 3, pytest.approx(2 / 3))
    a, b = r.by_device["A"], r.by_device["B"]
    assert (a.lesion_recall, a.n_crops, a.crop_fp_rate) == (1.0, 3, pytest.approx(2 / 3))
    assert (b.lesion_recall, b.n_crops, b.crop_fp_rate) == (0.0, 0, None)
    j = r.to_json()
    assert (j["lesion_recall"], j["n_crops"], j["crop_fp_rate"]) == (0.6667, 3, 0.6667)
    # what those numbers were counted at, and no kernel note for ONNX Runtime (the JSON left both out)
    assert (j["lesion_threshold"], j["kernel_note"]) == (t, None) and j["edge_bus_version"]


def test_eval_scores_lesion_free_crops_of_the_scan_area_as_live_frames(tmp_path: Path) -> None:
    """A 160×200 image: black margins around a gray (100) scan area with a bright (250) disk, the
    lesion. An engine that says "lesion" exactly when it sees a pixel above 200: the image is found,
    and none of its crops is flagged, so none of them holds a lesion pixel or a black margin pixel
    (a margin would have made the scan area's detection part of what is checked). The crops
    are the same in a second run (drawn from the image's name)."""
    import cv2
    import numpy as np

    from edge_bus.datasets import LabeledImage
    from edge_bus.engines import EngineConfig
    from edge_bus.engines.fake import FakeEngine
    from edge_bus.evaluation import run_images
    from edge_bus.types import ModelOutputs

    m = load_manifest(tiny_model_dir(tmp_path / "tiny"))
    spec = m.input
    bright, dark = (200 / 255 - spec.mean) / spec.std, (20 / 255 - spec.mean) / spec.std

    class SeesBright(FakeEngine):
        def __init__(self) -> None:
            super().__init__(m, EngineConfig())
            self.seen: list[tuple[float, float]] = []  # (max, min) of each tensor, in order

        def _run_session(self, tensor: np.ndarray) -> ModelOutputs:
            self.seen.append((float(tensor.max()), float(tensor.min())))
            p = 0.99 if tensor.max() > bright else 0.01
            return self._outputs(self._mask, np.array([[np.log(p / (1 - p)), 0.0]], np.float32))

    image, mask = tmp_path / "benign (1).png", tmp_path / "benign (1)_mask.png"
    img = np.zeros((160, 200), np.uint8)
    img[20:140, 30:170] = 100  # the scan area
    truth = np.zeros((160, 200), np.uint8)
    cv2.circle(truth, (60, 50), 15, 255, -1)
    img[truth > 0] = 250
    cv2.imwrite(str(image), img)
    cv2.imwrite(str(mask), truth)
    item = LabeledImage(image, (mask,), "benign", None, "hand")
    engine = SeesBright()
    [r] = run_images(m, engine, [item], crops=4)
    assert r.lesion_prob == pytest.approx(0.99, abs=1e-4) and len(r.crop_lesion_probs) == 4
    assert all(p == pytest.approx(0.01, abs=1e-4) for p in r.crop_lesion_probs)
    assert all(lo > dark for _, lo in engine.seen[1:])  # no crop reaches into the black margin
    [again] = run_images(m, engine, [item], crops=4)
    assert again.crop_lesion_probs == r.crop_lesion_probs and engine.seen[6:] == engine.seen[1:5]
    [none] = run_images(m, engine, [item])  # crops=0 by default for callers that don't ask (export, bootstrap)
    assert none.crop_lesion_probs == ()
