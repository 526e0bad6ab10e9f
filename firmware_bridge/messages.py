"""Typed messages and their fixed little-endian payload layouts (byte offsets in PROTOCOL.md).

Pure code. ``Msg.pack()`` gives the payload bytes; ``Msg.unpack(payload)`` reads the fixed layout
and ignores trailing bytes (a newer minor version may append fields). :func:`parse` checks the
major version and dispatches on the message type; :func:`encode` builds the wire bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from firmware_bridge.errors import MalformedMessage, ProtocolVersionError, UnknownMessageType
from firmware_bridge.framing import PROTOCOL_MAJOR, PROTOCOL_MINOR, Frame, encode_frame

__all__ = [
    "Ack",
    "Alert",
    "AlertCode",
    "ErrorCode",
    "ErrorMsg",
    "FrameMeta",
    "Heartbeat",
    "Hello",
    "HelloAck",
    "Message",
    "MsgType",
    "NEVER_ACKED",
    "Nack",
    "NackReason",
    "ProbeState",
    "Result",
    "TimeSyncRequest",
    "TimeSyncResponse",
    "encode",
    "one_line",
    "parse",
    "version_mismatch",
]


class MsgType(IntEnum):
    HELLO = 0x01
    HELLO_ACK = 0x02
    FRAME_META = 0x10
    PROBE_STATE = 0x11
    RESULT = 0x20
    ALERT = 0x21
    HEARTBEAT = 0x30
    TIME_SYNC_REQ = 0x31
    TIME_SYNC_RESP = 0x32
    ACK = 0x40
    NACK = 0x41
    ERROR = 0x42


NEVER_ACKED = frozenset((int(MsgType.ACK), int(MsgType.NACK)))
"""Message types never answered with ACK or NACK, whatever their flags (PROTOCOL.md section 4): an answer
to an answer could loop."""


class NackReason(IntEnum):
    UNKNOWN_TYPE = 1
    MALFORMED = 2
    BUSY = 3
    INCOMPATIBLE_VERSION = 4


class AlertCode(IntEnum):
    MALIGNANT_PERSISTENT = 1


class ErrorCode(IntEnum):
    INCOMPATIBLE_VERSION = 1
    BAD_PAYLOAD = 2
    INTERNAL = 3


_FROZEN = 0x01
_PROBE_CONNECTED = 0x02
_BBOX_VALID = 0x01


def _fields(layout: struct.Struct, payload: bytes, name: str) -> tuple[Any, ...]:
    if len(payload) < layout.size:
        raise MalformedMessage(f"{name} payload has {len(payload)} bytes, needs {layout.size}: message dropped")
    return layout.unpack_from(payload)


def _pack(layout: struct.Struct, name: str, *values: object) -> bytes:
    try:
        return layout.pack(*values)
    except (struct.error, OverflowError) as exc:  # OverflowError: a float beyond f32 (1e39)
        raise MalformedMessage(f"{name} field out of range ({exc}): fix the value before sending") from None


@dataclass(frozen=True, slots=True)
class Hello:
    """Host → device: opens a session and states the host's protocol version."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xI")
    proto_major: int = PROTOCOL_MAJOR
    proto_minor: int = PROTOCOL_MINOR
    host_id: int = 0

    def pack(self) -> bytes:
        return _pack(self.LAYOUT, "HELLO", self.proto_major, self.proto_minor, self.host_id)

    @classmethod
    def unpack(cls, payload: bytes) -> Hello:
        return cls(*_fields(cls.LAYOUT, payload, "HELLO"))


@dataclass(frozen=True, slots=True)
class HelloAck:
    """Device → host: answer to HELLO with the device's identity, firmware and clock rate."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO_ACK
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BB2xIBBHI")
    proto_major: int
    proto_minor: int
    device_id: int
    fw_major: int
    fw_minor: int
    fw_patch: int
    clock_hz: int

    def pack(self) -> bytes:
        values = (self.proto_major, self.proto_minor, self.device_id, self.fw_major, self.fw_minor, self.fw_patch)
        return _pack(self.LAYOUT, "HELLO_ACK", *values, self.clock_hz)

    @classmethod
    def unpack(cls, payload: bytes) -> HelloAck:
        return cls(*_fields(cls.LAYOUT, payload, "HELLO_ACK"))


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """Device → host: one acquired ultrasound frame, stamped on the device clock."""

    TYPE: ClassVar[MsgType] = MsgType.FRAME_META
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IQHB1xff")
    frame_counter: int
    t_acq_us: int
    probe_id: int
    depth_mm: float
    gain_db: float
    frozen: bool

    def pack(self) -> bytes:
        flags = _FROZEN if self.frozen else 0
        values = (self.frame_counter, self.t_acq_us, self.probe_id, flags, self.depth_mm, self.gain_db)
        return _pack(self.LAYOUT, "FRAME_META", *values)

    @classmethod
    def unpack(cls, payload: bytes) -> FrameMeta:
        counter, t_us, probe, flags, depth, gain = _fields(cls.LAYOUT, payload, "FRAME_META")
        return cls(counter, t_us, probe, depth, gain, bool(flags & _FROZEN))


@dataclass(frozen=True, slots=True)
class ProbeState:
    """Device → host: probe, depth, gain or freeze changed (also sent once after HELLO_ACK)."""

    TYPE: ClassVar[MsgType] = MsgType.PROBE_STATE
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<QHB1xff")
    t_device_us: int
    probe_id: int
    depth_mm: float
    gain_db: float
    frozen: bool
    probe_connected: bool = True

    def pack(self) -> bytes:
        flags = (_FROZEN if self.frozen else 0) | (_PROBE_CONNECTED if self.probe_connected else 0)
        values = (self.t_device_us, self.probe_id, flags, self.depth_mm, self.gain_db)
        return _pack(self.LAYOUT, "PROBE_STATE", *values)

    @classmethod
    def unpack(cls, payload: bytes) -> ProbeState:
        t_us, probe, flags, depth, gain = _fields(cls.LAYOUT, payload, "PROBE_STATE")
        return cls(t_us, probe, depth, gain, bool(flags & _FROZEN), bool(flags & _PROBE_CONNECTED))


@dataclass(frozen=True, slots=True)
class Result:
    """Host → device: the model's verdict on one device frame; ``bbox`` is (x0, y0, x1, y1) pixels."""

    TYPE: ClassVar[MsgType] = MsgType.RESULT
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IBB2xffHHHH")
    frame_counter: int
    label: int
    malignancy: float
    lesion_area: float
    bbox: tuple[int, int, int, int] | None = None

    def pack(self) -> bytes:
        flags, box = (_BBOX_VALID, self.bbox) if self.bbox is not None else (0, (0, 0, 0, 0))
        values = (self.frame_counter, self.label, flags, self.malignancy, self.lesion_area, *box)
        return _pack(self.LAYOUT, "RESULT", *values)

    @classmethod
    def unpack(cls, payload: bytes) -> Result:
        counter, label, flags, malignancy, area, x0, y0, x1, y1 = _fields(cls.LAYOUT, payload, "RESULT")
        bbox = (x0, y0, x1, y1) if flags & _BBOX_VALID else None
        return cls(counter, label, malignancy, area, bbox)


@dataclass(frozen=True, slots=True)
class Alert:
    """Device → host: a condition the operator must see (e.g. a malignant result persisted N frames)."""

    TYPE: ClassVar[MsgType] = MsgType.ALERT
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IB1xHfQ")
    frame_counter: int
    code: int
    run_length: int
    malignancy: float
    t_device_us: int

    def pack(self) -> bytes:
        values = (self.frame_counter, self.code, self.run_length, self.malignancy, self.t_device_us)
        return _pack(self.LAYOUT, "ALERT", *values)

    @classmethod
    def unpack(cls, payload: bytes) -> Alert:
        return cls(*_fields(cls.LAYOUT, payload, "ALERT"))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Either direction: keeps the link alive; ``sender_time_us`` is the sender's own clock."""

    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<QI")
    sender_time_us: int
    status: int = 0

    def pack(self) -> bytes:
        return _pack(self.LAYOUT, "HEARTBEAT", self.sender_time_us, self.status)

    @classmethod
    def unpack(cls, payload: bytes) -> Heartbeat:
        return cls(*_fields(cls.LAYOUT, payload, "HEARTBEAT"))


@dataclass(frozen=True, slots=True)
class TimeSyncRequest:
    """Host → device: NTP-style request; ``t1_us`` is the host send time (host µs)."""

    TYPE: ClassVar[MsgType] = MsgType.TIME_SYNC_REQ
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IQ")
    sync_id: int
    t1_us: int

    def pack(self) -> bytes:
        return _pack(self.LAYOUT, "TIME_SYNC_REQ", self.sync_id, self.t1_us)

    @classmethod
    def unpack(cls, payload: bytes) -> TimeSyncRequest:
        return cls(*_fields(cls.LAYOUT, payload, "TIME_SYNC_REQ"))


@dataclass(frozen=True, slots=True)
class TimeSyncResponse:
    """Device → host: echoes ``t1_us``; ``t2_us`` receive and ``t3_us`` transmit time (device µs)."""

    TYPE: ClassVar[MsgType] = MsgType.TIME_SYNC_RESP
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<IQQQ")
    sync_id: int
    t1_us: int
    t2_us: int
    t3_us: int

    def pack(self) -> bytes:
        return _pack(self.LAYOUT, "TIME_SYNC_RESP", self.sync_id, self.t1_us, self.t2_us, self.t3_us)

    @classmethod
    def unpack(cls, payload: bytes) -> TimeSyncResponse:
        return cls(*_fields(cls.LAYOUT, payload, "TIME_SYNC_RESP"))


@dataclass(frozen=True, slots=True)
class Ack:
    """Either direction: the frame ``seq`` of type ``msg_type`` (sent with ACK_REQUESTED) was accepted."""

    TYPE: ClassVar[MsgType] = MsgType.ACK
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HB1x")
    seq: int
    msg_type: int

    def pack(self) -> bytes:
        return _pack(self.LAYOUT, "ACK", self.seq, self.msg_type)

    @classmethod
    def unpack(cls, payload: bytes) -> Ack:
        return cls(*_fields(cls.LAYOUT, payload, "ACK"))


@dataclass(frozen=True, slots=True)
class Nack:
    """Either direction: the frame ``seq`` (sent with ACK_REQUESTED) was refused for ``reason``."""

    TYPE: ClassVar[MsgType] = MsgType.NACK
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HBB")
    seq: int
    msg_type: int
    reason: int

    def pack(self) -> bytes:
        return _pack(self.LAYOUT, "NACK", self.seq, self.msg_type, self.reason)

    @classmethod
    def unpack(cls, payload: bytes) -> Nack:
        return cls(*_fields(cls.LAYOUT, payload, "NACK"))


@dataclass(frozen=True, slots=True)
class ErrorMsg:
    """Either direction: an error report with a code and a short UTF-8 text (at most 255 bytes)."""

    TYPE: ClassVar[MsgType] = MsgType.ERROR
    LAYOUT: ClassVar[struct.Struct] = struct.Struct("<HB1x")
    code: int
    text: str = ""

    def pack(self) -> bytes:
        # cut at 255 bytes, then back to a whole character: a cut inside one was invalid UTF-8 on the wire
        text = self.text.encode("utf-8")[:255].decode("utf-8", errors="ignore").encode("utf-8")
        return _pack(self.LAYOUT, "ERROR", self.code, len(text)) + text

    @classmethod
    def unpack(cls, payload: bytes) -> ErrorMsg:
        code, length = _fields(cls.LAYOUT, payload, "ERROR")
        end = cls.LAYOUT.size + length
        if len(payload) < end:
            raise MalformedMessage(f"ERROR text needs {length} bytes, payload has {len(payload)}: message dropped")
        return cls(code, payload[cls.LAYOUT.size : end].decode("utf-8", errors="replace"))


def one_line(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``, ``\\n``), for showing a
    device's text in a terminal or a log, where an escape sequence cleared the screen and a newline
    forged an ``error:`` line of its own (the message itself keeps the text as sent)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


Message = (
    Hello
    | HelloAck
    | FrameMeta
    | ProbeState
    | Result
    | Alert
    | Heartbeat
    | TimeSyncRequest
    | TimeSyncResponse
    | Ack
    | Nack
    | ErrorMsg
)

_CLASSES: tuple[type[Message], ...] = (
    Hello,
    HelloAck,
    FrameMeta,
    ProbeState,
    Result,
    Alert,
    Heartbeat,
    TimeSyncRequest,
    TimeSyncResponse,
    Ack,
    Nack,
    ErrorMsg,
)
_DECODERS: dict[int, Callable[[bytes], Message]] = {cls.TYPE: cls.unpack for cls in _CLASSES}


def version_mismatch(peer_major: int, peer_minor: int) -> ProtocolVersionError:
    """The error for a peer whose MAJOR protocol version differs from ours."""
    ours = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
    return ProtocolVersionError(
        f"controller speaks firmware-bridge protocol {peer_major}.{peer_minor}, edge-bus speaks {ours}: "
        f"flash firmware with protocol {PROTOCOL_MAJOR}.x or use an edge-bus release for protocol {peer_major}.x",
        peer_major=peer_major,
        peer_minor=peer_minor,
    )


def parse(frame: Frame, *, major: int = PROTOCOL_MAJOR) -> Message:
    """The typed message in ``frame``; raises ProtocolVersionError, UnknownMessageType or MalformedMessage.
    ``major``: the protocol major the reader speaks (a simulated board of another major reads its own
    frames with these layouts)."""
    header = frame.header
    if header.version_major != major:
        raise version_mismatch(header.version_major, header.version_minor)
    decoder = _DECODERS.get(header.msg_type)
    if decoder is None:
        raise UnknownMessageType(
            f"message type 0x{header.msg_type:02x} unknown to protocol {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}: skipped",
            msg_type=header.msg_type,
        )
    return decoder(frame.payload)


def encode(
    message: Message,
    *,
    seq: int,
    flags: int = 0,
    version: tuple[int, int] = (PROTOCOL_MAJOR, PROTOCOL_MINOR),
    extra: bytes = b"",
) -> bytes:
    """Wire bytes for ``message``; ``extra`` is appended to the payload (how a newer minor adds fields)."""
    return encode_frame(message.TYPE, message.pack() + extra, seq=seq, flags=flags, version=version)
