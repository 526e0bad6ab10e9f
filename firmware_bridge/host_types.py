"""Values the host side of the link hands out: who the board is (:class:`HelloInfo`), a frame's
metadata on the host clock (:class:`HostFrameMeta`), and what the board reported besides frames
(:class:`DeviceEvents`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware_bridge.messages import Alert, AlertCode, ErrorCode, ErrorMsg, HelloAck

__all__ = ["EVENT_HISTORY", "DeviceEvents", "HelloInfo", "HostFrameMeta"]

EVENT_HISTORY = 100  # ALERTs and ERRORs kept by DeviceEvents (each kind)


@dataclass(frozen=True, slots=True)
class HelloInfo:
    """Who answered the HELLO: from HELLO_ACK."""

    device_id: int
    firmware_version: str  # "major.minor.patch"
    clock_hz: int
    protocol_version: tuple[int, int]

    @classmethod
    def from_ack(cls, ack: HelloAck) -> HelloInfo:
        firmware = f"{ack.fw_major}.{ack.fw_minor}.{ack.fw_patch}"
        return cls(ack.device_id, firmware, ack.clock_hz, (ack.proto_major, ack.proto_minor))


@dataclass(frozen=True, slots=True)
class HostFrameMeta:
    """A FRAME_META with its acquisition time mapped onto the host clock (``time.perf_counter()``).

    ``t_received_host`` is when its bytes arrived; ``t_acquired_host`` is never later than that (the
    clock estimate's error, tens of microseconds, 0.2-0.3 ms in a session's first minute with 1 ms of
    one-way jitter, could otherwise place an acquisition after its own FRAME_META arrived, and glass
    to glass below end to end)."""

    device_frame: int
    t_device_us: int
    t_acquired_host: float
    probe_id: int
    depth_mm: float
    gain_db: float
    frozen: bool
    t_received_host: float = math.inf


@dataclass(frozen=True)
class DeviceEvents:
    """What the device reported besides frames: ALERT and ERROR messages (counts, and the last
    :data:`EVENT_HISTORY` of each as received)."""

    alerts: int = 0
    errors: int = 0
    last_alerts: tuple[Alert, ...] = ()
    last_errors: tuple[ErrorMsg, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "alerts": self.alerts, "errors": self.errors,
            "last_alerts": [{"device_frame": a.frame_counter, "code": code_name(AlertCode, a.code),
                             "run_length": a.run_length, "malignancy": round(a.malignancy, 4),
                             "t_device_us": a.t_device_us} for a in self.last_alerts],
            "last_errors": [{"code": code_name(ErrorCode, e.code), "text": e.text} for e in self.last_errors],
        }


def code_name(enum: type[AlertCode] | type[ErrorCode], code: int) -> str:
    """An ALERT or ERROR code's name (``MALIGNANT_PERSISTENT``), or its number if this host doesn't know it."""
    try:
        return enum(code).name
    except ValueError:
        return str(code)
