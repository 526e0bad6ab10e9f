"""The training cache is reused only for the same images and code, and survives a half-written file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="training tests need the train extra (torch)")

from edge_bus.datasets import LabeledImage  # noqa: E402
from models.training import data  # noqa: E402


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[LabeledImage]:
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    items = []
    for i in range(4):
        img = np.full((40, 48), 60 + 30 * i, np.uint8)
        mask = np.zeros((40, 48), np.uint8)
        mask[10:20, 10:20] = 255
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
        cv2.imwrite(str(tmp_path / f"{i}_mask.png"), mask)
        items.append(LabeledImage(tmp_path / f"{i}.png", (tmp_path / f"{i}_mask.png",), "benign", i % 2, "busi"))
    return items


def test_a_changed_fold_assignment_rebuilds_the_cache(images: list[LabeledImage]) -> None:
    """Folds 1 and 3 of BUSI both hold 156 images: a count check reused the old split after a swap."""
    first = data.load_split("val", images, size=16)
    assert len(first) == 4 and first.images.shape == (4, 16, 16)
    assert data.cache_key(images, 16) == data.cache_key(list(images), 16)
    moved = [replace(images[0], fold=3), *images[1:]]  # same count, another image set
    assert data.cache_key(moved, 16) != data.cache_key(images, 16)
    other = [*images[1:], images[0]]  # same images, another order: the labels would not line up
    rebuilt = data.load_split("val", other, size=16)
    assert list(rebuilt.names) == [p.image.name for p in other]


def test_a_truncated_cache_file_is_rebuilt_not_a_crash(images: list[LabeledImage],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data.load_split("val", images, size=16)
    path = data.CACHE_DIR / "val_16.npz"
    path.write_bytes(path.read_bytes()[:100])  # a run killed while writing it (before the atomic write)
    again = data.load_split("val", images, size=16)
    assert len(again) == 4 and "unreadable" in capsys.readouterr().err
    assert not list(data.CACHE_DIR.glob(".*tmp*"))  # no temporary file left behind
