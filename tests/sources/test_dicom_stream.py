"""A multi-frame DICOM through the whole pipeline: frames.jsonl gives the lesion's size in mm."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_bus.config import build_config
from edge_bus.pipeline import run_stream
from edge_bus.sources import DemoSource


@pytest.mark.parametrize("spacing_cm", [0.01, None])
def test_dicom_lesion_mm(tmp_path: Path, make_dicom: Callable[..., Path], make_region: Callable[..., object],
                         spacing_cm: float | None) -> None:
    demo = DemoSource()
    idx = [i for i in range(0, len(demo), 9) if demo.truth(i).lesion][:8]
    frames = np.stack([cv2.cvtColor(demo.render(i), cv2.COLOR_BGR2GRAY) for i in idx])
    h, w = frames.shape[1:]
    regions = [make_region(spacing_cm, spacing_cm, box=(0, 0, w - 1, h - 1))] if spacing_cm else []
    path = make_dicom(tmp_path / "exam.dcm", frames, regions=regions)
    out = tmp_path / "o"
    run_stream(build_config(source=str(path), out=out, video=False))
    recs = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert len(recs) == len(idx)
    with_lesion = [r for r in recs if r["lesion"] and r["bbox"]]
    assert with_lesion
    for r in with_lesion:
        if spacing_cm is None:
            assert r["lesion_mm"] is None
        else:
            bw, bh = r["bbox"][2], r["bbox"][3]
            # the longest axis lies between the bbox's longer side and its diagonal, at 0.1 mm per pixel
            assert max(bw, bh) * 0.1 - 1e-6 <= r["lesion_mm"] <= np.hypot(bw, bh) * 0.1 + 1e-6
