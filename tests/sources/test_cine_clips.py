"""The real cine clips in ../shared/data/cine, read through open_source like the CLI does."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from edge_bus.sources import VideoSource, open_source, unwrap

pytestmark = pytest.mark.data


def _labels(shared_data: Path) -> dict[str, dict[str, str]]:
    with (shared_data / "cine" / "labels.csv").open(newline="") as fh:
        return {row["clip"]: row for row in csv.DictReader(fh)}


@pytest.mark.parametrize("clip", ["Pid_1_VID_5.avi", "Pid_19_VID_95.avi"])
def test_real_cine_clip_reads_completely(shared_data: Path, clip: str) -> None:
    row = _labels(shared_data)[clip]
    started = time.perf_counter()
    with open_source(str(shared_data / "cine" / clip)) as src:
        assert isinstance(unwrap(src), VideoSource)
        info = src.info
        assert (info.kind, info.width, info.height, info.live) == ("video", 320, 320, False)
        assert info.fps == pytest.approx(float(row["fps"]))
        assert info.frame_count == int(row["frames"])
        frames = list(src)  # a SourceEndedEarly here would mean a damaged clip
    elapsed = time.perf_counter() - started
    assert len(frames) == int(row["frames"])
    assert all(f.pixels.shape == (320, 320, 3) for f in frames)
    steps = [b.t_source - a.t_source for a, b in zip(frames, frames[1:], strict=False)]
    assert min(steps) == pytest.approx(1 / 30, abs=2e-3) and max(steps) == pytest.approx(1 / 30, abs=2e-3)
    assert elapsed / len(frames) < 1 / 30  # decoding alone keeps up with real time, with room to spare


def test_real_cine_clip_loops(shared_data: Path) -> None:
    clip = shared_data / "cine" / "Pid_19_VID_95.avi"
    n = int(_labels(shared_data)["Pid_19_VID_95.avi"]["frames"])
    with open_source(str(clip), loop=True, max_frames=n + 10) as src:
        frames = list(src)
    assert len(frames) == n + 10
    assert frames[n].t_source == pytest.approx(n / 30, abs=1e-3)
    assert (frames[n].pixels == frames[0].pixels).all()
