"""HostBridge against the simulator: in-process (sim://), on a pty thread, and as a separate process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until

from firmware_bridge import HostBridge, HostFrameMeta, LinkConfig, PtyDevice, SimConfig, SimulatedDevice
from firmware_bridge.errors import LinkTimeout
from firmware_bridge.link_types import Received
from firmware_bridge.messages import Alert, AlertCode, ProbeState

REPO = Path(__file__).resolve().parents[2]


def collect_metas(bridge: HostBridge, count: int, timeout: float = 5.0) -> list[int]:
    frames: list[int] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        meta = bridge.next_meta(0.5)
        if meta is not None:
            frames.append(meta.device_frame)
    assert len(frames) == count, f"only {len(frames)} of {count} FRAME_META arrived"
    return frames


def test_in_process_stream_info_and_timestamps(sim_device: SimulatedDevice, fast_link: LinkConfig) -> None:
    with HostBridge.open(sim_device.url, link_config=fast_link) as bridge:
        info = bridge.device_info
        assert (info.device_id, info.firmware_version, info.clock_hz, info.protocol_version) == (
            0x5EB00001,
            "1.0.0",
            1_000_000,
            (1, 0),
        )
        metas: list[HostFrameMeta] = []
        while len(metas) < 20:
            meta = bridge.next_meta(1.0)
            assert meta is not None
            metas.append(meta)
        assert bridge.connected and not bridge.frozen
    counters = [m.device_frame for m in metas]
    assert counters == list(range(counters[0], counters[0] + 20))
    truth = sim_device.board.clock
    errors_ms = [abs(m.t_acquired_host - truth.to_host(m.t_device_us)) * 1e3 for m in metas[5:]]
    assert max(errors_ms) < 0.5
    assert all(m.probe_id == 1 and m.depth_mm == 40.0 and m.gain_db == 50.0 for m in metas)


def test_match_picks_latest_meta_within_tolerance(sim_device: SimulatedDevice, fast_link: LinkConfig) -> None:
    with HostBridge.open(sim_device.url, link_config=fast_link) as bridge:
        collect_metas(bridge, 6)
        meta = bridge.next_meta(1.0)
        assert meta is not None
        assert bridge.match(meta.t_acquired_host + 0.001) == meta  # next frame is 16.7 ms later
        assert bridge.match(meta.t_acquired_host) == meta
        assert bridge.match(meta.t_acquired_host - 0.0001) != meta  # acquired after that moment
        assert bridge.match(time.perf_counter() + 10.0, tolerance_s=0.05) is None  # nothing that recent
        assert bridge.match(0.0) is None


def test_results_reach_the_board_and_persistent_malignancy_raises_alert(
    sim_device: SimulatedDevice, fast_link: LinkConfig
) -> None:
    alerts: list[Alert] = []

    def on_message(received: Received) -> None:
        if isinstance(received.message, Alert):
            alerts.append(received.message)

    with HostBridge.open(sim_device.url, link_config=fast_link) as bridge:
        bridge.on_message(on_message)
        said: list[str] = []
        bridge.on_status(said.append)
        bridge.send_result(100, 0, 0.1, 0.0, None)
        for frame in range(101, 106):  # a high malignancy labelled benign (the host's threshold) is no alarm
            bridge.send_result(frame, 1, 0.85, 40.0, (10, 20, 110, 90))
        for frame in range(106, 111):
            bridge.send_result(frame, 2, 0.9, 55.5, (10, 20, 110, 90))
        assert wait_until(lambda: len(alerts) == 1)
        events = bridge.events()
    assert events.alerts == 1 and events.last_alerts == (alerts[0],)  # counted and kept by the host
    assert said and said[0].startswith("ALERT from the device: MALIGNANT_PERSISTENT (run of 5 frames")
    results = sim_device.board.results()
    assert [r.frame_counter for r in results] == list(range(100, 111))
    assert results[-1].bbox == (10, 20, 110, 90) and results[0].bbox is None
    alert = alerts[0]
    assert (alert.frame_counter, alert.code, alert.run_length) == (110, AlertCode.MALIGNANT_PERSISTENT, 5)
    assert sim_device.board.stats().alerts_sent == 1


def test_freeze_by_api_and_by_schedule(sim_device: SimulatedDevice, fast_link: LinkConfig) -> None:
    with HostBridge.open(sim_device.url, link_config=fast_link) as bridge:
        sim_device.board.set_frozen(True)
        assert wait_until(lambda: bridge.frozen)
        assert wait_until(lambda: (m := bridge.next_meta(0.2)) is not None and m.frozen)
        sim_device.board.set_frozen(False)
        assert wait_until(lambda: not bridge.frozen)
    states: list[bool] = []
    config = LinkConfig(heartbeat_s=0.05, link_timeout_s=0.4, backoff_initial_s=0.02)
    with HostBridge.open("sim://?fps=30&freeze_every=0.15&freeze_for=0.05", link_config=config) as bridge:
        bridge.on_message(lambda r: states.append(r.message.frozen) if isinstance(r.message, ProbeState) else None)
        assert wait_until(lambda: True in states and states[-1] is False and len(states) >= 3, timeout=3.0)


def test_corrupted_stream_is_counted_and_keeps_flowing(fast_link: LinkConfig) -> None:
    with HostBridge.open("sim://?fps=300&corrupt=0.05&seed=3", link_config=fast_link) as bridge:
        frames = collect_metas(bridge, 300)
        counters = bridge.counters()
    assert counters.crc_errors + counters.malformed > 0
    assert counters.resyncs == counters.crc_errors + counters.malformed + counters.oversize
    assert counters.seq_gaps > 0
    assert frames == sorted(frames)


def test_unplug_mid_stream_reconnects_and_reports_once(sim_device: SimulatedDevice, fast_link: LinkConfig) -> None:
    statuses: list[str] = []
    with HostBridge.open(sim_device.url, link_config=fast_link) as bridge:
        bridge.on_status(statuses.append)
        before = collect_metas(bridge, 5)
        sim_device.board.unplug(0.5)
        assert wait_until(lambda: not bridge.connected, timeout=1.0)
        while bridge.next_meta(0.0) is not None:  # drain what arrived before the unplug
            pass
        # while the cable is out nothing raises: no new frames, no recent match, results are dropped
        assert bridge.next_meta(0.1) is None
        assert bridge.match(time.perf_counter(), tolerance_s=0.05) is None
        bridge.send_result(before[-1], 1, 0.2, 1.0, None)
        assert wait_until(lambda: bridge.connected, timeout=5.0)
        after = collect_metas(bridge, 10, timeout=5.0)
        counters = bridge.counters()
    assert statuses == ["link lost, reconnecting", "link restored"]
    assert counters.reconnects == 1
    assert counters.tx_dropped >= 1
    assert after[-1] > before[-1] + 25  # ~0.5 s of frames at 60 fps happened while unplugged


def test_scheduled_disconnects_on_private_sim_url(fast_link: LinkConfig) -> None:
    url = "sim://?fps=60&disconnect_every=0.4&disconnect_for=0.1&seed=1"
    with HostBridge.open(url, link_config=fast_link) as bridge:
        assert wait_until(lambda: bridge.counters().reconnects >= 2, timeout=5.0)
        collect_metas(bridge, 3)


def test_after_a_reconnect_only_fresh_frame_meta_arrive(fast_link: LinkConfig) -> None:
    """FRAME_META goes out at acquisition or not at all: the board restarted after a disconnect
    replayed the slots it missed (up to 1 s), which a genlocked stream paired with new frames."""
    url = "sim://?fps=60&disconnect_every=0.5&disconnect_for=0.25&seed=3"
    with HostBridge.open(url, link_config=fast_link) as bridge:
        assert wait_until(lambda: bridge.counters().reconnects >= 1, timeout=5.0)
        while bridge.next_meta(0.0) is not None:  # whatever was queued before this point
            pass
        ages = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            meta = bridge.next_meta(0.2)
            if meta is not None:
                ages.append(time.perf_counter() - meta.t_acquired_host)
        assert bridge.counters().reconnects >= 2  # another disconnect happened while collecting
        assert len(ages) > 30 and max(ages) < 0.1, f"{len(ages)} metas, oldest {max(ages) * 1e3:.0f} ms old"


def test_open_fails_clearly_when_nobody_answers() -> None:
    master, slave = os.openpty()
    try:
        start = time.perf_counter()
        with pytest.raises(LinkTimeout, match=r"no HELLO_ACK from /dev/pts/\d+ within 0.3 s: check"):
            HostBridge.open(os.ttyname(slave), timeout=0.3)
        assert time.perf_counter() - start < 2.0
    finally:
        os.close(master)
        os.close(slave)


def test_pty_device_in_thread(fast_link: LinkConfig) -> None:
    with PtyDevice(SimConfig(fps=100, seed=2)) as device, HostBridge.open(device.path, link_config=fast_link) as b:
        frames = collect_metas(b, 10)
        assert b.ping() < 0.1
        b.send_result(frames[-1], 2, 0.7, 3.0, None)
        assert wait_until(lambda: device.board.stats().results_received == 1)
    assert frames == list(range(frames[0], frames[0] + 10))


@pytest.fixture
def simulator_process() -> Iterator[str]:
    """``edge-bus device simulate --pty`` in its own process; yields the /dev/pts/N path it printed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    code = "from edge_bus.cli.device import app; app()"
    args = [sys.executable, "-c", code, "simulate", "--pty", "--fps", "60", "--seconds", "20"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("/dev/pts/"), f"simulator printed {line!r}; stderr: {proc.stderr}"
        yield line
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_simulator_as_pty_process(simulator_process: str, fast_link: LinkConfig) -> None:
    statuses: list[str] = []
    with HostBridge.open(simulator_process, link_config=fast_link) as bridge:
        bridge.on_status(statuses.append)
        frames = collect_metas(bridge, 15)
        rtts = [bridge.ping() for _ in range(20)]
        counters = bridge.counters()
    assert frames[-1] - frames[0] == 14
    assert max(rtts) < 0.1
    assert counters.crc_errors == 0 and statuses == []


def test_a_restarted_simulator_is_found_again_through_its_link(tmp_path: Path, fast_link: LinkConfig) -> None:
    """Every start gets a new /dev/pts/N, so a stream given the old path never got its board back;
    ``simulate --link PATH`` gives a path that the next simulator takes over."""
    from firmware_bridge import SimulatorError
    from firmware_bridge.sim_runtime import simulate_pty

    link = tmp_path / "board"

    def board(seconds: float) -> threading.Thread:
        thread = threading.Thread(target=simulate_pty, args=(SimConfig(fps=60, seed=9), seconds),
                                  kwargs={"on_ready": lambda _: None, "link": link}, daemon=True)
        thread.start()
        assert wait_until(link.is_symlink)
        return thread

    first = board(1.0)
    statuses: list[str] = []
    with HostBridge.open(str(link), link_config=fast_link) as bridge:
        bridge.on_status(statuses.append)
        collect_metas(bridge, 3)
        first.join(5.0)
        assert not link.is_symlink()  # removed with its pseudo-terminal
        second = board(3.0)
        assert wait_until(lambda: bridge.counters().reconnects >= 1, timeout=5.0), statuses
        collect_metas(bridge, 3)
    second.join(5.0)
    assert statuses[0] == "link lost, reconnecting" and not link.is_symlink()
    (tmp_path / "file").write_text("not a link")
    with pytest.raises(SimulatorError, match="--link .*file: something that is not a link is there"):
        simulate_pty(SimConfig(fps=60), 0.1, on_ready=lambda _: None, link=tmp_path / "file")
    # a simulator still running keeps its link: a second one took it over, then deleted it on exit
    first = board(3.0)
    with pytest.raises(SimulatorError, match="which is still open \\(another simulator serves it"):
        simulate_pty(SimConfig(fps=60), 0.1, on_ready=lambda _: None, link=link)
    assert link.is_symlink()
    first.join(5.0)
    (tmp_path / "mine").symlink_to(tmp_path / "file")  # the user's own link is not replaced, nor deleted
    with pytest.raises(SimulatorError, match="it is a link to .*file, not one a simulator made"):
        simulate_pty(SimConfig(fps=60), 0.1, on_ready=lambda _: None, link=tmp_path / "mine")
    assert (tmp_path / "mine").is_symlink()


def test_threads_are_joined_after_close(sim_device: SimulatedDevice, fast_link: LinkConfig) -> None:
    before = {t.name for t in threading.enumerate()}
    with HostBridge.open(sim_device.url, link_config=fast_link) as bridge:
        collect_metas(bridge, 2)
    leftover = {t.name for t in threading.enumerate()} - before
    assert not any(name.startswith("bridge-") for name in leftover), leftover


def test_silent_device_on_pty_is_detected_by_timeout_and_reconnected(fast_link: LinkConfig) -> None:
    """A board that goes quiet (port still there): the link times out, reopens the port and re-handshakes."""
    statuses: list[str] = []
    with PtyDevice(SimConfig(fps=60, seed=8)) as device, HostBridge.open(device.path, link_config=fast_link) as b:
        b.on_status(statuses.append)
        before = collect_metas(b, 3)
        device.board.unplug(0.8)  # longer than link_timeout_s=0.4
        assert wait_until(lambda: statuses == ["link lost, reconnecting"], timeout=2.0)
        assert wait_until(lambda: b.connected, timeout=5.0)
        while (meta := b.next_meta(1.0)) is not None and meta.device_frame <= before[-1] + 40:
            pass
        counters = b.counters()
    assert statuses == ["link lost, reconnecting", "link restored"]
    assert counters.reconnects == 1
    assert meta is not None and meta.device_frame > before[-1] + 40  # 0.8 s at 60 fps passed meanwhile


def test_a_closed_bridge_says_closed_and_bad_values_are_refused(fast_link: LinkConfig) -> None:
    from firmware_bridge import LinkConfigError, SimulatorError
    from firmware_bridge.errors import LinkClosed, MalformedMessage

    bridge = HostBridge.open("sim://?seed=5", link_config=fast_link)
    with pytest.raises(MalformedMessage, match="label 0, 1 or 2 and malignancy in"):
        bridge.send_result(1, 7, 0.5, 0.0, None)
    with pytest.raises(MalformedMessage, match="malignancy 5.0"):
        bridge.send_result(1, 1, 5.0, 0.0, None)
    bridge.close()
    with pytest.raises(LinkClosed, match="was closed"):
        bridge.ping()  # was LinkTimeout "... it reconnects by itself"
    with pytest.raises(LinkClosed, match="was closed"):
        bridge.send_result(1, 1, 0.5, 0.0, None)  # was silently dropped
    with pytest.raises(SimulatorError, match="can't start the simulated board .* unknown sim:// option 'bogus'"):
        HostBridge.open("sim://?bogus=1", link_config=fast_link)
    with pytest.raises(SimulatorError, match="no simulated board named .nobody-here. runs in this program"):
        HostBridge.open("sim://nobody-here", link_config=fast_link)
    for bad in (-1, float("nan"), float("inf")):  # inf was an OverflowError traceback from Event.wait
        with pytest.raises(LinkConfigError, match="timeout must be a finite number of seconds > 0"):
            HostBridge.open("sim://", timeout=bad)
    for bad in (0, float("nan"), float("inf"), "1"):
        with pytest.raises(LinkConfigError, match="heartbeat_s must be a finite number > 0"):
            LinkConfig(heartbeat_s=bad)  # type: ignore[arg-type]
    # were passed to pyserial and came back as "can't open ...: check the cable"
    with pytest.raises(LinkConfigError, match="write_timeout_s must be a finite number > 0"):
        LinkConfig(write_timeout_s=-1.0)
    with pytest.raises(LinkConfigError, match="baudrate must be a positive integer, got -5"):
        LinkConfig(baudrate=-5)
    assert issubclass(LinkConfigError, ValueError)
    from firmware_bridge.tools import run_simulator

    for seconds in (0.0, float("nan"), float("inf")):  # nan passed 'seconds <= 0' and ran for ever
        with pytest.raises(SimulatorError, match="--seconds must be a finite number > 0"):
            run_simulator(seconds=seconds, on_ready=lambda path: None)


def test_one_failing_message_callback_does_not_silence_the_others(
    fast_link: LinkConfig, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Received] = []

    def broken(_: Received) -> None:
        raise RuntimeError("user bug")

    with caplog.at_level(logging.ERROR, logger="firmware_bridge"), \
            HostBridge.open("sim://?seed=6&fps=60", link_config=fast_link) as bridge:
        bridge.on_message(broken)
        bridge.on_message(seen.append)
        assert wait_until(lambda: len(seen) >= 20)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert 1 <= len(tracebacks) <= 2  # once per 10 s, not once per message


def test_a_slow_message_callback_does_not_make_a_live_link_look_lost(fast_link: LinkConfig) -> None:
    """The loss timer read the dispatcher's receive time: a callback busy for longer than
    ``link_timeout_s`` (0.4 s here) had the link closed and reopened while bytes kept arriving."""
    statuses: list[str] = []
    slow = threading.Event()

    def busy_once(_: Received) -> None:
        if not slow.is_set():
            slow.set()
            time.sleep(1.0)

    with HostBridge.open("sim://?seed=6&fps=60", link_config=fast_link) as bridge:
        bridge.on_status(statuses.append)
        bridge.on_message(busy_once)
        assert wait_until(lambda: slow.is_set())
        time.sleep(1.3)  # the callback's second plus more than one loss timeout after it
        assert bridge.connected
        assert bridge.counters().reconnects == 0 and not [s for s in statuses if "lost" in s]


def test_an_unplugged_simulated_board_is_a_port_problem_not_a_bad_option(
    sim_device: SimulatedDevice, fast_link: LinkConfig
) -> None:
    from firmware_bridge.errors import PortUnavailable

    sim_device.board.unplug(1.0)
    with pytest.raises(PortUnavailable, match=r"simulated device is unplugged\): check the cable"):
        HostBridge.open(sim_device.url, link_config=fast_link)


def test_one_failing_status_callback_does_not_silence_the_others(
    sim_device: SimulatedDevice, fast_link: LinkConfig
) -> None:
    statuses: list[str] = []

    def broken(_: str) -> None:
        raise RuntimeError("user bug")

    with HostBridge.open(sim_device.url, link_config=fast_link) as bridge:
        bridge.on_status(broken)
        bridge.on_status(statuses.append)
        sim_device.board.unplug(0.3)
        assert wait_until(lambda: any("link lost" in s for s in statuses), timeout=3.0)


def test_a_board_faster_than_any_scanner_is_refused() -> None:
    """``sim://?fps=1e7`` hung ``device ping`` past its --timeout, and stream blamed the firmware."""
    from firmware_bridge import SimulatorError

    with pytest.raises(SimulatorError, match="fps must be 0 to 1000"):
        SimConfig(fps=1e7)
    assert SimConfig(fps=1000).fps == 1000


def test_a_board_that_restarts_under_a_live_link_is_synced_again(fast_link: LinkConfig) -> None:
    """A watchdog reset on a UART link (the port never drops) left the clock mapping off by the board's
    former uptime (about 1000 s here) for about a minute: no frame matched, no RESULT went back."""

    from firmware_bridge.sim_config import DeviceClock

    with SimulatedDevice(SimConfig(fps=60)) as dev, HostBridge.open(dev.url, link_config=fast_link) as bridge:
        said: list[str] = []
        bridge.on_status(said.append)
        with dev.board._lock:  # the board restarts: its clock, sequence and frame counter begin again
            dev.board.clock = DeviceClock(time.perf_counter(), 1000.0)
            dev.board._next_frame_us, dev.board._seq, dev.board._frame = 1000.0, 0, 0
        wait_until(lambda: any("the board restarted" in text for text in said), timeout=5.0)
        time.sleep(0.5)
        restarts = [text for text in said if "the board restarted" in text]
        assert len(restarts) == 1 and "handshake and clock sync redone" in restarts[0], said  # once, not twice
        meta = None
        while (newer := bridge.next_meta(0.0)) is not None:
            meta = newer
        assert meta is not None
        error_s = bridge.device_to_host(meta.t_device_us) - dev.board.clock.to_host(meta.t_device_us)
        assert abs(error_s) < 0.005 and bridge.match(meta.t_received_host, tolerance_s=0.5) is not None


def test_a_board_reflashed_to_another_major_is_reported_once(fast_link: LinkConfig) -> None:
    """The session looked healthy (connected, no status) while every frame was ignored as foreign."""
    import dataclasses

    with SimulatedDevice(SimConfig(fps=60)) as dev, HostBridge.open(dev.url, link_config=fast_link) as bridge:
        said: list[str] = []
        bridge.on_status(said.append)
        dev.board.config = dataclasses.replace(dev.board.config, proto_major=2)
        wait_until(lambda: bridge.counters().version_mismatches > 5, timeout=5.0)
        time.sleep(0.2)
        foreign = [text for text in said if "speaks firmware-bridge protocol 2.0" in text]
        assert len(foreign) == 1 and "its messages are ignored until it speaks 1.x again" in foreign[0]


def test_a_slow_board_is_synced_within_the_timeout() -> None:
    """Each burst answer was waited for 0.25 s whatever --timeout said: a board 300 ms away failed
    with "answered HELLO but no TIME_SYNC: check that the firmware implements ..."."""
    import contextlib
    import socket as socket_mod

    from firmware_bridge.framing import Packetizer
    from firmware_bridge.messages import Hello, HelloAck, TimeSyncRequest, TimeSyncResponse, encode, parse

    server = socket_mod.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def board() -> None:
        conn, _ = server.accept()
        packets, seq = Packetizer(), 0
        with conn, contextlib.suppress(OSError):  # the host closed the link
            while data := conn.recv(4096):
                for frame in packets.feed(data):
                    message = parse(frame)
                    time.sleep(0.3)
                    now_us = int(time.perf_counter() * 1e6)
                    if isinstance(message, Hello):
                        answer: object = HelloAck(1, 0, 1, 1, 0, 0, 1_000_000)
                    elif isinstance(message, TimeSyncRequest):
                        answer = TimeSyncResponse(message.sync_id, message.t1_us, now_us, now_us)
                    else:
                        continue
                    conn.sendall(encode(answer, seq=seq))  # type: ignore[arg-type]
                    seq += 1

    threading.Thread(target=board, daemon=True).start()
    with server, HostBridge.open(f"socket://127.0.0.1:{port}", timeout=5.0, sync_burst=3) as bridge:
        assert bridge.clock is not None and bridge.clock.min_delay_us > 250_000


def test_the_simulated_frame_counter_wraps_at_2_to_the_32() -> None:
    """PROTOCOL.md: the counter wraps at 2^32; the simulator raised out of poll() (its thread died)."""
    from firmware_bridge import VirtualBoard
    from firmware_bridge.framing import Packetizer
    from firmware_bridge.messages import FrameMeta, parse

    board = VirtualBoard(SimConfig(fps=1000))
    sent = bytearray()
    board.attach(sent.extend)
    board._frame = 2**32 - 2
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and board.stats().frames_sent < 4:
        board.poll()
        time.sleep(0.002)
    counters = [m.frame_counter for f in Packetizer().feed(bytes(sent)) if isinstance(m := parse(f), FrameMeta)]
    assert counters[:4] == [2**32 - 2, 2**32 - 1, 0, 1]


def test_a_simulated_board_of_another_major_reads_its_own_frames() -> None:
    """It parsed them as protocol 1 and raised ProtocolVersionError out of receive() (its thread died)."""
    import dataclasses

    from firmware_bridge import VirtualBoard
    from firmware_bridge.messages import Heartbeat, encode

    board = VirtualBoard(dataclasses.replace(SimConfig(fps=0), proto_major=2))
    board.attach(lambda data: None)
    board.receive(encode(Heartbeat(5), seq=0, version=(2, 0)))  # raised before
    board.receive(encode(Heartbeat(6), seq=1))  # a 1.x frame: refused as foreign, not raised
    assert board.stats().rx_bad == 0
