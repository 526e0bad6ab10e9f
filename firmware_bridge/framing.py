"""Wire framing: header + payload + CRC-32, COBS-encoded, delimited by 0x00 (see PROTOCOL.md).

Pure code: nothing here opens a port, starts a thread or reads a clock. :func:`encode_frame` and
:func:`decode_frame` handle one frame; :class:`Packetizer` turns an arbitrary byte stream (chunks
cut anywhere) into frames, counts every unusable frame and resynchronises at the next 0x00.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from cobs import cobs

from firmware_bridge.errors import CrcMismatch, FrameError, MalformedFrame, OversizeFrame

__all__ = [
    "CRC_SIZE",
    "DELIMITER",
    "FLAG_ACK_REQUESTED",
    "HEADER_SIZE",
    "MAX_ENCODED",
    "MAX_PAYLOAD",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "Frame",
    "FrameHeader",
    "Packetizer",
    "PacketizerStats",
    "crc32",
    "decode_frame",
    "encode_frame",
    "raw_frame",
]

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0

_HEADER = struct.Struct("<BBBBHH")  # major, minor, type, flags, seq, payload length
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size  # 8
CRC_SIZE = _CRC.size  # 4
MAX_PAYLOAD = 1024
_MAX_RAW = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
MAX_ENCODED = _MAX_RAW + _MAX_RAW // 254 + 1  # worst-case COBS size of the largest frame, without delimiter
DELIMITER = b"\x00"
FLAG_ACK_REQUESTED = 0x01


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The 8-byte header at the start of every frame."""

    version_major: int
    version_minor: int
    msg_type: int
    flags: int
    seq: int
    length: int

    @property
    def ack_requested(self) -> bool:
        return bool(self.flags & FLAG_ACK_REQUESTED)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: a checked header and its payload (``len(payload) == header.length``)."""

    header: FrameHeader
    payload: bytes


@dataclass(frozen=True, slots=True)
class PacketizerStats:
    """Counters of a :class:`Packetizer`; ``resyncs`` = times bytes were thrown away up to a delimiter."""

    frames_ok: int = 0
    crc_errors: int = 0
    malformed: int = 0
    oversize: int = 0
    resyncs: int = 0
    bytes_in: int = 0

    @property
    def bad_frames(self) -> int:
        return self.crc_errors + self.malformed + self.oversize


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (IEEE 802.3, zlib): ``crc32(b"123456789") == 0xCBF43926``."""
    return zlib.crc32(data) & 0xFFFFFFFF


def raw_frame(
    msg_type: int,
    payload: bytes,
    *,
    seq: int,
    flags: int = 0,
    version: tuple[int, int] = (PROTOCOL_MAJOR, PROTOCOL_MINOR),
) -> bytes:
    """Header + payload + CRC-32, before COBS encoding."""
    if len(payload) > MAX_PAYLOAD:
        raise OversizeFrame(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte maximum: send less data")
    body = _HEADER.pack(version[0], version[1], msg_type, flags, seq & 0xFFFF, len(payload)) + payload
    return body + _CRC.pack(crc32(body))


def encode_frame(
    msg_type: int,
    payload: bytes,
    *,
    seq: int,
    flags: int = 0,
    version: tuple[int, int] = (PROTOCOL_MAJOR, PROTOCOL_MINOR),
) -> bytes:
    """The bytes to put on the wire for one frame: COBS(header + payload + CRC) followed by 0x00."""
    return bytes(cobs.encode(raw_frame(msg_type, payload, seq=seq, flags=flags, version=version))) + DELIMITER


def decode_frame(encoded: bytes) -> Frame:
    """Decode one COBS-encoded frame (without its 0x00 delimiter); raises a :class:`FrameError` subclass."""
    if len(encoded) > MAX_ENCODED:
        raise OversizeFrame(f"frame of {len(encoded)} encoded bytes exceeds {MAX_ENCODED}: frame dropped")
    try:
        raw = cobs.decode(encoded)
    except cobs.DecodeError as exc:
        raise MalformedFrame(f"bad COBS encoding ({exc}): frame dropped") from None
    if len(raw) < HEADER_SIZE + CRC_SIZE:
        raise MalformedFrame(f"frame of {len(raw)} bytes is shorter than header + CRC: frame dropped")
    body = raw[:-CRC_SIZE]
    (crc,) = _CRC.unpack_from(raw, len(body))
    if crc32(body) != crc:
        raise CrcMismatch("CRC-32 mismatch: frame dropped (check cable, baud rate and grounding)")
    major, minor, msg_type, flags, seq, length = _HEADER.unpack_from(body)
    if length > MAX_PAYLOAD:
        raise OversizeFrame(f"length field {length} exceeds the {MAX_PAYLOAD}-byte maximum: frame dropped")
    if length != len(body) - HEADER_SIZE:
        raise MalformedFrame(f"length field {length} != {len(body) - HEADER_SIZE} payload bytes: frame dropped")
    return Frame(FrameHeader(major, minor, msg_type, flags, seq, length), bytes(body[HEADER_SIZE:]))


class Packetizer:
    """Split a byte stream on 0x00 and decode each frame; bad frames are counted, never raised.

    Not thread-safe: feed it from one thread (the link's dispatcher).
    """

    def __init__(self, max_encoded: int = MAX_ENCODED) -> None:
        self._max = max_encoded
        self._buf = bytearray()
        self._discarding = False  # inside an oversize run: drop everything up to the next delimiter
        self._ok = self._crc = self._malformed = self._oversize = self._bytes = 0

    def reset(self) -> None:
        """Forget any partial frame (call after a reconnect); counters are kept."""
        self._buf.clear()
        self._discarding = False

    def stats(self) -> PacketizerStats:
        bad = self._crc + self._malformed + self._oversize
        return PacketizerStats(self._ok, self._crc, self._malformed, self._oversize, bad, self._bytes)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames completed by them, in order."""
        self._bytes += len(data)
        parts = data.split(DELIMITER)
        frames: list[Frame] = []
        for i, part in enumerate(parts[:-1]):
            if i == 0:
                if self._discarding:  # the rest of an oversize run ends here
                    self._discarding = False
                    continue
                if self._buf:
                    self._buf += part
                    part = bytes(self._buf)
                    self._buf.clear()
            if part:
                self._decode(part, frames)
        tail = parts[-1]
        if self._discarding and len(parts) == 1:
            return frames
        self._buf += tail
        if len(self._buf) > self._max:
            self._oversize += 1
            self._buf.clear()
            self._discarding = True
        return frames

    def _decode(self, segment: bytes, out: list[Frame]) -> None:
        try:
            out.append(decode_frame(segment))
        except CrcMismatch:
            self._crc += 1
        except OversizeFrame:
            self._oversize += 1
        except FrameError:
            self._malformed += 1
        else:
            self._ok += 1
