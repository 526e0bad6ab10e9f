"""The host-side facade the stream pipeline uses: :class:`HostBridge`.

``HostBridge.open(url)`` opens the port, does the HELLO handshake and a TIME_SYNC burst, then keeps
the link alive in the background (heartbeats, a TIME_SYNC every ``sync_interval_s``, reconnect with
backoff). When the link drops, ``next_meta`` / ``match`` / ``send_result`` keep working (no meta,
results dropped and counted), ``on_status`` callbacks hear "link lost, reconnecting" once and
"link restored" when the device is back. They also hear the device's ALERTs and ERRORs (at most one
line per kind and code every ``event_quiet_s``); every one is counted and the last
:data:`EVENT_HISTORY` are kept (:meth:`HostBridge.events`).
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from firmware_bridge.clock import ClockEstimate, ClockEstimator, SyncSample
from firmware_bridge.errors import BridgeError, LinkClosed, LinkConfigError, LinkTimeout, MalformedMessage
from firmware_bridge.framing import PROTOCOL_MAJOR
from firmware_bridge.host_types import EVENT_HISTORY, DeviceEvents, HelloInfo, HostFrameMeta, code_name
from firmware_bridge.link import Link
from firmware_bridge.link_types import LinkConfig, LinkCounters, Received, is_positive_time
from firmware_bridge.messages import (
    Alert,
    AlertCode,
    ErrorCode,
    ErrorMsg,
    FrameMeta,
    Hello,
    HelloAck,
    Message,
    ProbeState,
    Result,
    TimeSyncRequest,
    TimeSyncResponse,
    one_line,
    version_mismatch,
)

__all__ = ["HostBridge"]

_HOST_ID = 0xEDB05001
_sync_ids = itertools.count(1)
_RETRY_S = 0.25  # HELLO repeat period; the TIME_SYNC burst's pace (an answer may come later)
RESTART_BACKWARDS_US = 1_000_000
"""A device time this far (1 s) behind the latest one seen means the board restarted: its clock began
again at 0 (a watchdog reset on a UART link, which the host never sees go down)."""


class HostBridge:
    """Connection to one controller board. Create with :meth:`open`; thread-safe."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        link_config: LinkConfig | None = None,
        sync_burst: int = 16,
        sync_interval_s: float = 1.0,
        queue_size: int = 256,
        history_size: int = 256,
    ) -> None:
        """Set up without connecting; prefer :meth:`open`."""
        self._url = url
        self._timeout = timeout
        self._sync_burst = max(1, sync_burst)
        self._sync_interval = sync_interval_s
        self._link = Link(url, link_config, on_message=self._on_message, on_status=self._on_link_status)
        self._clock = ClockEstimator()
        self._info: HelloInfo | None = None
        self._frozen = False
        self._cond = threading.Condition()
        self._queue: deque[HostFrameMeta] = deque()
        self._queue_size = queue_size
        self._history: deque[HostFrameMeta] = deque(maxlen=history_size)
        self._status_callbacks: list[Callable[[str], None]] = []
        self._message_callbacks: list[Callable[[Received], None]] = []
        self._last_sync = 0.0
        self._latest_device_us = -1  # the latest device time seen (TIME_SYNC t3, FRAME_META): a restart goes back
        self._restarted = threading.Event()  # seen on the dispatcher thread; the handshake runs on the next tick
        self._closed = False
        self._events = DeviceEvents()
        self._events_lock = threading.Lock()
        self._event_quiet_s = 5.0
        self._event_said: dict[tuple[str, int], float] = {}

    @classmethod
    def open(
        cls,
        url: str,
        *,
        timeout: float = 2.0,
        link_config: LinkConfig | None = None,
        sync_burst: int = 16,
        sync_interval_s: float = 1.0,
        queue_size: int = 256,
        history_size: int = 256,
    ) -> HostBridge:
        """Open ``url``, handshake and sync clocks. Raises PortUnavailable, LinkTimeout, ProtocolVersionError,
        SimulatorError (a bad ``sim://`` option) or LinkConfigError (a bad argument)."""
        for what, value in (("timeout", timeout), ("sync_interval_s", sync_interval_s)):
            if not is_positive_time(value):
                raise LinkConfigError(f"{what} must be a finite number of seconds > 0, got {value!r}")
        for what, count in (("sync_burst", sync_burst), ("queue_size", queue_size), ("history_size", history_size)):
            if count < 1:
                raise LinkConfigError(f"{what} must be at least 1, got {count}")
        bridge = cls(
            url, timeout=timeout, link_config=link_config, sync_burst=sync_burst, sync_interval_s=sync_interval_s,
            queue_size=queue_size, history_size=history_size,
        )
        try:
            bridge._link.open()
            bridge._handshake()
            bridge._link.start_supervisor(on_reconnect=bridge._handshake, on_tick=bridge._tick)
        except BaseException:
            bridge.close()
            raise
        return bridge

    def __enter__(self) -> HostBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the link and wake every ``next_meta`` waiter. Idempotent."""
        self._closed = True
        self._link.close()
        with self._cond:
            self._cond.notify_all()

    # -- state -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    @property
    def device_info(self) -> HelloInfo:
        if self._info is None:
            raise LinkClosed(f"no device answered on {self._url}: open the bridge with HostBridge.open()")
        return self._info

    @property
    def frozen(self) -> bool:
        """The device's latest freeze state (from FRAME_META or PROBE_STATE); False while the link is
        down: a board that can't be heard is not known to be frozen, and a stream that waited for it
        would stop inferring for good when the cable is pulled during a freeze."""
        return self._frozen and self._link.up

    @property
    def connected(self) -> bool:
        return self._link.up

    @property
    def clock(self) -> ClockEstimate | None:
        """The current device→host clock model (offset, drift, best round trip)."""
        return self._clock.estimate

    def counters(self) -> LinkCounters:
        return self._link.counters()

    def events(self) -> DeviceEvents:
        """The device's ALERTs and ERRORs so far."""
        with self._events_lock:
            return self._events

    def on_status(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(text)`` when the link goes down ("link lost, reconnecting") or comes back, when
        the board restarted under the link or speaks another protocol major, and for its ALERTs and
        ERRORs (each kind at most once per 5 s)."""
        self._status_callbacks.append(callback)

    def on_message(self, callback: Callable[[Received], None]) -> None:
        """Call ``callback(received)`` for every message from the device (dispatcher thread; keep it short)."""
        self._message_callbacks.append(callback)

    # -- frames ----------------------------------------------------------------------------------

    def next_meta(self, timeout: float) -> HostFrameMeta | None:
        """The next FRAME_META received (oldest first), or None after ``timeout`` seconds.

        The queue holds the last ``queue_size`` (256) metas; older ones are dropped and counted as ``rx_dropped``.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return None
                self._cond.wait(remaining)
            return self._queue.popleft()

    def match(self, t_host: float, tolerance_s: float = 0.05) -> HostFrameMeta | None:
        """The latest FRAME_META acquired at or before ``t_host`` and at most ``tolerance_s`` earlier."""
        with self._cond:
            for meta in reversed(self._history):
                if meta.t_acquired_host <= t_host:
                    return meta if t_host - meta.t_acquired_host <= tolerance_s else None
        return None

    def send_result(
        self,
        device_frame: int,
        label: int,
        malignancy: float,
        lesion_area: float,
        bbox: tuple[int, int, int, int] | None,
    ) -> None:
        """Send a RESULT for the device's frame ``device_frame``; ``bbox`` is (x0, y0, x1, y1) in scanner pixels.

        Never blocks on, or raises for, a lost link: the result is dropped and counted as ``tx_dropped``.
        A value that does not fit its wire field (e.g. a negative bbox coordinate) raises MalformedMessage.
        """
        if self._closed:
            raise LinkClosed(f"bridge to {self._url} was closed: open a new one")
        if label not in (0, 1, 2) or not 0.0 <= malignancy <= 1.0:
            raise MalformedMessage(f"RESULT needs label 0, 1 or 2 and malignancy in [0, 1], got label {label}, "
                                   f"malignancy {malignancy}")
        self._link.send(Result(device_frame, label, malignancy, lesion_area, bbox))

    # -- clock -----------------------------------------------------------------------------------

    def ping(self) -> float:
        """One TIME_SYNC round trip (also a clock sample); returns the round trip the host sees, in
        seconds: request written → response read (t4 − t1, the device's turnaround t3 − t2 included;
        the clock filter's δ, PROTOCOL.md section 5, leaves that turnaround out)."""
        return self._ping(self._timeout)

    def _ping(self, timeout: float) -> float:
        sync_id = next(_sync_ids) & 0xFFFFFFFF
        received = self._link.request(
            lambda t: TimeSyncRequest(sync_id, round(t * 1e6)),
            lambda m: isinstance(m, TimeSyncResponse) and m.sync_id == sync_id,
            timeout,
        )
        response = received.message
        assert isinstance(response, TimeSyncResponse)
        return received.t_rx - response.t1_us / 1e6

    def device_to_host(self, t_device_us: int) -> float:
        """Host ``time.perf_counter()`` seconds at which the device clock read ``t_device_us``."""
        estimate = self._clock.estimate
        if estimate is None:
            raise LinkTimeout(f"clock of {self._url} not synchronised yet: open the bridge with HostBridge.open(), "
                              "or wait for the handshake after the board restarted")
        return estimate.device_to_host(t_device_us)

    # -- internals -------------------------------------------------------------------------------

    def _handshake(self) -> None:
        # device times from before this handshake (an earlier connection, a board that rebooted while the
        # link was down) are not compared with the new ones: a FRAME_META sent before HELLO_ACK read as a
        # restart, and the next tick ran a second handshake
        self._latest_device_us = -1
        self._restarted.clear()
        ack = self._hello()
        if ack.proto_major != PROTOCOL_MAJOR:
            raise version_mismatch(ack.proto_major, ack.proto_minor)
        self._info = HelloInfo.from_ack(ack)
        # no estimate until this board answers: one kept from before mapped a FRAME_META of a board that
        # rebooted while the link was down about its former uptime off (the metas unmapped meanwhile get
        # their arrival time, and are remapped below)
        self._clock.forget()
        for _ in range(self._sync_burst):
            try:
                self._ping(min(self._timeout, _RETRY_S))
            except LinkTimeout:
                continue  # a lost or corrupted answer: the others will do; a late one is still a sample
        # an answer later than its exchange's 0.25 s still reached the clock: a link with a 300 ms round trip
        # failed here as "no TIME_SYNC" though every answer came; wait for one up to --timeout
        deadline = time.perf_counter() + self._timeout
        while self._clock.sample_count == 0 and time.perf_counter() < deadline and not self._closed:
            time.sleep(0.01)
        if self._clock.sample_count == 0:
            raise LinkTimeout(
                f"{self._url} answered HELLO but no TIME_SYNC: check that the firmware implements protocol "
                f"{PROTOCOL_MAJOR}.x TIME_SYNC"
            )
        self._last_sync = time.perf_counter()
        self._remap_unsynced()

    def _remap_unsynced(self) -> None:
        """Give metas that arrived before the first clock estimate their proper host times."""
        estimate = self._clock.estimate
        if estimate is None:
            return
        with self._cond:
            for frames in (self._queue, self._history):
                # only those given their arrival time for want of an estimate: one mapped before a
                # restart keeps its time (the new boot's estimate would put it about its uptime off)
                fixed = [replace(m, t_acquired_host=min(estimate.device_to_host(m.t_device_us), m.t_received_host))
                         if m.t_acquired_host == m.t_received_host else m for m in frames]
                frames.clear()
                frames.extend(fixed)

    def _hello(self) -> HelloAck:
        """HELLO, repeated every 0.25 s (a frame can be lost) until HELLO_ACK or the timeout."""
        deadline = time.perf_counter() + self._timeout
        while True:
            attempt = time.perf_counter()
            wait = min(_RETRY_S, deadline - attempt)
            try:
                received = self._link.request(Hello(host_id=_HOST_ID), lambda m: isinstance(m, HelloAck), wait)
            except LinkTimeout:
                if time.perf_counter() + 1e-3 < deadline:
                    time.sleep(max(0.0, attempt + wait - time.perf_counter()))  # the link may be down: don't spin
                    continue
                raise LinkTimeout(
                    f"no HELLO_ACK from {self._url} within {self._timeout:g} s: check that the controller board "
                    "is powered, connected to this port and runs firmware-bridge firmware"
                ) from None
            assert isinstance(received.message, HelloAck)
            return received.message

    def _tick(self) -> None:
        if self._restarted.is_set():  # the board restarted under a link that stayed up: greet it again
            try:
                self._handshake()
            except BridgeError as exc:
                if not self._closed:  # closing meanwhile is not the board's failure
                    self._on_link_status(f"the board restarted and did not answer the handshake again: {exc}")
            else:
                self._on_link_status("the board restarted (its clock began again): handshake and clock sync redone")
            return
        now = time.perf_counter()
        if now - self._last_sync >= self._sync_interval:
            self._last_sync = now
            sync_id = next(_sync_ids) & 0xFFFFFFFF
            self._link.send_stamped(lambda t: TimeSyncRequest(sync_id, round(t * 1e6)))

    def _on_message(self, received: Received) -> None:
        message: Message = received.message
        if isinstance(message, FrameMeta):
            self._on_frame_meta(message, received.t_rx)
        elif isinstance(message, TimeSyncResponse):
            t1 = message.t1_us / 1e6
            self._note_device_time(message.t2_us)
            if received.t_rx >= t1:
                self._clock.add(SyncSample(t1, message.t2_us, message.t3_us, received.t_rx))
            self._note_device_time(message.t3_us)
        elif isinstance(message, ProbeState):
            self._frozen = message.frozen
        elif isinstance(message, Alert | ErrorMsg):
            self._on_event(message)
        for callback in self._message_callbacks:  # each on its own: one failing must not silence the rest
            self._link._call_safely(functools.partial(callback, received), f"on_message callback {_name_of(callback)}",
                                    key=id(callback))

    def _note_device_time(self, t_device_us: int) -> None:
        """Follow the device's clock; one that went back by :data:`RESTART_BACKWARDS_US` restarted: the
        clock fit is dropped at once (it mapped the new times about the board's former uptime off,
        for about a minute) and the handshake is redone on the supervisor's next tick."""
        if t_device_us + RESTART_BACKWARDS_US < self._latest_device_us:
            self._latest_device_us = t_device_us  # the new boot's time, before anything else reads it
            self._clock.forget()
            self._restarted.set()
        else:
            self._latest_device_us = max(self._latest_device_us, t_device_us)

    def _on_frame_meta(self, m: FrameMeta, t_rx: float) -> None:
        self._note_device_time(m.t_acq_us)
        estimate = self._clock.estimate
        # acquired before its FRAME_META arrived, whatever the clock estimate's error says
        t_host = min(estimate.device_to_host(m.t_acq_us), t_rx) if estimate is not None else t_rx
        meta = HostFrameMeta(m.frame_counter, m.t_acq_us, t_host, m.probe_id, m.depth_mm, m.gain_db, m.frozen, t_rx)
        self._frozen = m.frozen
        with self._cond:
            self._history.append(meta)
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self._link.note_rx_dropped()
            self._queue.append(meta)
            self._cond.notify()

    def _on_event(self, message: Alert | ErrorMsg) -> None:
        with self._events_lock:
            e = self._events
            if isinstance(message, Alert):
                self._events = replace(e, alerts=e.alerts + 1,
                                       last_alerts=(*e.last_alerts, message)[-EVENT_HISTORY:])
                key, text = ("alert", message.code), (
                    f"ALERT from the device: {code_name(AlertCode, message.code)} (run of {message.run_length} "
                    f"frames, malignancy {message.malignancy:.2f}, device frame {message.frame_counter})")
            else:
                self._events = replace(e, errors=e.errors + 1,
                                       last_errors=(*e.last_errors, message)[-EVENT_HISTORY:])
                key, text = ("error", message.code), (
                    f"ERROR from the device: {code_name(ErrorCode, message.code)}"
                    + (f": {one_line(message.text)}" if message.text else ""))
            now = time.monotonic()
            if now - self._event_said.get(key, -1e9) < self._event_quiet_s:
                return
            self._event_said[key] = now
        self._on_link_status(text)

    def _on_link_status(self, text: str) -> None:
        for callback in self._status_callbacks:  # each on its own, as on_message callbacks
            self._link._call_safely(functools.partial(callback, text), f"on_status callback {_name_of(callback)}",
                                    key=id(callback))


def _name_of(callback: object) -> str:
    return str(getattr(callback, "__qualname__", None) or getattr(callback, "__name__", None) or repr(callback))
