"""``edge-bus device`` sub-app, driven through typer's CliRunner against simulated boards."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import signal_and_wait
from typer.testing import CliRunner

from edge_bus.cli.device import app

runner = CliRunner()


def test_ping_reports_percentiles() -> None:
    result = runner.invoke(app, ["ping", "sim://?fps=30", "--count", "5"])
    assert result.exit_code == 0, result.output
    assert re.search(r"sim://\?fps=30: 5 round trips, p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms", result.stdout)


def test_ping_fails_when_the_board_is_unplugged_and_rides_through_a_glitch() -> None:
    """Unplugged mid-run, every ping failed at once: "3676 round trips, 26324 lost" and exit 0."""
    unplugged = runner.invoke(app, ["ping", "sim://?fps=0&disconnect_every=0.3&disconnect_for=30", "--count",
                                    "100000", "--timeout", "0.5"])
    assert unplugged.exit_code == 6, unplugged.output
    assert re.search(r"the link to sim://\S+ went down after \d+ round trips and was not back within 0\.5 s",
                     unplugged.output)
    # down for about 0.7 s (the link's own reconnect), back within the timeout: pings not sent meanwhile are
    # not "lost" (it read "5372 round trips, 2628 lost")
    glitch = runner.invoke(app, ["ping", "sim://?fps=0&disconnect_every=0.3&disconnect_for=0.1", "--count", "8000",
                                 "--timeout", "2"])
    assert glitch.exit_code == 0, glitch.output
    found = re.search(r"(\d+) round trips(?:, (\d+) lost)?", glitch.stdout)
    assert found is not None and int(found.group(1)) >= 7990 and int(found.group(2) or 0) <= 10


def test_a_second_outage_gets_its_own_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Down 0.15 s, back for one lost ping, down again: the first outage's start was kept, and ping
    gave up 0.05 s into the second one instead of after its timeout."""
    import contextlib

    import firmware_bridge.tools as tools
    from firmware_bridge.errors import LinkDown, LinkTimeout

    class Flapping:
        device_info = None

        def __init__(self) -> None:
            self.t0 = time.perf_counter()

        def ping(self) -> float:
            t = time.perf_counter() - self.t0
            if t < 0.15:
                return 0.001
            if t < 0.30:
                raise LinkDown("down")
            if t < 0.35:
                time.sleep(0.05)
                raise LinkTimeout("lost")
            raise LinkDown("down")

    @contextlib.contextmanager
    def fake_open(url: str, timeout: float) -> object:
        yield Flapping()

    monkeypatch.setattr(tools.HostBridge, "open", staticmethod(fake_open))
    t0 = time.perf_counter()
    with pytest.raises(LinkDown, match="not back within 0.25 s"):
        tools.ping_device("x", count=10**7, timeout=0.25)
    assert time.perf_counter() - t0 >= 0.35 + 0.25 - 0.02  # the second outage's own 0.25 s


def test_info_shows_device_identity() -> None:
    result = runner.invoke(app, ["info", "sim://?device_id=0x1234abcd&fw=2.3.4&clock_hz=48000000"])
    assert result.exit_code == 0, result.output
    for expected in ("device id  0x1234abcd", "firmware   2.3.4", "protocol   1.0", "clock      48000000 Hz"):
        assert expected in result.stdout
    assert "offset" in result.stdout


def test_monitor_prints_messages_until_count() -> None:
    result = runner.invoke(app, ["monitor", "sim://?fps=100", "--count", "6"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0].startswith("# connected: device 0x") and "protocol 1.0" in lines[0]  # the handshake, summed up
    assert len(lines) == 7
    assert sum("FrameMeta" in line for line in lines) >= 4
    assert "6 messages in" in result.stderr and "frames lost" in result.stderr


def test_monitor_stops_after_seconds() -> None:
    result = runner.invoke(app, ["monitor", "sim://?fps=0", "--seconds", "0.3"])
    assert result.exit_code == 0, result.output
    assert re.search(r"\d+ messages in 0\.\d s", result.stderr)


def test_monitor_seconds_count_from_the_end_of_the_handshake() -> None:
    """On a noisy link the handshake took ~3 s: a --seconds 1 monitor showed "0 messages in 1.0 s"."""
    t0 = time.perf_counter()
    result = runner.invoke(app, ["monitor", "sim://?corrupt=1&seed=1&fps=100", "--seconds", "1", "--timeout", "5"])
    took = time.perf_counter() - t0
    assert result.exit_code == 0, result.output
    found = re.search(r"(\d+) messages in 1\.0 s", result.stderr)
    assert found is not None and int(found.group(1)) > 0 and took > 1.5, (result.stderr, took)


def test_simulate_pty_prints_path_and_stops() -> None:
    result = runner.invoke(app, ["simulate", "--pty", "--fps", "50", "--seconds", "0.3"])
    assert result.exit_code == 0, result.output
    assert re.match(r"/dev/pts/\d+\n", result.stdout)
    assert "stopped after 0.3 s" in result.stderr


def test_simulate_serves_a_pty_by_default_and_nothing_else() -> None:
    result = runner.invoke(app, ["simulate", "--fps", "50", "--seconds", "0.2"])  # --pty is the default
    assert result.exit_code == 0 and re.match(r"/dev/pts/\d+\n", result.stdout), result.output
    result = runner.invoke(app, ["simulate", "--no-pty"])  # there is no other mode to ask for
    assert result.exit_code == 2 and "No such option" in result.output
    for bad in ("-1", "0", "nan", "inf"):  # a usage error, not a bridge error (nan ran until killed)
        result = runner.invoke(app, ["simulate", "--seconds", bad])
        assert result.exit_code == 2 and "--seconds must be > 0" in result.stderr


def test_domain_errors_are_one_line_with_exit_code_6() -> None:
    for url, wanted in (("sim://?fw=", "a firmware version MAJOR.MINOR.PATCH"), ("sim://?seed=abc", "a whole number")):
        result = runner.invoke(app, ["ping", url])  # Python's type names ("tuple[int, int, int]") are not for users
        assert result.exit_code == 6 and f"is not {wanted}" in result.stderr, result.output
    inf = runner.invoke(app, ["ping", "sim://", "--timeout", "inf"])  # a usage error, like simulate --seconds inf
    assert inf.exit_code == 2 and "Invalid value for '--timeout': inf is not a number of seconds" in inf.output
    for args, expected in (
        (["ping", "/dev/ttyDOESNOTEXIST"], "error: can't open /dev/ttyDOESNOTEXIST"),
        (["info", "sim://?proto_major=3"], "error: controller speaks firmware-bridge protocol 3.0"),
        (["ping", "bogus://x"], "error: can't open bogus://x: invalid URL, protocol 'bogus' not known — give a "
                                "port"),  # a typo in the URL, not a cable
        (["ping", "sim://?fps=abc"], "error: can't start the simulated board sim://?fps=abc: sim:// option fps='abc' "
                                     "is not a number: fix the URL\n"),  # no cable advice for a URL typo
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 6, result.output
        assert result.stderr.startswith(expected), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_monitor_stopped_by_ctrl_c_still_gives_its_summary() -> None:
    from firmware_bridge.tools import monitor_device

    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if len(seen) == 4:
            raise KeyboardInterrupt  # the user presses Ctrl-C while messages arrive

    summary = monitor_device("sim://?fps=100", on_line)
    assert summary.messages == 2 and summary.counters.frames_ok > 0  # the '#' line plus 3 messages, one cut short


def test_simulate_removes_its_link_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM killed the simulator without its clean-up, leaving --link on a /dev/pts/N that the next
    pseudo-terminal reuses: a stream reconnecting through it could write into someone's terminal."""
    link = tmp_path / "board"
    proc = subprocess.Popen([sys.executable, "-m", "edge_bus", "device", "simulate", "--link", str(link)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not link.is_symlink() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    linked = link.is_symlink()
    err = signal_and_wait(proc, signal.SIGTERM, timeout=20)  # ends it whatever happened above
    assert linked, err
    assert proc.returncode == 143 and "stopped by SIGTERM" in err
    assert not link.is_symlink()


def test_a_second_program_on_the_same_port_is_refused_and_the_first_keeps_its_link() -> None:
    """A ping beside a running stream split the board's bytes between the two: the stream logged CRC
    errors and a lost link, and the ping blamed the firmware ("answered HELLO but no TIME_SYNC")."""
    from firmware_bridge import HostBridge, PortUnavailable, SimConfig
    from firmware_bridge.sim_runtime import PtyDevice

    with PtyDevice(SimConfig(fps=30)) as board, HostBridge.open(board.path, timeout=2.0) as first:
        result = runner.invoke(app, ["ping", board.path, "--count", "3"])
        assert result.exit_code == PortUnavailable.exit_code
        assert "is in use by another program" in result.output and "Traceback" not in result.output
        assert first.ping() > 0 and first.connected and first.counters().crc_errors == 0


def test_a_socket_url_without_a_usable_port_says_how_one_is_written() -> None:
    """pyserial's own errors read "'<=' not supported between instances of 'int' and 'NoneType'"."""
    for url in ("socket://127.0.0.1", "socket://127.0.0.1:99999", "socket://:80", "socket://[::1"):
        result = runner.invoke(app, ["ping", url, "--count", "1", "--timeout", "0.5"])
        assert result.exit_code == 6 and "socket://host:port with a port 1-65535" in result.output, url
        assert "NoneType" not in result.output
