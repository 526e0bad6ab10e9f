"""Messages: pack/unpack round trip for every type, the documented byte offsets, bad payloads."""

from __future__ import annotations

import struct

import pytest

from firmware_bridge.errors import MalformedMessage
from firmware_bridge.framing import decode_frame
from firmware_bridge.messages import (
    Ack,
    Alert,
    AlertCode,
    ErrorCode,
    ErrorMsg,
    FrameMeta,
    Heartbeat,
    Hello,
    HelloAck,
    Message,
    MsgType,
    Nack,
    NackReason,
    ProbeState,
    Result,
    TimeSyncRequest,
    TimeSyncResponse,
    encode,
    parse,
)

# one instance of every message type; floats are exact in binary32 so round trips compare equal
SAMPLES: list[Message] = [
    Hello(1, 0, 0xEDB05001),
    HelloAck(1, 0, 0x5EB00001, 2, 7, 300, 1_000_000),
    FrameMeta(123456, 9_876_543_210, 3, 45.5, 60.25, True),
    ProbeState(9_876_543_999, 3, 40.0, 52.5, False, True),
    Result(123456, 2, 0.875, 312.5, (10, 20, 330, 240)),
    Result(123457, 0, 0.125, 0.0, None),
    Alert(123460, AlertCode.MALIGNANT_PERSISTENT, 5, 0.9375, 9_876_600_000),
    Heartbeat(2**63 + 5, 1),
    TimeSyncRequest(77, 1_234_567_890_123),
    TimeSyncResponse(77, 1_234_567_890_123, 5_000_000_001, 5_000_000_017),
    Ack(65535, MsgType.RESULT),
    Nack(12, 0x7E, NackReason.UNKNOWN_TYPE),
    ErrorMsg(ErrorCode.BAD_PAYLOAD, "bad RESULT payload: ü"),
]


def test_every_message_type_has_a_sample() -> None:
    assert {m.TYPE for m in SAMPLES} == set(MsgType)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_pack_unpack_round_trip(message: Message) -> None:
    payload = message.pack()
    assert len(payload) >= type(message).LAYOUT.size
    assert type(message).unpack(payload) == message
    frame = decode_frame(encode(message, seq=42)[:-1])
    assert frame.header.msg_type == message.TYPE and frame.header.seq == 42
    assert parse(frame) == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_short_payload_is_malformed(message: Message) -> None:
    with pytest.raises(MalformedMessage, match="payload has"):
        type(message).unpack(message.pack()[: type(message).LAYOUT.size - 1])


def test_documented_payload_sizes() -> None:
    sizes: dict[type[Message], int] = {
        Hello: 8,
        HelloAck: 16,
        FrameMeta: 24,
        ProbeState: 20,
        Result: 24,
        Alert: 20,
        Heartbeat: 12,
        TimeSyncRequest: 12,
        TimeSyncResponse: 28,
        Ack: 4,
        Nack: 4,
        ErrorMsg: 4,
    }
    assert {cls: cls.LAYOUT.size for cls in sizes} == sizes


def test_frame_meta_offsets_match_protocol_table() -> None:
    payload = FrameMeta(0x11223344, 0x0102030405060708, 0xBEEF, 45.5, -3.0, True).pack()
    assert struct.unpack_from("<I", payload, 0) == (0x11223344,)
    assert struct.unpack_from("<Q", payload, 4) == (0x0102030405060708,)
    assert struct.unpack_from("<H", payload, 12) == (0xBEEF,)
    assert payload[14] == 0x01 and payload[15] == 0
    assert struct.unpack_from("<ff", payload, 16) == (45.5, -3.0)


def test_result_offsets_match_protocol_table() -> None:
    payload = Result(7, 2, 0.5, 12.0, (1, 2, 3, 4)).pack()
    assert struct.unpack_from("<IBB", payload, 0) == (7, 2, 1)
    assert struct.unpack_from("<ff", payload, 8) == (0.5, 12.0)
    assert struct.unpack_from("<4H", payload, 16) == (1, 2, 3, 4)
    assert Result(7, 2, 0.5, 12.0, None).pack()[5] == 0


def test_time_sync_and_hello_ack_offsets() -> None:
    payload = TimeSyncResponse(9, 10, 20, 30).pack()
    assert struct.unpack_from("<IQQQ", payload, 0) == (9, 10, 20, 30)
    ack = HelloAck(1, 3, 0xAABBCCDD, 4, 5, 6, 48_000_000).pack()
    assert ack[0:2] == b"\x01\x03" and struct.unpack_from("<I", ack, 4) == (0xAABBCCDD,)
    assert struct.unpack_from("<BBHI", ack, 8) == (4, 5, 6, 48_000_000)


def test_error_text_length_is_checked_and_capped() -> None:
    with pytest.raises(MalformedMessage, match="ERROR text needs 10"):
        ErrorMsg.unpack(struct.pack("<HB1x", 1, 10) + b"abc")
    long = ErrorMsg(ErrorCode.INTERNAL, "x" * 400)
    assert ErrorMsg.unpack(long.pack()).text == "x" * 255


def test_out_of_range_field_is_refused_with_a_clear_message() -> None:
    with pytest.raises(MalformedMessage, match="RESULT field out of range"):
        Result(1, 0, 0.1, 0.0, (0, 0, 70000, 10)).pack()


def _at(payload: bytes, offset: int, fmt: str) -> object:
    """The little-endian field of type ``fmt`` at byte ``offset`` (PROTOCOL.md's tables give both)."""
    import struct

    return struct.unpack_from("<" + fmt, payload, offset)[0]


def test_probe_state_alert_hello_ack_nack_offsets_match_protocol_tables() -> None:
    """Each field read at the offset PROTOCOL.md gives, with every field a distinct value, so a
    swapped field or a moved reserved byte shows (these layouts had no byte-level test)."""
    from firmware_bridge.messages import Ack, Alert, Hello, Nack

    p = ProbeState(t_device_us=0x0102030405060708, probe_id=0x0A0B, depth_mm=45.5, gain_db=-3.25, frozen=True,
                   probe_connected=True).pack()
    assert len(p) == 20
    assert (_at(p, 0, "Q"), _at(p, 8, "H"), _at(p, 10, "B"), _at(p, 11, "B"), _at(p, 12, "f"), _at(p, 16, "f")) == (
        0x0102030405060708, 0x0A0B, 0b11, 0, 45.5, -3.25)  # flags: bit 0 FROZEN, bit 1 PROBE_CONNECTED
    only_connected = ProbeState(0, 1, 40.0, 50.0, frozen=False, probe_connected=True).pack()
    assert _at(only_connected, 10, "B") == 0b10
    a = Alert(frame_counter=0x11223344, code=1, run_length=0x0506, malignancy=0.75, t_device_us=0x0A0B0C0D0E0F).pack()
    assert len(a) == 20
    assert (_at(a, 0, "I"), _at(a, 4, "B"), _at(a, 5, "B"), _at(a, 6, "H"), _at(a, 8, "f"), _at(a, 12, "Q")) == (
        0x11223344, 1, 0, 0x0506, 0.75, 0x0A0B0C0D0E0F)
    h = Hello(proto_major=1, proto_minor=7, host_id=0xCAFEBABE).pack()
    assert (len(h), _at(h, 0, "B"), _at(h, 1, "B"), _at(h, 2, "H"), _at(h, 4, "I")) == (8, 1, 7, 0, 0xCAFEBABE)
    k = Ack(seq=0x1234, msg_type=0x20).pack()
    assert (len(k), _at(k, 0, "H"), _at(k, 2, "B"), _at(k, 3, "B")) == (4, 0x1234, 0x20, 0)
    n = Nack(seq=0x1234, msg_type=0x20, reason=2).pack()
    assert (len(n), _at(n, 0, "H"), _at(n, 2, "B"), _at(n, 3, "B")) == (4, 0x1234, 0x20, 2)
    assert Nack.unpack(bytes([0x34, 0x12, 0x20, 0x02])) == Nack(seq=0x1234, msg_type=0x20, reason=2)
    assert ProbeState.unpack(bytes(8) + bytes([1, 0, 0b10, 0]) + bytes(8)).probe_connected is True


def test_device_text_is_one_line_and_cut_at_a_whole_character() -> None:
    """An ERROR's text cleared the terminal (ESC [2J) and forged an "error:" line of its own; a text cut
    at 255 bytes inside a character was invalid UTF-8 on the wire."""
    from firmware_bridge.messages import ErrorMsg, one_line

    text = "INTERNAL: \x1b[2Jprobe OK\nerror: forged"
    assert ErrorMsg.unpack(ErrorMsg(3, text).pack()).text == text  # the message keeps it as sent
    assert one_line(text) == "INTERNAL: \\x1b[2Jprobe OK\\nerror: forged"  # as the host shows it
    from firmware_bridge.tools import _fields

    assert _fields(ErrorMsg(3, text)) == "code=3 INTERNAL: \\x1b[2Jprobe OK\\nerror: forged"  # device monitor
    wire = ErrorMsg(3, "é" * 200).pack()
    assert len(wire) == 4 + 254 and wire[4:].decode("utf-8") == "é" * 127


def test_a_value_beyond_f32_is_a_malformed_message() -> None:
    """1e39 for an f32 field raised OverflowError, which is not a BridgeError."""
    from firmware_bridge.errors import MalformedMessage
    from firmware_bridge.messages import Result

    with pytest.raises(MalformedMessage, match="field out of range"):
        Result(1, 1, 0.5, 1e39).pack()
