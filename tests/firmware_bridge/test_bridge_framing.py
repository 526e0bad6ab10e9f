"""Framing: CRC-32 vector, frame test vectors, encode/decode round trips, packetizer resync."""

from __future__ import annotations

import struct

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import CrcMismatch, MalformedFrame, OversizeFrame
from firmware_bridge.framing import (
    MAX_ENCODED,
    MAX_PAYLOAD,
    Frame,
    FrameHeader,
    Packetizer,
    crc32,
    decode_frame,
    encode_frame,
    raw_frame,
)

# the vectors printed in PROTOCOL.md section 2.2
HEARTBEAT_WIRE = bytes.fromhex("02 01 02 30 04 34 12 0c 09 08 07 06 05 04 03 02 01 01 01 01 05 dd 38 db 57 00")
FRAME_META_WIRE = bytes.fromhex(
    "02 01 02 10 02 01 02 18 02 07 01 01 04 40 42 0f 01 01 01 01 02 02 02 01 01 01 03 36 42 01 07 70 42 7e 7d d5 e9 00"
)


def test_crc32_check_value() -> None:
    assert crc32(b"123456789") == 0xCBF43926


def test_heartbeat_test_vector() -> None:
    payload = struct.pack("<QI", 0x0102030405060708, 0)
    raw = raw_frame(0x30, payload, seq=0x1234)
    assert raw[-4:] == struct.pack("<I", 0x57DB38DD)
    assert encode_frame(0x30, payload, seq=0x1234) == HEARTBEAT_WIRE
    frame = decode_frame(HEARTBEAT_WIRE[:-1])
    assert frame == Frame(FrameHeader(1, 0, 0x30, 0, 0x1234, 12), payload)


def test_frame_meta_test_vector() -> None:
    frame = decode_frame(FRAME_META_WIRE[:-1])
    assert (frame.header.msg_type, frame.header.seq, frame.header.length) == (0x10, 1, 24)
    assert struct.unpack("<IQHB1xff", frame.payload) == (7, 1_000_000, 2, 1, 45.5, 60.0)


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00" * 300, bytes(range(256)) * 4, b"\xff" * MAX_PAYLOAD])
def test_round_trip_edge_payloads(payload: bytes) -> None:
    wire = encode_frame(0x42, payload, seq=65535, flags=1)
    assert wire.count(0) == 1 and wire.endswith(b"\x00")
    assert len(wire) - 1 <= MAX_ENCODED
    frame = decode_frame(wire[:-1])
    assert frame.payload == payload
    assert frame.header == FrameHeader(1, 0, 0x42, 1, 65535, len(payload))
    assert frame.header.ack_requested


@settings(max_examples=200, deadline=None)
@given(
    frames=st.lists(
        st.tuples(st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 255), st.binary(max_size=200)),
        min_size=1,
        max_size=8,
    ),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
)
def test_packetizer_reassembles_any_chunking(frames: list[tuple[int, int, int, bytes]], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(t, p, seq=s, flags=f) for t, s, f, p in frames)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    packetizer = Packetizer()
    out: list[Frame] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        out.extend(packetizer.feed(stream[start:end]))
    assert [(f.header.msg_type, f.header.seq, f.header.flags, f.payload) for f in out] == frames
    assert packetizer.stats().bad_frames == 0


def test_decode_rejects_crc_mismatch() -> None:
    raw = bytearray(raw_frame(0x30, b"abc", seq=1))
    raw[9] ^= 0x01
    with pytest.raises(CrcMismatch, match="CRC-32 mismatch"):
        decode_frame(cobs.encode(bytes(raw)))


def test_decode_rejects_short_and_bad_cobs() -> None:
    with pytest.raises(MalformedFrame, match="shorter than header"):
        decode_frame(cobs.encode(b"\x01\x00\x30"))
    with pytest.raises(MalformedFrame, match="COBS"):
        decode_frame(b"\x09\x01")
    for size in (8, 11):  # a whole header but no room for the CRC: malformed, not a CRC error
        with pytest.raises(MalformedFrame, match=f"frame of {size} bytes is shorter than header"):
            decode_frame(cobs.encode(bytes(size)))


def test_a_run_without_delimiter_longer_than_the_maximum_is_dropped_at_once() -> None:
    """MAX_ENCODED bytes may wait for their delimiter; one more is an oversize run, counted once and
    thrown away up to the next delimiter, after which frames decode again."""
    good = encode_frame(0x30, struct.pack("<QI", 5, 0), seq=1)
    p = Packetizer()
    assert p.feed(b"\x01" * MAX_ENCODED) == [] and p.stats().oversize == 0
    assert p.feed(b"\x01") == [] and p.stats().oversize == 1
    assert p.feed(b"\x01" * 10 + b"\x00") == []  # the rest of the run, up to its delimiter
    assert [f.header.msg_type for f in p.feed(good)] == [0x30] and p.stats().oversize == 1


def test_decode_rejects_length_field_lies() -> None:
    body = struct.pack("<BBBBHH", 1, 0, 0x30, 0, 1, 5) + b"abc"  # says 5, carries 3
    with pytest.raises(MalformedFrame, match="length field 5"):
        decode_frame(cobs.encode(body + struct.pack("<I", crc32(body))))
    body = struct.pack("<BBBBHH", 1, 0, 0x30, 0, 1, 60000) + b"abc"  # valid CRC, absurd length
    with pytest.raises(OversizeFrame, match="60000"):
        decode_frame(cobs.encode(body + struct.pack("<I", crc32(body))))


def test_encode_refuses_oversize_payload() -> None:
    with pytest.raises(OversizeFrame, match="1025 bytes"):
        encode_frame(0x30, b"x" * (MAX_PAYLOAD + 1), seq=0)


def test_packetizer_counts_and_resyncs() -> None:
    good = [encode_frame(0x30, bytes([i]) * 12, seq=i) for i in range(4)]
    corrupt = bytearray(good[1])
    corrupt[5] ^= 0x10
    stream = b"garbage-before-any-delimiter\x00" + good[0] + bytes(corrupt) + b"\x00\x00" + good[2]
    stream += b"\x01" * (MAX_ENCODED + 50) + b"\x02" * 10  # oversize run, no delimiter yet
    packetizer = Packetizer()
    frames = packetizer.feed(stream)
    frames += packetizer.feed(b"\x03" * 5 + b"\x00" + good[3])  # run ends; the next frame is fine
    assert [f.header.seq for f in frames] == [0, 2, 3]
    stats = packetizer.stats()
    assert (stats.frames_ok, stats.crc_errors, stats.malformed, stats.oversize) == (3, 1, 1, 1)
    assert stats.resyncs == stats.bad_frames == 3
    assert stats.bytes_in == len(stream) + 6 + len(good[3])


def test_packetizer_reset_drops_partial_frame() -> None:
    wire = encode_frame(0x30, b"x" * 12, seq=9)
    packetizer = Packetizer()
    assert packetizer.feed(wire[:7]) == []
    packetizer.reset()
    assert packetizer.feed(wire) and packetizer.stats().bad_frames == 0
