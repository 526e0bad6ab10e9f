"""Live frame delivery with a controller board's clock (genlock)."""

from __future__ import annotations

import logging
import time
from collections import deque

import numpy as np
import pytest

from edge_bus.live import LatestFrameReader
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.types import Frame
from firmware_bridge import HostFrameMeta


def _meta(device_frame: int, t_acquired_host: float) -> HostFrameMeta:
    """A FRAME_META as the host bridge delivers it (probe 3, 45 mm, 52 dB, not frozen)."""
    return HostFrameMeta(device_frame=device_frame, t_device_us=int(t_acquired_host * 1e6),
                         t_acquired_host=t_acquired_host, probe_id=3, depth_mm=45.0, gain_db=52.0, frozen=False)


class _QueuedClock:
    """A board's FRAME_META stream as the reader sees it: what is queued comes first; with nothing
    queued, a zero timeout is no meta, and a wait is :meth:`arrive`'s (the fake's own schedule)."""

    def __init__(self) -> None:
        self.queue: deque[HostFrameMeta] = deque()

    def next_meta(self, timeout: float) -> HostFrameMeta | None:
        if self.queue:
            return self.queue.popleft()
        if timeout <= 0:
            return None
        return self.arrive(timeout)

    def arrive(self, timeout: float) -> HostFrameMeta | None:
        raise NotImplementedError


class _Clock(_QueuedClock):
    """FRAME_META already queued (``stale``), then a fresh one whenever the reader waits for one."""

    def __init__(self, stale: list[int]) -> None:
        super().__init__()
        self.queue.extend(_meta(n, time.perf_counter() - 1.0) for n in stale)
        self.fresh = 100

    def arrive(self, timeout: float) -> HostFrameMeta | None:
        self.fresh += 1
        return _meta(self.fresh, time.perf_counter())


class _Frames(FrameSource):
    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0
        self.read_at: list[float] = []

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(kind="video", name="fake", width=8, height=8, fps=30.0, frame_count=self.n)

    def __next__(self) -> Frame:
        if self.i >= self.n:
            raise StopIteration
        self.read_at.append(time.perf_counter())
        self.i += 1
        return Frame(index=self.i - 1, pixels=np.zeros((8, 8), np.uint8), t_source=(self.i - 1) / 30.0,
                     t_capture=time.perf_counter(), wall_time=time.time())


def test_genlock_skips_frame_meta_queued_before_the_stream_started() -> None:
    """Metas that piled up while the engine compiled belong to frames acquired before the stream: the
    first frame must carry a fresh one (pairing it with a stale one read as 73 ms glass to glass)."""
    reader = LatestFrameReader(_Frames(3), pace=True, clock=_Clock(stale=[1, 2, 3]))
    try:
        frame = reader.get(timeout=1.0)
        assert frame is not None and frame.hw is not None
        assert frame.hw.device_frame > 100
        assert time.perf_counter() - frame.hw.t_acquired_host < 0.5
    finally:
        reader.close()


def test_a_paced_file_decodes_just_before_each_frame_is_due() -> None:
    """Decoding right after handing over a frame ran beside that frame's inference: the next frame is
    read shortly before it is due (30 fps: 33 ms apart), not as soon as the previous one is taken."""
    frames = _Frames(4)
    reader = LatestFrameReader(frames, pace=True)
    try:
        taken = []
        for _ in range(4):
            frame = reader.get(timeout=1.0)
            assert frame is not None
            taken.append(time.perf_counter())
        for prev, read in zip(taken[:-1], frames.read_at[1:], strict=True):
            assert read - prev > 0.015  # waited most of the 33 ms interval before decoding
    finally:
        reader.close()


class _SlowFrames(_Frames):
    """Each read takes ``read_s`` (a decoder slower than the frame period)."""

    def __init__(self, n: int, read_s: float) -> None:
        super().__init__(n)
        self.read_s = read_s

    def __next__(self) -> Frame:
        time.sleep(self.read_s)
        return super().__next__()


def test_a_paced_file_that_decodes_slower_than_its_fps_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    """A 4000x3000 clip decoded at ~60 ms a frame at 30 fps ended 4.7 s behind its own clock without a word.
    Its frames are not dropped (each must be decoded to reach the next, so dropping would not catch up):
    the run says once that decoding is slower than the file's frame rate."""
    frames = _SlowFrames(20, read_s=0.06)
    with caplog.at_level(logging.WARNING, logger="edge_bus"):
        reader = LatestFrameReader(frames, pace=True)
        try:
            taken = [f for f in iter(lambda: reader.get(timeout=1.0), None)]
        finally:
            reader.close()
    assert len(taken) + reader.dropped + reader.unreported_drops() == 20
    said = [r.getMessage() for r in caplog.records if "falls behind the file's clock" in r.getMessage()]
    assert len(said) == 1 and "decoding fake takes" in said[0] and "33 ms frame period" in said[0]
    on_time = LatestFrameReader(_Frames(6), pace=True)
    try:
        assert len([f for f in iter(lambda: on_time.get(timeout=1.0), None)]) == 6
    finally:
        on_time.close()
    assert len([r for r in caplog.records if "falls behind" in r.getMessage()]) == 1  # not for a file on time


class _BurstClock(_QueuedClock):
    """A FRAME_META every 1/30 s, except that a burst of ``burst`` stale ones arrives before frame 2."""

    def __init__(self, burst: int) -> None:
        super().__init__()
        self.burst, self.calls, self.n = burst, 0, 0
        self.next_slot = time.perf_counter()

    def arrive(self, timeout: float) -> HostFrameMeta | None:
        self.calls += 1
        if self.calls == 2:  # the link came back: metas of the frames acquired while it was down
            old = time.perf_counter() - 0.3
            self.queue.extend(_meta(1000 + k, old + k / 30) for k in range(self.burst))
            self.next_slot = self.queue[-1].t_acquired_host + 1 / 30
            return self.queue.popleft()
        self.next_slot = max(self.next_slot, time.perf_counter() - 1 / 30) + 1 / 30
        time.sleep(max(0.0, self.next_slot - time.perf_counter()))
        self.n += 1
        return _meta(self.n, self.next_slot)


def test_genlock_catches_up_on_a_burst_of_stale_frame_meta() -> None:
    """Taking one queued meta per frame kept a reconnect's backlog for the rest of the run (every
    later frame paired with a meta 300 ms old); the newest is taken and the rest are passed over."""
    reader = LatestFrameReader(_Frames(3), clock=_BurstClock(burst=9))
    try:
        frames = []
        while (frame := reader.get(timeout=1.0)) is not None:
            frames.append(frame)
        assert frames[1].hw is not None and frames[1].hw.device_frame == 1008  # the newest of the burst
        assert time.perf_counter() - frames[2].hw.t_acquired_host < 0.2 if frames[2].hw else False
        assert len(frames) == 3 and reader.skipped_metas == 8 and reader.dropped == 0
    finally:
        reader.close()


class _DeadClock:
    """A board whose link is down: every wait for a FRAME_META times out."""

    def next_meta(self, timeout: float) -> HostFrameMeta | None:
        time.sleep(max(0.0, timeout))
        return None


def test_a_genlocked_file_keeps_its_fps_while_the_link_is_down() -> None:
    """Waiting two periods for a FRAME_META, then pacing one more, played the file at 10 fps."""
    reader = LatestFrameReader(_Frames(8), clock=_DeadClock())
    try:
        stamps = []
        while (frame := reader.get(timeout=1.0)) is not None:
            assert frame.hw is None
            stamps.append(frame.t_capture)
        gaps = sorted(b - a for a, b in zip(stamps[1:-1], stamps[2:], strict=False))
        assert len(stamps) == 8 and 0.025 < gaps[len(gaps) // 2] < 0.045  # 1/30 s
    finally:
        reader.close()


class _ReturningClock(_QueuedClock):
    """Down for the first ``down`` waits; then the link is back with one FRAME_META that has waited
    in the queue for most of a period, and a fresh one every 1/30 s after it."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down, self.waits, self.n = down, 0, 0

    def arrive(self, timeout: float) -> HostFrameMeta | None:
        self.waits += 1
        if self.waits <= self.down:
            time.sleep(timeout)
            return None
        if self.waits == self.down + 1:  # it arrived while the reader paced on its own cadence
            return _meta(500, time.perf_counter() - 0.8 / 30)
        time.sleep(1 / 30 - 0.8 / 30 if self.waits == self.down + 2 else min(timeout, 1 / 30))
        self.n += 1
        return _meta(600 + self.n, time.perf_counter())


def test_the_first_frame_after_a_link_gap_pairs_with_a_fresh_frame_meta() -> None:
    """A meta that waited in the queue while the link was being restored added up to a period to the
    first frame's glass to glass (+22-29 ms after every reconnect): it is passed over for the next."""
    reader = LatestFrameReader(_Frames(5), clock=_ReturningClock(down=2))
    try:
        frames = []
        while (frame := reader.get(timeout=1.0)) is not None:
            frames.append(frame)
        paired = [f for f in frames if f.hw is not None]
        assert [f.hw is None for f in frames[:2]] == [True, True] and len(paired) == 3
        assert paired[0].hw is not None and paired[0].hw.device_frame == 601  # not the stale 500
        assert paired[0].t_capture - paired[0].hw.t_acquired_host < 0.5 / 30
        assert reader.skipped_metas == 1 and reader.dropped == 0
    finally:
        reader.close()


class _SlowGrabber(FrameSource):
    """A capture device whose read blocks (no frame from the scanner) and which records whether it
    was released while a read was still running."""

    def __init__(self, block_s: float) -> None:
        self.block_s = block_s
        self.reads = 0
        self.in_read = False
        self.closed_during_read = False
        self.closed = False

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(kind="capture", name="slow", width=64, height=64, fps=30.0, frame_count=None, live=True)

    def __next__(self) -> Frame:
        self.in_read = True
        try:
            self.reads += 1
            if self.reads > 3:
                time.sleep(self.block_s)  # the scanner stopped sending: the grab waits
            return Frame(index=self.reads - 1, pixels=np.full((64, 64), 90, np.uint8), t_source=0.0,
                         t_capture=time.perf_counter(), wall_time=time.time())
        finally:
            self.in_read = False

    def close(self) -> None:
        self.closed_during_read = self.in_read
        self.closed = True


def test_a_source_blocked_in_a_read_is_not_released_under_it(tmp_path: object) -> None:
    """The reader waited 2 s, then the pipeline released the capture while its grab was still
    running on the reader thread (OpenCV can crash on that); it now waits for the read to return."""
    import threading
    from pathlib import Path

    from edge_bus.config import build_config
    from edge_bus.pipeline import run_stream

    source = _SlowGrabber(block_s=4.0)
    stop = threading.Event()
    timer = threading.Timer(1.0, stop.set)  # from the first frame on: set-up can take a second here
    try:
        res = run_stream(build_config(source="slow", out=Path(str(tmp_path)) / "o", video=False), source=source,
                         stop=stop, on_start=lambda _: timer.start())
    finally:
        timer.cancel()
    assert res.stopped and res.frames >= 1
    assert source.closed and not source.closed_during_read
    reader = LatestFrameReader(_SlowGrabber(block_s=1.5), pace=False)
    time.sleep(0.2)  # inside the blocking read
    assert reader.close(timeout=0.5) is False  # still reading: the caller must not release the source
    assert reader.close(timeout=3.0) is True


def test_a_dropped_cut_is_carried_to_the_next_frame_taken() -> None:
    """A --loop restart's first frame (``cut``: smoothing starts afresh) dropped by a live reader took the
    reset with it: the frame taken next was blended with the pass before."""
    from dataclasses import replace

    class _Cut(_Frames):
        def __next__(self) -> Frame:
            frame = super().__next__()
            return replace(frame, cut=frame.index == 2)

    reader = LatestFrameReader(_Cut(5))
    deadline = time.perf_counter() + 5.0
    while reader.dropped < 4 and time.perf_counter() < deadline:  # nobody takes a frame: all but the last drop
        time.sleep(0.005)
    frame = reader.get(timeout=1.0)
    assert frame is not None and frame.index == 4 and frame.dropped_before == 4 and frame.cut
    assert reader.get(timeout=1.0) is None
    reader.close()


class _Board:
    """A board acquiring at ``hz`` from now on: a FRAME_META is queued at each acquisition."""

    def __init__(self, hz: float) -> None:
        self.period, self.t0, self.k = 1.0 / hz, time.perf_counter() + 0.02, 0

    def next_meta(self, timeout: float) -> HostFrameMeta | None:
        due, now = self.t0 + self.k * self.period, time.perf_counter()
        if due > now + timeout:
            time.sleep(max(0.0, timeout))
            return None
        time.sleep(max(0.0, due - now))
        self.k += 1
        return _meta(self.k - 1, due)


@pytest.mark.parametrize("hz", [60.0, 15.0])
def test_a_genlocked_file_is_read_at_the_boards_rate_not_its_own(hz: float) -> None:
    """A 30 fps file on a 60 Hz board waited a file period for every FRAME_META (+15 ms glass to glass)
    and on a 15 Hz board went without one on every other frame."""
    reader = LatestFrameReader(_Frames(24), clock=_Board(hz))
    try:
        frames = []
        while (frame := reader.get(timeout=1.0)) is not None:
            frames.append(frame)
    finally:
        reader.close()
    later = frames[8:]  # once the board's period is measured
    assert all(f.hw is not None for f in later)
    steps = [b.hw.device_frame - a.hw.device_frame for a, b in zip(later, later[1:], strict=False)
             if a.hw is not None and b.hw is not None]
    assert sorted(steps)[len(steps) // 2] == 1  # one frame per acquisition
    gaps = sorted(b.t_capture - a.t_capture for a, b in zip(later, later[1:], strict=False))
    assert 0.7 / hz < gaps[len(gaps) // 2] < 1.3 / hz
    waited = sorted(f.t_capture - f.hw.t_acquired_host for f in later if f.hw is not None)
    assert waited[len(waited) // 2] < 0.25 / hz  # taken as its FRAME_META arrives, not a file period later


class _OneMetaClock:
    """A board whose link goes down after its first FRAME_META."""

    def __init__(self) -> None:
        self.sent = False

    def next_meta(self, timeout: float) -> HostFrameMeta | None:
        if not self.sent:
            self.sent = True
            return _meta(1, time.perf_counter())
        time.sleep(max(0.0, timeout))
        return None


def test_a_link_down_after_one_frame_meta_keeps_the_files_fps() -> None:
    """The second frame waits two periods for the board's second FRAME_META (its rate is not known yet);
    every later frame waiting that long played the file at half speed."""
    reader = LatestFrameReader(_Frames(12), clock=_OneMetaClock())
    try:
        stamps = []
        while (frame := reader.get(timeout=1.0)) is not None:
            stamps.append(frame.t_capture)
    finally:
        reader.close()
    gaps = sorted(b - a for a, b in zip(stamps[2:], stamps[3:], strict=False))
    assert len(stamps) == 12 and 0.025 < gaps[len(gaps) // 2] < 0.045  # 1/30 s
