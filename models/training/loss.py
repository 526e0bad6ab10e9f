"""EMT-NET's loss: Wclf · weighted BCE (classification) + Dice (segmentation).

The weighted BCE is written in its numerically stable logit form. With logits z, targets y and
K = 1 + y·(Wp − 1):

    L = mean[(1 − y)·z + K·log(1 + e^(−z))]

and log(1 + e^(−z)) = softplus(−z) = max(−z, 0) + log1p(e^(−|z|)), which never overflows.
It equals the naive −[Wp·y·log σ(z) + (1 − y)·log(1 − σ(z))] wherever that is finite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.training.networks import upsample_to


def weighted_bce_with_logits(z: torch.Tensor, y: torch.Tensor, pos_weight: float = 3.0) -> torch.Tensor:
    """Stable weighted BCE on logits, averaged (0 for an empty batch)."""
    if z.numel() == 0:
        return z.sum() * 0.0
    y = y.to(z.dtype)
    k = 1.0 + y * (pos_weight - 1.0)
    # log(1 + e^(−z)) as softplus(−z): stable for any |z| (linear beyond 20), and its gradient is exact at
    # z = 0, where max(−z, 0) + log1p(e^(−|z|)) took the subgradients of clamp and abs (−3 for −1.5 at y = 1)
    log1p_exp_neg = F.softplus(-z)
    return torch.mean((1.0 - y) * z + k * log1p_exp_neg)


def naive_weighted_bce(z: torch.Tensor, y: torch.Tensor, pos_weight: float = 3.0) -> torch.Tensor:
    """The textbook form, for tests: overflows / gives inf for large |z|."""
    p = torch.sigmoid(z)
    return torch.mean(-(pos_weight * y * torch.log(p) + (1 - y) * torch.log(1 - p)))


def _one_minus_soft_dice(p: torch.Tensor, t: torch.Tensor, eps: float) -> torch.Tensor:
    """1 − soft Dice of probabilities ``p`` against targets ``t``, over their last axis."""
    return 1.0 - (2.0 * (p * t).sum(-1) + eps) / (p.sum(-1) + t.sum(-1) + eps)


def dice_loss(mask_logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − soft Dice over the whole batch (so lesion-free images still count their false positives)."""
    p = torch.sigmoid(mask_logits).flatten()
    return _one_minus_soft_dice(p, target.to(p.dtype).flatten(), eps)


def per_image_dice_loss(mask_logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean over the images with a lesion of 1 − their own soft Dice (0 when the batch has none): each
    lesion weighs the same, as in the reported metric (mean Dice over lesion images), where the
    batch-wide Dice weighs a lesion by its area."""
    p = torch.sigmoid(mask_logits).flatten(1)
    t = target.to(p.dtype).flatten(1)
    has = t.sum(1) > 0
    if not bool(has.any()):
        return mask_logits.sum() * 0.0
    return torch.mean(_one_minus_soft_dice(p[has], t[has], eps))


DICE_MODES = ("batch", "image")


def multitask_loss(
    mask_logits: torch.Tensor,
    class_logits: torch.Tensor,
    mask: torch.Tensor,
    presence: torch.Tensor,
    malignant: torch.Tensor,
    pos_weight: float = 3.0,
    clf_weight: float = 1.5,
    coarse_logits: torch.Tensor | None = None,
    pixel_bce: float = 0.0,
    dice: str = "batch",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Wclf·(WBCE(malignancy | lesion) + BCE(presence)) + Dice(mask) [+ 0.5·Dice(coarse) for HGM-Net]
    [+ ``pixel_bce`` · per-pixel BCE of the mask, an option beside the paper's loss; 0 = off].
    ``dice``: ``batch`` (the Dice over the whole batch) or ``image`` (half that, half
    :func:`per_image_dice_loss`).

    Mask logits below input resolution are first upsampled bilinearly, as the runtime does.

    The malignancy term uses Wp (the sensitivity/specificity knob) and only lesion images;
    presence uses the same stable form with Wp = 1.
    """
    mask_logits = upsample_to(mask_logits, tuple(mask.shape[-2:]))  # stride-2 heads: score at input size
    has = presence > 0.5
    l_mal = weighted_bce_with_logits(class_logits[has, 1], malignant[has], pos_weight)
    l_pres = weighted_bce_with_logits(class_logits[:, 0], presence, 1.0)
    if dice not in DICE_MODES:
        raise ValueError(f"dice {dice!r} is not one of {', '.join(DICE_MODES)}")
    l_dice = dice_loss(mask_logits, mask)
    if dice == "image":
        l_dice = 0.5 * l_dice + 0.5 * per_image_dice_loss(mask_logits, mask)
    total = clf_weight * (l_mal + l_pres) + l_dice
    parts = {"mal": float(l_mal.detach()), "presence": float(l_pres.detach()), "dice": float(l_dice.detach())}
    if pixel_bce > 0:
        l_pix = F.binary_cross_entropy_with_logits(mask_logits, mask.to(mask_logits.dtype))
        total = total + pixel_bce * l_pix
        parts["pixel_bce"] = float(l_pix.detach())
    if coarse_logits is not None:
        stride = mask.shape[-1] // coarse_logits.shape[-1]
        coarse_target = F.max_pool2d(mask.to(coarse_logits.dtype), stride)
        l_coarse = dice_loss(coarse_logits, coarse_target)
        total = total + 0.5 * l_coarse
        parts["coarse"] = float(l_coarse.detach())
    return total, parts


def distillation_loss(
    mask_logits: torch.Tensor,
    class_logits: torch.Tensor,
    teacher_mask_logits: torch.Tensor,
    teacher_class_logits: torch.Tensor,
    presence: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Knowledge distillation from a trained network on the same batch: the BCE of the student's
    logits against the teacher's probabilities, for presence (every image), malignancy (the lesion
    images, as the malignancy loss) and every mask pixel (at the teacher's mask resolution; the
    student's is resized to it). Minimal, with a zero gradient, where the student's logits equal
    the teacher's."""
    teacher_mask = torch.sigmoid(teacher_mask_logits)
    mask_logits = upsample_to(mask_logits, tuple(teacher_mask.shape[-2:]))
    l_mask = F.binary_cross_entropy_with_logits(mask_logits, teacher_mask)
    teacher_p = torch.sigmoid(teacher_class_logits)
    l_pres = F.binary_cross_entropy_with_logits(class_logits[:, 0], teacher_p[:, 0])
    has = presence > 0.5
    l_mal = (F.binary_cross_entropy_with_logits(class_logits[has, 1], teacher_p[has, 1]) if bool(has.any())
             else class_logits.sum() * 0.0)
    total = l_mask + l_pres + l_mal
    return total, {"kd_mask": float(l_mask.detach()), "kd_presence": float(l_pres.detach()),
                   "kd_mal": float(l_mal.detach())}
