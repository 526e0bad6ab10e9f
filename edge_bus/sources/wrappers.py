"""Sources that wrap another source: ``--loop`` and ``--max-frames``.

Both keep ``Frame.index`` and ``t_source`` increasing across what they wrap, and expose the
source they currently read as ``inner`` (:func:`unwrap` walks down to the innermost one, e.g.
to reach :meth:`DemoSource.truth` — for a looped source, truth of frame ``i`` is that of
``i % inner.info.frame_count``).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable

from edge_bus.checks import is_whole_number
from edge_bus.errors import EdgeBusError, SourceError
from edge_bus.sources.base import FrameSource, SourceInfo
from edge_bus.types import Frame

__all__ = ["LimitedSource", "LoopingSource", "unwrap"]


def unwrap(source: FrameSource) -> FrameSource:
    """The innermost source under any :class:`LoopingSource` / :class:`LimitedSource` / :class:`CheckedSource`."""
    while isinstance(source, LoopingSource | LimitedSource | CheckedSource):
        source = source.inner
    return source


class LoopingSource(FrameSource):
    """Replay a finite source forever: when it ends, ``open_again()`` opens a fresh one.

    ``t_source`` of pass ``k+1`` continues where pass ``k`` ended (its last ``t_source`` plus
    one frame interval), so it keeps increasing, and its first frame has ``cut`` set (the clip's end
    and start are not one scene: smoothing across them blended the last pass's lesion into the next
    pass's first normal frames). ``info.frame_count`` is None (unbounded).
    """

    def __init__(self, open_again: Callable[[], FrameSource], first: FrameSource | None = None) -> None:
        self._open_again = open_again
        self._inner = first if first is not None else open_again()
        inner_info = self._inner.info
        if inner_info.live:
            name = inner_info.name
            self._inner.close()
            raise SourceError(f"--loop replays files; '{name}' is a live device that never ends — drop --loop")
        self._info = dataclasses.replace(inner_info, frame_count=None)
        self._period = 1.0 / inner_info.fps if inner_info.fps > 0 else 1.0
        self._offset = 0.0
        self._last_t = -self._period
        self._index = 0
        self._pass_frames = 0
        self._passes = 0
        self._inner_closed = False
        self._closed = False

    @property
    def info(self) -> SourceInfo:
        return self._info

    @property
    def inner(self) -> FrameSource:
        return self._inner

    @property
    def passes(self) -> int:
        """How many times the source has been restarted so far."""
        return self._passes

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        try:
            frame = next(self._inner)
        except StopIteration:
            if self._pass_frames == 0:
                self.close()
                raise SourceError(f"cannot loop '{self._info.name}': it yielded no frames — check the file") from None
            self._inner.close()
            self._inner_closed = True  # if opening it again fails, close() must not close it twice
            self._inner = self._open_again()
            self._inner_closed = False
            self._offset = self._last_t + self._period
            self._pass_frames = 0
            self._passes += 1
            return next(self)
        self._pass_frames += 1
        t = self._offset + frame.t_source
        self._last_t = t
        out = dataclasses.replace(frame, index=self._index, t_source=t,
                                  cut=frame.cut or (self._passes > 0 and self._pass_frames == 1))
        self._index += 1
        return out

    def close(self) -> None:
        if self._closed:  # once: a grabber SDK's release may not be safe to call twice
            return
        self._closed = True
        if not self._inner_closed:
            self._inner.close()


def check_max_frames(value: object) -> int:
    """``value`` as a frame limit: a whole number of at least 1 (a numpy integer too), else a
    :class:`SourceError` (``"3"`` failed in a comparison, and 1.5 was taken)."""
    if not is_whole_number(value):
        raise SourceError(f"--max-frames must be a whole number of frames, got {value!r} ({type(value).__name__})")
    count = operator.index(value)
    if count < 1:
        raise SourceError(f"--max-frames must be at least 1, got {count} — pass a positive number")
    return count


class LimitedSource(FrameSource):
    """Stop after ``max_frames`` frames (``--max-frames N``)."""

    def __init__(self, inner: FrameSource, max_frames: int) -> None:
        try:
            max_frames = check_max_frames(max_frames)
        except SourceError:
            inner.close()
            raise
        self._inner = inner
        self._max = max_frames
        count = inner.info.frame_count  # unknown stays unknown: latency.json's source.frames read 100000, the
        # --max-frames, for a 120-frame clip looped (the progress bar takes --max-frames itself)
        self._info = dataclasses.replace(inner.info, frame_count=None if count is None else min(count, max_frames))
        self._count = 0
        self.limit_reached = False  # it ended because max_frames were read (not because the source ended)
        self._inner_closed = False

    @property
    def info(self) -> SourceInfo:
        return self._info

    @property
    def inner(self) -> FrameSource:
        return self._inner

    def __next__(self) -> Frame:
        if self._count >= self._max:
            self.limit_reached = True
            self.close()  # released as soon as the limit is reached (a capture device, for the next user)
            raise StopIteration
        frame = next(self._inner)
        self._count += 1
        return frame

    def close(self) -> None:
        if not self._inner_closed:  # once: the pipeline closes it again at the end
            self._inner_closed = True
            self._inner.close()


class CheckedSource(FrameSource):
    """An application's own source, checked: anything but a :class:`Frame` is a :class:`SourceError` (it
    was an AttributeError deep in the pipeline), and so is any other exception it raises (an SDK's
    RuntimeError or OSError came out of ``run_stream`` as it was; the original is its ``__cause__``) and
    an end before the first frame (a source closed or run before gave a "successful" run of 0 frames)."""

    def __init__(self, inner: FrameSource) -> None:
        self._inner = inner
        self._frames = 0
        self._closed = False

    @property
    def info(self) -> SourceInfo:
        try:
            return self._inner.info
        except EdgeBusError:
            raise
        except Exception as exc:
            raise self._failed("info", exc) from exc

    @property
    def inner(self) -> FrameSource:
        return self._inner

    def __next__(self) -> Frame:
        try:
            frame = next(self._inner)
        except StopIteration:
            if self._frames == 0:
                raise SourceError(f"{type(self._inner).__name__} ended before its first frame — a FrameSource gives "
                                  "its frames once: was it closed, or run before?") from None
            raise
        except EdgeBusError:
            raise
        except Exception as exc:
            raise self._failed("__next__", exc) from exc
        if not isinstance(frame, Frame):
            raise SourceError(f"{type(self._inner).__name__} gave a {type(frame).__name__}, not a frame — build "
                              "frames with edge_bus.make_frame(index, pixels, t_source)")
        self._frames += 1
        return frame

    def _failed(self, where: str, exc: Exception) -> SourceError:
        return SourceError(f"{type(self._inner).__name__}.{where} failed: {type(exc).__name__}: {exc} — check the "
                           "frame source")

    def close(self) -> None:
        if not self._closed:  # once: an SDK's release may not be safe to call twice (Pipeline.close again)
            self._closed = True
            self._inner.close()
