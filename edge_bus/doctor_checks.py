"""The environment checks of ``edge-bus doctor``: each returns a :class:`Check`, never raises.

Versions, OpenVINO devices, CPU features, free disk, a writable ``runs/`` folder, capture devices
and serial ports; a ``--source`` that must deliver frames; a ``--bridge`` that must answer pings. Informational
checks (``required=False``) always pass: they are there to be read.
"""

from __future__ import annotations

import logging
import math
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from edge_bus.config import VIRTUAL_DEVICES
from edge_bus.errors import EdgeBusError
from edge_bus.sinks.files import nearest_existing
from edge_bus.sinks.svg import places_apart
from edge_bus.sources import SourceInfo, list_capture_devices, open_source
from edge_bus.telemetry.hardware import free_disk_gb, kernel_class, openvino_devices
from edge_bus.zoo import Manifest

log = logging.getLogger(__name__)

__all__ = [
    "MIN_FREE_GB",
    "Check",
    "bridge_checks",
    "capture_check",
    "cpu_check",
    "disk_check",
    "openvino_devices_check",
    "output_check",
    "package_check",
    "python_check",
    "serial_check",
    "MIN_CAPTURE_FPS",
    "SourceProbe",
    "capture_rate_check",
    "probe_source",
    "source_check",
    "version_tuple",
]

Value = str | float | int | list[str] | None

#: Free space needed where runs are written: about 20 minutes of a 320x320 stream's overlay video (mp4v, some
#: 26 KB a frame at 30 fps: 2.8 GB an hour, README), or days of frames.jsonl alone (--no-video).
MIN_FREE_GB = 1.0
BRIDGE_PINGS = 5


FRACTION = "fraction"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: ``value`` against ``threshold``; ``advice`` says what to
    do when it fails. ``unit``: "ms", "GB"... ; "fraction" (a value in 0..1) is shown as a percentage."""

    name: str
    value: Value
    threshold: Value
    passed: bool
    advice: str = ""
    required: bool = True
    unit: str = ""
    #: which way ``threshold`` goes: ">=" (at least), "<=" (at most), "" (not a number, or not said); ASCII, as
    #: the version rows' ">= 2024.4" (a cp1252 console has no ≥)
    bound: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": _json_number(self.value),
            "threshold": _json_number(self.threshold),
            "passed": self.passed,
            "advice": self.advice,
            "required": self.required,
            "unit": self.unit,
            "bound": self.bound,
        }

    def shown(self, what: Value) -> str:
        """``what`` (the value or the threshold) as text, with its unit."""
        if what is None:
            return "—"
        if isinstance(what, list):
            return ", ".join(what) or "none"
        if isinstance(what, float) and self.unit == FRACTION:
            return f"{100 * what:.{self._places(1, 100)}f}%"
        if isinstance(what, float):
            return f"{what:.{self._places(2)}f} {self.unit}".strip() if math.isfinite(what) else "—"
        return f"{what} {self.unit}".strip() if isinstance(what, int) else str(what)

    def shown_threshold(self) -> str:
        """The threshold as shown, with the way it goes: "<= 33.33 ms", ">= 99.0%"."""
        text = self.shown(self.threshold)
        return f"{self.bound} {text}" if self.bound and isinstance(self.threshold, int | float) else text

    def _places(self, places: int, scale: float = 1.0) -> int:
        """Decimals that tell the value from its threshold when they differ; the same for both."""
        v, t = self.value, self.threshold
        if isinstance(v, float) and isinstance(t, float):
            return places_apart(v, t, places, scale)
        return places


def _json_number(v: Value) -> Value:
    """A float to 5 decimals (None when not finite); anything else as it is."""
    if isinstance(v, float):
        return round(v, 5) if math.isfinite(v) else None
    return v


def version_tuple(text: str) -> tuple[int, ...]:
    """``"2026.4.1-22982"`` → ``(2026, 4, 1)``: the leading dotted numbers (a build or local suffix ends it)."""
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def python_check(minimum: tuple[int, int] = (3, 10)) -> Check:
    ok = sys.version_info[:2] >= minimum
    return Check(
        "python",
        platform.python_version(),
        f">= {minimum[0]}.{minimum[1]}",
        ok,
        "" if ok else f"install Python {minimum[0]}.{minimum[1]} or newer and reinstall edge-bus",
    )


def package_check(dist: str, minimum: str, name: str | None = None) -> Check:
    """An installed distribution at ``minimum`` or newer."""
    label = name or dist
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return Check(label, None, f">= {minimum}", False, f"{label} is not installed: pip install '{dist}>={minimum}'")
    ok = version_tuple(version) >= version_tuple(minimum)
    return Check(label, version, f">= {minimum}", ok, "" if ok else f"upgrade: pip install -U '{dist}>={minimum}'")


def openvino_devices_check(device: str = "CPU") -> Check:
    """OpenVINO sees ``device``; for a virtual one, every device it names (``AUTO:GPU,CPU`` on a
    machine without a GPU fails to compile in OpenVINO, it does not fall back to the CPU), any device
    for ``AUTO`` alone."""
    devices = openvino_devices()
    kind, _, listed = device.partition(":")
    wanted = [d for d in listed.split(",") if d] if kind in VIRTUAL_DEVICES else [device]

    def seen(name: str) -> bool:
        return any(d == name or d.startswith(name + ".") for d in devices)

    ok = all(seen(d) for d in wanted) if wanted else bool(devices)
    advice = (
        ""
        if ok
        else (
            f"OpenVINO does not see {device} (it sees: {', '.join(devices) or 'nothing'}) — "
            "reinstall openvino, or for GPU/NPU install the device driver"
        )
    )
    return Check("openvino devices", devices, device, ok, advice)


def cpu_check(hardware: Mapping[str, object]) -> Check:
    """Informational: the CPU model and the ISA extensions INT8 speed depends on."""
    isa = hardware.get("isa")
    flags = isa if isinstance(isa, Mapping) else {}
    names = {
        "avx2": "AVX2",
        "avx512f": "AVX-512",
        "avx512_vnni": "AVX512-VNNI",
        "avx_vnni": "AVX-VNNI",
        "amx_int8": "AMX",
    }
    have = [label for key, label in names.items() if flags.get(key)]
    vnni = any(flags.get(k) for k in ("avx512_vnni", "avx_vnni", "amx_int8"))
    note = "" if vnni else "no VNNI/AMX: INT8 runs, but without its usual speedup"
    cores = hardware.get("cores_available") or hardware.get("cores_logical")
    value = f"{hardware.get('cpu_model') or 'unknown CPU'}, {cores} cores; {' '.join(have) or 'no AVX2'}"
    return Check("cpu features", value, None, True, note, required=False)


def kernel_class_check(manifest: Manifest, hardware: Mapping[str, object]) -> Check | None:
    """Informational: whether this CPU runs the class of INT8 kernels the model's thresholds and
    metrics were measured with (AVX2 and AVX512-VNNI results differ by ~0.01 in P(malignant)); None
    when the manifest doesn't say."""
    there = manifest.measured_on.get("isa")
    if not there:
        return None
    isa = hardware.get("isa")
    here = kernel_class(isa if isinstance(isa, Mapping) else {})
    return Check("INT8 kernel class", f"{here} here, {there} when the thresholds were chosen", None, True,
                 manifest.cpu_class_note(here) or "", required=False)


def disk_check(path: Path, min_gb: float = MIN_FREE_GB) -> Check:
    gb = free_disk_gb(path)
    ok = gb is not None and gb >= min_gb
    advice = "" if ok else f"free at least {min_gb:g} GB on the disk holding {path.absolute()} (run outputs and video)"
    return Check("free disk", gb if gb is not None else None, min_gb, ok, advice, unit="GB", bound=">=")


def output_check(folder: Path) -> Check:
    """``folder`` (``runs/``, where ``stream`` writes a run by default, and this report) can be written:
    with free space alone, a read-only working folder passed and the next ``stream`` failed at once. A
    file is created and removed in it, or in the folder it would be made in (nothing is left behind)."""
    target = nearest_existing(folder)
    shown = f"{folder}/"
    if not target.is_dir():
        return Check("output folder", f"{target} is a file", "writable", False,
                     f"{target} is in the way of {shown}: move it, or run from another folder")
    try:
        with tempfile.TemporaryFile(dir=target, prefix=".edge-bus-doctor-"):
            pass
    except OSError as exc:
        return Check("output folder", f"not writable: {exc.strerror or exc}", "writable", False,
                     f"edge-bus stream writes its runs to {shown} here: run from a writable folder, or give "
                     "stream --out a writable one")
    return Check("output folder", "writable", "writable", True, "")


def capture_check() -> Check:
    """Informational: the V4L2 capture devices present."""
    devices = list_capture_devices()
    note = (f"to check it delivers frames: edge-bus doctor --source {devices[0]}" if devices
            else "no capture device: plug in the frame grabber to stream from the scanner")
    return Check("capture devices", devices, None, True, note, required=False)


def serial_check() -> Check:
    """Informational: serial ports (the controller board is a USB CDC serial device)."""
    try:
        from serial.tools import list_ports

        ports = sorted(p.device for p in list_ports.comports())
    except Exception as exc:  # pyserial missing or the OS refuses to enumerate: say so, don't crash
        return Check("serial ports", None, None, True, f"cannot list serial ports: {exc}", required=False)
    note = "" if ports else "no serial port: plug in the controller board to use --bridge"
    return Check("serial ports", ports, None, True, note, required=False)


def source_check(spec: str, frames: int = 10, timeout_s: float = 5.0) -> Check:
    """The ``--source`` opens and delivers ``frames`` frames within ``timeout_s``."""
    return probe_source(spec, frames, timeout_s).check


@dataclass(frozen=True)
class SourceProbe:
    """:func:`probe_source`'s answer: the check, and what the source said about itself (None when it
    did not open or failed while read)."""

    check: Check
    info: SourceInfo | None = None


def probe_source(spec: str, frames: int = 10, timeout_s: float = 5.0, *, capture_size: tuple[int, int] | None = None,
                 capture_fps: float | None = None, capture_format: str | None = None) -> SourceProbe:
    """:func:`source_check`, keeping the source's :class:`~edge_bus.types.SourceInfo`; ``capture_*``:
    the requests to a capture device, as :func:`~edge_bus.sources.open_source` takes them."""
    t0 = time.perf_counter()
    try:
        src = open_source(spec, max_frames=frames, capture_size=capture_size, capture_fps=capture_fps,
                          capture_format=capture_format)
    except EdgeBusError as exc:
        return SourceProbe(Check("source", None, f"{frames} frames", False, f"{exc}"))
    try:
        got, timed_out = 0, False
        for _ in src:
            got += 1
            if time.perf_counter() - t0 > timeout_s:
                timed_out = True
                break
        info = src.info
    except EdgeBusError as exc:
        return SourceProbe(Check("source", None, f"{frames} frames", False, f"{exc}"))
    finally:
        src.close()
    elapsed = time.perf_counter() - t0
    # a file (or a single still) that delivered every frame it has is fine even when it has fewer
    whole_file = not info.live and not timed_out and got > 0
    ok = got >= frames or whole_file
    fmt = f" {info.pixel_format}" if info.pixel_format else ""
    value = f"{info.kind} {info.width}x{info.height}{fmt} @ {info.fps:g} fps: {got} frames in {elapsed:.1f} s"
    if ok:
        advice = ""
    elif info.live:
        advice = f"{spec} delivered only {got} of {frames} frames in {timeout_s:g} s — check the cable/signal"
    else:
        advice = f"{spec} delivered only {got} of {frames} frames in {timeout_s:g} s — check the file"
    asked = f"{frames} frames" if info.live else f"up to {frames} frames"
    return SourceProbe(Check("source", value, asked, ok, advice), info)


MIN_CAPTURE_FPS = 20.0
"""The lowest frame rate a live source passes doctor with: scanners send 25–60 frames a second, and a
USB 2 HDMI grabber left in YUYV gives 1920×1080 at 5–10."""


def capture_rate_check(info: SourceInfo) -> Check:
    """A live source's frame rate (as the device reports it) is one a probe can be followed at."""
    fps = info.fps
    if not fps > 0:
        return Check("capture frame rate", None, MIN_CAPTURE_FPS, True, "the device does not say its frame rate",
                     required=False, unit="fps")
    ok = fps >= MIN_CAPTURE_FPS
    fmt = f" in {info.pixel_format}" if info.pixel_format else ""
    hint = ("a USB 2 grabber gives this size at full rate only in MJPG: --capture-format MJPG"
            if info.pixel_format != "MJPG" else "ask for a smaller --capture-size")
    advice = "" if ok else f"{info.name} delivers {fps:g} fps at {info.width}x{info.height}{fmt} — {hint}"
    return Check("capture frame rate", fps, MIN_CAPTURE_FPS, ok, advice, unit="fps", bound=">=")


def bridge_checks(url: str, budget_ms: float, pings: int = BRIDGE_PINGS) -> list[Check]:
    """``firmware_bridge.HostBridge.open(url).ping()``: it answers, and the round trip fits a frame."""
    name, threshold = "bridge ping", "answers"
    try:
        from firmware_bridge import HostBridge  # optional: written separately, may be absent
    except ImportError as exc:
        return [Check(name, None, threshold, False, f"bridge support is not installed ({exc}) — reinstall edge-bus")]
    try:
        bridge = HostBridge.open(url)
    except EdgeBusError as exc:  # the bridge's own errors name the port and say what to do
        return [Check(name, None, threshold, False, _first_line(exc))]
    except Exception as exc:  # any other failure of a foreign link is a failed check, not a crash
        return [Check(name, None, threshold, False, f"cannot open {url}: {_first_line(exc)} — check the cable/port")]
    rtts: list[float] = []
    try:
        for _ in range(pings):
            t = time.perf_counter()
            answer = bridge.ping()  # HostBridge.ping() returns the wire round trip in seconds
            if answer is False:
                raise EdgeBusError("no answer to ping")
            wire = isinstance(answer, int | float) and not isinstance(answer, bool) and answer > 0
            rtts.append(float(answer) * 1e3 if wire else (time.perf_counter() - t) * 1e3)
    except Exception as exc:
        return [
            Check(
                name,
                f"{len(rtts)} of {pings}",
                threshold,
                False,
                f"{url} did not answer: {_first_line(exc)} — power-cycle the controller board, check the cable",
            )
        ]
    finally:
        try:
            bridge.close()
        except Exception:  # closing a broken link must not hide the verdict
            log.debug("closing %s failed", url, exc_info=True)
    rtt = statistics.median(rtts)
    ok = rtt <= budget_ms
    return [
        Check(name, f"{pings} of {pings}", threshold, True),
        Check(
            "bridge round trip",
            rtt,
            round(budget_ms, 3),
            ok,
            "" if ok else f"link round trip {rtt:.1f} ms exceeds a frame — use a direct USB port, no hub",
            unit="ms",
            bound="<=",
        ),
    ]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
