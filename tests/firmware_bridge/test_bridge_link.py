"""The link over pyserial's loop:// and over a real pseudo-terminal pair (no hardware)."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from firmware_bridge import HostBridge, SimConfig, VirtualBoard
from firmware_bridge.errors import LinkClosed, LinkConfigError, LinkTimeout, PortUnavailable
from firmware_bridge.framing import encode_frame
from firmware_bridge.link import Link
from firmware_bridge.link_types import LinkConfig, Received
from firmware_bridge.messages import Ack, Heartbeat, Hello, HelloAck, MsgType, Nack, NackReason, Result


class Collector:
    """An on_message callback that lets a test wait for N messages."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self._cond = threading.Condition()

    def __call__(self, received: Received) -> None:
        with self._cond:
            self.items.append(received)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= count, timeout), f"got {len(self.items)}/{count}"
            return list(self.items)


def test_loop_round_trip_in_order_with_counters(fast_link: LinkConfig) -> None:
    got = Collector()
    with Link("loop://", fast_link, on_message=got) as link:
        link.open()
        for i in range(200):
            assert link.send(Heartbeat(i, i & 0xFF))
        items = got.wait_for(200)
        counters = link.counters()
    assert [r.message for r in items] == [Heartbeat(i, i & 0xFF) for i in range(200)]
    assert [r.header.seq for r in items] == list(range(200))
    assert all(a.t_rx <= b.t_rx for a, b in zip(items, items[1:], strict=False))
    assert counters.frames_ok == counters.frames_tx == 200
    assert (counters.crc_errors, counters.malformed, counters.seq_gaps, counters.reconnects) == (0, 0, 0, 0)
    assert counters.bytes_rx == counters.bytes_tx > 0
    assert counters.to_json()["frames_ok"] == 200


def test_loop_ack_requested_is_acknowledged(fast_link: LinkConfig) -> None:
    got = Collector()
    with Link("loop://", fast_link, on_message=got) as link:
        link.open()
        assert link.send(Result(5, 2, 0.9, 10.0, (1, 2, 3, 4)), ack=True)
        first, second = got.wait_for(2)
    assert isinstance(first.message, Result) and first.header.ack_requested
    assert second.message == Ack(first.header.seq, MsgType.RESULT)


def test_a_malformed_ack_or_nack_is_never_answered(fast_link: LinkConfig) -> None:
    """PROTOCOL.md section 4: ACK and NACK are never acknowledged. A short ACK or NACK with ACK_REQUESTED
    got a NACK MALFORMED back (the simulator already kept the rule; the host did not)."""
    got = Collector()
    with Link("loop://", fast_link, on_message=got) as link:
        link.open()
        link.write_raw(encode_frame(MsgType.ACK, b"\x00\x00", seq=0, flags=1))  # too short, ACK requested
        link.write_raw(encode_frame(MsgType.NACK, b"\x00", seq=1, flags=1))
        assert link.send(Heartbeat(7, 7))  # a marker: everything before it has been handled when it loops back
        items = got.wait_for(1)
        counters = link.counters()
    assert [r.message for r in items] == [Heartbeat(7, 7)]  # no NACK went out (it would have looped back)
    assert counters.bad_messages == 2


def test_loop_garbage_corruption_and_unknown_types_are_counted_and_skipped(fast_link: LinkConfig) -> None:
    got = Collector()
    with Link("loop://", fast_link, on_message=got) as link:
        link.open()
        corrupt = bytearray(encode_frame(MsgType.HEARTBEAT, bytes(12), seq=0))
        corrupt[6] ^= 0x04
        link.write_raw(b"\x01line noise\x00" + bytes(corrupt))
        link.write_raw(encode_frame(0x7E, b"from a newer minor", seq=1, flags=1))  # unknown, ACK requested
        link.write_raw(encode_frame(MsgType.HEARTBEAT, bytes(12), seq=10))  # 2..9 never sent: a gap of 8
        items = got.wait_for(2)
        counters = link.counters()
    messages = [r.message for r in items]
    assert Nack(1, 0x7E, NackReason.UNKNOWN_TYPE) in messages  # our NACK, looped back
    assert Heartbeat(0, 0) in messages  # the good frame after the garbage came through
    assert counters.unknown_types == 1
    assert counters.crc_errors + counters.malformed == 2 == counters.resyncs
    assert counters.seq_gaps == 1 and counters.frames_lost == 8  # one jump, eight sequence numbers missing


def test_request_times_out_with_a_clear_message(fast_link: LinkConfig) -> None:
    with Link("loop://", fast_link) as link:
        link.open()
        with pytest.raises(LinkTimeout, match="no answer to HELLO from loop:// within 0.1 s"):
            link.request(Hello(), lambda m: isinstance(m, HelloAck), 0.1)


def test_unopenable_ports_raise_port_unavailable(fast_link: LinkConfig) -> None:
    with pytest.raises(PortUnavailable, match="can't open /dev/ttyDOESNOTEXIST"):
        Link("/dev/ttyDOESNOTEXIST", fast_link).open()
    with pytest.raises(LinkConfigError, match="bogus://x: invalid URL, protocol 'bogus' not known — give a port"):
        Link("bogus://x", fast_link).open()  # a typo in the URL, not a cable: no cable advice


def test_closed_link_drops_sends_and_refuses_reopen(fast_link: LinkConfig) -> None:
    link = Link("loop://", fast_link)
    link.open()
    link.close()
    link.close()  # idempotent
    assert not link.send(Heartbeat(1))
    assert link.counters().tx_dropped == 1
    with pytest.raises(LinkClosed, match="was closed"):
        link.open()


@pytest.fixture
def pty_echo() -> Iterator[str]:
    """A pseudo-terminal whose far end echoes every byte back (a loopback plug); yields the slave path."""
    master, slave = os.openpty()
    halt = threading.Event()

    def echo() -> None:
        while not halt.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    continue
                os.write(master, data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        halt.set()
        thread.join(5)
        os.close(master)
        os.close(slave)


def test_link_over_real_pty_pair(pty_echo: str, fast_link: LinkConfig) -> None:
    got = Collector()
    with Link(pty_echo, fast_link, on_message=got) as link:
        link.open()
        for i in range(300):
            assert link.send(Heartbeat(i))
        items = got.wait_for(300)
        start = time.perf_counter()
        echoed = link.request(Heartbeat(424242), lambda m: m == Heartbeat(424242), 2.0)
        rtt = echoed.t_rx - start
        counters = link.counters()
    assert [r.message.sender_time_us for r in items[:300] if isinstance(r.message, Heartbeat)] == list(range(300))
    assert 0 < rtt < 0.5
    assert counters.crc_errors == counters.malformed == counters.seq_gaps == 0


@pytest.fixture
def tcp_board() -> Iterator[tuple[str, VirtualBoard]]:
    """A simulated board behind a TCP socket (like a serial-to-Ethernet adapter); yields its socket:// URL."""
    board = VirtualBoard(SimConfig(fps=100, seed=4))
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    halt = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            board.attach(conn.sendall)
            while not halt.is_set():
                ready, _, _ = select.select([conn], [], [], min(board.poll(), 0.05))
                if ready:
                    data = conn.recv(4096)
                    if not data:
                        break
                    board.receive(data)
            board.detach()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{server.getsockname()[1]}", board
    finally:
        halt.set()
        thread.join(5)
        server.close()


def test_host_bridge_over_socket_url(tcp_board: tuple[str, VirtualBoard], fast_link: LinkConfig) -> None:
    url, board = tcp_board
    with HostBridge.open(url, link_config=fast_link) as bridge:
        metas = [bridge.next_meta(1.0) for _ in range(10)]
        bridge.send_result(1, 0, 0.1, 0.0, None)
        assert bridge.ping() < 0.5  # the answer comes after the RESULT was handled (one ordered stream)
        assert board.stats().results_received == 1
    frames = [m.device_frame for m in metas if m is not None]
    assert frames == list(range(frames[0], frames[0] + 10))
    assert bridge.device_info.device_id == board.config.device_id


def test_a_refused_message_takes_no_sequence_number(fast_link: LinkConfig) -> None:
    """A RESULT refused as malformed still used up a sequence number: the board counted a frame lost
    that was never sent."""
    from firmware_bridge.errors import MalformedMessage

    got: list[int] = []
    with Link("loop://", fast_link, on_message=lambda r: got.append(r.header.seq)) as link:
        link.open()
        assert link.send(Heartbeat(1))
        with pytest.raises(MalformedMessage):
            link.send(Result(2, 2, 0.9, 1.0, (-1, 0, 0, 0)))
        assert link.send(Heartbeat(2))
        deadline = time.monotonic() + 2.0
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert got == [0, 1]


@pytest.mark.parametrize(("url", "message"), [
    ("socket://localhost:7000?foo=1", "the only option of a socket URL is logging=debug|info|warning|error"),
    ("/etc/passwd", "it is not a serial port"),
    ("sim://dev9999", "no simulated board named 'dev9999' runs in this program"),
])
def test_urls_that_name_no_board_say_what_is_wrong(url: str, message: str) -> None:
    """pyserial's own words ("'debug|info|warning|error'", "Inappropriate ioctl for device") or advice a
    command-line user can't follow ("start one with SimulatedDevice() first") were shown."""
    from firmware_bridge.errors import BridgeError

    with pytest.raises(BridgeError, match=message):
        HostBridge.open(url, timeout=0.5)
