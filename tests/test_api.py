"""The public Python API (``edge_bus.__all__``) as an application embedding edge-bus uses it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import edge_bus
from edge_bus import (
    ROI,
    ConfigError,
    EdgeBusError,
    EngineConfig,
    Frame,
    FrameSource,
    InputSpec,
    OverlayRenderer,
    OverlayStyle,
    PostprocessConfig,
    SourceError,
    SourceInfo,
    StreamConfig,
    build_config,
    make_frame,
    run_stream,
)


def test_every_public_name_resolves_and_nothing_else_does() -> None:
    for name in edge_bus.__all__:
        assert getattr(edge_bus, name) is not None, name
    assert dir(edge_bus) == sorted(edge_bus.__all__)  # the public names, not the module's internals
    with pytest.raises(AttributeError, match="no attribute 'pipeline_internals'"):
        edge_bus.pipeline_internals  # noqa: B018
    assert issubclass(ConfigError, EdgeBusError) and issubclass(ConfigError, ValueError)
    assert (Path(edge_bus.__file__).parent / "py.typed").is_file()


class GrabberSource(FrameSource):
    """A frame grabber SDK stand-in: gray frames from numpy, failing after ``fail_after`` frames."""

    def __init__(self, n: int, fail_after: int | None = None, error: BaseException | None = None) -> None:
        self.n, self.i, self.fail_after, self.error = n, 0, fail_after, error
        self.closed = False

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(kind="grabber", name="sdk", width=160, height=120, fps=30.0, frame_count=self.n)

    def __next__(self) -> Frame:
        if self.fail_after is not None and self.i >= self.fail_after:
            raise self.error or RuntimeError("grabber SDK crashed")
        if self.i >= self.n:
            raise StopIteration
        pixels = np.full((120, 160, 3), 40 + self.i, np.uint8)
        self.i += 1
        return make_frame(self.i - 1, pixels, (self.i - 1) / 30.0)

    def close(self) -> None:
        self.closed = True


def test_own_source_own_style_and_a_stop_event(tmp_path: Path) -> None:
    stop = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int | None) -> None:
        seen.append(done)
        if done >= 5:
            stop.set()  # as another thread of the application would

    source = GrabberSource(50)
    style = OverlayStyle(alpha=0.2, contour_thickness=1)
    result = run_stream(StreamConfig(source="grabber", out=tmp_path / "run", video=True),
                        progress, source=source, renderer=OverlayRenderer(style), stop=stop, handle_signals=False)
    assert result.stopped and 5 <= result.frames < 50
    assert source.closed  # the pipeline owns the source it was given
    lines = (tmp_path / "run" / "frames.jsonl").read_text().splitlines()
    assert len(lines) == result.frames
    latency = json.loads((tmp_path / "run" / "latency.json").read_text())
    assert latency["source"]["kind"] == "grabber" and latency["ended"] == "stopped" and latency["error"] is None
    # typed results, the same numbers as the files
    assert result.stages["end_to_end"].count == result.frames
    assert result.stages["end_to_end"].to_json() == latency["stages"]["end_to_end"]
    assert result.verdict.to_json() == latency["verdict"]
    assert "stopped by the application" in (tmp_path / "run" / "report.html").read_text()
    assert not run_stream(StreamConfig(source="grabber", out=tmp_path / "all", video=False),
                          source=GrabberSource(3), handle_signals=False).stopped


@pytest.mark.parametrize("realtime", [False, True], ids=["file", "realtime"])
def test_a_foreign_source_error_ends_the_run_with_that_error(tmp_path: Path, realtime: bool) -> None:
    """In live/realtime mode the reader thread ate the exception and the run 'ended' normally. The SDK's
    RuntimeError then came out of run_stream as it was; it is a SourceError now (every error run_stream
    raises is an EdgeBusError), with the outputs named and the original as its cause."""
    source = GrabberSource(50, fail_after=4)
    with pytest.raises(SourceError, match=r"GrabberSource.__next__ failed: RuntimeError: grabber SDK crashed .*"
                                          r"outputs in .* cover the 4 frames") as info:
        run_stream(StreamConfig(source="grabber", out=tmp_path / "run", video=False, realtime=realtime),
                   source=source, handle_signals=False)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert len((tmp_path / "run" / "frames.jsonl").read_text().splitlines()) == 4
    latency = json.loads((tmp_path / "run" / "latency.json").read_text())
    assert latency["ended"] == "error" and "RuntimeError: grabber SDK crashed" in latency["error"]


def test_a_source_used_up_before_is_refused_not_run_as_zero_frames(tmp_path: Path) -> None:
    """The pipeline owns (and closes) the source it is given: passed to a second run, it gave a "successful"
    run of 0 frames ending at "end of source"."""
    source = GrabberSource(3)
    assert run_stream(StreamConfig(source="grabber", out=tmp_path / "a", video=False), source=source,
                      handle_signals=False).frames == 3
    with pytest.raises(SourceError, match="GrabberSource ended before its first frame .* closed, or run before"):
        run_stream(StreamConfig(source="grabber", out=tmp_path / "b", video=False), source=source,
                   handle_signals=False)


def test_a_pipeline_composed_and_closed_without_a_run_leaves_nothing_running(tmp_path: Path) -> None:
    """Pipeline.close() left the outputs and video threads, two open files and the 8 MB space reserve."""
    from edge_bus.engines.fake import fake_engine_factory

    before = set(threading.enumerate())
    p = edge_bus.compose(StreamConfig(source="grabber", out=tmp_path / "run"), source=GrabberSource(3),
                         engine_factory=fake_engine_factory())
    p.close()
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []
    assert sorted(f.name for f in (tmp_path / "run").iterdir()) == ["frames.jsonl"]  # empty; no video, no reserve
    assert p.files.framelog.closed


class GrabberFault(SourceError):
    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


def test_an_edge_bus_error_keeps_its_class_and_attributes(tmp_path: Path) -> None:
    """The error was re-created as type(error)(message), which failed for keyword-only __init__s."""
    source = GrabberSource(50, fail_after=3, error=GrabberFault("frame grabber lost sync", code=7))
    with pytest.raises(GrabberFault, match=r"lost sync — outputs in .* cover the 3 frames") as info:
        run_stream(StreamConfig(source="grabber", out=tmp_path / "run", video=False), source=source,
                   handle_signals=False)
    assert info.value.code == 7


@pytest.mark.parametrize(("config", "match"), [
    (dict(smoothing=1.5), r"smoothing must be in \[0, 1\)"),
    (dict(smoothing="0.3"), r"smoothing = '0.3' must be a number"),
    (dict(max_frames="10"), "must be a whole number"),
    (dict(roi="10,10"), "ROI must be x,y,w,h"),
    (dict(roi=(10, 10, 100, 100)), "must be an ROI"),
    (dict(source=None), "source = None must be a string"),
    (dict(backend="tensorrt"), "backend 'tensorrt' is not one of openvino, onnxruntime"),
    (dict(requests=-1), "requests must be 0 to 64"),
])
def test_run_stream_checks_a_config_built_in_python(tmp_path: Path, config: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        run_stream(StreamConfig(**config, out=tmp_path / "run"), handle_signals=False)  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists()  # refused before anything was opened


def test_a_config_takes_what_python_code_naturally_passes() -> None:
    """A str out, a Path model, numpy numbers and an "x,y,w,h" roi were refused once validated."""
    c = StreamConfig(out="runs/x", model=Path("models/emt_net"), max_frames=np.int64(5),  # type: ignore[arg-type]
                     smoothing=np.float32(0.25), roi="1,2,30,40", source=Path("demo"))  # type: ignore[arg-type]
    assert c.validate() is c
    assert (c.out, c.model, c.max_frames, c.smoothing, c.roi, c.source) == (
        Path("runs/x"), "models/emt_net", 5, 0.25, ROI(1, 2, 30, 40), "demo")
    assert type(c.max_frames) is int and build_config(model=Path("models/emt_net")).model == "models/emt_net"


def test_settings_objects_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"x,y >= 0 and w,h > 0"):
        ROI(-10, 0, 100, 100)
    with pytest.raises(ConfigError, match="x,y >= 0"):
        ROI(0, 0, 0, 0)
    with pytest.raises(ConfigError, match="whole pixel numbers"):
        ROI(0, 0, 10.5, 10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="x,y,w,h in pixels"):
        ROI.parse("a,b,c,d")
    with pytest.raises(ConfigError, match="alpha must be in"):
        OverlayStyle(alpha=2)
    with pytest.raises(ConfigError, match="smoothing = '0.3' must be a number"):
        build_config(smoothing="0.3")
    assert build_config(roi="1,2,30,40", out="runs/x").roi == ROI(1, 2, 30, 40)


def test_own_source_is_closed_when_composing_fails_and_renderer_is_checked(tmp_path: Path) -> None:
    source = GrabberSource(5)
    with pytest.raises(ConfigError, match="renderer must be an OverlayRenderer"):
        run_stream(StreamConfig(source="grabber", out=tmp_path / "r"), source=source,
                   renderer=OverlayStyle(), handle_signals=False)  # type: ignore[arg-type]
    assert source.closed
    source = GrabberSource(5)
    with pytest.raises(SourceError, match="loop needs a source edge-bus opens itself"):
        run_stream(StreamConfig(source="grabber", out=tmp_path / "r", loop=True), source=source,
                   handle_signals=False)
    assert source.closed


def test_ctrl_c_ends_the_run_without_touching_the_callers_stop_event(tmp_path: Path) -> None:
    import os
    import signal

    from edge_bus import Interrupted

    stop = threading.Event()
    sent: list[int] = []

    def progress(done: int, total: int | None) -> None:
        if done >= 3 and not sent:  # frames complete on the outputs thread: done may skip a number
            sent.append(done)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="interrupted"):
        run_stream(StreamConfig(source="grabber", out=tmp_path / "run", video=False), progress,
                   source=GrabberSource(500), stop=stop)
    assert sent and not stop.is_set()
    assert json.loads((tmp_path / "run" / "latency.json").read_text())["ended"] == "interrupted"


def test_an_empty_frame_is_a_source_error(tmp_path: Path) -> None:
    class Empty(GrabberSource):
        def __next__(self) -> Frame:
            return make_frame(0, np.zeros((0, 0, 3), np.uint8), 0.0)

    with pytest.raises(SourceError, match=r"a frame of shape \[0, 0, 3\] holds no image"):
        run_stream(StreamConfig(source="grabber", out=tmp_path / "run", video=False), source=Empty(3),
                   handle_signals=False)
    assert json.loads((tmp_path / "run" / "latency.json").read_text())["ended"] == "error"


@pytest.mark.parametrize(("pixels", "message"), [
    (np.zeros((64, 64, 2), np.uint8), "a frame with 2 channels"),
    (np.zeros((64, 64), np.float32), "a frame of dtype float32"),
    (np.zeros((64, 64, 3), np.uint16), "a frame of dtype uint16"),
    (None, "a frame's pixels are a NoneType, not a numpy array"),
    ([[1, 2], [3, 4]], "a frame's pixels are a list"),
])
def test_a_frame_the_pipeline_cannot_read_is_a_source_error(tmp_path: Path, pixels: object, message: str) -> None:
    """A 2-channel frame from a source of one's own raised cv2.error out of run_stream."""
    class Odd(GrabberSource):
        def __next__(self) -> Frame:
            return make_frame(0, pixels, 0.0)  # type: ignore[arg-type]

    with pytest.raises(SourceError, match=message):
        run_stream(StreamConfig(source="grabber", out=tmp_path / "run", video=False), source=Odd(3),
                   handle_signals=False)
    assert json.loads((tmp_path / "run" / "latency.json").read_text())["ended"] == "error"


def test_stage_settings_and_paths_raise_config_errors(tmp_path: Path) -> None:
    from edge_bus import EngineConfig, PostprocessConfig, open_source

    with pytest.raises(ConfigError, match="smoothing must be in"):
        PostprocessConfig(smoothing=2)
    with pytest.raises(ConfigError, match="requests and threads must be >= 0"):
        EngineConfig(requests=-3)  # was a ModelError from OpenVINO ("Wrong value -3 ...")
    with open_source(Path("demo")) as src:  # a Path works like its string
        assert src.info.kind == "demo"


@pytest.mark.parametrize(("make", "message"), [
    (lambda: OverlayStyle(alpha="0.5"), r"OverlayStyle.alpha must be a finite number, got '0.5'"),
    (lambda: OverlayStyle(contour_thickness=1.5), "OverlayStyle.contour_thickness must be an integer, got 1.5"),
    (lambda: OverlayStyle(show_hud="no"), "OverlayStyle.show_hud must be True or False"),
    (lambda: EngineConfig(requests="2"), "EngineConfig.requests must be an integer, got '2'"),
    (lambda: EngineConfig(hint=None), "EngineConfig.hint must be a string, got None"),
    (lambda: PostprocessConfig(smoothing="a"), "PostprocessConfig.smoothing must be a finite number"),
    (lambda: PostprocessConfig(min_component=float("nan")), "PostprocessConfig.min_component must be a finite"),
    (lambda: EngineConfig(precision="fp16"), "precision 'fp16' is not one of int8, fp32, default"),
    (lambda: EngineConfig(backend="onnxruntime", precision="default"), "ONNX Runtime runs int8 or fp32"),
    (lambda: InputSpec(32, 32, 0.5, 0), r"InputSpec.std must be > 0"),
    (lambda: InputSpec(32.0, 32, 0.5, 0.25), "InputSpec.height must be an integer, got 32.0"),
    (lambda: OverlayStyle(contour_thickness=40000), r"contour_thickness must be 0-32767 pixels \(OpenCV's limit\)"),
])
def test_settings_of_the_wrong_type_are_config_errors_when_made(make: Callable[[], object], message: str) -> None:
    """These raised TypeError/AttributeError from a comparison, or (contour_thickness 1.5) a cv2.error
    traceback on the outputs thread after the run had opened its files."""
    with pytest.raises(ConfigError, match=message):
        make()


def test_numpy_numbers_are_accepted_where_python_numbers_are() -> None:
    import numpy as np

    assert OverlayStyle(alpha=np.float32(0.25), contour_thickness=np.int64(3)).contour_thickness == 3
    assert EngineConfig(requests=np.int32(2)).requests == 2
    assert PostprocessConfig(smoothing=np.float64(0.5), gate_mask=np.bool_(False)).smoothing == 0.5
    # ...and kept as Python's own: an np.int64 batch reached OpenVINO's reshape ("Incorrect type"), an
    # np.int64 ROI the bbox in frames.jsonl (json can't write one)
    assert type(EngineConfig(batch=np.int64(4)).batch) is int
    assert type(OverlayStyle(alpha=np.float32(0.25)).alpha) is float
    assert [type(v) for v in ROI(*np.array([1, 2, 3, 4])).as_list()] == [int] * 4
    assert make_frame(0, np.zeros((20, 20), np.uint8), 0.0, file=Path("scan.png")).file == "scan.png"
    from enum import Enum

    class Backend(str, Enum):
        OPENVINO = "openvino"

    assert EngineConfig(backend=Backend.OPENVINO).backend is Backend.OPENVINO  # a text is kept as given


def test_a_run_with_numpy_settings_writes_its_frames(tmp_path: Path) -> None:
    """A numpy ROI ended the run at the first lesion frame with a TypeError, frames.jsonl empty."""
    from edge_bus.engines.fake import fake_engine_factory

    result = run_stream(StreamConfig(source="demo", out=tmp_path / "run", max_frames=3, video=False,
                                     roi=ROI(*np.array([20, 20, 280, 280]))), engine_factory=fake_engine_factory())
    rows = [json.loads(line) for line in (tmp_path / "run" / "frames.jsonl").read_text().splitlines()]
    assert result.frames == len(rows) == 3 and all(r["bbox"] is not None for r in rows)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: edge_bus.resolve_model(3), "ModelError", "a model is given by its name or its folder"),
    (lambda: edge_bus.open_source("demo", max_frames="3"), "SourceError", "must be a whole number of frames, got '3'"),
    (lambda: edge_bus.open_source("demo", max_frames=1.5), "SourceError", "must be a whole number of frames, got 1.5"),
    (lambda: edge_bus.detect_scan_area(np.zeros((0, 0), np.uint8)), "SourceError", "takes a uint8 frame"),
    (lambda: StreamConfig(out=Path("/tmp/a\0b")), "ConfigError", "has a NUL character in it"),
    (lambda: run_stream(None), "ConfigError", "config must be a StreamConfig"),  # type: ignore[arg-type]
])
def test_bad_arguments_to_public_functions_are_edge_bus_errors(call: Callable[[], object], error: str,
                                                               message: str) -> None:
    """Each of these was an AttributeError, TypeError, cv2.error or ValueError from inside; a Path
    for a model, config file or model root was an AttributeError and now works."""
    with pytest.raises(EdgeBusError, match=message) as info:
        call()
    assert type(info.value).__name__ == error
    root = Path(edge_bus.__file__).parent.parent
    assert edge_bus.resolve_model(root / "models" / "emt_net").name == "emt_net"
    assert {m.name for m in edge_bus.list_models(str(root / "models"))} >= {"emt_net"}
    assert build_config(str(root / "examples" / "stream.toml")).source == "demo"
    assert edge_bus.detect_scan_area(np.zeros((40, 40, 3), np.uint8)) == ROI(0, 0, 40, 40)  # BGR is made gray


def test_an_engine_factory_that_returns_no_engine_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="engine_factory must return an Engine .* got NoneType"):
        run_stream(StreamConfig(source="demo", out=tmp_path / "run", max_frames=2),
                   engine_factory=lambda manifest, config: None)  # type: ignore[arg-type,return-value]


def test_postprocess_refuses_outputs_it_cannot_read() -> None:
    """A [1, 1, H, W] mask was a cv2.error, one class logit an IndexError, a NaN logit a ValueError in
    the renderer (the frame called normal), a scan area past the frame a broadcasting ValueError."""
    from edge_bus import ModelError, ModelOutputs, Postprocessor, PreprocessMeta, resolve_model

    post = Postprocessor(resolve_model("emt_net"))
    meta = PreprocessMeta(frame_h=100, frame_w=100, roi=ROI(0, 0, 100, 100))
    mask, logits = np.zeros((112, 112), np.float32), np.zeros(2, np.float32)
    for outputs, message in ((ModelOutputs(mask[None, None], logits), r"must be a 2-D \[H, W\] array"),
                             (ModelOutputs(mask, logits[:1]), "class_logits must hold 2 values"),
                             (ModelOutputs(mask, np.array([5.0, np.nan], np.float32)), "not finite")):
        with pytest.raises(ModelError, match=message):
            post.postprocess(outputs, meta)
    with pytest.raises(ConfigError, match=r"scan area \[0, 0, 100, 100\] reaches past the 50x50 frame"):
        post.postprocess(ModelOutputs(mask, logits), PreprocessMeta(frame_h=50, frame_w=50, roi=ROI(0, 0, 100, 100)))
    assert post.postprocess(ModelOutputs(mask, logits), meta).label == "normal"


def test_an_applications_mistakes_are_edge_bus_errors(tmp_path: Path) -> None:
    """An unchecked colour raised OverflowError; a source yielding arrays an AttributeError; a
    source of unknown size a ValueError from the video writer; max_frames closed the source twice."""
    import numpy as np

    from edge_bus import ConfigError, OverlayStyle, SourceError, StreamConfig, make_frame, run_stream
    from edge_bus.sources import FrameSource, SourceInfo

    for field, bad in (("mask_color", (0, 0, 300)), ("mask_color", "red"), ("text_color", (1, 2)),
                       ("color_benign", "red"), ("color_malignant", (True, 0, 0))):
        with pytest.raises(ConfigError, match=f"{field} must be a BGR triple of numbers 0-255"):
            OverlayStyle(**{field: bad})  # type: ignore[arg-type]
    OverlayStyle(mask_color=np.array([0, 0, 255]), color_benign=(np.int64(1), 2.0, 3))  # as OpenCV takes them

    class Arrays(FrameSource):
        def __init__(self, frames: bool = False, size: int = 64) -> None:
            self.frames, self.size, self.closed, self.n = frames, size, 0, 0

        @property
        def info(self) -> SourceInfo:
            return SourceInfo(kind="app", name="mine", width=self.size, height=self.size, fps=30.0, frame_count=None)

        def __next__(self):  # type: ignore[no-untyped-def]
            self.n += 1
            pixels = np.full((64, 64), 80, np.uint8)
            return make_frame(self.n - 1, pixels, (self.n - 1) / 30) if self.frames else pixels

        def close(self) -> None:
            self.closed += 1

    with pytest.raises(SourceError, match="Arrays gave a ndarray, not a frame — build frames with edge_bus.make_frame"):
        run_stream(StreamConfig(out=tmp_path / "a", video=False, max_frames=3), source=Arrays())
    unknown = Arrays(frames=True, size=0)
    with pytest.raises(SourceError, match="gives no frame size \\(0x0\\).* or turn the video off"):
        run_stream(StreamConfig(out=tmp_path / "b", max_frames=3), source=unknown)
    assert unknown.closed == 1
    once = Arrays(frames=True)
    result = run_stream(StreamConfig(out=tmp_path / "c", video=False, max_frames=3), source=once)
    assert result.frames == 3 and once.closed == 1  # the limit closed it; the pipeline did not close it again
    twice = Arrays(frames=True)
    pipeline = edge_bus.compose(StreamConfig(out=tmp_path / "d", video=False), source=twice)
    pipeline.close()
    pipeline.close()
    assert twice.closed == 1  # an SDK's release may not be safe to call twice
