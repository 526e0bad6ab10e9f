"""Forward compatibility: unknown types skipped, newer minors accepted, a different major refused clearly."""

from __future__ import annotations

import time

import pytest

from firmware_bridge import HostBridge, LinkConfig
from firmware_bridge.errors import MalformedMessage, ProtocolVersionError, UnknownMessageType
from firmware_bridge.framing import decode_frame, encode_frame
from firmware_bridge.messages import FrameMeta, MsgType, encode, parse


def test_unknown_type_is_a_typed_skippable_error() -> None:
    frame = decode_frame(encode_frame(0x7E, b"new in 1.5", seq=3, version=(1, 5))[:-1])
    with pytest.raises(UnknownMessageType, match="message type 0x7e unknown to protocol 1.0: skipped") as info:
        parse(frame)
    assert info.value.msg_type == 0x7E


def test_newer_minor_with_trailing_fields_is_accepted() -> None:
    meta = FrameMeta(1, 2, 3, 4.0, 5.0, False)
    frame = decode_frame(encode(meta, seq=0, version=(1, 9), extra=b"\x01\x02\x03\x04 new fields")[:-1])
    assert frame.header.version_minor == 9 and frame.header.length == 24 + 15
    assert parse(frame) == meta


def test_newer_minor_unknown_flag_bits_are_ignored() -> None:
    payload = bytearray(FrameMeta(1, 2, 3, 4.0, 5.0, True).pack())
    payload[14] |= 0b1111_0000  # flag bits a later minor might define
    frame = decode_frame(encode_frame(MsgType.FRAME_META, bytes(payload), seq=0, version=(1, 3))[:-1])
    assert parse(frame) == FrameMeta(1, 2, 3, 4.0, 5.0, True)


def test_different_major_is_refused_with_a_clear_message() -> None:
    frame = decode_frame(encode(FrameMeta(1, 2, 3, 4.0, 5.0, False), seq=0, version=(2, 1))[:-1])
    with pytest.raises(ProtocolVersionError) as info:
        parse(frame)
    message = str(info.value)
    assert "protocol 2.1" in message and "edge-bus speaks 1.0" in message and "flash firmware" in message
    assert "\n" not in message
    assert (info.value.peer_major, info.value.peer_minor) == (2, 1)


def test_payload_shorter_than_layout_is_malformed_not_fatal() -> None:
    frame = decode_frame(encode_frame(MsgType.FRAME_META, b"\x00" * 10, seq=0)[:-1])
    with pytest.raises(MalformedMessage, match="FRAME_META payload has 10 bytes, needs 24"):
        parse(frame)


def test_bridge_works_with_a_future_minor_device(fast_link: LinkConfig) -> None:
    with HostBridge.open("sim://?fps=100&future=1&proto_minor=4&seed=5", link_config=fast_link) as bridge:
        assert bridge.device_info.protocol_version == (1, 4)
        frames: list[int] = []
        for _ in range(25):
            meta = bridge.next_meta(1.0)
            assert meta is not None
            frames.append(meta.device_frame)
        assert bridge.ping() < 0.5
        counters = bridge.counters()
    assert frames == list(range(frames[0], frames[0] + 25))
    assert counters.unknown_types >= 2  # one unknown message every 10 frames
    assert counters.bad_messages == counters.crc_errors == counters.version_mismatches == 0


def test_bridge_refuses_a_major_2_device_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(ProtocolVersionError, match=r"controller speaks firmware-bridge protocol 2\.0"):
        HostBridge.open("sim://?proto_major=2", timeout=2.0)
    assert time.perf_counter() - start < 1.0


def test_device_answers_a_foreign_major_as_protocol_md_says() -> None:
    """PROTOCOL.md section 3: HELLO → HELLO_ACK only; ACK_REQUESTED → NACK INCOMPATIBLE_VERSION; else dropped."""
    from firmware_bridge import Packetizer, SimConfig, VirtualBoard
    from firmware_bridge.messages import HelloAck, Nack, NackReason

    board = VirtualBoard(SimConfig(fps=0))
    sent: list[bytes] = []
    board.attach(sent.append)
    board.receive(encode_frame(MsgType.HELLO, bytes(8), seq=0, version=(2, 0)))
    board.receive(encode_frame(MsgType.RESULT, bytes(24), seq=1, flags=1, version=(2, 0)))
    board.receive(encode_frame(MsgType.HEARTBEAT, bytes(12), seq=2, version=(2, 0)))
    messages = [parse(f) for f in Packetizer().feed(b"".join(sent))]
    assert [type(m) for m in messages] == [HelloAck, Nack]  # no PROBE_STATE, nothing for the heartbeat
    assert messages[1] == Nack(1, MsgType.RESULT, NackReason.INCOMPATIBLE_VERSION)


def test_device_never_acknowledges_an_ack_or_a_nack() -> None:
    """PROTOCOL.md section 4: ACK and NACK themselves are never acknowledged, whatever their flags (the
    simulated board, the reference device, ACKed them); a RESULT asking for one still gets it."""
    from firmware_bridge import Packetizer, SimConfig, VirtualBoard
    from firmware_bridge.framing import FLAG_ACK_REQUESTED
    from firmware_bridge.messages import Ack, ErrorCode, ErrorMsg, Nack, Result

    board = VirtualBoard(SimConfig(fps=0))
    sent: list[bytes] = []
    board.attach(sent.append)
    board.receive(encode(Ack(5, MsgType.RESULT), seq=0, flags=FLAG_ACK_REQUESTED))
    board.receive(encode(Nack(6, MsgType.RESULT, 2), seq=1, flags=FLAG_ACK_REQUESTED))
    assert [parse(f) for f in Packetizer().feed(b"".join(sent))] == []
    board.receive(encode_frame(MsgType.ACK, bytes(3), seq=2, flags=FLAG_ACK_REQUESTED))  # a malformed ACK:
    answers = [parse(f) for f in Packetizer().feed(b"".join(sent))]  # an ERROR, but no NACK of the ACK
    assert [type(m) for m in answers] == [ErrorMsg] and answers[0].code == ErrorCode.BAD_PAYLOAD
    sent.clear()
    board.receive(encode(Result(7, 1, 0.2, 0.0, None), seq=3, flags=FLAG_ACK_REQUESTED))
    assert [parse(f) for f in Packetizer().feed(b"".join(sent))] == [Ack(3, MsgType.RESULT)]
