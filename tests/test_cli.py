"""The CLI, through Typer's runner and as a subprocess: help, happy paths, and every bad input
(one-line error, non-zero exit, no traceback, and every output valid up to the last good frame)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from helpers import copy_model, signal_and_wait, tiny_model_dir
from typer.testing import CliRunner

from edge_bus.cli import app
from edge_bus.errors import HungUp, Terminated

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def assert_one_line_error(result, code: int | None = None) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    text = result.output.strip()
    assert "Traceback" not in text and result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    return errors[0]


def assert_valid_outputs(out: Path, at_least: int = 1) -> int:
    lines = (out / "frames.jsonl").read_text().splitlines()
    assert len(lines) >= at_least
    records = [json.loads(line) for line in lines]  # every line complete
    lat = json.loads((out / "latency.json").read_text())
    assert lat["frames"] == len(records) and lat["stages"]["end_to_end"]["count"] == len(records)
    assert "<svg" in (out / "report.html").read_text()
    video = out / "overlay.mp4"
    if video.exists():
        cap = cv2.VideoCapture(str(video))
        ok, _ = cap.read()
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        assert ok and count == len(records)
    return len(records)


def test_help_explains_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for cmd in ("stream", "report", "eval", "models", "device", "bench", "doctor"):
        assert cmd in result.output
    result = invoke("stream", "--help")
    for opt in ("--source", "--model", "--backend", "--device", "--operating-point", "--realtime", "--roi",
                "--loop", "--max-frames", "--bridge", "--config", "--no-video", "--display", "--lesion-threshold"):
        assert opt in result.output


def test_stream_demo_via_runner(tmp_path: Path) -> None:
    result = invoke("stream", "--source", "demo", "--max-frames", "30", "--out", str(tmp_path / "o"), "-q")
    assert result.exit_code == 0, result.output
    assert "30 frames" in result.output and "verdict" in result.output
    assert assert_valid_outputs(tmp_path / "o") == 30


def test_stream_with_a_lesion_threshold_of_its_own(tmp_path: Path) -> None:
    """--lesion-threshold replaces the model's for the run: every frame at or above it is a lesion
    frame, latency.json records it, and the report says whose it was and drops the sentence on what
    the model's own found on validation (it says nothing about another threshold)."""
    import json

    own, low = tmp_path / "own", tmp_path / "low"
    for out, extra in ((own, ()), (low, ("--lesion-threshold", "0.01"))):
        result = invoke("stream", "--source", "demo", "--max-frames", "20", "--out", str(out), "-q", *extra)
        assert result.exit_code == 0, result.output
    frames = [json.loads(line) for line in (low / "frames.jsonl").read_text().splitlines()]
    assert all(f["lesion"] == (1.0 - f["probs"]["normal"] >= 0.01) for f in frames)
    assert json.loads((low / "latency.json").read_text())["model"]["lesion_threshold"] == 0.01
    report = (low / "report.html").read_text()
    model_threshold = json.loads((own / "latency.json").read_text())["model"]["lesion_threshold"]
    assert f"set for this run; the model&#x27;s is {model_threshold:.4f}" in report
    assert "on BUSI fold 1" not in report
    assert "(the model&#x27;s)" in (own / "report.html").read_text()
    assert "on BUSI fold 1 it found" in (own / "report.html").read_text()
    bad = invoke("stream", "--source", "demo", "--lesion-threshold", "2", "--out", str(tmp_path / "bad"), "-q")
    assert bad.exit_code == 2 and "lesion threshold must be between 0 and 1" in bad.output  # a usage error


def test_models_list_and_info(shipped_model_dir: Path) -> None:
    result = invoke("models", "list")
    assert result.exit_code == 0 and "emt_net" in result.output
    result = invoke("models", "info", "emt_net")
    assert result.exit_code == 0 and "sensitive" in result.output and "sha256 ok" in result.output
    thresholds = json.loads((shipped_model_dir / "manifest.json").read_text())["thresholds"]
    # four decimals, as the report shows it: the shipped threshold sits near 1 (0.9961), where 0.996 hides a lot
    assert f"P(lesion) >= {thresholds['lesion']:.4f}" in result.output
    val = thresholds["lesion_val"]
    assert (f"(on BUSI fold 1 it found a lesion in {100 * val['lesion_recall']:.1f}% of the lesion images and "
            f"flagged {100 * val['normal_flagged']:.1f}% of the normal ones)") \
        in " ".join(result.output.split())  # what the lesion threshold costs, from its manifest


def test_models_quantize_user_model_then_stream(tmp_path: Path) -> None:
    src = tiny_model_dir(tmp_path / "tiny", size=64)
    calib = tmp_path / "calib"
    calib.mkdir()
    from edge_bus.sources import DemoSource

    demo = DemoSource()
    for i in range(0, 60, 6):
        cv2.imwrite(str(calib / f"f{i}.png"), demo.render(i))
    result = invoke("models", "quantize", "--onnx", str(src / "model_fp32.onnx"), "--calib", str(calib),
                    "--out", str(tmp_path / "q"), "--name", "tiny-int8")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert manifest["name"] == "tiny-int8" and set(manifest["sha256"]) == set(manifest["files"].values())
    result = invoke("stream", "--model", str(tmp_path / "q"), "--max-frames", "10", "--out", str(tmp_path / "o"), "-q")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "latency.json").read_text())["model"]["precision"].startswith("int8")


def test_missing_video_file(tmp_path: Path) -> None:
    line = assert_one_line_error(invoke("stream", "--source", str(tmp_path / "nope.avi"), "--out", str(tmp_path)), 3)
    assert "nope.avi" in line


def test_unknown_source_kind(tmp_path: Path) -> None:
    line = assert_one_line_error(invoke("stream", "--source", "rtsp:cam", "--out", str(tmp_path / "o")))
    assert "valid kinds" in line


def test_missing_capture_device(tmp_path: Path) -> None:
    line = assert_one_line_error(invoke("stream", "--source", "/dev/video97", "--out", str(tmp_path / "o")), 3)
    assert "/dev/video97" in line


def test_unknown_model_name(tmp_path: Path) -> None:
    line = assert_one_line_error(invoke("stream", "--model", "unet3000", "--out", str(tmp_path / "o")), 4)
    assert "shipped models: emt_net" in line


def test_model_file_not_matching_manifest(tmp_path: Path, shipped_model_dir: Path) -> None:
    model = copy_model(shipped_model_dir, tmp_path / "m")
    xml = model / "model_int8.xml"
    xml.write_text(xml.read_text().replace("</net>", "</net>\n"))
    line = assert_one_line_error(invoke("stream", "--model", str(model), "--out", str(tmp_path / "o")), 4)
    assert "does not match its manifest" in line


def test_unwritable_out(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = assert_one_line_error(invoke("stream", "--out", str(blocker / "sub")), 5)
    assert "sub" in line


def test_bad_option_values(tmp_path: Path) -> None:
    assert_one_line_error(invoke("stream", "--precision", "int4", "--out", str(tmp_path)), 2)
    assert_one_line_error(invoke("stream", "--operating-point", "paranoid", "--out", str(tmp_path)), 2)
    images = tmp_path / "busi"  # eval and calibrate gave exit 4 (an engine error) for the same mistake
    (images / "benign").mkdir(parents=True)
    line = assert_one_line_error(invoke("eval", "--data", str(images), "--precision", "int4"), 2)
    assert "precision 'int4' is not one of int8, fp32, default" in line
    line = assert_one_line_error(invoke("eval", "--data", str(images), "--crops", "-1"), 2)
    assert "--crops must be 0 to 16" in line
    assert_one_line_error(invoke("models", "calibrate", "emt_net", "--data", str(images), "--out",
                                 str(tmp_path / "cal"), "--precision", "int4"), 2)


def test_truncated_video_keeps_every_good_frame(tmp_path: Path, shared_data: Path) -> None:
    clip = shared_data / "cine" / "Pid_1_VID_5.avi"
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o"
    result = invoke("stream", "--source", str(cut), "--out", str(out), "-q")
    line = assert_one_line_error(result, 3)
    assert "cut.avi" in line and "cover the" in line
    n = assert_valid_outputs(out, at_least=20)
    assert n < 148


def test_full_disk_is_a_clear_error_and_outputs_stay_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full to simulate a full disk")
    import builtins

    from edge_bus.sinks import framelog

    out = tmp_path / "o"
    # the frame log lives on a "full disk": writes fail ENOSPC (a link named frames.jsonl is replaced now)
    monkeypatch.setattr(framelog, "open", lambda path, mode, **kw: builtins.open("/dev/full", "wb", **kw),
                        raising=False)
    result = invoke("stream", "--source", "demo", "--out", str(out), "-q")
    line = assert_one_line_error(result, 5)
    assert "disk full" in line and "frames.jsonl" in line
    lat = json.loads((out / "latency.json").read_text())
    assert "disk full" in lat["error"]
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))  # what was rendered before the failure is a playable video
    ok, _ = cap.read()
    cap.release()
    assert ok and "<html" in (out / "report.html").read_text()


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_bus", *args], capture_output=True, text=True, timeout=timeout)


def test_a_disk_too_full_for_the_video_refuses_the_run_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal left an empty frames.jsonl behind (and the message printed MiB as MB)."""
    import edge_bus.sinks.video as video

    monkeypatch.setattr(video, "free_bytes", lambda folder: 4_000_000)
    out = tmp_path / "o"
    line = assert_one_line_error(invoke("stream", "--source", "demo", "--out", str(out), "-q"), 5)
    assert "disk full writing overlay.mp4: 4 MB free, the video needs 64 MB" in line
    assert list(out.iterdir()) == []


def test_subprocess_stream_and_error() -> None:
    ok = run_cli("--version")
    assert ok.returncode == 0 and ok.stdout.startswith("edge-bus ")
    bad = run_cli("stream", "--source", "/nonexistent/clip.avi")
    assert bad.returncode == 3 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    for args, said in ((("stream", "--roi", "1,2,3"), "ROI must be x,y,w,h in pixels, got '1,2,3'"),
                       (("stream", "--bogus"), "No such option: --bogus"), (("eval",), "Missing option '--data'")):
        usage = run_cli(*args)  # was a boxed panel with the usage over several lines
        assert usage.returncode == 2 and usage.stderr.count("\n") == 1, usage.stderr
        assert usage.stderr.startswith("error: ") and said in usage.stderr and "--help)" in usage.stderr
    assert run_cli().returncode == 2  # no command: the help, as before


@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, 143, "SIGTERM"),  # timeout, systemctl stop and docker stop send SIGTERM
    (signal.SIGHUP, 129, "SIGHUP"),  # the terminal or SSH session closed: it died silently, the mp4 unplayable
], ids=["ctrl-c", "sigterm", "sighup"])
def test_stop_signal_flushes_everything(tmp_path: Path, signum: int, code: int, said: str) -> None:
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "edge_bus", "stream", "--source", "demo", "--loop", "--realtime",
                             "--out", str(out), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        log = out / "frames.jsonl"
        if log.exists() and log.stat().st_size > 4000:
            break
        time.sleep(0.2)
    err = signal_and_wait(proc, signum, timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and said in err
    assert_valid_outputs(out, at_least=5)


@pytest.mark.parametrize(("signum", "error"), [(signal.SIGTERM, Terminated), (signal.SIGHUP, HungUp)],
                         ids=["sigterm", "sighup"])
def test_sigterm_ends_every_command_in_one_line(signum: int, error: type[Terminated]) -> None:
    """Only stream, bench, doctor and simulate handled SIGTERM: device monitor (and eval, ping,
    models ...) died without a word, with exit -15 (and -1 when its terminal closed)."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_bus", "device", "monitor", "sim://?fps=5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    connected = proc.stdout.readline().startswith("# connected")
    err = signal_and_wait(proc, signum)  # ends it whatever happened above
    assert connected, err
    assert proc.returncode == error.exit_code and err == f"error: {error.stopped_by}\n", err


@pytest.mark.parametrize(("raised", "code", "said"), [
    (KeyboardInterrupt, 130, "error: interrupted (Ctrl-C) before the command started; nothing was written\n"),
    ("sigterm", 143, "error: stopped by SIGTERM before the command started; nothing was written\n"),
])
def test_a_signal_while_the_command_line_loads_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raised: object, code: int, said: str
) -> None:
    """Loading the command line takes about a second: a Ctrl-C then printed a KeyboardInterrupt
    traceback, a SIGTERM killed the process silently."""
    import types

    from edge_bus import console

    loading = types.ModuleType("edge_bus.cli")

    def interrupted(name: str) -> object:
        if raised == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)  # console.main's handler raises at the next bytecode
            time.sleep(1)
        raise KeyboardInterrupt

    loading.__getattr__ = interrupted  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "edge_bus.cli", loading)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as stopped:
            console.main()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == code and capsys.readouterr().err == said


def test_a_ctrl_c_outside_a_commands_own_handling_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Typer turns a KeyboardInterrupt it catches (here: while `stream` imports its runner) into a
    silent exit 130; main() says what happened."""
    import types

    from edge_bus.cli import main

    progress = types.ModuleType("edge_bus.cli.progress")

    def interrupted(name: str) -> object:
        raise KeyboardInterrupt

    progress.__getattr__ = interrupted  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "edge_bus.cli.progress", progress)
    monkeypatch.setattr(sys, "argv", ["edge-bus", "stream", "--source", "demo", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 130 and capsys.readouterr().err == "error: interrupted (Ctrl-C)\n"


def test_reused_out_folder_keeps_no_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert invoke("stream", "--source", "demo", "--max-frames", "20", "--out", str(out), "-q").exit_code == 0
    assert (out / "overlay.mp4").exists()
    result = invoke("stream", "--source", "demo", "--max-frames", "5", "--no-video", "--out", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert not (out / "overlay.mp4").exists()  # the first run's 20-frame video is gone, not left beside 5 lines
    assert assert_valid_outputs(out) == 5


def test_roi_outside_the_frame_is_a_config_error(tmp_path: Path) -> None:
    line = assert_one_line_error(invoke("stream", "--source", "demo", "--roi", "300,300,100,100",
                                        "--out", str(tmp_path / "o")), 2)
    assert "ROI (--roi or source.roi) 300,300,100,100 reaches past the 320x320 frame" in line
    assert not (tmp_path / "o").exists()  # refused before anything was opened
    result = invoke("stream", "--source", "demo", "--roi", "10,10,300,300", "--max-frames", "3", "--no-video",
                    "--out", str(tmp_path / "ok"), "-q")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ok" / "latency.json").read_text())["source"]["roi"] == [10, 10, 300, 300]


def test_flags_turn_off_what_the_config_file_turned_on(tmp_path: Path) -> None:
    """loop, realtime and display had no --no- form: a config file's `loop = true` could not be undone."""
    config = tmp_path / "edge-bus.toml"
    config.write_text("[source]\nloop = true\nrealtime = true\n\n[output]\ndisplay = true\n")
    result = invoke("stream", "-c", str(config), "--no-loop", "--no-realtime", "--no-display", "--no-video",
                    "--out", str(tmp_path / "o"), "-q")
    assert result.exit_code == 0, result.output
    latency = json.loads((tmp_path / "o" / "latency.json").read_text())
    assert (latency["mode"], latency["ended"], latency["frames"]) == ("file", "end of source", 270)


def test_brackets_in_paths_are_shown_as_typed(tmp_path: Path) -> None:
    line = assert_one_line_error(invoke("stream", "--source", str(tmp_path / "exam [left].avi")), 3)
    assert "exam [left].avi" in line  # not eaten as console markup


def test_progress_status_line_shows_what_a_live_run_needs() -> None:
    from types import SimpleNamespace

    from edge_bus.cli.progress import status_line

    # the last frames' rate (recent_fps), not the run's average (fps): that hid a slowdown an hour in
    outputs = SimpleNamespace(fps=SimpleNamespace(fps=60.0, recent_fps=29.7), last_e2e_ms=11.24, dropped=3,
                              last_label="benign")
    assert status_line(SimpleNamespace(outputs=outputs)) == "30 FPS · e2e 11.2 ms · 3 dropped · benign"  # type: ignore[arg-type]
    outputs.last_e2e_ms, outputs.last_label = float("nan"), ""
    assert status_line(SimpleNamespace(outputs=outputs)) == "30 FPS · e2e – · 3 dropped · –"  # type: ignore[arg-type]


def test_every_command_help_is_reflowed_into_paragraphs() -> None:
    """Typer's rich help kept the docstrings' source line breaks: `stream --help` broke lines mid-sentence."""
    import typer

    from edge_bus.cli import app

    def helps(a: typer.Typer) -> list[str]:
        found = [c.help or "" for c in a.registered_commands]
        for g in a.registered_groups:
            assert g.typer_instance is not None
            found += helps(g.typer_instance)
        return found

    texts = helps(app)
    assert len(texts) >= 12 and all(texts)
    for text in texts:
        assert all("\n" not in paragraph for paragraph in text.split("\n\n")), text


def test_a_user_error_is_exactly_one_line_on_a_piped_stderr(tmp_path: Path) -> None:
    """Logs captured by a script or CI got a blank line from the (transient) progress bar beside the
    error; the bar is now only drawn on a terminal."""
    for args in (["stream", "--source", str(tmp_path / "missing.avi"), "--out", str(tmp_path / "run")],
                 ["eval", "--data", str(tmp_path / "missing")]):
        result = run_cli(*args)
        assert result.returncode != 0
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr


@pytest.mark.parametrize("value", ["-1", "abc", "", "1.5", " 2"])
def test_an_opencv_thread_count_opencv_cannot_read_is_one_line(tmp_path: Path, value: str) -> None:
    """OPENCV_FOR_THREADS_NUM=-1 failed every stream at its first frame in a "cv2.error: stoull" traceback."""
    env = {**os.environ, "OPENCV_FOR_THREADS_NUM": value}
    res = subprocess.run([sys.executable, "-m", "edge_bus", "stream", "--source", "demo", "--max-frames", "2",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr and not (tmp_path / "run").exists()
    assert res.stderr.startswith(f"error: OPENCV_FOR_THREADS_NUM={value!r} is not a whole number"), res.stderr
    assert len(res.stderr.splitlines()) == 1


def test_a_deleted_current_folder_is_one_line(tmp_path: Path) -> None:
    """doctor from a folder deleted under the shell ended in a FileNotFoundError traceback (Path.absolute)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" -m edge_bus doctor --no-report'
    res = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == ("error: the current folder no longer exists (it was deleted or moved while this "
                                  "shell was in it) — cd to an existing folder")


def test_models_list_shows_a_problem_whole_and_errors_stay_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """At 80 columns the 'NO:' reason was cut to '/var/tmp…', hiding which file mismatched; a path with a
    newline in it made a two-line error."""
    import edge_bus.cli.models as models_cli
    from edge_bus.zoo import ModelStatus

    problem = "model_int8.bin in /var/tmp/some/long/folder/of/models/emt_net does not match its sha256"
    monkeypatch.setattr(models_cli, "model_statuses",
                        lambda: [ModelStatus("emt_net", "1.2.0", "emt_net", "224x224", 0.7, 0.9, problem)])
    shown = runner.invoke(app, ["models", "list"], env={"COLUMNS": "80"})
    cells = [line.split("│")[-2] for line in shown.output.splitlines() if line.count("│") == 8]
    assert shown.exit_code == 0 and "".join(cells).replace(" ", "") == f"NO: {problem}".replace(" ", "")
    done = subprocess.run([sys.executable, "-m", "edge_bus", "stream", "--source", str(tmp_path / "no\nsuch.avi")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and done.stderr.count("\n") == 1 and "no\\nsuch.avi" in done.stderr
