"""The Wp sweep: its whole-network mode fine-tunes one network per Wp from the same weights, and the card
shows each mode's table with what it was run on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="training tests need the train extra (torch)")

import torch  # noqa: E402

from models.training import wp_sweep  # noqa: E402
from models.training.data import CachedSplit  # noqa: E402
from models.training.model_card import wp_table  # noqa: E402
from models.training.networks import create_model  # noqa: E402
from models.training.train import TrainingData  # noqa: E402


def _split(n: int, rng: np.random.Generator) -> CachedSplit:
    labels = np.arange(n, dtype=np.int64) % 3  # normal, benign, malignant
    masks = np.zeros((n, 256, 256), np.uint8)
    masks[labels > 0, 96:160, 96:160] = 1
    return CachedSplit(images=rng.integers(0, 255, (n, 256, 256), dtype=np.uint8), masks=masks, labels=labels,
                       sources=np.array(["busi"] * n), names=np.array([str(i) for i in range(n)]))


def test_finetune_mode_trains_one_network_per_wp_from_the_same_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    data = TrainingData(_split(9, rng), {"val_busi": _split(6, rng), "val_busbra": _split(3, rng)})
    monkeypatch.setattr(wp_sweep, "load_training_data", lambda args: data)
    init = tmp_path / "init.pt"
    compact = create_model("emt_net", encoder="efficientnet_lite0_compact", pretrained=False, mask_stride=2)
    torch.save({"model": "emt_net", "encoder": "efficientnet_lite0_compact", "mask_stride": 2, "size": 224,
                "dice": "image", "busi_weight": 2.5, "state_dict": compact.state_dict()}, init)
    out = tmp_path / "wp_finetune.json"
    runs = tmp_path / "runs"
    wp_sweep.main(["--checkpoint", str(init), "--finetune-epochs", "1", "--max-steps", "1", "--wp", "1", "5",
                   "--out", str(out), "--runs", str(runs)])
    result = json.loads(out.read_text())
    assert result["mode"] == "finetune" and result["finetune_epochs"] == 1
    assert [r["wp"] for r in result["rows"]] == [1.0, 5.0] and result["n_val"] == 6  # the lesion images
    for row in result["rows"]:
        assert 0.0 <= row["sensitivity"] <= 1.0 and 0.0 <= row["specificity"] <= 1.0
    ckpts = [torch.load(runs / f"wp{w}" / "last.pt", weights_only=False) for w in ("1", "5")]
    assert [c["wp"] for c in ckpts] == [1.0, 5.0]
    assert all(c["init"] == str(init) and c["freeze_bn"] for c in ckpts)  # only Wp differs
    assert all(c["encoder"] == "efficientnet_lite0_compact" for c in ckpts)  # the checkpoint's network, whole
    assert all(c["dice"] == "image" and c["busi_weight"] == 2.5 for c in ckpts)  # and its recipe


def test_the_card_says_what_each_sweep_was_run_on() -> None:
    rows = [{"wp": 1.0, "sensitivity": 0.8, "specificity": 0.9, "accuracy": 0.85, "auc": 0.93}]
    common = {"rows": rows, "n_val": 505, "validation": "val", "checkpoint": "ck.pt", "wall_s": 960.0}
    head = wp_table({**common, "mode": "head"})
    finetune = wp_table({**common, "mode": "finetune", "finetune_epochs": 2})
    assert "| 1 | 0.800 | 0.900 |" in head and "encoder features from `ck.pt`" in head
    assert "the whole network fine-tuned 2 epochs per Wp from `ck.pt`" in finetune and "16 min" in finetune
    assert "--finetune-epochs 2" in wp_table(None, " --finetune-epochs 2")
