"""The EMT-NET loss: stable weighted BCE equals the naive form where finite, and stays finite."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training tests need the train extra (torch)")

from models.training.loss import (  # noqa: E402
    dice_loss,
    distillation_loss,
    multitask_loss,
    naive_weighted_bce,
    per_image_dice_loss,
    weighted_bce_with_logits,
)


@pytest.mark.parametrize("wp", [1.0, 2.0, 3.0, 5.0])
def test_stable_wbce_equals_naive_where_finite(wp: float) -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4096, generator=g, dtype=torch.float64) * 8
    y = (torch.rand(4096, generator=g) > 0.5).double()
    naive = naive_weighted_bce(z, y, wp)
    assert torch.isfinite(naive)
    # the naive form itself loses ~1e-8 relative precision in log(1 - sigmoid(z)) for |z| near 20
    assert torch.allclose(weighted_bce_with_logits(z, y, wp), naive, rtol=1e-7, atol=1e-9)


def test_stable_wbce_elementwise_matches_naive() -> None:
    # beyond |z| ~ 15 the naive 1 - sigmoid(z) cancels catastrophically (it is the inaccurate one there)
    z = torch.linspace(-15, 15, 301, dtype=torch.float64)
    for target in (0.0, 1.0):
        y = torch.full_like(z, target)
        for zi, yi in zip(z, y, strict=False):
            a = weighted_bce_with_logits(zi[None], yi[None], 3.0)
            b = naive_weighted_bce(zi[None], yi[None], 3.0)
            assert torch.isclose(a, b, rtol=1e-6, atol=1e-9), (float(zi), target)


@pytest.mark.parametrize("magnitude", [1e2, 1e3, 1e4])
def test_stable_wbce_finite_with_finite_gradients_for_large_logits(magnitude: float) -> None:
    z = torch.tensor([-magnitude, magnitude, -magnitude, magnitude], dtype=torch.float32, requires_grad=True)
    y = torch.tensor([0.0, 0.0, 1.0, 1.0])
    loss = weighted_bce_with_logits(z, y, 3.0)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z.grad).all()
    # confident and right costs ~0; confident and wrong costs ~|z| (×Wp for a missed positive)
    per = [float(weighted_bce_with_logits(z[i : i + 1].detach(), y[i : i + 1], 3.0)) for i in range(4)]
    assert per[0] == pytest.approx(0.0, abs=1e-6) and per[3] == pytest.approx(0.0, abs=1e-6)
    assert per[1] == pytest.approx(magnitude, rel=1e-5) and per[2] == pytest.approx(3 * magnitude, rel=1e-5)
    assert not torch.isfinite(naive_weighted_bce(z.detach(), y, 3.0))  # the naive form overflows here


def test_stable_wbce_gradient_matches_the_analytic_one_including_at_zero() -> None:
    """d/dz of (1 − y)·z + K·log(1 + e^(−z)) is (1 − y) − K·σ(−z): at z = 0, −1.5 for y = 1 (Wp 3) and +0.5
    for y = 0. The clamp/abs form gave −3 and 0 there (their subgradients)."""
    for zv in (0.0, -0.7, 2.5, 30.0, -30.0):
        for yv in (0.0, 1.0):
            z = torch.tensor([zv], dtype=torch.float64, requires_grad=True)
            weighted_bce_with_logits(z, torch.tensor([yv], dtype=torch.float64), 3.0).backward()
            k = 1.0 + yv * 2.0
            expected = (1.0 - yv) - k * float(torch.sigmoid(torch.tensor(-zv, dtype=torch.float64)))
            assert float(z.grad[0]) == pytest.approx(expected, abs=1e-12), (zv, yv)


def test_positive_weight_scales_only_positives() -> None:
    z = torch.tensor([0.3])
    assert float(weighted_bce_with_logits(z, torch.tensor([0.0]), 5.0)) == pytest.approx(
        float(weighted_bce_with_logits(z, torch.tensor([0.0]), 1.0))
    )
    assert float(weighted_bce_with_logits(z, torch.tensor([1.0]), 5.0)) == pytest.approx(
        5 * float(weighted_bce_with_logits(z, torch.tensor([1.0]), 1.0))
    )


def test_dice_loss_perfect_and_empty() -> None:
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, 0, 2:5, 2:5] = 1
    perfect = torch.where(mask > 0, torch.tensor(50.0), torch.tensor(-50.0))
    assert float(dice_loss(perfect, mask)) == pytest.approx(0.0, abs=1e-3)
    assert float(dice_loss(-perfect, mask)) > 0.9


def test_multitask_loss_combines_terms_with_weights() -> None:
    mask_logits = torch.randn(4, 1, 16, 16)
    mask = (torch.rand(4, 1, 16, 16) > 0.7).float()
    logits = torch.randn(4, 2)
    presence = torch.tensor([1.0, 1.0, 0.0, 1.0])
    malignant = torch.tensor([1.0, 0.0, 0.0, 0.0])
    total, parts = multitask_loss(mask_logits, logits, mask, presence, malignant, pos_weight=3.0, clf_weight=1.5)
    assert float(total) == pytest.approx(1.5 * (parts["mal"] + parts["presence"]) + parts["dice"], rel=1e-5)
    coarse = torch.randn(4, 1, 2, 2)
    total2, parts2 = multitask_loss(mask_logits, logits, mask, presence, malignant, coarse_logits=coarse)
    assert "coarse" in parts2 and float(total2) > float(total) - 1e-6


def test_half_resolution_mask_logits_are_scored_at_input_size() -> None:
    torch.manual_seed(1)
    half = torch.randn(2, 1, 8, 8)
    mask = (torch.rand(2, 1, 16, 16) > 0.6).float()
    logits, presence, malignant = torch.randn(2, 2), torch.ones(2), torch.tensor([1.0, 0.0])
    _, parts = multitask_loss(half, logits, mask, presence, malignant)
    full = torch.nn.functional.interpolate(half, size=(16, 16), mode="bilinear", align_corners=False)
    assert parts["dice"] == pytest.approx(float(dice_loss(full, mask)), rel=1e-6)


def test_pixel_bce_option_adds_the_weighted_per_pixel_bce() -> None:
    torch.manual_seed(2)
    mask_logits, mask = torch.randn(3, 1, 16, 16), (torch.rand(3, 1, 16, 16) > 0.5).float()
    logits, presence, malignant = torch.randn(3, 2), torch.ones(3), torch.tensor([1.0, 0.0, 1.0])
    base, parts = multitask_loss(mask_logits, logits, mask, presence, malignant)
    assert "pixel_bce" not in parts  # off by default: the paper's loss
    total, parts2 = multitask_loss(mask_logits, logits, mask, presence, malignant, pixel_bce=0.5)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(mask_logits, mask)
    assert parts2["pixel_bce"] == pytest.approx(float(expected), rel=1e-6)
    assert float(total) == pytest.approx(float(base) + 0.5 * float(expected), rel=1e-5)


def test_multitask_loss_terms_by_hand() -> None:
    """Every term worked out from its definition, with log(1 + e^x) = softplus(x):
    * malignancy, lesion images only (0 and 1), Wp = 3: image 0 (y=1, z=0.5): 3·softplus(−0.5) =
      1.42223; image 1 (y=0, z=−1): −1 + softplus(1) = 0.31326; mean 0.86775;
    * presence, every image, Wp = 1: softplus(−2) = 0.12693, softplus(−1) = 0.31326, and for y=0,
      z=−3: −3 + softplus(3) = 0.04859; mean 0.16293;
    * Dice over the whole batch: 1 − (2·Σpt + 1) / (Σp + Σt + 1) with p = σ(mask logits);
    * HGM-Net's coarse Dice: against the mask max-pooled to the coarse grid, weight 0.5."""
    import math

    def softplus(x: float) -> float:
        return math.log1p(math.exp(x))

    class_logits = torch.tensor([[2.0, 0.5], [1.0, -1.0], [-3.0, 4.0]])
    presence, malignant = torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])
    mask = torch.zeros(3, 1, 4, 4)
    mask[0, 0, 1, 1] = 1.0  # one lesion pixel, in the top-left quadrant
    mask_logits = torch.full((3, 1, 4, 4), -2.0)
    mask_logits[0, 0, :2, :2] = 3.0
    coarse = torch.tensor([[[[1.0, -1.0], [-1.0, -1.0]]]]).repeat(3, 1, 1, 1)
    total, parts = multitask_loss(mask_logits, class_logits, mask, presence, malignant, pos_weight=3.0,
                                  clf_weight=1.5, coarse_logits=coarse)
    l_mal = (3 * softplus(-0.5) + (-1 + softplus(1.0))) / 2
    l_pres = (softplus(-2.0) + softplus(-1.0) + (-3 + softplus(3.0))) / 3
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    p = [sig(3.0)] * 4 + [sig(-2.0)] * 12 + [sig(-2.0)] * 32  # image 0's top-left 2x2, then the rest
    l_dice = 1 - (2 * sig(3.0) + 1) / (sum(p) + 1 + 1)  # the one lesion pixel lies under a sig(3) pixel
    # coarse target: image 0's quadrant max-pools to 1 (avg-pooling would give 0.25), the rest 0
    pc = [sig(1.0), sig(-1.0), sig(-1.0), sig(-1.0)] * 3
    l_coarse = 1 - (2 * sig(1.0) + 1) / (sum(pc) + 1 + 1)
    assert parts["mal"] == pytest.approx(l_mal, rel=1e-5) and parts["presence"] == pytest.approx(l_pres, rel=1e-5)
    assert parts["dice"] == pytest.approx(l_dice, rel=1e-5) and parts["coarse"] == pytest.approx(l_coarse, rel=1e-5)
    assert float(total) == pytest.approx(1.5 * (l_mal + l_pres) + l_dice + 0.5 * l_coarse, rel=1e-5)


def test_per_image_dice_weighs_each_lesion_alike() -> None:
    """A large lesion found and a small one missed: over the batch the miss hardly counts (the large
    lesion's pixels dominate); per image it is half the loss. Lesion-free images are left out."""
    mask = torch.zeros(3, 1, 32, 32)
    mask[0, 0, 4:28, 4:28] = 1  # 576 pixels, found
    mask[1, 0, 10:13, 10:13] = 1  # 9 pixels, missed
    logits = torch.full_like(mask, -50.0)
    logits[0, 0, 4:28, 4:28] = 50.0
    assert float(dice_loss(logits, mask)) < 0.01
    assert float(per_image_dice_loss(logits, mask)) == pytest.approx(0.5, abs=0.06)
    assert float(per_image_dice_loss(logits[2:], mask[2:])) == 0.0  # no lesion in the batch


def test_image_dice_mode_is_half_batch_half_per_image() -> None:
    torch.manual_seed(3)
    mask_logits, mask = torch.randn(4, 1, 16, 16), (torch.rand(4, 1, 16, 16) > 0.7).float()
    mask[3] = 0  # a lesion-free image
    logits, presence, malignant = torch.randn(4, 2), torch.tensor([1.0, 1.0, 1.0, 0.0]), torch.zeros(4)
    _, parts = multitask_loss(mask_logits, logits, mask, presence, malignant, dice="image")
    expected = 0.5 * float(dice_loss(mask_logits, mask)) + 0.5 * float(per_image_dice_loss(mask_logits, mask))
    assert parts["dice"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="dice 'pixel' is not one of batch, image"):
        multitask_loss(mask_logits, logits, mask, presence, malignant, dice="pixel")


def test_distillation_is_lowest_and_flat_where_the_student_matches_the_teacher() -> None:
    """The BCE against the teacher's probabilities: minimal (zero gradient) at the teacher's logits, by
    hand for one image, malignancy only on lesion images, and the student's finer mask is resized to
    the teacher's resolution."""
    g = torch.Generator().manual_seed(0)
    t_mask, t_class = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 2, generator=g)
    presence = torch.tensor([1.0, 0.0])
    s_mask, s_class = t_mask.clone().requires_grad_(True), t_class.clone().requires_grad_(True)
    at_teacher, parts = distillation_loss(s_mask, s_class, t_mask, t_class, presence)
    at_teacher.backward()
    assert float(s_mask.grad.abs().max()) < 1e-6 and float(s_class.grad.abs().max()) < 1e-6
    off, _ = distillation_loss(t_mask + 1.0, t_class - 1.0, t_mask, t_class, presence)
    assert float(off) > float(at_teacher.detach())
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    p = torch.sigmoid(t_class)
    assert parts["kd_presence"] == pytest.approx(float(bce(t_class[:, 0], p[:, 0])), rel=1e-5)
    assert parts["kd_mal"] == pytest.approx(float(bce(t_class[:1, 1], p[:1, 1])), rel=1e-5)  # lesion image only
    fine, _ = distillation_loss(torch.zeros(2, 1, 8, 8), t_class, t_mask, t_class, torch.zeros(2))
    assert torch.isfinite(fine)
