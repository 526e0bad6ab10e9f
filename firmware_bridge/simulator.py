"""A virtual controller board: the device side of PROTOCOL.md, driven by a transport.

:class:`VirtualBoard` owns no thread and no port. A transport calls :meth:`VirtualBoard.receive`
with bytes from the host and :meth:`VirtualBoard.poll` whenever the deadline it returned has come;
the board writes wire bytes through the ``sink`` given to :meth:`VirtualBoard.attach`. Transports
live in :mod:`firmware_bridge.sim_runtime` (in-process ``sim://`` and a pseudo-terminal).

Timing model: FRAME_META is stamped with the exact acquisition time on the board's own clock
(:class:`~firmware_bridge.sim_config.DeviceClock`, with drift), TIME_SYNC responses with exact t2/t3;
``jitter_ms`` then delays each outgoing frame by a uniform random amount *after* it was stamped
(like USB polling or UART buffering), keeping the wire order.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.errors import MessageError
from firmware_bridge.framing import Frame, Packetizer, encode_frame
from firmware_bridge.messages import (
    NEVER_ACKED,
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
    parse,
)
from firmware_bridge.sim_config import DeviceClock, SimConfig

MALIGNANT_LABEL = 2  # RESULT.label: 0 normal, 1 benign, 2 malignant

__all__ = ["BoardStats", "DeviceClock", "SimConfig", "VirtualBoard"]

UNKNOWN_TYPE = 0x7E  # what a "future" board sends that protocol 1.0 does not know
_KNOWN_TYPES = frozenset(int(t) for t in MsgType)


@dataclass(frozen=True, slots=True)
class BoardStats:
    frames_sent: int = 0  # FRAME_META put on the wire
    frames_skipped: int = 0  # frame slots skipped because the transport stalled for over a second
    messages_sent: int = 0
    corrupted: int = 0
    syncs_answered: int = 0
    results_received: int = 0
    alerts_sent: int = 0
    rx_frames: int = 0
    rx_bad: int = 0  # bad frames or messages from the host
    tx_dropped: int = 0  # output lost: unplugged, detached or transport full
    disconnects: int = 0


class VirtualBoard:
    """The simulated controller. Thread-safe: ``receive`` and ``poll`` may come from different threads."""

    def __init__(self, config: SimConfig | None = None, clock: DeviceClock | None = None) -> None:
        self.config = cfg = config or SimConfig()
        self._rng = random.Random(cfg.seed)
        self.clock = clock or DeviceClock.starting_now(cfg.drift_ppm, self._rng)
        self._lock = threading.RLock()
        self._sink: Callable[[bytes], None] | None = None
        self._on_unplug: Callable[[], None] | None = None
        self._waker: Callable[[], None] | None = None
        self._pending: deque[tuple[float, bytes]] = deque()
        self._last_due = 0.0
        self._rx = Packetizer()
        self._seq = 0
        now = time.perf_counter()
        self._frame = 0
        self._period_us = 1e6 / cfg.fps if cfg.fps > 0 else 0.0
        self._next_frame_us = float(self.clock.now_us(now))
        self._next_heartbeat = now + cfg.heartbeat_s
        self._frozen = False
        self._next_freeze = now + cfg.freeze_every_s if cfg.freeze_every_s > 0 else float("inf")
        self._unfreeze_at = float("inf")
        self._next_unplug = now + cfg.disconnect_every_s if cfg.disconnect_every_s > 0 else float("inf")
        self._unplugged_until = 0.0
        self._malignant_run = 0
        self._results: deque[Result] = deque(maxlen=4096)
        self._n = {name: 0 for name in BoardStats.__dataclass_fields__}

    # -- transport side --------------------------------------------------------------------------

    def attach(
        self,
        sink: Callable[[bytes], None],
        on_unplug: Callable[[], None] | None = None,
        waker: Callable[[], None] | None = None,
    ) -> None:
        """Send wire bytes to ``sink``; ``on_unplug`` is told of unplugs; ``waker`` re-runs ``poll`` early."""
        with self._lock:
            self._sink, self._on_unplug, self._waker = sink, on_unplug, waker
            self._rx.reset()

    def detach(self) -> None:
        with self._lock:
            self._sink = self._on_unplug = self._waker = None
            self._pending.clear()

    def receive(self, data: bytes) -> None:
        """Bytes from the host; answers go out immediately (or after the jitter delay)."""
        with self._lock:
            now = time.perf_counter()
            if not self._plugged(now):
                return
            t2 = self.clock.now_us(now)
            for frame in self._rx.feed(data):
                self._on_frame(frame, t2, now)

    def poll(self) -> float:
        """Do everything that is due; return the seconds until something is due again (at most 0.5)."""
        with self._lock:
            now = time.perf_counter()
            if now >= self._next_unplug:
                self._next_unplug += self.config.disconnect_every_s
                self._unplug(now, self.config.disconnect_for_s)
            self._run_freeze_schedule(now)
            self._emit_frames(now)
            if now >= self._next_heartbeat:
                self._next_heartbeat = now + self.config.heartbeat_s
                self._emit(Heartbeat(self.clock.now_us(now), int(self._frozen)), now)
            while self._pending and self._pending[0][0] <= now:
                self._write(self._pending.popleft()[1])
            deadlines = [self._next_heartbeat, self._next_unplug, self._next_freeze, self._unfreeze_at]
            if self._period_us:
                deadlines.append(self.clock.to_host(self._next_frame_us))
            if self._pending:
                deadlines.append(self._pending[0][0])
            if not self._plugged(now):
                deadlines.append(self._unplugged_until)
            return min(0.5, max(0.0, min(deadlines) - now))

    # -- control (tests, CLI) --------------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        return self._plugged(time.perf_counter())

    @property
    def frozen(self) -> bool:
        return self._frozen

    def unplug(self, for_s: float) -> None:
        """Simulate pulling the cable for ``for_s`` seconds."""
        with self._lock:
            self._unplug(time.perf_counter(), for_s)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze or unfreeze the image (sends PROBE_STATE on change)."""
        with self._lock:
            self._set_frozen(frozen, time.perf_counter())

    def results(self) -> tuple[Result, ...]:
        """The RESULT messages received so far (the last 4096)."""
        with self._lock:
            return tuple(self._results)

    def stats(self) -> BoardStats:
        with self._lock:
            return BoardStats(**{**self._n, "rx_bad": self._n["rx_bad"] + self._rx.stats().bad_frames})

    # -- internals -------------------------------------------------------------------------------

    def _plugged(self, now: float) -> bool:
        return now >= self._unplugged_until

    def _unplug(self, now: float, for_s: float) -> None:
        self._unplugged_until = now + for_s
        self._pending.clear()
        self._rx.reset()
        self._n["disconnects"] += 1
        if self._on_unplug is not None:
            self._on_unplug()

    def _run_freeze_schedule(self, now: float) -> None:
        if now >= self._next_freeze:
            self._next_freeze += self.config.freeze_every_s
            self._unfreeze_at = now + self.config.freeze_for_s
            self._set_frozen(True, now)
        if now >= self._unfreeze_at:
            self._unfreeze_at = float("inf")
            self._set_frozen(False, now)

    def _set_frozen(self, frozen: bool, now: float) -> None:
        if frozen != self._frozen:
            self._frozen = frozen
            self._emit(self._probe_state(now), now)

    def _probe_state(self, now: float) -> ProbeState:
        cfg = self.config
        return ProbeState(self.clock.now_us(now), cfg.probe_id, cfg.depth_mm, cfg.gain_db, self._frozen)

    def _emit_frames(self, now: float) -> None:
        if not self._period_us:
            return
        cfg = self.config
        while (t_frame := self.clock.to_host(self._next_frame_us)) <= now:
            # a slot more than 3 frame periods (at least 0.1 s) overdue was never sent: the board's
            # thread was stopped (port closed, unplugged) or starved. A real board sends each
            # FRAME_META at its acquisition or not at all; a burst of stale ones after a reconnect
            # read as 300 ms glass to glass for the rest of a genlocked run
            if now - t_frame > max(0.1, 3e-6 * self._period_us):
                missed = int((self.clock.now_us(now) - self._next_frame_us) // self._period_us)
                self._frame += missed
                self._next_frame_us += missed * self._period_us
                self._n["frames_skipped"] += missed
                continue
            t_acq = round(self._next_frame_us)
            # the counter wraps at 2^32 (PROTOCOL.md): unwrapped, the board's thread died on packing it
            meta = FrameMeta(self._frame & 0xFFFFFFFF, t_acq, cfg.probe_id, cfg.depth_mm, cfg.gain_db, self._frozen)
            if self._emit(meta, now):
                self._n["frames_sent"] += 1
            if cfg.future and self._frame % 10 == 0:
                self._emit_raw(UNKNOWN_TYPE, self._rng.randbytes(12), now)
            self._frame += 1
            self._next_frame_us += self._period_us

    def _on_frame(self, frame: Frame, t2: int, now: float) -> None:
        header = frame.header
        self._n["rx_frames"] += 1
        # PROTOCOL.md section 4: ACK and NACK themselves are never acknowledged, whatever their flags
        wants_ack = header.ack_requested and header.msg_type not in NEVER_ACKED
        if header.version_major != self.config.proto_major:  # PROTOCOL.md section 3, foreign major
            if header.msg_type == MsgType.HELLO:  # HELLO/HELLO_ACK layouts never change: say who we are
                self._emit(self._hello_ack(), now)
            elif wants_ack:
                self._emit(Nack(header.seq, header.msg_type, NackReason.INCOMPATIBLE_VERSION), now)
            return
        try:
            message = parse(frame, major=self.config.proto_major)
        except MessageError:
            self._n["rx_bad"] += 1
            if wants_ack:
                reason = NackReason.UNKNOWN_TYPE if header.msg_type not in _KNOWN_TYPES else NackReason.MALFORMED
                self._emit(Nack(header.seq, header.msg_type, reason), now)
            elif header.msg_type in _KNOWN_TYPES:
                self._emit(ErrorMsg(ErrorCode.BAD_PAYLOAD, f"bad {MsgType(header.msg_type).name} payload"), now)
            return
        if wants_ack:
            self._emit(Ack(header.seq, header.msg_type), now)
        self._on_message(message, t2, now)

    def _on_message(self, message: Message, t2: int, now: float) -> None:
        if isinstance(message, Hello):
            self._emit(self._hello_ack(), now)
            self._emit(self._probe_state(now), now)
        elif isinstance(message, TimeSyncRequest):
            self._n["syncs_answered"] += 1
            self._emit(TimeSyncResponse(message.sync_id, message.t1_us, t2, self.clock.now_us()), now)
        elif isinstance(message, Result):
            self._on_result(message, now)

    def _on_result(self, result: Result, now: float) -> None:
        self._results.append(result)
        self._n["results_received"] += 1
        if result.label != MALIGNANT_LABEL:  # the host's operating point decided: not malignant
            self._malignant_run = 0
            return
        self._malignant_run += 1
        if self._malignant_run == self.config.alert_frames:
            code = AlertCode.MALIGNANT_PERSISTENT
            alert = Alert(result.frame_counter, code, self._malignant_run, result.malignancy, self.clock.now_us(now))
            if self._emit(alert, now):
                self._n["alerts_sent"] += 1

    def _hello_ack(self) -> HelloAck:
        cfg = self.config
        return HelloAck(cfg.proto_major, cfg.proto_minor, cfg.device_id, *cfg.fw_version, cfg.clock_hz)

    def _emit(self, message: Message, now: float) -> bool:
        extra = self._rng.randbytes(4) if self.config.future else b""
        return self._emit_raw(message.TYPE, message.pack() + extra, now)

    def _emit_raw(self, msg_type: int, payload: bytes, now: float) -> bool:
        if not self._plugged(now) or self._sink is None:
            self._n["tx_dropped"] += 1
            return False
        version = (self.config.proto_major, self.config.proto_minor)
        data = self._maybe_corrupt(encode_frame(msg_type, payload, seq=self._seq, version=version))
        self._seq = (self._seq + 1) & 0xFFFF
        self._n["messages_sent"] += 1
        jitter = self._rng.uniform(0.0, self.config.jitter_ms / 1000) if self.config.jitter_ms else 0.0
        due = max(now + jitter, self._last_due)
        self._last_due = due
        if due <= now and not self._pending:
            self._write(data)
        else:
            self._pending.append((due, data))
            if self._waker is not None:
                self._waker()
        return True

    def _maybe_corrupt(self, data: bytes) -> bytes:
        if self.config.corrupt <= 0 or self._rng.random() >= self.config.corrupt:
            return data
        self._n["corrupted"] += 1
        body = bytearray(data[:-1])
        kind = self._rng.randrange(3)
        if kind == 0:  # one bit flipped
            body[self._rng.randrange(len(body))] ^= 1 << self._rng.randrange(8)
        elif kind == 1:  # cut short
            del body[self._rng.randrange(1, len(body)) :]
        else:  # line noise before an intact frame
            noise = bytes(self._rng.randrange(1, 256) for _ in range(self._rng.randrange(1, 24)))
            return noise + b"\x00" + data
        return bytes(body) + b"\x00"

    def _write(self, data: bytes) -> None:
        sink = self._sink
        if sink is None:
            self._n["tx_dropped"] += 1
            return
        sink(data)
