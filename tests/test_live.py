"""Live frame delivery with a controller board's clock (genlock)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge_bus.live import LatestFrameReader
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.types import Frame


@dataclass(frozen=True)
class _Meta:
    device_frame: int
    t_acquired_host: float


class _Clock:
    """FRAME_META already queued (``stale``), then a fresh one whenever the reader waits for one."""

    def __init__(self, stale: list[int]) -> None:
        self.queue = deque(_Meta(n, time.perf_counter() - 1.0) for n in stale)
        self.fresh = 100

    def next_meta(self, timeout: float) -> _Meta | None:
        if self.queue:
            return self.queue.popleft()
        if timeout <= 0:
            return None
        self.fresh += 1
        return _Meta(self.fresh, time.perf_counter())


class _Frames(FrameSource):
    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(kind="video", name="fake", width=8, height=8, fps=30.0, frame_count=self.n)

    def __next__(self) -> Frame:
        if self.i >= self.n:
            raise StopIteration
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
