"""The portable training cache (models.training.pack) and training from it (train.py --pack): what a
machine without ../shared/data trains on must be the cache, bit for bit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="training tests need the train extra (torch)")

import torch  # noqa: E402

from models.training.data import CachedSplit  # noqa: E402
from models.training.pack import PACKED_SPLITS, decode_split, encode_split, pack_path, read_pack  # noqa: E402
from models.training.train import parse_args, pick_device, train  # noqa: E402


def _split(n: int, size: int, seed: int) -> CachedSplit:
    """Speckle-like noise (the hardest case for a lossless codec) with a disc of lesion in every image
    after the first (label normal, benign, malignant in turn)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    masks = np.stack([((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2) * (i % 3 > 0)
                      for i in range(n)]).astype(np.uint8)
    labels = np.array([i % 3 for i in range(n)], dtype=np.int64)
    sources = np.array(["busi" if i % 2 else "busbra" for i in range(n)])
    return CachedSplit(images, masks, labels, sources, np.array([f"img{i}.png" for i in range(n)]))


def _write(folder: Path, name: str, split: CachedSplit) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(pack_path(folder, name, split.images.shape[1]), **encode_split(split))


def test_a_packed_split_comes_back_bit_for_bit(tmp_path: Path) -> None:
    split = _split(7, 64, seed=0)
    _write(tmp_path, "train", split)
    back = read_pack(tmp_path, "train", 64)
    for field in ("images", "masks", "labels", "sources", "names"):
        np.testing.assert_array_equal(getattr(back, field), getattr(split, field))
    assert back.images.dtype == np.uint8 and back.masks.dtype == np.uint8


def test_encoding_compresses_the_masks_and_keeps_the_images_lossless() -> None:
    split = _split(3, 64, seed=1)
    arrays = encode_split(split)
    assert arrays["masks"].nbytes == 3 * 64 * 64 // 8  # one bit a pixel
    with np.load(_roundtrip(arrays)) as z:
        np.testing.assert_array_equal(decode_split(z).images, split.images)


def _roundtrip(arrays: dict[str, np.ndarray]) -> io.BytesIO:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    return buf


def test_a_missing_pack_names_the_file_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no val_busi_256\.pack\.npz .*models\.training\.pack"):
        read_pack(tmp_path, "val_busi", 256)


def test_train_runs_from_a_pack_on_the_cpu(tmp_path: Path) -> None:
    """One step of one epoch from a pack: data, model and validation all off the pack, a checkpoint
    that says where it trained."""
    pack = tmp_path / "pack"
    for i, name in enumerate(PACKED_SPLITS):
        _write(pack, name, _split(6, 64, seed=i))
    args = parse_args(["--pack", str(pack), "--cache-size", "64", "--size", "64", "--val-crops", "0",
                       "--epochs", "1", "--max-steps", "1", "--batch", "4", "--threads", "1", "--device", "cpu",
                       "--out", str(tmp_path / "ck")])
    best = train(args)
    ckpt = torch.load(best, map_location="cpu", weights_only=False)
    assert ckpt["device"] == "cpu" and ckpt["epoch"] == 1 and np.isfinite(ckpt["val"]["score"])


def test_a_pack_refuses_what_needs_the_raw_images(tmp_path: Path) -> None:
    for extra in (["--crop-source", "full", "--val-crops", "0"], ["--val-crops", "2"]):
        args = parse_args(["--pack", str(tmp_path), "--out", str(tmp_path / "ck"), "--device", "cpu", *extra])
        with pytest.raises(SystemExit, match="--pack holds the cached crops only"):
            train(args)


def test_pick_device_auto_is_the_cpu_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(SystemExit, match="torch sees no GPU"):
        pick_device("cuda")


def test_a_gpu_asked_for_on_a_machine_without_one_is_refused_before_the_data_loads(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--device cuda`` was refused only in ``fit``, after minutes of loading the data."""
    import models.training.train as train_module

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = []
    monkeypatch.setattr(train_module, "load_training_data", lambda args: loaded.append(args))
    args = parse_args(["--pack", str(tmp_path), "--out", str(tmp_path / "ck"), "--device", "cuda"])
    with pytest.raises(SystemExit, match="torch sees no GPU"):
        train(args)
    assert loaded == []
