"""``edge-bus report``: a run's report again from its frames.jsonl, after a kill that no handler sees."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_bus.config import build_config
from edge_bus.errors import ConfigError, DataError
from edge_bus.pipeline import run_stream
from edge_bus.recover import KILLED, REBUILT, rebuild_report
from edge_bus.run_outputs import RUNNING


def _demo_run(out: Path, frames: int = 40) -> dict:
    run_stream(build_config(source="demo", max_frames=frames, out=out, video=False))
    return json.loads((out / "latency.json").read_text())


def test_a_finished_run_keeps_its_latency_json_and_gets_the_same_report_numbers(tmp_path: Path) -> None:
    out = tmp_path / "run"
    latency = _demo_run(out)
    before = (out / "latency.json").read_bytes()
    (out / "report.html").unlink()
    rebuilt = rebuild_report(out)
    assert (out / "latency.json").read_bytes() == before and not rebuilt.wrote_latency and not rebuilt.broken_video
    assert (rebuilt.frames, rebuilt.skipped) == (40, 0)
    verdict = latency["verdict"]
    assert (rebuilt.verdict.label, rebuilt.verdict.lesion_frames) == (verdict["label"], verdict["lesion_frames"])
    assert [e.to_json() for e in rebuilt.verdict.episodes] == verdict["episodes"]
    html = (out / "report.html").read_text()
    assert "rebuilt from frames.jsonl" in html and "demo: demo" in html  # the source, from latency.json
    # the same latency table, from frames.jsonl's times (kept to the microsecond, so within 0.01 ms)
    row = re.search(r"<th>end to end</th><td>(\d+)</td>((?:<td>[\d.]+</td>){5})", html)
    assert row is not None and int(row.group(1)) == latency["stages"]["end_to_end"]["count"]
    shown = [float(x) for x in re.findall(r"[\d.]+", row.group(2))]
    recorded = [latency["stages"]["end_to_end"][k] for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")]
    assert shown == pytest.approx(recorded, abs=0.011)
    with pytest.raises(ConfigError, match="names the model and thresholds the run used"):
        rebuild_report(out, operating_point="sensitive")  # the run's own are in its latency.json


def test_a_killed_run_gets_latency_json_and_report_from_its_complete_lines(tmp_path: Path) -> None:
    """What a kill leaves: frames.jsonl with a torn last line, no latency.json, no report.html."""
    out = tmp_path / "run"
    latency = _demo_run(out)
    (out / "latency.json").unlink()
    (out / "report.html").unlink()
    text = (out / "frames.jsonl").read_text()
    (out / "frames.jsonl").write_text(text[: text.rindex("\n", 0, len(text) - 1) + 30])  # 39 lines + a torn one
    rebuilt = rebuild_report(out)
    assert (rebuilt.frames, rebuilt.skipped, rebuilt.wrote_latency) == (39, 1, True)
    written = json.loads((out / "latency.json").read_text())
    assert written["ended"] == REBUILT and written["frames"] == 39 and written["hardware"] is None
    assert written["stages"]["end_to_end"]["count"] == 39
    assert written["model"]["name"] == "emt_net" and written["model"]["threshold"] == latency["model"]["threshold"]
    assert written["fps"] > 0 and written["verdict"]["frames"] == 39
    assert "the run left no latency.json" in (out / "report.html").read_text()
    assert "1 incomplete or invalid line skipped" in rebuilt.one_line()


def test_a_killed_run_keeps_the_machine_model_and_source_it_started_with(tmp_path: Path) -> None:
    """A run killed where no handler runs left no latency.json, so the rebuilt one had no hardware or source,
    its report lost the file run's read-ahead note, and a cine without timing (a DICOM without FrameTime,
    a TIFF stack: 1 s a frame in t_source; the run counts its episodes at 30 fps) got its episodes
    measured at 1 fps. The run now writes
    latency.json's facts as it starts; edge-bus report keeps them and rebuilds the numbers."""
    import cv2

    from edge_bus.sources import DemoSource

    demo = DemoSource()
    lesion = [i for i in range(len(demo)) if demo.truth(i).lesion][:12]
    cine = tmp_path / "cine.tif"  # no timing: t_source 0, 1, 2, ...
    assert cv2.imwritemulti(str(cine), [demo.render(i) for i in lesion])
    demo.close()
    out = tmp_path / "run"
    run_stream(build_config(source=str(cine), out=out, video=False))
    finished = json.loads((out / "latency.json").read_text())
    facts = ("mode", "hardware", "model", "source")
    assert finished["verdict"]["episodes"] and finished["verdict"]["episodes"][0]["first_frame"] == 0
    # as SIGKILL leaves it: the latency.json of the run's start, no report
    (out / "latency.json").write_text(json.dumps({**{k: finished[k] for k in facts}, "stages": {}, "fps": 0.0,
                                                  "frames": 0, "dropped": 0, "verdict": None, "ended": RUNNING,
                                                  "error": None}))
    (out / "report.html").unlink()
    with pytest.raises(ConfigError, match="names the model and thresholds the run used"):
        rebuild_report(out, lesion_threshold=0.5)
    rebuilt = rebuild_report(out)
    written = json.loads((out / "latency.json").read_text())
    assert rebuilt.wrote_latency and written["ended"] == KILLED and written["frames"] == 12
    assert {k: written[k] for k in facts} == {k: finished[k] for k in facts}
    assert written["verdict"]["episodes"] == finished["verdict"]["episodes"]  # counted at the run's rate
    html = (out / "report.html").read_text()
    assert "reads ahead to keep the engine busy" in html
    assert "folder: cine.tif (" in html and "@ frame rate unknown)" in html
    assert "the run was killed before it ended" in html
    again = rebuild_report(out)  # a second time: the finished latency.json is kept
    assert not again.wrote_latency and json.loads((out / "latency.json").read_text()) == written


@pytest.mark.parametrize(("mode", "fps"), [("live", 30.0), ("file", 90 / (89 / 30 + 0.005))])
def test_the_rebuilt_fps_is_counted_as_the_run_counts_it(tmp_path: Path, mode: str, fps: float) -> None:
    """90 frames 1/30 s apart, answered 5 ms after capture: a live run's rate of answers is 30 FPS; a file
    run's frames over its first capture to its last overlay, as benchmark_app counts throughput."""
    out = tmp_path / "run"
    run_stream(build_config(source="demo", max_frames=2, out=out, video=False))
    started = json.loads((out / "latency.json").read_text())
    first = json.loads((out / "frames.jsonl").read_text().splitlines()[0])
    rows = [{**first, "frame": i, "t_source": i / 30, "t_capture": 1000.0 + i / 30, "e2e_ms": 5.0} for i in range(90)]
    (out / "frames.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "latency.json").write_text(json.dumps({**started, "mode": mode, "ended": RUNNING, "verdict": None}))
    rebuild_report(out)
    assert json.loads((out / "latency.json").read_text())["fps"] == pytest.approx(fps, abs=0.01)


def _summary(html: str) -> dict[str, str]:
    table = html[html.index('<table class="kv">'):]
    table = table[:table.index("</table>")]
    return dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", table))


def test_a_rebuilt_page_says_what_the_runs_own_said(tmp_path: Path) -> None:
    """The rebuilt page was titled by the folder and left out the sha256, the device, the mode, the lesion
    rule, the scan area and the board's line, though latency.json held them."""
    out = tmp_path / "run"
    run_stream(build_config(source="demo", max_frames=12, out=out, video=False, bridge="sim://?fps=60"))
    own = (out / "report.html").read_text()
    (out / "report.html").unlink()
    rebuild_report(out)
    rebuilt = (out / "report.html").read_text()
    assert _summary(rebuilt) == _summary(own)
    assert {"sha256", "Backend", "Mode", "Source", "Lesion rule", "Scan area", "Bridge"} <= set(_summary(own))
    assert re.search(r"<h1>edge-bus stream — demo \(BUS-BRA [^<]*\) \(rebuilt\)</h1>", rebuilt)  # not the folder


def test_lines_that_are_not_frame_records_are_skipped_not_a_traceback_or_an_infinite_verdict(tmp_path: Path) -> None:
    """Edited or damaged lines: ``{}``, an index of 1e300 or NaN, a malignancy of Infinity. Before, the
    first gave "frames read" for lines with no frame, the next two tracebacks, the last a verdict of
    "mean P(malignant | lesion) inf" and a latency.json with ``Infinity`` in it."""
    out = tmp_path / "run"
    _demo_run(out, frames=10)
    (out / "latency.json").unlink()
    lines = (out / "frames.jsonl").read_text().splitlines()
    good = json.loads(lines[3])
    bad = ["{}", "", json.dumps({**good, "frame": 1e300}), lines[4].replace('"frame":4', '"frame":NaN'),
           json.dumps({**good, "malignancy": float("inf"), "lesion": True}),
           json.dumps({**good, "e2e_ms": -float("inf")}),
           json.dumps({**good, "dropped_before": 1e30}), json.dumps({**good, "stages_ms": {"infer": "fast"}}), "[1, 2]"]
    (out / "frames.jsonl").write_text("\n".join(lines + bad) + "\n")
    rebuilt = rebuild_report(out)
    assert (rebuilt.frames, rebuilt.skipped) == (10, len(bad) - 1)  # the blank line is passed over, not counted
    written = (out / "latency.json").read_text()
    assert "Infinity" not in written and "NaN" not in written
    assert json.loads(written)["frames"] == 10


def test_a_latency_json_that_report_wrote_can_be_written_again_with_the_runs_model(tmp_path: Path) -> None:
    """A first ``edge-bus report`` on a killed run guesses the model (the default); it used to lock that
    guess in: --model / --operating-point were then refused, and the second report dropped the note
    that the thresholds were the ones given."""
    out = tmp_path / "run"
    _demo_run(out, frames=10)
    (out / "latency.json").unlink()
    rebuild_report(out)
    rebuild_report(out)  # again, as it is
    assert "the model and thresholds are the ones given to edge-bus report" in (out / "report.html").read_text()
    rebuilt = rebuild_report(out, operating_point="sensitive")
    written = json.loads((out / "latency.json").read_text())
    assert rebuilt.wrote_latency and written["ended"] == REBUILT and written["model"]["operating_point"] == "sensitive"
    assert "the model and thresholds are the ones given to edge-bus report" in (out / "report.html").read_text()


def test_what_is_not_a_run_folder_says_what_it_is(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    for path, what in ((tmp_path / "f", "is a file"), (tmp_path / "nope", "does not exist"),
                       (tmp_path / ("x" * 300), "File name too long")):
        with pytest.raises(DataError, match=what):
            rebuild_report(path)


def test_the_rebuilt_report_keeps_the_lesion_threshold_warning(tmp_path: Path) -> None:
    """report.html says what the model's lesion threshold missed on validation ("a frame called normal
    may still show one"); the report rebuilt by edge-bus report dropped it."""
    out = tmp_path / "run"
    _demo_run(out, frames=5)
    warning = "so a frame called normal may still show one"
    assert warning in (out / "report.html").read_text()
    rebuild_report(out)
    assert warning in (out / "report.html").read_text()
    (out / "latency.json").unlink()  # killed: the model is the one given to report, with its own threshold
    rebuild_report(out)
    assert warning in (out / "report.html").read_text()


def test_a_killed_run_given_its_lesion_threshold(tmp_path: Path) -> None:
    """A killed run that was given --lesion-threshold: its rebuilt latency.json and report state that
    threshold (they stated the model's, beside lesion counts made with another), with no warning drawn
    from the model's own; a run with a latency.json refuses it."""
    out = tmp_path / "run"
    _demo_run(out, frames=5)
    with pytest.raises(ConfigError, match="--lesion-threshold are for a run that left no latency.json"):
        rebuild_report(out, lesion_threshold=0.5)
    (out / "latency.json").unlink()
    rebuild_report(out, lesion_threshold=0.5)
    assert json.loads((out / "latency.json").read_text())["model"]["lesion_threshold"] == 0.5
    html = (out / "report.html").read_text()
    assert "0.5000" in html and "may still show one" not in html
    (out / "latency.json").unlink()
    with pytest.raises(ConfigError, match="between 0 and 1"):
        rebuild_report(out, lesion_threshold=1.5)


def test_no_log_or_no_complete_frame_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no frames.jsonl"):
        rebuild_report(tmp_path)
    (tmp_path / "frames.jsonl").write_text('{"frame": 0, "lab')
    with pytest.raises(DataError, match="holds no complete frame"):
        rebuild_report(tmp_path)
    assert not (tmp_path / "latency.json").exists() and not (tmp_path / "report.html").exists()


def test_a_folder_a_stream_is_still_writing_to_is_refused(tmp_path: Path) -> None:
    from edge_bus.errors import OutputError
    from edge_bus.run_outputs import OutFolderLock

    out = tmp_path / "run"
    _demo_run(out, frames=5)
    lock = OutFolderLock(out)  # as a running stream holds it
    try:
        with pytest.raises(OutputError, match="a stream is still writing to"):
            rebuild_report(out)
    finally:
        lock.release()
    assert rebuild_report(out).frames == 5  # once it has ended


def test_sigkill_mid_run_then_edge_bus_report(tmp_path: Path) -> None:
    """A real kill -9 of a paced stream: the run leaves no report.html and only the latency.json it started
    with (its machine, model and source, no numbers); ``edge-bus report`` writes both from the frames it
    logged, keeping those facts, as one line, exit 0."""
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "edge_bus", "stream", "--source", "demo", "--loop", "--realtime",
                             "--out", str(out), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "frames.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.exists() or log.read_text().count("\n") < 15):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    started = json.loads((out / "latency.json").read_text())
    assert started["ended"] == RUNNING and started["frames"] == 0 and not (out / "report.html").exists()
    assert (out / ".edge-bus-reserve").exists()  # the space the run held for its last files: report frees it
    done = subprocess.run([sys.executable, "-m", "edge_bus", "report", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "wrote latency.json and report.html" in done.stdout
    written = json.loads((out / "latency.json").read_text())
    assert written["frames"] >= 15 and written["ended"] == KILLED
    assert {k: written[k] for k in ("mode", "hardware", "model", "source")} == {
        k: started[k] for k in ("mode", "hardware", "model", "source")}
    assert "<svg" in (out / "report.html").read_text() and not (out / ".edge-bus-reserve").exists()
    assert "overlay.mp4 does not play (never closed)" in done.stdout  # said, not hidden
    assert "overlay.mp4 is not playable" in (out / "report.html").read_text()


def test_source_info_reads_back_from_latency_json() -> None:
    """latency.json's ``source`` read back gives the same SourceInfo (what the report's timeline and
    the episodes need from it); a file from before ``still`` was written reads as not still."""
    from edge_bus.sources.base import SourceInfo

    grabbed = SourceInfo("capture", "/dev/video2", 1920, 1080, 30.0, None, live=True, stamped_before_decode=True,
                         pixel_format="MJPG")
    stills = SourceInfo("folder", "BUSI/benign", 0, 0, 0.0, 437, still=True)
    for info in (grabbed, stills):
        assert SourceInfo.from_json(json.loads(json.dumps(info.to_json()))) == info
    old = {"kind": "video", "name": "clip.avi", "width": 320, "height": 320, "fps": 30.0, "frames": 120, "live": False}
    assert SourceInfo.from_json(old) == SourceInfo("video", "clip.avi", 320, 320, 30.0, 120)


def test_rebuilt_glass_to_glass_leaves_frozen_frames_out_as_the_run_does(tmp_path: Path) -> None:
    """edge-bus report counted the frames a frozen board repeated in glass to glass (150 frames, p50
    7.19 ms) where the run's own latency.json had the 89 answered ones (p50 10.65 ms)."""
    from edge_bus.recover import _read_log
    from edge_bus.telemetry.stats import END_TO_END, GLASS_TO_GLASS

    lines = []
    for i in range(20):
        frozen = i % 2 == 1
        lines.append(json.dumps({"frame": i, "label": "benign", "malignancy": 0.2, "lesion": True,
                                 "e2e_ms": 1.0 if frozen else 9.0, "stages_ms": {} if frozen else {"infer": 5.0},
                                 "glass_to_glass_ms": 2.0 if frozen else 12.0, "frozen": frozen}))
    (tmp_path / "frames.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = _read_log(tmp_path / "frames.jsonl").metrics.stats()
    assert (stats[GLASS_TO_GLASS].count, stats[GLASS_TO_GLASS].p50_ms) == (10, 12.0)
    assert (stats[END_TO_END].count, stats[END_TO_END].p50_ms) == (10, 9.0)
    assert stats["infer"].count == 10
