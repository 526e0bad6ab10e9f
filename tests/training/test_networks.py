"""One contract test class for every architecture, plus the pretrained-weight mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the train extra (torch)")

from models.training.encoders import (  # noqa: E402
    ENCODERS,
    EfficientNetLite0CompactEncoder,
    EfficientNetLite0Encoder,
    create_encoder,
    efficientnet_lite0_weights_path,
    lite0_key_map,
    load_efficientnet_lite0,
)
from models.training.networks import MODELS, OUTPUT_NAMES, create_model, upsample_to  # noqa: E402

# every registered network with every registered encoder (a network or encoder added to a registry is
# covered without editing this list), at the shipped stride-2 mask head; LinkNet's full-resolution
# head (stride 1) with the default encoder only, to keep the heavy ResNet-101 builds to two
ARCHITECTURES = [(name, encoder, 2) for name in MODELS for encoder in ENCODERS] + [
    (name, "efficientnet_lite0", 1) for name in MODELS]


@pytest.mark.parametrize(("name", "encoder", "stride"), ARCHITECTURES,
                         ids=[f"{n}-{e}-s{s}" for n, e, s in ARCHITECTURES])
class TestArchitectureContract:
    """Every network: grayscale [N,1,H,W] in; mask logits [N,1,H/s,W/s] and class logits [N,2] out;
    exports to ONNX."""

    size = 64

    @pytest.fixture
    def model(self, name: str, encoder: str, stride: int) -> torch.nn.Module:
        torch.manual_seed(0)
        return create_model(name, encoder=encoder, pretrained=False, mask_stride=stride).eval()

    def test_output_shapes(self, model: torch.nn.Module, stride: int) -> None:
        with torch.no_grad():
            mask, logits = model(torch.randn(2, 1, self.size, self.size))
        assert mask.shape == (2, 1, self.size // stride, self.size // stride)
        assert logits.shape == (2, 2)
        assert torch.isfinite(mask).all() and torch.isfinite(logits).all()

    def test_backward_reaches_encoder_and_heads(self, model: torch.nn.Module) -> None:
        model.train()
        mask, logits = model(torch.randn(2, 1, self.size, self.size))
        (mask.mean() + logits.sum()).backward()
        first = next(model.encoder.parameters())
        assert first.grad is not None and float(first.grad.abs().sum()) > 0
        assert model.classifier.fc2.weight.grad is not None

    def test_onnx_export_has_named_outputs(self, model: torch.nn.Module, tmp_path: Path) -> None:
        import onnxruntime as ort

        path = tmp_path / "m.onnx"
        x = torch.randn(1, 1, self.size, self.size)
        with torch.no_grad():
            torch.onnx.export(
                model,
                (x,),
                str(path),
                input_names=["image"],
                output_names=list(OUTPUT_NAMES),
                opset_version=17,
                dynamo=False,
            )
            ref_mask, ref_logits = model(x)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [o.name for o in sess.get_outputs()] == list(OUTPUT_NAMES)
        mask, logits = sess.run(None, {"image": x.numpy()})
        np.testing.assert_allclose(mask, ref_mask.numpy(), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(logits, ref_logits.numpy(), rtol=1e-3, atol=1e-3)


def test_registry_errors_list_valid_names() -> None:
    with pytest.raises(ValueError, match="valid models: emt_net, hgm_net"):
        create_model("unet3000")
    with pytest.raises(ValueError, match="valid encoders: efficientnet_lite0, efficientnet_lite0_compact, resnet101"):
        create_model("emt_net", encoder="vgg")
    with pytest.raises(ValueError, match="valid encoders"):
        create_encoder("vgg")
    assert set(MODELS) == {"emt_net", "hgm_net"}


def test_every_pretrained_efficientnet_lite0_tensor_loads() -> None:
    state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    assert len(state) == 296
    enc = EfficientNetLite0Encoder(pretrained=False)
    targets = lite0_key_map(enc)
    assert set(state) - set(targets) == {"_fc.weight", "_fc.bias"}  # only the ImageNet classifier is unused
    assert set(targets) <= set(state)
    unused = load_efficientnet_lite0(enc)
    assert unused == ["_fc.bias", "_fc.weight"]
    for key, dst in targets.items():
        src = state[key]
        if key == "_conv_stem.weight":
            src = src.sum(dim=1, keepdim=True)  # RGB stem folded to grayscale
        assert torch.equal(dst, src.to(dst.dtype)), key


def test_compact_lite0_is_the_full_encoder_cut_after_its_192_channel_stage() -> None:
    """The compact encoder loads the same ImageNet file: every tensor it has equals the upstream one,
    and exactly the 320-channel block, the head convolution and the ImageNet classifier are left out.
    Its stages compute what the full encoder's do, up to the cut."""
    state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    compact = EfficientNetLite0CompactEncoder(pretrained=False)
    unused = load_efficientnet_lite0(compact)
    left_out = ("_fc.", "_blocks.15.", "_conv_head.", "_bn1.")
    assert unused == sorted(k for k in state if k.startswith(left_out))
    assert all(any(k.startswith(prefix) for k in unused) for prefix in left_out)
    for key, dst in lite0_key_map(compact).items():
        src = state[key].sum(dim=1, keepdim=True) if key == "_conv_stem.weight" else state[key]
        assert torch.equal(dst, src.to(dst.dtype)), key
    assert isinstance(compact.head, torch.nn.Identity) and compact.head_channels == compact.out_channels[4] == 192
    full = EfficientNetLite0Encoder(pretrained=True).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        a, b = x, x
        for i, (sf, sc) in enumerate(zip(full.stages, compact.eval().stages, strict=True)):
            a, b = sf(a), sc(b)
            if i < 4:
                assert torch.allclose(a, b), i
        assert b.shape[1] == 192 and a.shape[1] == 320
    emt = lambda e: sum(p.numel() for p in create_model("emt_net", encoder=e, pretrained=False).parameters())  # noqa: E731
    assert emt("efficientnet_lite0_compact") < 0.7 * emt("efficientnet_lite0")


def test_resnet101_has_no_offline_weights() -> None:
    with pytest.raises(ValueError, match="no ResNet-101 weights"):
        create_encoder("resnet101", pretrained=True)


def test_stride2_upsampling_matches_the_runtime_resize() -> None:
    """Training scores half-resolution logits after the same bilinear resize the runtime applies."""
    import cv2

    z = torch.randn(1, 1, 7, 9)
    up = upsample_to(z, (14, 18))[0, 0].numpy()
    ref = cv2.resize(z[0, 0].numpy(), (18, 14), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(up, ref, atol=1e-5)
    assert upsample_to(z, (7, 9)) is z


def test_mask_stride_is_validated() -> None:
    with pytest.raises(ValueError, match="mask_stride must be 1 or 2"):
        create_model("emt_net", pretrained=False, mask_stride=4)


def test_decoder_widths_are_a_parameter_a_checkpoint_records(tmp_path: Path) -> None:
    """emt_net's LinkNet decoder widths (a tried variant: 192, 96, 64, 48): same outputs, more decoder
    parameters; export rebuilds the network from a checkpoint that records them."""
    from models.training.networks import DECODER_WIDTHS, load_checkpoint

    wide = create_model("emt_net", pretrained=False, decoder_widths=(192, 96, 64, 48)).eval()
    narrow = create_model("emt_net", pretrained=False).eval()
    with torch.no_grad():
        mask, logits = wide(torch.randn(1, 1, 64, 64))
    assert mask.shape == (1, 1, 32, 32) and logits.shape == (1, 2)
    count = lambda m: sum(p.numel() for p in m.decoder.parameters())  # noqa: E731
    assert count(wide) > count(narrow) and DECODER_WIDTHS == (128, 64, 48, 32)
    path = tmp_path / "wide.pt"
    torch.save({"model": "emt_net", "encoder": "efficientnet_lite0", "mask_stride": 2,
                "decoder_widths": [192, 96, 64, 48], "state_dict": wide.state_dict()}, path)
    loaded, _ = load_checkpoint(path)
    assert count(loaded) == count(wide)
