"""models.training.folded: the shipped FP32 ONNX back into a trainable network, and a checkpoint's
batch norms folded the same way; both compute what they came from."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training tests need the train extra (torch)")

from models.training.folded import (  # noqa: E402
    fold_batch_norms,
    largest_difference,
    main,
    onnx_reference,
    recover,
    torch_reference,
)
from models.training.networks import create_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Batch-norm statistics and affine parameters away from their initial values, as after training."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
    return model.eval()


def test_folding_keeps_what_the_network_computes() -> None:
    model = _randomised(create_model("emt_net", pretrained=False))
    unfolded = torch_reference(copy.deepcopy(model))
    fold_batch_norms(model)
    assert largest_difference(model, unfolded, size=64) < 1e-4
    folded_bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and bool((m.weight == 1).all())]
    assert len(folded_bns) > 40 and all(float(m.running_mean.abs().max()) == 0.0 for m in folded_bns)


def test_the_shipped_onnx_comes_back_as_the_same_network() -> None:
    onnx_path = ROOT / "models" / "emt_net" / "model_fp32.onnx"
    encoder = json.loads((onnx_path.parent / "manifest.json").read_text())["encoder"]
    model = recover(onnx_path, "emt_net", encoder=encoder)
    assert largest_difference(model, onnx_reference(onnx_path), n=2) < 1e-3


def test_a_checkpoint_is_folded_into_a_new_one(tmp_path: Path) -> None:
    model = _randomised(create_model("emt_net", pretrained=False), seed=3)
    src = tmp_path / "best.pt"
    torch.save({"model": "emt_net", "encoder": "efficientnet_lite0", "mask_stride": 2, "epoch": 4,
                "epochs_total": 13, "train_wall_s": 100.0, "state_dict": model.state_dict()}, src)
    main(["--checkpoint", str(src), "--out", str(tmp_path / "folded.pt")])
    out = torch.load(tmp_path / "folded.pt", weights_only=False)
    assert out["folded"] is True and out["epochs_total"] == 13 and out["init"] == str(src)
    again = create_model("emt_net", pretrained=False)
    again.load_state_dict(out["state_dict"])
    assert largest_difference(again, torch_reference(model), size=64) < 1e-4
