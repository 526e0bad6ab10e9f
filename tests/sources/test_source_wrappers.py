"""LoopingSource (--loop) and LimitedSource (--max-frames)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_bus.errors import SourceError
from edge_bus.sources import (
    FolderSource,
    FrameSource,
    LimitedSource,
    LoopingSource,
    SourceInfo,
    open_source,
    unwrap,
)
from edge_bus.sources._common import make_frame
from edge_bus.types import Frame


class ListSource(FrameSource):
    """A tiny in-memory source of ``n`` frames at ``fps``."""

    def __init__(self, n: int, fps: float = 10.0, live: bool = False) -> None:
        self.n, self.i, self.closed = n, 0, False
        self._info = SourceInfo("video", "list", 4, 4, fps, n if not live else None, live=live)

    @property
    def info(self) -> SourceInfo:
        return self._info

    def __next__(self) -> Frame:
        if self.closed or self.i >= self.n:
            raise StopIteration
        self.i += 1
        return make_frame(self.i - 1, np.zeros((4, 4, 3), np.uint8), (self.i - 1) / self._info.fps)

    def close(self) -> None:
        self.closed = True


def test_loop_restarts_and_time_keeps_increasing() -> None:
    opened: list[ListSource] = []

    def open_again() -> ListSource:
        opened.append(ListSource(3))
        return opened[-1]

    src = LoopingSource(open_again)
    assert src.info.frame_count is None
    frames = [next(src) for _ in range(8)]
    assert [f.index for f in frames] == list(range(8))
    assert [f.t_source for f in frames] == pytest.approx([i / 10 for i in range(8)])
    assert src.passes == 2 and len(opened) == 3
    assert [f.cut for f in frames] == [False, False, False, True, False, False, True, False]  # each restart
    assert all(s.closed for s in opened[:2]) and not opened[2].closed
    assert unwrap(src) is opened[2]
    src.close()
    assert opened[2].closed
    with pytest.raises(StopIteration):
        next(src)


def test_loop_refuses_empty_and_live_sources() -> None:
    with pytest.raises(SourceError, match="yielded no frames"):
        next(LoopingSource(lambda: ListSource(0)))
    live = ListSource(5, live=True)
    with pytest.raises(SourceError, match="live device .* — drop --loop"):
        LoopingSource(lambda: live)
    assert live.closed


def test_limit() -> None:
    inner = ListSource(10)
    src = LimitedSource(inner, 4)
    assert src.info.frame_count == 4
    assert [f.index for f in src] == [0, 1, 2, 3]
    assert inner.closed
    assert LimitedSource(ListSource(2), 5).info.frame_count == 2
    # a source of unknown length keeps it unknown (latency.json's source.frames read the --max-frames)
    assert LimitedSource(LoopingSource(lambda: ListSource(3)), 100).info.frame_count is None
    with pytest.raises(SourceError, match="--max-frames must be at least 1"):
        LimitedSource(ListSource(2), 0)


def test_loop_and_limit_through_open_source(tmp_path: Path, make_image: Callable[..., Path]) -> None:
    for n in range(3):
        make_image(tmp_path / f"{n}.png", 10 * n)
    with open_source(str(tmp_path), loop=True, max_frames=7) as src:
        assert isinstance(src, LimitedSource) and isinstance(src.inner, LoopingSource)
        assert isinstance(unwrap(src), FolderSource)
        assert src.info.frame_count is None and src.info.still  # a loop has no length; --max-frames is not one
        frames = list(src)
    assert [int(f.pixels[0, 0, 0]) for f in frames] == [0, 10, 20, 0, 10, 20, 0]
    assert [f.t_source for f in frames] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_wrappers_close_their_source_once() -> None:
    """A grabber SDK's release may not be safe to call twice: the limit closed the source and the
    pipeline closed it again; a loop whose reopen failed closed the old source again at the end."""

    class Counting(ListSource):
        def __init__(self, n: int) -> None:
            super().__init__(n)
            self.closes = 0

        def close(self) -> None:
            self.closes += 1
            super().close()

    inner = Counting(10)
    limited = LimitedSource(inner, 2)
    assert len(list(limited)) == 2
    limited.close()
    assert inner.closes == 1
    first = Counting(2)
    attempts = [first]

    def reopen() -> ListSource:
        if len(attempts) > 1:
            raise SourceError("the file went away")
        attempts.append(first)
        return first

    looping = LoopingSource(reopen)
    with pytest.raises(SourceError, match="went away"):
        list(looping)
    looping.close()
    looping.close()
    assert first.closes == 1
