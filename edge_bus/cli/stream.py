"""``edge-bus stream``: the main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from edge_bus.cli.common import console, parse_capture_size, run_or_exit
from edge_bus.config import build_config
from edge_bus.types import ROI


def _roi(value: str | None) -> ROI | None:
    if value is None:
        return None
    try:
        return ROI.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--roi'") from None


def stream(
    source: Annotated[str | None, typer.Option(
        "--source", "-s", help="What to read: a video file (AVI/MP4/MOV), an image folder (a BUSI class folder works; "
        ".dcm files and multi-page .tif stacks in it play too, a cine among them as a clip of its own), a DICOM "
        "file, a capture device (0, /dev/video2) or 'demo' (the bundled clip). "
        "Prefix kind: to force one, e.g. video:clip.bin; replay:clip.avi runs a file through the capture path as "
        "a live device (no grabber needed; it loops like a device, so stop it with --max-frames or Ctrl-C). "
        "\\[default: demo]", show_default=False)] = None,
    model: Annotated[str | None, typer.Option(
        help="A shipped model name (edge-bus models list), a model folder or a manifest.json. \\[default: emt_net]",
        show_default=False)] = None,
    backend: Annotated[str | None, typer.Option(help="openvino or onnxruntime. \\[default: openvino]",
                                                   show_default=False)] = None,
    device: Annotated[str | None, typer.Option(help="OpenVINO device: CPU, GPU, NPU or AUTO. \\[default: CPU]",
                                                  show_default=False)] = None,
    precision: Annotated[str | None, typer.Option(
        help="int8 (the INT8 IR; on the CPU its float layers in f32), fp32 (FP32 ONNX, f32 forced) or default "
        "(FP32 ONNX, the runtime's choice: bf16 on AMX or AVX512-BF16). \\[default: int8]", show_default=False)] = None,
    operating_point: Annotated[str | None, typer.Option(
        "--operating-point", "-p", help="Malignancy threshold from the manifest: sensitive (SEN >= 0.94 on "
        "validation), balanced (max Youden J) or specific (SPE >= 0.94). \\[default: the model's, balanced for the "
        "shipped ones]",
        show_default=False)] = None,
    lesion_threshold: Annotated[float | None, typer.Option(
        help="P(lesion) at or above which a frame shows a lesion (below it: normal, no mask). The model's own, "
        "chosen on validation, is in edge-bus models info, with what it found there; lower it to miss fewer "
        "lesions at the cost of more false alarms, or calibrate a site's own with edge-bus models calibrate. "
        "\\[default: the model's]", show_default=False)] = None,
    out: Annotated[str | None, typer.Option(
        "--out", "-o", help="Output folder for frames.jsonl, overlay.mp4, latency.json, report.html. "
        "\\[default: runs/<timestamp>]", show_default=False)] = None,
    loop: Annotated[bool | None, typer.Option(
        "--loop/--no-loop", help="Restart a file source at its end (each pass is smoothed afresh). \\[default: off]",
        show_default=False)] = None,
    max_frames: Annotated[int | None, typer.Option(
        help="Stop after N frames from the source (0: no limit). In a live run the frames dropped count too. "
        "\\[default: 0]",
        show_default=False)] = None,
    realtime: Annotated[bool | None, typer.Option(
        "--realtime/--no-realtime", help="Pace a file at its native fps and drop frames the pipeline can't keep up "
        "with, like a live probe. \\[default: off]", show_default=False)] = None,
    roi: Annotated[str | None, typer.Option(
        help="Scan area x,y,w,h in pixels. Without it the scan area is detected automatically, so scanner UI "
        "margins and text are cropped before the model sees the frame.", show_default=False)] = None,
    smoothing: Annotated[float | None, typer.Option(
        help="Temporal smoothing of probabilities and mask: the weight of the past in an exponential moving "
        "average, 0 = off. Always off for still images; it starts afresh at each file of a folder and each --loop "
        "pass. \\[default: 0.5]", show_default=False)] = None,
    video: Annotated[bool | None, typer.Option("--video/--no-video", help="Write OUT/overlay.mp4. \\[default: on]",
                                                  show_default=False)] = None,
    display: Annotated[bool | None, typer.Option("--display/--no-display", help="Show the overlay in a window "
                                                    "(needs a screen; q or Esc in the window ends the run like the end "
                                                    "of the source). \\[default: off]",
                                                    show_default=False)] = None,
    bridge: Annotated[str | None, typer.Option(
        help="Controller board link: sim:// (the built-in simulator), /dev/ttyACM0, COM3 or socket://host:port. "
        "Frames then carry hardware timestamps and a RESULT goes back per frame. The run is then live: a video file "
        "is read at the pace of the board's frames, newest frame first, like a probe (drops counted). 'none': no board "
        "(over a config file's).",
        show_default=False)] = None,
    requests: Annotated[int | None, typer.Option(
        help="Async infer requests for files (0: twice the runtime's optimum). \\[default: 0]",
        show_default=False)] = None,
    batch: Annotated[int | None, typer.Option(
        help="Frames per inference for files on OpenVINO, 1-16: batches raise the engine's throughput on a CPU "
        "(same answers; a frame waits for its batch). Live sources and ONNX Runtime run 1. \\[default: 4]",
        show_default=False)] = None,
    capture_size: Annotated[str | None, typer.Option(help="Capture device size WxH, e.g. 1280x720.",
                                                        show_default=False)] = None,
    capture_fps: Annotated[float | None, typer.Option(help="Capture device fps. \\[default: the device's]",
                                                      show_default=False)] = None,
    capture_format: Annotated[str | None, typer.Option(
        help="Capture device pixel format, e.g. MJPG: a USB 2 HDMI grabber gives 1920x1080 at full frame rate only in "
        "MJPG (OpenCV picks uncompressed YUYV first: 5-10 fps there). latency.json's source says which one ran. "
        "\\[default: the device's]", show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="A TOML file with a section per stage (\\[source], \\[engine], \\[postprocess], "
        "\\[output], \\[bridge]; every key in examples/stream.toml); flags override it. Paths in it are read from "
        "the current folder, as on the command line.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Stream frames through the lesion model: overlay video, per-frame log, latency report.

    Writes OUT/frames.jsonl (one line per frame, flushed as it goes), OUT/overlay.mp4, OUT/latency.json
    and OUT/report.html, and prints a one-line summary. Exits non-zero with a one-line error on bad input,
    after flushing everything processed up to the last good frame.
    """
    width, height = parse_capture_size(capture_size)
    cfg = run_or_exit(
        build_config, config, source=source, model=model, backend=backend, device=device, precision=precision,
        operating_point=operating_point, lesion_threshold=lesion_threshold, out=out, loop=loop,
        max_frames=max_frames, realtime=realtime, roi=_roi(roi), smoothing=smoothing, video=video, display=display,
        bridge=bridge, requests=requests, batch=batch,
        capture_width=width, capture_height=height, capture_fps=capture_fps, capture_format=capture_format)
    from edge_bus.cli.progress import stream_with_progress

    result = run_or_exit(stream_with_progress, cfg, quiet=quiet)
    console.print(escape(result.one_line()))
