"""A network with its batch norms folded into the convolutions before them: recovered from a shipped
model's FP32 ONNX (checkpoints are not committed, 0.4 GB; the ONNX holds every weight), or made from
a checkpoint the same way. Either is a checkpoint for ``train.py --init``.

The ONNX exporter folds each batch norm that follows a convolution into that convolution (weight and
bias). Here each such pair becomes the folded convolution with its batch norm made the identity plus
the folded bias (γ = 1, β = b, mean 0, var 1 − ε): the same function in eval mode. In train mode a
batch norm normalises by the batch's own statistics, so a folded network trained further (a decoder
fine-tune) starts from a slightly different function than the unfolded one would: the shipped
``emt_net``'s last stage was fine-tuned from its ONNX, and ``reproduce.sh`` folds the stage-B
checkpoint the same way (``--checkpoint``) before that stage. Convolutions are matched to the ONNX
``Conv`` nodes in the order the forward pass runs them; the other tensors (transposed convolutions,
their batch norms, the classifier) keep their names in the export. The result is checked against the
ONNX (or the unfolded network) on random inputs::

    python -m models.training.folded --onnx models/emt_net/model_fp32.onnx --out /tmp/emt_net.pt
    python -m models.training.folded --checkpoint checkpoints/emt_net_ft/best.pt --out checkpoints/emt_net_ft/folded.pt
    python -m models.training.train --init /tmp/emt_net.pt --train-only decoder ...
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.training.networks import create_model, load_checkpoint
from models.training.script import run_script


def _conv_call_order(model: nn.Module, size: int) -> list[nn.Conv2d]:
    """The ``Conv2d`` modules in the order one forward pass calls them."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for m in model.modules()
             if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, size, size))
    finally:
        for h in hooks:
            h.remove()
    return order


def _following_bn(model: nn.Module) -> dict[nn.Conv2d, nn.BatchNorm2d]:
    """Each convolution whose output goes straight into a batch norm (the pairs the exporter folds):
    in this code base always the next module of the same ``nn.Sequential``."""
    pairs: dict[nn.Conv2d, nn.BatchNorm2d] = {}
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            mods = list(seq)
            for a, b in zip(mods, mods[1:], strict=False):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    pairs[a] = b
    return pairs


def _set_folded(conv: nn.Conv2d, bn: nn.BatchNorm2d, weight: torch.Tensor, bias: torch.Tensor) -> None:
    conv.weight.copy_(weight)
    bn.weight.fill_(1.0)
    bn.bias.copy_(bias)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)


@torch.no_grad()
def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Fold, in place, every batch norm that follows a convolution (eval-mode statistics), as the ONNX
    exporter does; the batch norm stays as the identity plus the folded bias."""
    for conv, bn in _following_bn(model).items():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
            conv.bias.zero_()
        _set_folded(conv, bn, conv.weight * scale.reshape(-1, 1, 1, 1), bias)
    return model


def recover(onnx_path: Path, name: str, mask_stride: int = 2, size: int = 224,
            encoder: str = "efficientnet_lite0") -> nn.Module:
    """A ``create_model(name, encoder=encoder)`` network holding the weights of ``onnx_path``, folded
    (eval mode)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    model = create_model(name, encoder=encoder, pretrained=False, mask_stride=mask_stride).eval()
    convs = _conv_call_order(model, size)
    nodes = [n for n in graph.node if n.op_type == "Conv"]
    if len(nodes) != len(convs):
        raise SystemExit(f"{onnx_path.name} has {len(nodes)} Conv nodes, {name} calls {len(convs)} convolutions")
    bns = _following_bn(model)
    named = dict(model.state_dict())
    taken: set[str] = set()
    with torch.no_grad():
        for node, conv in zip(nodes, convs, strict=True):
            w = torch.from_numpy(inits[node.input[1]].copy())
            bias = torch.from_numpy(inits[node.input[2]].copy()) if len(node.input) > 2 else None
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise SystemExit(f"Conv node {node.name}: weight {tuple(w.shape)}, module {tuple(conv.weight.shape)}")
            bn = bns.get(conv)
            if bn is not None:
                _set_folded(conv, bn, w, bias if bias is not None else torch.zeros_like(bn.bias))
            elif conv.bias is not None and bias is not None:
                conv.weight.copy_(w)
                conv.bias.copy_(bias)
            else:
                raise SystemExit(f"Conv node {node.name}: the bias of {onnx_path.name} and of {name} do not match")
        for key, value in inits.items():  # the tensors the export kept by name
            if key in named and tuple(value.shape) == tuple(named[key].shape):
                named[key].copy_(torch.from_numpy(value.copy()))
                taken.add(key)
    convs_set = {id(c) for c in convs}
    missing = [k for k, v in named.items() if v.dim() > 1 and k not in taken
               and id(model.get_submodule(k.rsplit(".", 1)[0])) not in convs_set]
    if missing:
        raise SystemExit(f"no tensor in {onnx_path.name} for {missing[:5]}")
    return model


def largest_difference(model: nn.Module, reference: Callable[[np.ndarray], list[np.ndarray]],
                       size: int = 224, n: int = 4) -> float:
    """The largest difference between ``model`` (eval mode) and ``reference`` on ``n`` random inputs,
    over both outputs."""
    worst = 0.0
    run = torch_reference(model)
    for seed in range(n):
        x = np.random.default_rng(seed).normal(size=(1, 1, size, size)).astype(np.float32)
        worst = max(worst, *(float(np.abs(g - w).max()) for g, w in zip(run(x), reference(x), strict=True)))
    return worst


def onnx_reference(onnx_path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return lambda x: list(sess.run(None, {sess.get_inputs()[0].name: x}))


def torch_reference(model: nn.Module) -> Callable[[np.ndarray], list[np.ndarray]]:
    """``model``'s outputs (eval mode) for a numpy input, as numpy arrays."""
    model.eval()

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in model(torch.from_numpy(x))]
    return run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--onnx", help="a shipped model's FP32 ONNX (its manifest.json beside it says how it "
                        "was trained)")
    source.add_argument("--checkpoint", help="a train.py checkpoint, folded the same way")
    p.add_argument("--model", default="emt_net", help="the network of the ONNX (a checkpoint names its own)")
    p.add_argument("--mask-stride", type=int, default=2, choices=(1, 2), help="the ONNX's mask stride")
    p.add_argument("--out", required=True, help="the checkpoint to write (.pt), for train.py --init")
    args = p.parse_args(argv)
    if args.onnx:
        path = Path(args.onnx)
        manifest_path = path.parent / "manifest.json"  # the encoder, and the training behind the weights
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        encoder = str(manifest.get("encoder", "efficientnet_lite0"))
        model = recover(path, args.model, args.mask_stride, encoder=encoder)
        reference = onnx_reference(path)
        trained = manifest.get("training", {})  # so a fine-tune counts all the training behind it
        ckpt: dict[str, object] = {"model": args.model, "encoder": encoder, "mask_stride": args.mask_stride, "epoch": 0,
                                   "epochs_total": int(trained.get("epochs_total", 0)),
                                   "train_wall_s": float(trained.get("train_wall_s", 0.0))}
    else:
        path = Path(args.checkpoint)
        model, ckpt = load_checkpoint(path)
        reference = torch_reference(copy.deepcopy(model))
        fold_batch_norms(model.eval())
    worst = largest_difference(model, reference)
    if worst > 1e-3:
        raise SystemExit(f"the folded network differs from {path} by up to {worst:.2e}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**ckpt, "state_dict": model.state_dict(), "init": str(path), "folded": True}, out)
    print(f"folded {path} (largest difference {worst:.1e}) → {out}")


if __name__ == "__main__":
    run_script(main)
