"""Settings for ``edge-bus stream``: one dataclass, filled from defaults ← TOML file ← CLI flags.

A config file has one section per stage; every key is optional. ``examples/stream.toml`` holds every
key with its default and meaning (a test loads it). Paths in it are read from the current folder, as
on the command line, with ``~`` expanded; ``--bridge none`` turns off a file's ``[bridge] url``.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef, unused-ignore]  # needed where Python >= 3.11 is checked
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np

from edge_bus.checks import is_pixel_format
from edge_bus.errors import ConfigError
from edge_bus.preprocess import MIN_FRAME_SIDE  # an --roi is refused below what a frame is
from edge_bus.types import ROI

PRECISIONS = ("int8", "fp32", "default")
OPERATING_POINTS = ("sensitive", "balanced", "specific")
#: OpenVINO devices that run on others (named after a colon: ``AUTO:GPU,CPU``, ``HETERO:CPU``)
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")
DEVICE_KINDS = ("CPU", "GPU", "NPU", *VIRTUAL_DEVICES)
DEFAULT_BATCH = 4
"""Frames per inference for file sources on OpenVINO: on 2 cores (Zen 4, INT8) a batch of 4 ran
OpenVINO's own throughput 10-20% above single frames, with the same answers; live sources run 1."""
MAX_BATCH = 16
"""The most frames one inference may take."""


def check_device(name: str) -> str:
    """``name`` in OpenVINO's spelling (``cpu`` → ``CPU``, ``gpu.1`` → ``GPU.1``), or a
    :class:`ConfigError` for a name that no OpenVINO device has. Whether this machine has the device
    is the engine's check (a missing GPU driver is a machine problem, not a typo)."""
    canonical = name.strip().upper()
    kind = re.split(r"[.:]", canonical, maxsplit=1)[0]
    if kind not in DEVICE_KINDS:
        raise ConfigError(f"unknown device {name!r}: OpenVINO devices are {', '.join(DEVICE_KINDS)} "
                          "(e.g. CPU, GPU.1, AUTO:GPU,CPU)")
    return canonical


@dataclass(frozen=True)
class StreamConfig:
    source: str = "demo"
    loop: bool = False
    max_frames: int = 0
    realtime: bool = False
    roi: ROI | None = None
    capture_width: int = 0
    capture_height: int = 0
    capture_fps: float = 0.0
    capture_format: str = ""
    model: str | None = None
    backend: str = "openvino"
    device: str = "CPU"
    precision: str = "int8"
    requests: int = 0
    batch: int = DEFAULT_BATCH
    operating_point: str | None = None
    lesion_threshold: float | None = None  # None: the manifest's
    smoothing: float = 0.5
    out: Path | None = None
    video: bool = True
    display: bool = False
    bridge: str | None = None

    def __post_init__(self) -> None:
        """Accept what Python code naturally passes: a str or os.PathLike ``out``, a Path ``source`` /
        ``model`` / ``bridge``, numpy numbers, an ``"x,y,w,h"`` ``roi``; :meth:`validate` checks the rest."""
        for f in fields(self):
            value = getattr(self, f.name)
            kind = _FIELD_TYPES.get(f.name)
            if isinstance(value, np.generic) and not isinstance(value, np.bool_):
                value = value.item()
            elif isinstance(value, np.bool_):
                value = bool(value)
            if f.name == "out" and isinstance(value, str | os.PathLike):
                text = os.fspath(value)  # a Path too: one with a NUL in it failed only when the run opened it
                value = Path(_non_empty_out(text)) if isinstance(text, str) else value
            elif f.name == "roi" and isinstance(value, str):
                value = ROI.parse(value)
            elif kind in (str, str | None) and isinstance(value, os.PathLike):
                value = os.fspath(value)
            object.__setattr__(self, f.name, value)

    def validate(self) -> StreamConfig:
        """This config, or a :class:`ConfigError` naming the first bad setting (its type or value).
        ``run_stream`` calls it, so a config built in Python is checked like a config file."""
        for f in fields(self):
            _check_type(f.name, f.name, getattr(self, f.name), python=True)
        from edge_bus.engines import BACKENDS  # the engines package imports this module's neighbours

        if self.backend not in BACKENDS:
            raise ConfigError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if not self.source.strip():
            raise ConfigError("source is empty: pass a video file, an image folder, a .dcm file, a device or 'demo'")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.operating_point is not None and self.operating_point not in OPERATING_POINTS:
            raise ConfigError(f"operating point {self.operating_point!r} is not one of {', '.join(OPERATING_POINTS)}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if self.lesion_threshold is not None and not 0.0 < self.lesion_threshold < 1.0:
            raise ConfigError(f"lesion threshold must be between 0 and 1 (a P(lesion)), got {self.lesion_threshold}")
        if self.max_frames < 0:
            raise ConfigError("max-frames must be >= 0")
        if not 0 <= self.requests <= MAX_REQUESTS:
            raise ConfigError(f"requests must be 0 to {MAX_REQUESTS} (0: twice the runtime's optimum), "
                              f"got {self.requests}")
        if self.bridge is not None and not self.bridge.strip():  # it made the run live, with no board
            raise ConfigError("bridge is empty: give the controller board's port (e.g. /dev/ttyACM0 or sim://), or "
                              "leave it out")
        if self.model is not None and not self.model.strip():
            raise ConfigError("model is empty: give a model name (edge-bus models list) or a model folder, or leave "
                              "it out for the default")
        if self.roi is not None and min(self.roi.w, self.roi.h) < MIN_FRAME_SIDE:
            raise ConfigError(f"ROI (--roi or source.roi) {self.roi.w}x{self.roi.h} is too small to read a lesion in "
                              f"(at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE} pixels); omit it to detect the scan area")
        check_batch(self.batch)
        check_capture(self.capture_width, self.capture_height, self.capture_fps, self.capture_format)
        device = check_device(self.device)
        return self if device == self.device else replace(self, device=device)


def check_batch(batch: int) -> None:
    """:class:`ConfigError` unless ``batch`` (frames per inference) is 1 to :data:`MAX_BATCH`."""
    if not 1 <= batch <= MAX_BATCH:
        raise ConfigError(f"batch must be 1 to {MAX_BATCH} frames, got {batch}")


def capture_size(width: int, height: int) -> tuple[int, int] | None:
    """The size to ask a capture device for, as ``open_source`` takes it: None unless both are set."""
    return (width, height) if width and height else None


def check_capture(width: int, height: int, fps: float, pixel_format: str) -> None:
    """A capture device request (0 / "": the device's default) that a device could meet, else a
    :class:`ConfigError` (``edge-bus stream`` and ``edge-bus doctor`` take the same)."""
    if min(width, height) < 0 or fps < 0:
        raise ConfigError("capture size and fps must be >= 0 (0: the device's default)")
    if max(width, height) > MAX_CAPTURE_SIDE:
        raise ConfigError(f"capture size {width}x{height} is larger than any ultrasound video "
                          f"({MAX_CAPTURE_SIDE} pixels a side at most)")
    if not (fps == 0 or 1 <= fps <= MAX_CAPTURE_FPS):  # also NaN and inf
        raise ConfigError(f"capture fps {fps} is not a frame rate a capture device gives "
                          f"(1 to {MAX_CAPTURE_FPS:g}; 0: the device's default)")
    if pixel_format and not is_pixel_format(pixel_format):
        raise ConfigError(f"capture format {pixel_format!r} is not a four-character pixel format such as "
                          "MJPG, YUYV or NV12 (\"\": the device's default)")


MAX_REQUESTS = 64
"""The most inference requests (--requests) accepted; the runtime's own choice on a 2-core CPU is 2-4."""
MAX_CAPTURE_FPS = 1000.0
"""The highest --capture-fps accepted (grabbers give 25-120)."""
MAX_CAPTURE_SIDE = 16384
"""The widest or highest --capture-size accepted."""


MAX_CONFIG_BYTES = 1024 * 1024
"""The largest config file read (a real one is under 1 KB)."""
_PATH_KEYS = ("source", "model", "out")


# TOML section.key → StreamConfig field
_KEYS = {
    ("source", "source"): "source", ("source", "loop"): "loop", ("source", "max_frames"): "max_frames",
    ("source", "realtime"): "realtime", ("source", "roi"): "roi",
    ("source", "capture_width"): "capture_width", ("source", "capture_height"): "capture_height",
    ("source", "capture_fps"): "capture_fps", ("source", "capture_format"): "capture_format",
    ("engine", "model"): "model", ("engine", "backend"): "backend", ("engine", "device"): "device",
    ("engine", "precision"): "precision", ("engine", "requests"): "requests", ("engine", "batch"): "batch",
    ("postprocess", "operating_point"): "operating_point", ("postprocess", "smoothing"): "smoothing",
    ("postprocess", "lesion_threshold"): "lesion_threshold",
    ("output", "out"): "out", ("output", "video"): "video", ("output", "display"): "display",
    ("bridge", "url"): "bridge",
}


#: each setting's type, read from StreamConfig (ROI and Path settings are strings in TOML)
_FIELD_TYPES = get_type_hints(StreamConfig)


def _check_type(where: str, name: str, value: Any, python: bool = False) -> None:
    """A value of the wrong type is a config error, never a crash or a silent misreading
    (``loop = "false"`` is a string, and a non-empty string would read as true).

    TOML (``python=False``) writes ROI and Path settings as strings; a :class:`StreamConfig` built
    in Python (``python=True``) holds an :class:`ROI` and a ``Path`` (or None)."""
    kind = _FIELD_TYPES[name]
    optional = type(None) in getattr(kind, "__args__", ())
    if value is None and optional:
        return
    base = next((a for a in getattr(kind, "__args__", (kind,)) if a is not type(None)), kind)
    unquoted = "" if python else " (no quotes)"
    if base is bool:
        ok, want = isinstance(value, bool), "true or false" + unquoted
    elif base is int:
        ok, want = isinstance(value, int) and not isinstance(value, bool), "a whole number" + unquoted
    elif base is float:
        ok, want = isinstance(value, int | float) and not isinstance(value, bool), "a number" + unquoted
    elif python and base is ROI:
        ok, want = isinstance(value, ROI), "an ROI (edge_bus.types.ROI) or None"
    elif python and base is Path:
        ok, want = isinstance(value, Path), "a Path or None"
    else:
        ok, want = isinstance(value, str), "a string" + ((" or None" if optional else "") if python else " in quotes")
    if not ok:
        raise ConfigError(f"{where} = {value!r} must be {want}")


def _coerce(name: str, value: Any) -> Any:
    """ROI and Path settings given as strings (CLI flags, TOML) → ROI / Path; the rest as given."""
    if name == "roi" and isinstance(value, str):
        return ROI.parse(value)
    if name == "bridge" and isinstance(value, str) and value.strip().lower() == "none":
        return None  # --bridge none: no board, over a config file's [bridge] url
    if name == "out" and isinstance(value, str):
        return Path(_non_empty_out(value))
    return value


def _non_empty_out(value: str) -> str:
    """``value``, unless it is empty: ``Path("")`` is the current folder, where a run would silently
    replace another's files."""
    if not value.strip():
        raise ConfigError("out is empty: give a folder for the run's files (. for the current one), or leave it out "
                          "for runs/<time>")
    if "\0" in value:
        raise ConfigError(f"out {value!r} has a NUL character in it: give a folder name without one")
    return value


def load_toml(path: Path) -> dict[str, Any]:
    """Read a config file into ``{field: value}``; unknown sections or keys are errors."""
    try:
        if path.is_dir():  # inside the try: a name too long for the file system raises here
            raise ConfigError(f"config file {path} is a folder: give a .toml file")
        with open(path, "rb") as fh:  # TOML is UTF-8 whatever the locale says
            raw = fh.read(MAX_CONFIG_BYTES + 1)  # /dev/zero, or a video given by mistake, is not read to the end
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is over {MAX_CONFIG_BYTES // 1024} KB: it is not a config file")
        data = tomllib.loads(raw.decode("utf-8-sig"))  # -sig: a byte-order mark, as Windows Notepad saves
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    out: dict[str, Any] = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
        for key, value in values.items():
            name = _KEYS.get((section, key))
            if name is None:
                valid = ", ".join(f"{s}.{k}" for s, k in _KEYS)
                raise ConfigError(f"{path}: unknown setting {section}.{key}; valid settings: {valid}")
            _check_type(f"{path}: {section}.{key}", name, value)
            # a path in the file is read as on the command line (from the current folder), but the shell
            # that expands ~ there does not here
            out[name] = os.path.expanduser(value) if name in _PATH_KEYS and isinstance(value, str) else value
    return out


def build_config(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> StreamConfig:
    """Defaults ← config file ← overrides (``None`` overrides mean "not given on the command line").
    An error caused by a setting from the file names the file."""
    from_file: dict[str, Any] = load_toml(Path(config_file)) if config_file is not None else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return _build({**from_file, **given})
    except ConfigError as exc:
        kept = {k: v for k, v in from_file.items() if k not in given}
        if config_file is not None and kept and _error_of(kept) == str(exc):
            raise ConfigError(f"{config_file}: {exc}") from None
        raise


def _error_of(values: dict[str, Any]) -> str | None:
    """The error these settings alone (over the defaults) give, if any."""
    try:
        _build(values)
    except ConfigError as exc:
        return str(exc)
    return None


def _build(values: dict[str, Any]) -> StreamConfig:
    names = {f.name for f in fields(StreamConfig)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    cfg = replace(StreamConfig(), **{k: _coerce(k, v) for k, v in values.items()})
    return cfg.validate()
