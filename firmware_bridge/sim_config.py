"""Simulator options, parsed from a ``sim://?key=value&...`` query string or set from the CLI."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, fields
from urllib.parse import parse_qsl

from firmware_bridge.clock import MAX_DRIFT_PPM
from firmware_bridge.errors import SimulatorError
from firmware_bridge.framing import PROTOCOL_MAJOR, PROTOCOL_MINOR

__all__ = ["QUERY_KEYS", "DeviceClock", "SimConfig"]


_U32 = 0xFFFFFFFF
_F32_MAX = 3.4028234663852886e38


def _finite_f32(x: float) -> bool:
    return math.isfinite(x) and abs(x) <= _F32_MAX


MAX_SIM_FPS = 1000.0
"""The fastest simulated board (FRAME_META per second)."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """How the virtual controller board behaves. Times in seconds unless the name says otherwise."""

    fps: float = 30.0  # FRAME_META rate on the device's own clock; 0 = no frames
    drift_ppm: float = 0.0  # device oscillator error: + runs fast
    jitter_ms: float = 0.0  # each outgoing frame leaves up to this much late (uniform), after its timestamps
    corrupt: float = 0.0  # probability that an outgoing frame is corrupted (bit flip, truncation, garbage)
    seed: int | None = None
    device_id: int = 0x5EB00001
    fw_version: tuple[int, int, int] = (1, 0, 0)
    clock_hz: int = 1_000_000
    proto_major: int = PROTOCOL_MAJOR
    proto_minor: int = PROTOCOL_MINOR
    future: bool = False  # act like a newer minor: 4 extra payload bytes per message, unknown message types
    probe_id: int = 1
    depth_mm: float = 40.0
    gain_db: float = 50.0
    heartbeat_s: float = 0.5
    alert_frames: int = 5  # consecutive RESULTs labelled malignant (label 2) that raise an ALERT
    freeze_every_s: float = 0.0  # 0 = no freeze schedule
    freeze_for_s: float = 1.0
    disconnect_every_s: float = 0.0  # 0 = no scheduled unplugs
    disconnect_for_s: float = 0.5

    def __post_init__(self) -> None:
        checks = (
            (0 <= self.fps <= MAX_SIM_FPS, f"fps must be 0 to {MAX_SIM_FPS:g} (a scanner's 15-120; 1e7 flooded the "
             "link so that no answer got through)"),
            (abs(self.drift_ppm) <= MAX_DRIFT_PPM, f"drift_ppm must be within ±{MAX_DRIFT_PPM:g} (what the host's "
             "clock fit follows)"),
            (self.jitter_ms >= 0, "jitter_ms must be >= 0"),
            (0.0 <= self.corrupt <= 1.0, "corrupt must be a probability in [0, 1]"),
            (0 <= self.proto_major <= 255 and 0 <= self.proto_minor <= 255, "proto_major/minor must be 0..255"),
            (0 < self.clock_hz <= _U32, "clock_hz must be 1..4294967295 (HELLO_ACK's u32)"),
            (0 <= self.device_id <= _U32, "device_id must be 0..4294967295 (HELLO_ACK's u32)"),
            (len(self.fw_version) == 3 and 0 <= self.fw_version[0] <= 255 and 0 <= self.fw_version[1] <= 255
             and 0 <= self.fw_version[2] <= 0xFFFF, "fw must be MAJOR.MINOR.PATCH within 255.255.65535"),
            (0 <= self.probe_id <= 0xFFFF, "probe must be 0..65535 (FRAME_META's u16)"),
            (_finite_f32(self.depth_mm) and _finite_f32(self.gain_db), "depth and gain must be finite numbers "
             "a float32 holds"),
            (self.heartbeat_s > 0, "heartbeat must be > 0"),
            (self.alert_frames >= 1, "alert_frames must be >= 1"),
            (self.freeze_every_s >= 0 and self.freeze_for_s >= 0, "freeze_every/freeze_for must be >= 0"),
            (self.disconnect_every_s >= 0 and self.disconnect_for_s >= 0, "disconnect_every/for must be >= 0"),
        )
        for ok, message in checks:
            if not ok:
                raise SimulatorError(f"simulator option invalid: {message}")

    @classmethod
    def from_query(cls, query: str) -> SimConfig:
        """Parse ``fps=30&drift_ppm=50&jitter_ms=1&corrupt=0.01&seed=1`` (keys: :data:`QUERY_KEYS`)."""
        values: dict[str, object] = {}
        for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            field_name = QUERY_KEYS.get(key)
            if field_name is None:
                known = ", ".join(sorted(QUERY_KEYS))
                raise SimulatorError(f"unknown sim:// option {key!r}: use one of {known}")
            values[field_name] = _convert(field_name, key, raw)
        return cls(**values)  # type: ignore[arg-type]


QUERY_KEYS: dict[str, str] = {
    "fps": "fps",
    "drift_ppm": "drift_ppm",
    "jitter_ms": "jitter_ms",
    "corrupt": "corrupt",
    "seed": "seed",
    "device_id": "device_id",
    "fw": "fw_version",
    "clock_hz": "clock_hz",
    "proto_major": "proto_major",
    "proto_minor": "proto_minor",
    "future": "future",
    "probe": "probe_id",
    "depth": "depth_mm",
    "gain": "gain_db",
    "heartbeat": "heartbeat_s",
    "alert_frames": "alert_frames",
    "freeze_every": "freeze_every_s",
    "freeze_for": "freeze_for_s",
    "disconnect_every": "disconnect_every_s",
    "disconnect_for": "disconnect_for_s",
}
_TYPES = {f.name: f.type for f in fields(SimConfig)}


#: what each kind of sim:// option takes, in words (not "tuple[int, int, int]" or "int | None")
_WANTED = {"fw": "a firmware version MAJOR.MINOR.PATCH such as 1.2.3", "bool": "true or false",
           "int": "a whole number", "float": "a number"}


def _kind_of(field_name: str) -> str:
    """The kind of value a SimConfig field takes from a URL: a key of :data:`_WANTED`."""
    kind = str(_TYPES[field_name])
    if field_name == "fw_version":
        return "fw"
    if kind == "bool":
        return "bool"
    return "int" if "int" in kind and "float" not in kind else "float"


def _convert(field_name: str, key: str, raw: str) -> object:
    kind = _kind_of(field_name)
    try:
        if kind == "fw":
            major, minor, patch = (int(part) for part in raw.split("."))
            return (major, minor, patch)
        if kind == "bool":
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no", ""):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes", "")
        if kind == "int":
            return int(raw, 0)
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
        return value
    except ValueError:
        raise SimulatorError(f"sim:// option {key}={raw!r} is not {_WANTED[kind]}: fix the URL") from None


@dataclass(frozen=True, slots=True)
class DeviceClock:
    """The board's microsecond clock: ``boot_us`` at host time ``host_origin_s``, running ``drift_ppm`` fast."""

    host_origin_s: float
    boot_us: float
    drift_ppm: float = 0.0

    @classmethod
    def starting_now(cls, drift_ppm: float, rng: random.Random) -> DeviceClock:
        # a board that booted some minutes ago, so device and host clocks differ by an arbitrary offset
        return cls(time.perf_counter(), rng.uniform(60.0, 3600.0) * 1e6, drift_ppm)

    @property
    def rate(self) -> float:
        return 1.0 + self.drift_ppm * 1e-6

    def now_us(self, t_host: float | None = None) -> int:
        """The device clock reading at host ``time.perf_counter()`` time ``t_host`` (default: now)."""
        t = time.perf_counter() if t_host is None else t_host
        return int(self.boot_us + (t - self.host_origin_s) * 1e6 * self.rate)

    def to_host(self, t_device_us: float) -> float:
        """The true host ``perf_counter()`` time at which this clock read ``t_device_us``."""
        return self.host_origin_s + (t_device_us - self.boot_us) / (1e6 * self.rate)
