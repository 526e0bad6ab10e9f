"""Integration: the bundled demo and real cine clips through the whole pipeline, every output checked."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_bus.config import build_config
from edge_bus.metrics import dice
from edge_bus.pipeline import run_stream
from edge_bus.sources import DemoSource

FRAME_KEYS = {"frame", "t_source", "t_capture", "label", "probs", "malignancy", "lesion", "mask_area", "bbox",
              "lesion_mm", "stages_ms", "e2e_ms", "dropped_before", "hw"}
STAT_KEYS = {"count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"}


def check_outputs(out: Path, frames: int) -> tuple[list[dict], dict]:
    lines = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert len(lines) == frames
    for rec in lines:
        assert FRAME_KEYS <= set(rec)
        assert set(rec["probs"]) == {"normal", "benign", "malignant"}
        assert rec["label"] in rec["probs"] and 0.0 <= rec["malignancy"] <= 1.0
        assert {"preprocess", "infer", "postprocess", "render"} <= set(rec["stages_ms"])
        assert rec["e2e_ms"] > 0
        assert rec["bbox"] is None or len(rec["bbox"]) == 4
    assert [r["frame"] for r in lines] == sorted(r["frame"] for r in lines)  # in order
    lat = json.loads((out / "latency.json").read_text())
    assert {"stages", "fps", "frames", "dropped", "hardware", "model", "source", "verdict"} <= set(lat)
    assert STAT_KEYS <= set(lat["stages"]["end_to_end"]) and lat["stages"]["end_to_end"]["count"] == frames
    for stage in ("decode", "preprocess", "infer", "postprocess", "render", "write"):
        assert STAT_KEYS <= set(lat["stages"][stage])
    assert {"cpu_model", "isa", "openvino", "onnxruntime", "precision"} <= set(lat["hardware"])
    assert {"name", "sha256"} <= set(lat["model"]) and len(lat["model"]["sha256"]) == 64
    if lat["model"]["file"].endswith(".xml"):  # an IR's topology and its weights
        assert set(lat["model"]["files_sha256"]) == {"model_int8.xml", "model_int8.bin"}
    assert all(len(h) == 64 for h in lat["model"]["files_sha256"].values())
    assert {"label", "confidence", "lesion_frames", "frames", "episodes"} <= set(lat["verdict"])
    for episode in lat["verdict"]["episodes"]:  # each inside the run, with its own label
        assert 0 <= episode["first_frame"] <= episode["last_frame"] and episode["label"] in ("benign", "malignant")
        assert 0 < episode["lesion_frames"] <= lat["verdict"]["lesion_frames"]
    html = (out / "report.html").read_text()
    assert "<svg" in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, img = cap.read()
    cap.release()
    assert ok and n == frames
    return lines, lat


def test_demo_end_to_end_matches_truth(tmp_path: Path, shipped_model_dir: Path) -> None:
    out = tmp_path / "demo"
    res = run_stream(build_config(source="demo", out=out, smoothing=0.0))
    demo = DemoSource()
    lines, lat = check_outputs(out, len(demo))
    assert res.frames == len(demo) and res.dropped == 0 and lat["source"]["kind"] == "demo"
    assert "(read ahead: queue included)" in res.one_line()  # a file run's e2e is not a live latency
    # the model must find the demo's lesions: detection agrees with the truth on most frames
    truth = [demo.truth(i).lesion for i in range(len(demo))]
    agree = np.mean([rec["lesion"] == t for rec, t in zip(lines, truth, strict=False)])
    assert agree > 0.7, agree
    # the report says what a "normal" frame is worth: the shipped threshold's recall, from its manifest
    recall = json.loads((shipped_model_dir / "manifest.json").read_text())["thresholds"]["lesion_val"]["lesion_recall"]
    assert f"on BUSI fold 1 it found a lesion in {100 * recall:.1f}% of the lesion images" in (
        out / "report.html").read_text()


@pytest.mark.parametrize("clip", ["Pid_1_VID_5.avi", "Pid_19_VID_95.avi"])
def test_real_cine_clips(tmp_path: Path, shared_data: Path, clip: str) -> None:
    out = tmp_path / clip
    res = run_stream(build_config(source=str(shared_data / "cine" / clip), out=out))
    cap = cv2.VideoCapture(str(shared_data / "cine" / clip))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    lines, lat = check_outputs(out, n)  # file sources lose no frame
    assert res.dropped == 0 and lat["source"]["width"] == 320
    # a lesion is in view for much of each clip; the shipped model finds it in 19-53% of these two clips' frames
    assert sum(r["lesion"] for r in lines) > 0.1 * n


def test_realtime_pacing_drops_nothing_at_30fps(tmp_path: Path) -> None:
    out = tmp_path / "rt"
    res = run_stream(build_config(source="demo", out=out, realtime=True, max_frames=45, video=False))
    assert res.frames + res.dropped == 45
    assert "e2e p99" in res.one_line() and "queue included" not in res.one_line()  # a live latency
    lat = json.loads((out / "latency.json").read_text())
    assert lat["mode"] == "live" and lat["frames"] == res.frames
    assert not (out / "overlay.mp4").exists()
    # the reader thread times each frame's decode (the demo synthesises it: ~1-3 ms) and logs it
    lines = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert all(r["stages_ms"]["decode"] > 0 for r in lines)
    assert lat["stages"]["decode"]["p50_ms"] > 0


def test_folder_of_stills_disables_smoothing(tmp_path: Path) -> None:
    demo = DemoSource()
    folder = tmp_path / "stills"
    folder.mkdir()
    for i in (0, 40, 80):
        cv2.imwrite(str(folder / f"img ({i}).png"), demo.render(i))
        cv2.imwrite(str(folder / f"img ({i})_mask.png"), demo.truth_mask(i).astype(np.uint8) * 255)
    res = run_stream(build_config(source=str(folder), out=tmp_path / "o", smoothing=0.9))
    assert res.frames == 3  # mask files skipped


def test_each_still_gets_its_own_scan_area(tmp_path: Path) -> None:
    """A still's result must not depend on the image before it: a small image first used to leave its
    crop behind for the next one (video keeps a crop for 30 frames; independent stills must not)."""
    demo = DemoSource()
    frame = cv2.copyMakeBorder(demo.render(40), 40, 40, 60, 60, cv2.BORDER_CONSTANT)  # scanner-UI margins
    folder = tmp_path / "stills"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.png"), cv2.resize(frame, (100, 80)))
    cv2.imwrite(str(folder / "2.png"), frame)
    run_stream(build_config(source=str(folder), out=tmp_path / "both", video=False))
    run_stream(build_config(source=str(folder / "2.png"), out=tmp_path / "alone", video=False))
    both = [json.loads(line) for line in (tmp_path / "both" / "frames.jsonl").read_text().splitlines()]
    assert [r["file"] for r in both] == ["1.png", "2.png"]  # each row names its image
    after_small = both[1]
    alone = json.loads((tmp_path / "alone" / "frames.jsonl").read_text().splitlines()[0])
    assert after_small["bbox"] == alone["bbox"] and after_small["label"] == alone["label"]
    assert after_small["probs"] == pytest.approx(alone["probs"], abs=1e-6)


def test_demo_mask_quality_against_truth(tmp_path: Path) -> None:
    demo = DemoSource()
    from edge_bus.engines import EngineConfig, create_engine
    from edge_bus.postprocess import PostprocessConfig, Postprocessor
    from edge_bus.preprocess import Preprocessor
    from edge_bus.zoo import resolve_model

    m = resolve_model(None)
    eng = create_engine(m, EngineConfig())
    post = Postprocessor(m, PostprocessConfig(gate_mask=False))
    scores = []
    for i in range(0, len(demo), 10):
        if not demo.truth(i).lesion:
            continue
        tensor, meta = Preprocessor(m.input).preprocess(demo.render(i))
        scores.append(dice(post.postprocess(eng.infer(tensor), meta).mask, demo.truth_mask(i)))
    eng.close()
    assert scores and float(np.mean(scores)) > 0.5


def test_ended_tells_the_frame_limit_from_the_end_of_the_source(tmp_path: Path) -> None:
    """A looping or live source stopped by --max-frames said "end of source", like a grabber that quit."""
    limited = run_stream(build_config(source="demo", loop=True, max_frames=8, out=tmp_path / "a", video=False))
    assert limited.latency["ended"] == "max frames" and limited.frames == 8
    clip = tmp_path / "five.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    whole = run_stream(build_config(source=str(clip), max_frames=10, out=tmp_path / "b", video=False))
    assert whole.latency["ended"] == "end of source" and whole.frames == 5


def test_a_file_runs_in_batches_and_a_live_source_one_frame_at_a_time(tmp_path: Path) -> None:
    """A file source's frames go to OpenVINO 4 at a time (10 frames: two batches and a partial one,
    none lost), with the answers of one frame at a time; --realtime and ONNX Runtime run 1.
    latency.json says which batch ran."""
    runs = {
        "batch4": {},
        "batch1": {"batch": 1},
        "live": {"realtime": True},
        "ort": {"backend": "onnxruntime", "precision": "fp32"},
    }
    lines, batches, reports = {}, {}, {}
    for name, extra in runs.items():
        out = tmp_path / name
        run_stream(build_config(source="demo", out=out, max_frames=10, video=False, **extra))
        lines[name] = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
        batches[name] = json.loads((out / "latency.json").read_text())["model"]["batch"]
        reports[name] = (out / "report.html").read_text()
    assert batches == {"batch4": 4, "batch1": 1, "live": 1, "ort": 1}
    # the report says what a file run's latency is (the queue and the batch included) and how it ran
    assert "A file run reads ahead" in reports["batch4"] and "A file run reads ahead" not in reports["live"]
    assert "requests of 4 frames" in reports["batch4"] and "newest frame first" in reports["live"]
    assert [r["frame"] for r in lines["batch4"]] == list(range(10))
    for a, b in zip(lines["batch4"], lines["batch1"], strict=True):
        assert a["label"] == b["label"] and a["bbox"] == b["bbox"]
        np.testing.assert_allclose(list(a["probs"].values()), list(b["probs"].values()), atol=1e-4)


def test_each_loop_pass_starts_its_smoothing_afresh(tmp_path: Path) -> None:
    """With --loop the first frames of each pass were blended with the pass before's last frame (a clip
    ending on a malignant lesion and starting on normal tissue: frame 86 read P(normal) 0.47 where frame 0,
    the same picture, read 0.92)."""
    demo = DemoSource()
    lesion = [i for i in range(len(demo)) if demo.truth(i).lesion]
    clip = tmp_path / "clip.avi"  # normal tissue first, a lesion in view at the end
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (demo.info.width, demo.info.height))
    picks = [i for i in range(len(demo)) if not demo.truth(i).lesion][:4] + lesion[:4]
    for i in picks:
        writer.write(demo.render(i))
    writer.release()
    demo.close()
    run_stream(build_config(source=str(clip), loop=True, max_frames=3 * len(picks), smoothing=0.8,
                            out=tmp_path / "run", video=False))
    rows = [json.loads(line) for line in (tmp_path / "run" / "frames.jsonl").read_text().splitlines()]
    passes = [rows[k * len(picks):(k + 1) * len(picks)] for k in range(3)]
    assert passes[0][-1]["lesion"] and passes[0][-1]["probs"]["normal"] < passes[0][0]["probs"]["normal"]
    for later in passes[1:]:
        for first, again in zip(passes[0], later, strict=True):
            assert again["probs"] == pytest.approx(first["probs"], abs=1e-4)
            assert again["lesion"] == first["lesion"]
            assert again["mask_area"] == pytest.approx(first["mask_area"], abs=1e-4)


def test_a_folder_of_cines_plays_each_as_its_own_clip(tmp_path: Path) -> None:
    """A folder holding cines (here TIFF stacks; DICOM cines alike) played them as stills: smoothing off,
    and each file's frames blended with nothing. Now smoothing runs within a file and starts afresh, with
    the scan area detected again, at the next: the second file's frames read as that file alone does,
    though its scan area (a smaller picture inside a black frame) is not the first's."""
    demo = DemoSource()
    h, w = demo.info.height, demo.info.width
    lesion = [i for i in range(len(demo)) if demo.truth(i).lesion][:4]
    normal = [i for i in range(len(demo)) if not demo.truth(i).lesion][:4]
    framed = []
    for i in lesion:  # the same picture, smaller, inside a black frame of the same size
        canvas = np.zeros((h, w, 3), np.uint8)
        small = cv2.resize(demo.render(i), (w * 3 // 4, h * 3 // 4), interpolation=cv2.INTER_AREA)
        canvas[h // 8 : h // 8 + small.shape[0], w // 8 : w // 8 + small.shape[1]] = small
        framed.append(canvas)
    folder = tmp_path / "exam"
    folder.mkdir()
    assert cv2.imwritemulti(str(folder / "a.tif"), [demo.render(i) for i in normal])
    assert cv2.imwritemulti(str(folder / "b.tif"), framed)
    demo.close()

    def rows(source: Path, name: str, smoothing: float) -> list[dict]:
        run_stream(build_config(source=str(source), smoothing=smoothing, out=tmp_path / name, video=False))
        return [json.loads(line) for line in (tmp_path / name / "frames.jsonl").read_text().splitlines()]

    both, alone = rows(folder, "both", 0.8), rows(folder / "b.tif", "alone", 0.8)
    assert [r["file"] for r in both] == ["a.tif"] * 4 + ["b.tif"] * 4
    for in_folder, by_itself in zip(both[4:], alone, strict=True):
        assert in_folder["probs"] == pytest.approx(by_itself["probs"], abs=1e-4)
        assert in_folder["bbox"] == by_itself["bbox"] and in_folder["lesion"] == by_itself["lesion"]
    raw = rows(folder / "b.tif", "raw", 0.0)
    assert raw[0]["probs"] == pytest.approx(alone[0]["probs"], abs=1e-4)  # nothing to smooth with yet
    assert any(r["probs"] != pytest.approx(s["probs"], abs=1e-3) for r, s in zip(raw[1:], alone[1:], strict=True))


def test_a_stop_during_set_up_leaves_the_previous_runs_outputs(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's files were opened before the warm-ups: a Ctrl-C in them (a second of set-up) said "no frame
    was processed" and left an empty frames.jsonl where the previous run in that --out had its four files."""
    from edge_bus.preprocess import Preprocessor

    out = tmp_path / "run"
    run_stream(build_config(source="demo", max_frames=5, out=out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"frames.jsonl", "latency.json", "report.html", "overlay.mp4"} <= set(before)

    def interrupted(self: Preprocessor, size: tuple[int, int]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Preprocessor, "warm_up", interrupted)
    with pytest.raises(BaseException) as caught:
        run_stream(build_config(source="demo", max_frames=5, out=out))
    assert type(caught.value).__name__ in ("KeyboardInterrupt", "Interrupted")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_capture_options_on_a_file_are_said_to_do_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """--capture-size 640x480 on a video file ran at the file's 320x320 without a word."""
    import logging

    with caplog.at_level(logging.WARNING, logger="edge_bus"):
        run_stream(build_config(source="demo", capture_width=640, capture_height=480, max_frames=2,
                                out=tmp_path / "run", video=False))
    assert any("--capture-size, --capture-fps and --capture-format set a capture device (or replay:); demo source"
               in r.getMessage() for r in caplog.records)
