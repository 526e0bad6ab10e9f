"""The training loop: the epoch order (a plain permutation by default, BUSI-weighted draws on request)
and the weight EMA."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="training tests need the train extra (torch)")

import torch  # noqa: E402

from models.training.data import CachedSplit  # noqa: E402
from models.training.folded import fold_batch_norms  # noqa: E402
from models.training.networks import create_model  # noqa: E402
from models.training.train import epoch_order, parse_args, set_train_mode  # noqa: E402


def _split(n_busi: int, n_bra: int) -> CachedSplit:
    n = n_busi + n_bra
    return CachedSplit(images=np.zeros((n, 4, 4), np.uint8), masks=np.zeros((n, 4, 4), np.uint8),
                       labels=np.ones(n, np.int64), sources=np.array(["busi"] * n_busi + ["busbra"] * n_bra),
                       names=np.array([str(i) for i in range(n)]))


def test_default_order_is_a_permutation() -> None:
    order = epoch_order(_split(30, 70), 1.0, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(100))


def test_busi_weight_sets_the_expected_share_of_busi_draws() -> None:
    split = _split(467, 1499)  # the protocol's training split
    rng = np.random.default_rng(0)
    draws = np.concatenate([epoch_order(split, 2.5, rng) for _ in range(20)])
    assert len(draws) == 20 * len(split)  # an epoch keeps its length
    share = float(np.mean(split.sources[draws] == "busi"))
    expected = 2.5 * 467 / (2.5 * 467 + 1499)  # 0.438, against 0.238 unweighted
    assert share == pytest.approx(expected, abs=0.01)


def test_busi_weight_defaults_to_one() -> None:
    assert parse_args(["--out", "x"]).busi_weight == 1.0


def test_ema_update_moves_weights_by_one_minus_decay_and_copies_batch_norm_statistics() -> None:
    import torch

    from models.training.train import ema_update

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    ema = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    before = [p.detach().clone() for p in ema.parameters()]
    model[1].running_mean.fill_(0.25)
    ema_update(ema, model, 0.9)
    for p_ema, p_old, p in zip(ema.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(p_ema, 0.9 * p_old + 0.1 * p.detach())
    torch.testing.assert_close(ema[1].running_mean, torch.full((2,), 0.25))


def test_accuracy_control_metric_is_defined_for_single_images() -> None:
    """NNCF ranks layers on single images: AUC and a normal image's Dice were NaN there."""
    import math

    from models.training.export import combined_score

    both = combined_score([0.8, 0.6], [2.0, -1.0], [True, False])
    assert both == pytest.approx(0.7 + 1.0)  # mean Dice + a perfect AUC
    one_malignant = combined_score([0.5], [3.0], [True])
    assert not math.isnan(one_malignant) and one_malignant == pytest.approx(0.5 + 1 / (1 + math.exp(-3.0)))
    assert combined_score([], [], []) == 2.0  # a normal image: nothing to segment or grade
    assert combined_score([0.5], [3.0], [False]) < combined_score([0.5], [-3.0], [False])


def test_a_wrong_data_folder_or_model_name_is_one_line_and_makes_nothing(tmp_path: Path) -> None:
    """``--data`` pointing nowhere was a DataError traceback after ``--out`` had been created; a
    misspelt ``--model`` a ValueError traceback after the data had been loaded."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = tmp_path / "run"
    for extra, expected, code in (
        (["--data", str(tmp_path / "nowhere")], "error: cannot read folds CSV", 1),
        (["--model", "emtnet"], "invalid choice: 'emtnet' (choose from 'emt_net', 'hgm_net')", 2),
    ):
        done = subprocess.run([sys.executable, "-m", "models.training.train", "--out", str(out), *extra],
                              capture_output=True, text=True, env=env, cwd=repo, timeout=120)
        assert done.returncode == code, done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr
        assert not out.exists()


def _folded_mask(freeze_bn: bool, train_only: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """A folded emt_net's mask logits in eval mode and in the train mode :func:`set_train_mode` sets."""
    torch.manual_seed(0)
    model = create_model("emt_net", pretrained=False)
    with torch.no_grad():
        model.eval()
        fold_batch_norms(model)
        x = torch.randn(2, 1, 64, 64)
        reference = model(x)[0]
        set_train_mode(model, train_only, freeze_bn)
        return reference, model(x)[0]


def test_freeze_bn_trains_a_folded_network_as_the_function_it_is() -> None:
    reference, trained = _folded_mask(freeze_bn=True)
    torch.testing.assert_close(trained, reference)  # the mask path has no dropout: the same function
    reference, plain = _folded_mask(freeze_bn=False)  # batch statistics renormalise the folded features
    assert (plain - reference).abs().max() > 0.1


def test_train_only_leaves_the_other_modules_in_eval() -> None:
    model = create_model("emt_net", pretrained=False)
    set_train_mode(model, "decoder", freeze_bn=False)
    assert model.decoder.training
    assert not model.encoder.training and not model.classifier.training
    set_train_mode(model, "", freeze_bn=True)
    assert model.classifier.drop.training  # dropout still trains
    assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_distill_needs_a_teacher_and_a_teacher_is_frozen(tmp_path: Path) -> None:
    """``--distill`` without ``--teacher`` stops with a message; a teacher is the checkpoint's network in
    eval mode, with no parameter that trains."""
    from models.training.train import load_teacher

    with pytest.raises(SystemExit, match="--distill needs --teacher"):
        load_teacher(None)
    model = create_model("emt_net", encoder="efficientnet_lite0_compact", pretrained=False)
    path = tmp_path / "t.pt"
    torch.save({"model": "emt_net", "encoder": "efficientnet_lite0_compact", "mask_stride": 2,
                "state_dict": model.state_dict()}, path)
    teacher = load_teacher(str(path))
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert parse_args(["--out", "x"]).distill == 0.0


def test_full_resolution_crops_miss_the_lesion_and_are_scaled_down_not_up(tmp_path: Path) -> None:
    """A 300×400 image, gray (100) with a fine checkerboard of 90/110 and a bright (250) lesion: each
    crop is resized down to 64 px with INTER_AREA (a 100+ px square: no upsampling) and holds no lesion
    pixel; normal images give none; the same image gives the same crops (drawn from its name)."""
    import cv2

    from edge_bus.datasets import LabeledImage
    from models.training.data import full_resolution_crops

    img = np.where((np.indices((300, 400)).sum(0) % 2) == 0, 90, 110).astype(np.uint8)
    truth = np.zeros((300, 400), np.uint8)
    cv2.circle(truth, (300, 80), 30, 255, -1)
    img[truth > 0] = 250
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "a_mask.png"), truth)
    lesion = LabeledImage(tmp_path / "a.png", (tmp_path / "a_mask.png",), "benign", 2, "hand")
    normal = LabeledImage(tmp_path / "a.png", (), "normal", 2, "hand")
    crops = full_resolution_crops([lesion, normal], per_image=4, out=64)
    assert crops.shape == (4, 64, 64) and crops.dtype == np.uint8
    assert crops.max() < 200  # no lesion pixel
    assert np.abs(crops.astype(int) - 100).max() <= 2  # the checkerboard averaged by INTER_AREA, not kept
    np.testing.assert_array_equal(full_resolution_crops([lesion], per_image=4, out=64), crops)


def test_with_a_crop_pool_the_negatives_come_from_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--crop-source full``: each negative is a crop of the pool (here all 77), never one cut from
    the cached image; without a pool they are cut from it as before."""
    import models.training.train as train_mod

    split = CachedSplit(images=np.full((3, 32, 32), 200, np.uint8), masks=np.zeros((3, 32, 32), np.uint8),
                        labels=np.array([1, 2, 1]), sources=np.array(["busi"] * 3), names=np.array(["0", "1", "2"]))
    pool = np.full((5, 32, 32), 77, np.uint8)

    def refuse(*_a: object, **_k: object) -> np.ndarray:
        raise AssertionError("a negative was cut from the cached image")

    monkeypatch.setattr(train_mod, "lesion_free_crop", refuse)
    x, mask, pres, mal = train_mod.make_batch(split, [0, 1], [0, 2], np.random.default_rng(0), 16, pool)
    assert x.shape[0] == 4 and pres.tolist() == [1.0, 1.0, 0.0, 0.0] and mal.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert float(mask[2:].sum()) == 0.0
    with pytest.raises(AssertionError, match="cut from the cached image"):
        train_mod.make_batch(split, [0], [0], np.random.default_rng(0), 16)
    assert parse_args(["--out", "x"]).crop_source == "cache"  # the shipped models' negatives by default


def test_init_from_another_encoder_is_refused_not_half_loaded(tmp_path: Path) -> None:
    """A compact-encoder checkpoint given to a run that builds the full encoder had its encoder tensors
    dropped as "new" without a word (the Wp sweep fine-tuned an ImageNet encoder so)."""
    from models.training.train import TrainingData, fit

    init = tmp_path / "compact.pt"
    compact = create_model("emt_net", encoder="efficientnet_lite0_compact", pretrained=False)
    torch.save({"model": "emt_net", "encoder": "efficientnet_lite0_compact", "state_dict": compact.state_dict()},
               init)
    args = parse_args(["--init", str(init), "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit, match="has the efficientnet_lite0_compact encoder; this run builds "
                                         "efficientnet_lite0"):
        fit(args, TrainingData(_split(4, 4), {}))


def test_the_manifests_loss_text_names_every_term_the_checkpoint_used() -> None:
    """It said "1.5 * ..." whatever weight ran, and left out the distillation and Stage-1 terms."""
    from models.training.export import loss_text

    shipped = loss_text({"model": "emt_net", "dice": "image", "wclf": 1.5, "distill": 1.0})
    assert shipped.startswith("1.5 * (WBCE(malignancy, Wp) + BCE(presence))") and "1 * BCE(the student's" in shipped
    assert loss_text({"model": "emt_net", "dice": "batch", "wclf": 2.0}).startswith("2 * (WBCE")
    assert loss_text({"model": "emt_net", "dice": "batch"}).startswith("1.5 * ")  # saved before wclf was recorded
    hgm = loss_text({"model": "hgm_net", "dice": "image", "pixel_bce": 0.5})
    assert "0.5 * BCE(mask pixels)" in hgm and "Dice(Stage 1's coarse map" in hgm and "student" not in hgm
