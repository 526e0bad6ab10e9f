"""Live frame delivery: a reader thread that keeps only the latest frame and counts the rest as drops.

Used for capture devices and for ``--realtime`` files (paced at their native fps, like a live
probe). With a bridge attached to a ``--realtime`` file, the device's FRAME_META clock paces the
frames instead (a genlocked acquisition: frame i is the one acquired at meta i).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from edge_bus.sources.base import FrameSource
from edge_bus.types import Frame, HardwareMeta

if TYPE_CHECKING:
    from firmware_bridge import HostFrameMeta

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 12.0
"""How long closing waits for a source blocked inside a read (longer than V4L2's 10 s select)."""


BEHIND_WARN_PERIODS = 10
"""A paced file this many frame periods behind its clock gets the warning that decoding is too slow."""


class StopFlag(Protocol):
    """Anything that says whether to stop (a ``threading.Event``, or several combined)."""

    def is_set(self) -> bool: ...


class MetaClock(Protocol):
    def next_meta(self, timeout: float) -> HostFrameMeta | None: ...


def hw_from_meta(meta: HostFrameMeta) -> HardwareMeta:
    """A firmware_bridge :class:`~firmware_bridge.HostFrameMeta` → :class:`HardwareMeta` (typed, so
    a renamed field is a mypy error, not zeros in every frames.jsonl line)."""
    return HardwareMeta(
        device_frame=int(meta.device_frame),
        t_acquired_host=float(meta.t_acquired_host),
        probe_id=int(meta.probe_id),
        depth_mm=float(meta.depth_mm),
        gain_db=float(meta.gain_db),
        frozen=bool(meta.frozen),
    )


class LatestFrameReader:
    """Reads ``source`` on a thread; ``get()`` returns the newest unread frame (``None`` at the end).

    Frames overwritten before being taken are dropped and counted; the next frame taken carries
    ``dropped_before``. ``pace``: sleep until each file frame's ``t_source`` (``--realtime``).
    ``clock``: take one frame per device FRAME_META instead (genlock).
    """

    def __init__(self, source: FrameSource, pace: bool = False, clock: MetaClock | None = None) -> None:
        self._source = source
        self._pace = pace
        self._clock = clock
        self._fps = source.info.fps if source.info.fps > 0 else 30.0
        # genlocked: the board's frame period, measured on its FRAME_META (None until two were seen)
        self._board_period: float | None = None
        self._last_meta: HostFrameMeta | None = None
        self._live = source.info.live
        self._last_t = time.perf_counter()
        self._next_due = self._last_t  # when the next frame is expected (host perf_counter seconds)
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._pending_drops = 0
        self.skipped_metas = 0  # queued FRAME_META passed over to pair a frame with the newest
        self._waits = 0  # frames that waited for a FRAME_META (the first two wait two periods)
        self._paired = False  # the previous frame was paired with a FRAME_META (the link was up)
        self._decode_s: float | None = None  # smoothed decode time of a file (None: none decoded yet)
        self._pace_t0: float | None = None  # --realtime: when t_source 0 is due (set by the first frame)
        self._said_behind = False  # the warning that decoding keeps a paced file behind its clock was given
        self.dropped = 0
        self._done = False
        self._stop = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self._thread.start()

    def _wait_to_decode(self) -> None:
        """A paced or genlocked file: sleep until just before the next frame is due, then decode.

        Decoding at once, right after handing over the previous frame, ran the decode beside that
        frame's inference on a 2-core CPU: on a 320×320 cine clip at 30 fps (4 alternated runs of
        120 frames each way), a frame's decode took 1.5-1.6 ms instead of 0.55-0.6 ms. End-to-end
        p50 moved by 0.2-0.4 ms, which is within this machine's run-to-run noise.
        The lead is 1 ms plus twice the recent decode time, so a slow decoder still finishes in time."""
        if self._live or (self._clock is None and not self._pace) or self._decode_s is None:
            return
        delay = self._next_due - (0.001 + 2.0 * self._decode_s) - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

    def _next_frame(self) -> Frame | None:
        # decode before the FRAME_META wait: a replayed file's decode stands in for the frame
        # grabber's transfer, which happens while the board acquires, so it must not sit between
        # FRAME_META and capture
        self._wait_to_decode()
        t_read = time.perf_counter()
        frame = next(self._source, None)
        if frame is None:
            return None
        if not self._live:  # a file's read is all decode (a device's read also waits: it times its own)
            took = time.perf_counter() - t_read
            self._decode_s = took if self._decode_s is None else 0.8 * self._decode_s + 0.2 * took
            frame = replace(frame, decode_ms=took * 1e3)
        meta = None
        period = self._period()
        if self._clock is not None:
            # genlock: wait for the device's FRAME_META until half a period after it is due; without
            # one (link down) the frame goes now, without a hardware timestamp, and the file keeps its
            # pace: the board's last measured rate, else its own (waiting two periods, then one more,
            # had played it at a third of it)
            # the first frame: the board's phase is unknown, give its FRAME_META two periods; the second
            # too, the board's rate being unknown until two FRAME_META were seen (a 15 Hz board's second
            # one came after the wait a 30 fps file's period gives). Only those two: with the link down
            # after one FRAME_META, waiting two periods for every frame played the file at half speed
            if self._waits >= 2:
                wait = max(0.0, self._next_due + 0.5 * period - time.perf_counter())
            else:
                wait = 2.0 * period
            self._waits += 1
            meta = self._clock.next_meta(wait)
            # a backlog (a burst after a reconnect, a decoder slower than the board) is acquisitions
            # that no replayed frame stands for: take the newest (the file's frames are not dropped:
            # each still pairs with one FRAME_META; ``skipped_metas`` counts the ones passed over)
            while meta is not None and (newer := self._clock.next_meta(0.0)) is not None:
                meta = newer
                self.skipped_metas += 1
            if meta is not None and not self._paired:
                meta = self._fresh_meta(meta, period)
            self._paired = meta is not None
        if meta is not None:
            self._note_board_period(meta)
            period = self._period()
            self._last_t = now = time.perf_counter()
            # the next FRAME_META is due one period after this one's acquisition (not after it was
            # taken here, which lags after a link gap); clamped, in case the clock estimate is off
            self._next_due = min(max(meta.t_acquired_host + period, now), now + period)
            return replace(frame, hw=hw_from_meta(meta), t_capture=now, wall_time=time.time())
        if self._clock is not None:
            due = self._next_due  # already waited for past it: goes now, on the board's cadence
        elif self._pace:
            if self._pace_t0 is None:  # the file's clock starts with its first frame, however long opening took
                self._pace_t0 = time.perf_counter() - frame.t_source
            due = self._pace_t0 + frame.t_source
            self._note_if_behind(time.perf_counter() - due, period)
        else:
            return frame
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._last_t = time.perf_counter()
        # the next is due one period after this one was; a run that fell behind restarts from now
        self._next_due = max(due, self._last_t - period) + period
        return replace(frame, t_capture=self._last_t, wall_time=time.time())

    def _period(self) -> float:
        """Seconds from one frame to the next: the board's when genlocked and measured (a file is read at
        the pace of the board's frames: paced at its own 30 fps, a 60 Hz board's every FRAME_META waited
        15 ms, counted in glass to glass, and a 15 Hz board's every other frame went without one), else
        the file's."""
        return self._board_period if self._clock is not None and self._board_period else 1.0 / self._fps

    def _note_board_period(self, meta: HostFrameMeta) -> None:
        """Update the board's frame period from this FRAME_META and the one before (on the device's clock,
        over the frames between them: a skipped meta still counts)."""
        last, self._last_meta = self._last_meta, meta
        if last is None:
            return
        frames = meta.device_frame - last.device_frame
        seconds = (meta.t_device_us - last.t_device_us) / 1e6
        if frames <= 0 or not 0.0 < seconds / frames <= 1.0:  # a restart, a counter wrap: not the cadence
            return
        measured = seconds / frames
        self._board_period = measured if self._board_period is None else 0.8 * self._board_period + 0.2 * measured

    def _note_if_behind(self, late_s: float, period: float) -> None:
        """Say once when decoding alone keeps a paced file behind its clock: a 4000x3000 clip ended 4.7 s
        late without a word. Its frames are not dropped: each still has to be decoded to reach the next
        (a probe would skip them), so dropping them would not bring the run back to the clock."""
        if late_s > BEHIND_WARN_PERIODS * period and not self._said_behind:
            self._said_behind = True
            decode_ms = (self._decode_s or 0.0) * 1e3
            log.warning("--realtime: decoding %s takes %.0f ms a frame, more than its %.0f ms frame period: the run "
                        "falls behind the file's clock (every frame is still processed, later and later)",
                        self._source.info.name, decode_ms, period * 1e3)

    def _fresh_meta(self, meta: HostFrameMeta, period: float) -> HostFrameMeta:
        """The first FRAME_META after a link gap arrived while this reader paced on its own cadence,
        so it may have waited in the queue for up to a period: pairing the frame with it read as
        +22-29 ms glass to glass on every first frame after a reconnect. A replayed frame can stand
        for any acquisition, so a stale one is passed over for the next (at most one period away).
        Only after a gap: in steady state the reader waits on the board's cadence and a late meta
        is the host's own latency, which glass to glass must show."""
        age = time.perf_counter() - meta.t_acquired_host
        if not 0.5 * period < age < 2.0 * period:  # fresh, or the clock estimate is off: keep it
            return meta
        newer = self._clock.next_meta(1.5 * period - age) if self._clock is not None else None
        if newer is None:
            return meta
        self.skipped_metas += 1
        return newer

    def _run(self) -> None:
        try:
            if self._clock is not None:
                # FRAME_META queued while the stream was being set up (engine compile, warm-up) belong
                # to frames acquired before it started: pairing the first frames with them read as
                # 43-73 ms glass to glass on the first frames of a sim:// run (e2e 12-23 ms)
                while self._clock.next_meta(0.0) is not None:
                    pass
            while not self._stop:
                frame = self._next_frame()
                if frame is None:
                    break
                with self._cond:
                    if self._latest is not None:
                        self._pending_drops += 1
                        self.dropped += 1
                        if self._latest.cut and not frame.cut:  # the jump is still ahead of the next frame taken
                            frame = replace(frame, cut=True)
                    self._latest = frame
                    self._cond.notify()
        except BaseException as exc:  # noqa: BLE001 - raised again on the consuming thread by the pipeline
            # anything, not only edge-bus errors: a capture SDK's own exception ended the thread and
            # the run read it as the end of the source, with no error (a KeyboardInterrupt or SystemExit
            # from the source too: the run then ended as a success, where a file run said interrupted)
            self.error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def get(self, timeout: float = 0.1, stop: StopFlag | None = None) -> Frame | None:
        """The newest frame; blocks until one arrives; ``None`` once the source has ended or ``stop`` is set."""
        with self._cond:
            while self._latest is None and not self._done and not (stop is not None and stop.is_set()):
                self._cond.wait(timeout)
            frame, self._latest = self._latest, None
            if frame is None:
                return None
            drops, self._pending_drops = self._pending_drops, 0
        return replace(frame, dropped_before=frame.dropped_before + drops) if drops else frame

    def unreported_drops(self) -> int:
        """Frames lost after the last one handed over: drops not yet attached to a frame, and the
        newest frame (with its own ``dropped_before``) when nobody took it. Read after :meth:`close`."""
        with self._cond:
            latest = self._latest
            return self._pending_drops + (1 + latest.dropped_before if latest is not None else 0)

    def close(self, timeout: float = CLOSE_WAIT_S) -> bool:
        """Stop reading; True once the reading thread has ended. A source blocked inside a read (a
        capture device waiting for a frame: V4L2 waits up to 10 s) gets up to ``timeout`` seconds:
        releasing a capture while another thread is inside its grab can crash OpenCV."""
        self._stop = True
        self._thread.join(timeout=min(2.0, timeout))
        if self._thread.is_alive() and timeout > 2.0:
            log.warning("waiting up to %.0f s for the source to return from a read before closing it", timeout)
            self._thread.join(timeout=timeout - 2.0)
        return not self._thread.is_alive()
