"""The BUSI cross-validation's folds (models.training.cv): fold K holds out exactly BUSI's fold K, and
every other image, BUS-BRA's included, trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="training tests need the train extra (torch)")

from models.training.cv import cv_data  # noqa: E402
from models.training.data import CachedSplit  # noqa: E402
from models.training.pack import encode_split, pack_path, read_pack_folds  # noqa: E402


def _part(prefix: str, sources: list[str], folds: list[int]) -> tuple[CachedSplit, np.ndarray]:
    n = len(sources)
    split = CachedSplit(np.zeros((n, 8, 8), np.uint8), np.zeros((n, 8, 8), np.uint8), np.ones(n, np.int64),
                        np.array(sources), np.array([f"{prefix}{i}" for i in range(n)]))
    return split, np.array(folds)


def _parts() -> dict[str, tuple[CachedSplit, np.ndarray]]:
    return {"train": _part("tr", ["busi"] * 6 + ["busbra"] * 4, [2, 2, 3, 3, 4, 4, 2, 3, 4, 5]),
            "val_busi": _part("va", ["busi"] * 2, [1, 1]),
            "test": _part("te", ["busi"] * 3, [0, 0, 0])}


@pytest.mark.parametrize(("fold", "held"), [(0, 3), (1, 2), (2, 2), (3, 2), (4, 2)])
def test_fold_k_holds_out_busi_fold_k_and_trains_on_the_rest(fold: int, held: int) -> None:
    data = cv_data(_parts(), fold)
    out = data.val["val_busi"]
    assert list(data.val) == ["val_busi"] and len(out) == held and set(out.sources) == {"busi"}
    assert len(data.train) + len(out) == 15 and not set(data.train.names) & set(out.names)
    assert (data.train.sources == "busbra").sum() == 4  # BUS-BRA's kFold 2 trains whatever fold BUSI holds out


def test_an_unknown_fold_is_refused() -> None:
    with pytest.raises(SystemExit, match="BUSI has folds 0, 1, 2, 3, 4"):
        cv_data(_parts(), 5)


def test_a_pack_keeps_each_images_fold(tmp_path: Path) -> None:
    split, folds = _part("x", ["busi"] * 3, [4, 0, 2])
    np.savez(pack_path(tmp_path, "test", 8), **encode_split(split, folds))
    np.testing.assert_array_equal(read_pack_folds(tmp_path, "test", 8), [4, 0, 2])
    np.savez(pack_path(tmp_path, "train", 8), **encode_split(split))  # packed without folds
    with pytest.raises(SystemExit, match="has no folds"):
        read_pack_folds(tmp_path, "train", 8)
