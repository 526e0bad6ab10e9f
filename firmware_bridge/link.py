"""The serial link: a pyserial port, a reader thread, a dispatcher, and a supervisor that reconnects.

Modelled on pyserial's ``serial.threaded``: the reader thread only reads bytes (stamped with
``time.perf_counter()``) and hands them to the dispatcher through a queue; the dispatcher runs the
pure :class:`~firmware_bridge.framing.Packetizer` and :func:`~firmware_bridge.messages.parse` and
calls ``on_message``; writes are serialised by a lock; the supervisor sends heartbeats, notices a
dead link (port error or ``link_timeout_s`` of silence) and reopens the port with exponential
backoff, re-running the ``on_reconnect`` handshake.

Any URL pyserial understands works (``/dev/ttyACM0``, ``COM3``, ``socket://host:port``,
``loop://``) plus ``sim://`` (the in-process simulator, see :mod:`firmware_bridge.sim_runtime`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

from firmware_bridge.errors import (
    BridgeError,
    LinkClosed,
    LinkConfigError,
    LinkDown,
    LinkTimeout,
    MalformedMessage,
    PortUnavailable,
    ProtocolVersionError,
    SimulatorError,
    UnknownMessageType,
)
from firmware_bridge.framing import FLAG_ACK_REQUESTED, PROTOCOL_MAJOR, Frame, Packetizer
from firmware_bridge.link_types import LinkConfig, LinkCounters, Received
from firmware_bridge.messages import NEVER_ACKED, Ack, Heartbeat, Message, MsgType, Nack, NackReason, encode, parse
from firmware_bridge.reader import PORT_ERRORS as _PORT_ERRORS
from firmware_bridge.reader import Chunk, PortDown, ReaderThread
from firmware_bridge.urlhandler.protocol_sim import SimOptionError

__all__ = ["Link", "LinkConfig", "LinkCounters", "Received"]

_log = logging.getLogger(__name__)

HANDLER_PACKAGE = "firmware_bridge.urlhandler"
if HANDLER_PACKAGE not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(HANDLER_PACKAGE)


@dataclass(eq=False)
class _Waiter:
    match: Callable[[Message], bool]
    done: threading.Event
    result: Received | None = None
    error: BridgeError | None = None


class Link:
    """One connection to a controller board. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        config: LinkConfig | None = None,
        *,
        on_message: Callable[[Received], None] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self._url = url
        self._cfg = config or LinkConfig()
        self._on_message = on_message
        self._on_status = on_status
        self._port: serial.SerialBase | None = None
        self._reader: ReaderThread | None = None
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._packetizer = Packetizer()
        self._wlock = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._waiters_lock = threading.Lock()
        self._down = threading.Event()
        self._closing = threading.Event()
        self._dispatcher: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None
        self._generation = 0
        self._rx_generation = 0
        self._port_ready = False
        self._up = False
        self._closed = False
        self._failures: dict[tuple[str, object], float] = {}  # (callback, key) → last traceback logged
        self._tx_seq = 0
        self._version_said = ""  # the last foreign protocol version reported (said once, not per frame)
        self._expect_seq: int | None = None
        self._last_rx = time.perf_counter()
        self._n = {name: 0 for name in LinkCounters.__dataclass_fields__}

    # -- public API -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    @property
    def up(self) -> bool:
        """True while the port is open and the session (handshake) is established."""
        return self._up and self._port_ready

    def open(self) -> None:
        """Open the port and start reading; raises :class:`PortUnavailable`. No handshake here."""
        if self._closed:
            raise LinkClosed(f"link to {self._url} was closed: open a new one")
        _check_socket_url(self._url)  # once: the URL is the same at every reconnect
        self._connect_port()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="bridge-dispatch", daemon=True)
        self._dispatcher.start()

    def start_supervisor(
        self, on_reconnect: Callable[[], None] | None = None, on_tick: Callable[[], None] | None = None
    ) -> None:
        """Mark the session up and start heartbeats and reconnect-on-loss (``on_reconnect`` = handshake)."""
        self._up = True
        self._supervisor = threading.Thread(
            target=self._supervise, args=(on_reconnect, on_tick), name="bridge-supervisor", daemon=True
        )
        self._supervisor.start()

    def send(self, message: Message, *, ack: bool = False, extra: bytes = b"") -> bool:
        """Send one message; False (and counted as ``tx_dropped``) when the link is down. Never raises for that."""
        return self.send_stamped(lambda _t: message, ack=ack, extra=extra) is not None

    def send_stamped(self, make: Callable[[float], Message], *, ack: bool = False, extra: bytes = b"") -> float | None:
        """Build the message from the ``perf_counter()`` taken right before the write; return that time."""
        with self._wlock:
            port = self._port
            if not self._port_ready or port is None:
                self._n["tx_dropped"] += 1
                return None
            seq = self._tx_seq
            t = time.perf_counter()
            data = encode(make(t), seq=seq, flags=FLAG_ACK_REQUESTED if ack else 0, extra=extra)
            self._tx_seq = (seq + 1) & 0xFFFF  # after encoding: a refused message takes no number (a "lost" frame)
            try:
                port.write(data)
            except _PORT_ERRORS as exc:
                self._n["tx_dropped"] += 1
                self._mark_down(f"write failed: {exc}")
                return None
            self._n["frames_tx"] += 1
            self._n["bytes_tx"] += len(data)
            return t

    def write_raw(self, data: bytes) -> bool:
        """Write bytes as they are (diagnostics and tests: garbage, hand-made frames)."""
        with self._wlock:
            if not self._port_ready or self._port is None:
                return False
            try:
                self._port.write(data)
            except _PORT_ERRORS as exc:
                self._mark_down(f"write failed: {exc}")
                return False
            self._n["bytes_tx"] += len(data)
            return True

    def request(
        self,
        message: Message | Callable[[float], Message],
        match: Callable[[Message], bool],
        timeout: float,
    ) -> Received:
        """Send ``message`` and wait for the first received message for which ``match`` is true."""
        waiter = _Waiter(match, threading.Event())
        with self._waiters_lock:
            self._waiters.append(waiter)
        try:
            make = message if callable(message) else (lambda _t: message)
            name = make(0.0).TYPE.name
            if self.send_stamped(make) is None:
                if self._closed:
                    raise LinkClosed(f"link to {self._url} was closed: open a new one")
                raise LinkDown(f"link to {self._url} is down: check the cable; it reconnects by itself")
            if not waiter.done.wait(timeout):
                raise LinkTimeout(
                    f"no answer to {name} from {self._url} within {timeout:g} s: "
                    "check that the controller board is powered and runs firmware-bridge firmware"
                )
            if waiter.error is not None:
                raise waiter.error
            assert waiter.result is not None
            return waiter.result
        finally:
            with self._waiters_lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def counters(self) -> LinkCounters:
        stats = self._packetizer.stats()
        n = dict(self._n)
        n.update(
            frames_ok=stats.frames_ok,
            crc_errors=stats.crc_errors,
            malformed=stats.malformed,
            oversize=stats.oversize,
            resyncs=stats.resyncs,
        )
        return LinkCounters(**n)

    def note_rx_dropped(self, count: int = 1) -> None:
        """Count messages a consumer had to drop (its queue was full)."""
        self._n["rx_dropped"] += count

    def close(self) -> None:
        """Stop all threads and close the port. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._down.set()
        self._fail_waiters(LinkClosed(f"link to {self._url} was closed"))
        me = threading.current_thread()
        if self._supervisor is not None and self._supervisor is not me:
            self._supervisor.join(5.0)
        self._disconnect()
        self._inbox.put(None)
        if self._dispatcher is not None and self._dispatcher is not me:
            self._dispatcher.join(5.0)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection management -------------------------------------------------------------------

    def _connect_port(self) -> None:
        try:
            if self._port is None:
                self._port = serial.serial_for_url(
                    self._url,
                    do_not_open=True,
                    baudrate=self._cfg.baudrate,
                    timeout=self._cfg.read_poll_s,
                    write_timeout=self._cfg.write_timeout_s,
                    # a second program on the same port (a ping beside a stream) split the board's bytes
                    # between the two: CRC errors and a lost link in the first, a wrong "no TIME_SYNC"
                    # in the second. POSIX serial ports take a lock; URL handlers ignore it.
                    exclusive=True,
                )
            self._port.open()
        except _PORT_ERRORS as exc:
            if isinstance(exc, SimOptionError):  # the sim:// URL is wrong, not a cable: say just that
                raise SimulatorError(f"can't start the simulated board {self._url}: {exc}") from None
            if isinstance(exc, ValueError) and "not known" in str(exc):  # pyserial: "protocol 'x' not known"
                raise LinkConfigError(
                    f"can't open {self._url}: {exc} — give a port (/dev/ttyACM0, COM3) or a URL socket://host:port, "
                    "loop:// or sim://") from None
            if isinstance(exc, serial.SerialException) and "Inappropriate ioctl" in str(exc):  # ENOTTY
                raise PortUnavailable(f"can't open {self._url}: it is not a serial port — give the board's port "
                                      "(e.g. /dev/ttyACM0, /dev/ttyUSB0, COM3) or socket://host:port") from None
            if "exclusively lock" in str(exc):
                raise PortUnavailable(
                    f"{self._url} is in use by another program (an edge-bus stream or device command, a serial "
                    "terminal): stop it first — two programs on one port corrupt each other's messages") from None
            raise PortUnavailable(
                f"can't open {self._url} ({exc}): check the cable and the port name "
                "(e.g. /dev/ttyACM0, COM3, socket://host:port) and that no other program holds it"
            ) from None
        self._generation += 1
        self._last_rx = time.perf_counter()
        self._down.clear()
        self._reader = ReaderThread(self._port, self._inbox, self._generation)
        self._port_ready = True
        self._reader.start()

    def _disconnect(self) -> None:
        self._up = False
        with self._wlock:
            self._port_ready = False
        if self._reader is not None:
            self._reader.halt(max(1.0, 3 * self._cfg.read_poll_s))
            self._reader = None
        if self._port is not None:
            try:
                self._port.close()
            except _PORT_ERRORS:
                pass  # already gone (unplugged): nothing left to release

    def _mark_down(self, reason: str) -> None:
        if self._down.is_set():
            return
        _log.info("link %s down: %s", self._url, reason)
        self._n["links_lost"] += 1
        self._down.set()
        self._fail_waiters(LinkTimeout(f"link to {self._url} lost ({reason}): check the cable; it reconnects"))

    def _supervise(self, on_reconnect: Callable[[], None] | None, on_tick: Callable[[], None] | None) -> None:
        cfg = self._cfg
        backoff = cfg.backoff_initial_s
        connected = True
        while not self._closing.is_set():
            if connected:
                if not self._down.wait(cfg.heartbeat_s):
                    reader = self._reader
                    silent = time.perf_counter() - (reader.last_rx if reader is not None else self._last_rx)
                    if silent > cfg.link_timeout_s:
                        self._mark_down(f"no data for {silent:.1f} s")
                        continue
                    self.send(Heartbeat(int(time.perf_counter() * 1e6)))
                    if on_tick is not None:
                        self._call_safely(on_tick)
                    continue
                if self._closing.is_set():
                    break
                self._disconnect()
                connected = False
                self._status("link lost, reconnecting")
                continue
            if self._closing.wait(backoff):
                break
            try:
                self._connect_port()
                if on_reconnect is not None:
                    on_reconnect()
            except BridgeError as exc:
                _log.info("reconnect to %s failed: %s", self._url, exc)
                if isinstance(exc, ProtocolVersionError):  # retried for ever: the user must hear why, once
                    self._say_version(exc)
                self._disconnect()
                backoff = min(backoff * 2, cfg.backoff_max_s)
                continue
            if self._down.is_set():  # lost again during the handshake
                self._disconnect()
                continue
            backoff = cfg.backoff_initial_s
            connected = True
            self._up = True
            self._version_said = ""
            self._n["reconnects"] += 1
            self._status("link restored")

    def _say_version(self, exc: ProtocolVersionError) -> None:
        if str(exc) != self._version_said:
            self._version_said = str(exc)
            self._status(f"{exc} (its messages are ignored until it speaks {PROTOCOL_MAJOR}.x again)")

    def _status(self, text: str) -> None:
        callback = self._on_status
        if callback is not None:
            self._call_safely(lambda: callback(text))

    def _call_safely(self, fn: Callable[[], object], what: str = "callback", key: object = None) -> None:
        """Run a user callback; its exception is logged (with the traceback at most every 10 s per
        callback and link, then one debug line) and never kills the link's threads."""
        try:
            fn()
        except Exception as exc:
            now = time.monotonic()
            slot = (what, key)
            if now - self._failures.get(slot, -1e9) >= 10.0:
                self._failures[slot] = now
                _log.exception("firmware-bridge %s failed (repeats are logged once per 10 s)", what)
            else:
                _log.debug("firmware-bridge %s failed again: %r", what, exc)

    # -- receiving ---------------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            assert isinstance(item, Chunk | PortDown)
            if item.generation < self._generation:
                continue  # left over from a previous connection
            if isinstance(item, PortDown):
                self._mark_down(item.reason)
                continue
            if item.generation != self._rx_generation:  # first bytes of a new connection
                self._rx_generation = item.generation
                self._packetizer.reset()
                self._expect_seq = None
            self._n["bytes_rx"] += len(item.data)
            self._last_rx = item.t_rx
            for frame in self._packetizer.feed(item.data):
                self._handle(frame, item.t_rx)

    def _handle(self, frame: Frame, t_rx: float) -> None:
        header = frame.header
        if self._expect_seq is not None:
            gap = (header.seq - self._expect_seq) & 0xFFFF
            if 0 < gap < 0x8000:  # larger: a duplicate or a peer restart, not a loss
                self._n["seq_gaps"] += 1
                self._n["frames_lost"] += gap
        self._expect_seq = (header.seq + 1) & 0xFFFF
        # ACK and NACK are never answered, not even a malformed one (PROTOCOL.md section 4)
        answer = header.ack_requested and header.msg_type not in NEVER_ACKED
        try:
            message = parse(frame)
        except ProtocolVersionError as exc:
            self._n["version_mismatches"] += 1
            if header.msg_type == MsgType.HELLO_ACK:
                self._fail_waiters(exc)
            elif self._up:  # reflashed under a live session: every frame is ignored, so say why, once
                self._say_version(exc)
            return
        except UnknownMessageType:
            self._n["unknown_types"] += 1
            if answer:
                self.send(Nack(header.seq, header.msg_type, NackReason.UNKNOWN_TYPE))
            return
        except MalformedMessage:
            self._n["bad_messages"] += 1
            if answer:
                self.send(Nack(header.seq, header.msg_type, NackReason.MALFORMED))
            return
        if answer:
            self.send(Ack(header.seq, header.msg_type))
        received = Received(header, message, t_rx)
        if self._on_message is not None:
            callback = self._on_message
            self._call_safely(lambda: callback(received))
        with self._waiters_lock:
            for waiter in self._waiters:
                if not waiter.done.is_set() and waiter.match(message):
                    waiter.result = received
                    waiter.done.set()

    def _fail_waiters(self, error: BridgeError) -> None:
        with self._waiters_lock:
            for waiter in self._waiters:
                if not waiter.done.is_set():
                    waiter.error = error
                    waiter.done.set()


def _check_socket_url(url: str) -> None:
    """A ``socket://`` URL names a host and a port 1-65535; pyserial's own errors for one that does not
    read "'<=' not supported between instances of 'int' and 'NoneType'" or "'debug|info|warning|error'"."""
    if not url.lower().startswith("socket://"):
        return
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # "socket://[::1": urlsplit itself; a port out of range: .port
        host, port = None, None
    if not host or port is None or not 0 < port < 65536:
        raise LinkConfigError(f"can't open {url}: a socket URL is socket://host:port with a port 1-65535 "
                              "(e.g. socket://192.168.1.20:7000)")
    options = parse_qsl(parts.query, keep_blank_values=True)
    if any(key != "logging" or value not in _SOCKET_LOGGING for key, value in options):
        raise LinkConfigError(f"can't open {url}: the only option of a socket URL is logging="
                              f"{'|'.join(_SOCKET_LOGGING)} (pyserial's)")


_SOCKET_LOGGING = ("debug", "info", "warning", "error")
