"""Multitask lesion networks: encoder + decoder + heads, behind one registry.

Both networks take a grayscale tensor [N, 1, H, W] (H, W divisible by 32) and return two named
outputs, the contract the runtime reads through the manifest:

* ``mask_logits`` [N, 1, H/s, W/s]: lesion mask logits at stride ``s = mask_stride``. The shipped
  models use s = 2: the host resizes the mask to the frame (or ROI) size anyway, with bilinear
  interpolation, and training scores the loss after the same bilinear upsampling to input size.
  Measured in OpenVINO INT8 on a 2-core AVX2 CPU, the s = 1 head (a 32→16 transposed convolution to
  224² and a 16→1 3x3 convolution there) took 2.2 ms of 14.2 (16%) of single-thread inference;
* ``class_logits`` [N, 2]: ``[presence, malignancy]`` logits. P(lesion) = σ(presence),
  P(malignant | lesion) = σ(malignancy); the three class probabilities are
  normal = 1 − P(lesion), benign = P(lesion)(1 − P(mal)), malignant = P(lesion)·P(mal).

  the s = 2 head (one 3x3 convolution at 112²) takes about 0.4 ms.

Upsampling uses transposed convolutions and nearest-neighbour resizes only: bilinear
Interpolate is slow in OpenVINO INT8 (21% of a U-Net's time in a probe).

* ``emt_net``: EMT-NET style (Shi et al., ISBI 2022): shared encoder, LinkNet decoder with
  additive skips, classifier from the bottleneck (GAP → FC → dropout → FC).
* ``hgm_net``: HGM-Net style (Oh et al., 2025): Stage 1 predicts a coarse lesion probability
  map; a Hierarchical Gating Module pools it to each encoder scale and gates Stage 2's encoder
  features (x · (1 + γ_s · p_s), γ_s learnt per channel, 0 at init so pretrained features pass
  unchanged); Stage 2 gives the final mask and class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.training.encoders import create_encoder, encoder_factory

OUTPUT_NAMES = ("mask_logits", "class_logits")


def _cbr(cin: int, cout: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, 1, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LinkNetBlock(nn.Module):
    """1x1 reduce → 3x3 transposed conv (x2 up) → 1x1 expand (LinkNet's decoder block)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = max(cin // 4, 16)
        self.reduce = _cbr(cin, mid)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
        )
        self.expand = _cbr(mid, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.up(self.reduce(x)))


#: the LinkNet decoder's widths at strides 16, 8, 4 and 2 (the shipped models')
DECODER_WIDTHS = (128, 64, 48, 32)


class LinkNetDecoder(nn.Module):
    """Decoder with additive skips; skips are projected (1x1) to the decoder widths."""

    def __init__(self, enc_channels: tuple[int, ...], widths: tuple[int, ...] = DECODER_WIDTHS,
                 mask_stride: int = 2) -> None:
        super().__init__()
        c2, c4, c8, c16, c32 = enc_channels
        w16, w8, w4, w2 = widths
        self.blocks = nn.ModuleList([LinkNetBlock(c32, w16), LinkNetBlock(w16, w8),
                                     LinkNetBlock(w8, w4), LinkNetBlock(w4, w2)])
        self.laterals = nn.ModuleList([_cbr(c, w) for c, w in zip((c16, c8, c4, c2), widths, strict=False)])
        if mask_stride == 1:  # LinkNet's full-resolution head
            self.final: nn.Module = nn.Sequential(
                nn.ConvTranspose2d(w2, 16, 3, stride=2, padding=1, output_padding=1, bias=False),
                nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                nn.Conv2d(16, 1, 3, padding=1),
            )
        elif mask_stride == 2:  # logits at half resolution; the consumer upsamples bilinearly
            self.mask_head: nn.Module = nn.Conv2d(w2, 1, 3, padding=1)
        else:
            raise ValueError(f"mask_stride must be 1 or 2, not {mask_stride}")
        self.mask_stride = mask_stride

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[4]
        skips = (feats[3], feats[2], feats[1], feats[0])
        for block, lateral, skip in zip(self.blocks, self.laterals, skips, strict=True):
            x = block(x) + lateral(skip)
        return self.final(x) if self.mask_stride == 1 else self.mask_head(x)


class ClassifierHead(nn.Module):
    """Global average pooling → FC → ReLU → dropout → FC (EMT-NET's classification branch)."""

    def __init__(self, cin: int, hidden: int = 256, n_out: int = 2, dropout: float = 0.3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cin, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


class EMTNet(nn.Module):
    """Shared encoder + LinkNet decoder (mask) + bottleneck classifier (presence, malignancy)."""

    def __init__(self, encoder: str = "efficientnet_lite0", pretrained: bool | None = None,
                 mask_stride: int = 2, decoder_widths: tuple[int, ...] = DECODER_WIDTHS) -> None:
        super().__init__()
        self.encoder = create_encoder(encoder, pretrained=_default_pretrained(encoder, pretrained))
        self.decoder = LinkNetDecoder(self.encoder.out_channels, tuple(decoder_widths), mask_stride=mask_stride)
        self.classifier = ClassifierHead(self.encoder.head_channels)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.encoder.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.encode(x)
        return self.decoder(feats), self.classifier(self.encoder.head(feats[4]))


class CoarseStage(nn.Module):
    """HGM-Net Stage 1: a light stride-8 network giving coarse lesion logits at 1/8 resolution."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()

        def down(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.body = nn.Sequential(
            down(1, width // 2), down(width // 2, width), down(width, width * 2),
            nn.Conv2d(width * 2, width * 2, 3, padding=2, dilation=2, bias=False),
            nn.BatchNorm2d(width * 2), nn.ReLU(inplace=True),
            nn.Conv2d(width * 2, width * 2, 3, padding=4, dilation=4, bias=False),
            nn.BatchNorm2d(width * 2), nn.ReLU(inplace=True),
            nn.Conv2d(width * 2, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class HierarchicalGate(nn.Module):
    """Gates encoder features at each scale by the coarse map pooled to that scale."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.gammas = nn.ParameterList([nn.Parameter(torch.zeros(1, c, 1, 1)) for c in channels])

    def forward(self, feat: torch.Tensor, coarse_prob: torch.Tensor, level: int) -> torch.Tensor:
        stride = 2 ** (level + 1)
        if stride < 8:  # coarse map is at stride 8: repeat it up (nearest) for the fine scales
            p = F.interpolate(coarse_prob, scale_factor=8 // stride, mode="nearest")
        elif stride > 8:
            p = F.avg_pool2d(coarse_prob, stride // 8)
        else:
            p = coarse_prob
        return feat * (1.0 + self.gammas[level] * (2.0 * p - 1.0))


class HGMNet(nn.Module):
    """Two-stage network: Stage 1 coarse map → hierarchical gating of Stage 2's encoder."""

    def __init__(self, encoder: str = "efficientnet_lite0", pretrained: bool | None = None,
                 mask_stride: int = 2, decoder_widths: tuple[int, ...] = DECODER_WIDTHS) -> None:
        super().__init__()
        self.stage1 = CoarseStage()
        self.encoder = create_encoder(encoder, pretrained=_default_pretrained(encoder, pretrained))
        self.gate = HierarchicalGate(self.encoder.out_channels)
        self.decoder = LinkNetDecoder(self.encoder.out_channels, tuple(decoder_widths), mask_stride=mask_stride)
        self.classifier = ClassifierHead(self.encoder.head_channels)
        self.last_coarse: torch.Tensor | None = None  # for Stage 1's deep supervision in training

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        coarse = self.stage1(x)
        self.last_coarse = coarse
        p = torch.sigmoid(coarse)
        feats = []
        h = x
        for level, stage in enumerate(self.encoder.stages):
            h = self.gate(stage(h), p, level)
            feats.append(h)
        return self.decoder(feats), self.classifier(self.encoder.head(feats[4]))


def upsample_to(mask_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Mask logits resized to ``size`` the way the runtime does it (bilinear, half-pixel centres,
    as ``cv2.INTER_LINEAR``); a no-op when the sizes already match."""
    if tuple(mask_logits.shape[-2:]) == tuple(size):
        return mask_logits
    return F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)


def _default_pretrained(encoder: str, pretrained: bool | None) -> bool:
    return encoder.startswith("efficientnet_lite0") if pretrained is None else pretrained


MODELS: dict[str, Callable[..., nn.Module]] = {"emt_net": EMTNet, "hgm_net": HGMNet}


def create_model(name: str, **kw: object) -> nn.Module:
    """Build a registered network; ``encoder=`` picks one of :data:`ENCODERS`."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}") from None
    encoder_factory(str(kw.get("encoder", "efficientnet_lite0")))  # an unknown encoder fails before building
    return factory(**kw)


def load_checkpoint(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network a train.py (or models.training.folded) checkpoint records, with its weights, in
    eval mode; and the checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = create_model(ckpt["model"], encoder=ckpt["encoder"], pretrained=False,
                         mask_stride=ckpt.get("mask_stride", 1),
                         decoder_widths=tuple(ckpt.get("decoder_widths", DECODER_WIDTHS)))  # recorded since session 14
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
