"""Golden reference: save/load round trip, comparison maths, and a real (short) demo run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_bus.errors import ModelError
from edge_bus.golden import (
    GOLDEN_FILE,
    GOLDEN_ROLE,
    Golden,
    choose_golden,
    compare_golden,
    default_golden_path,
    golden_paths,
    make_golden,
    model_fingerprint,
)
from edge_bus.golden_cli import main
from edge_bus.types import Prediction
from edge_bus.zoo import resolve_model

SHAPE = (12, 10)


def _pred(label: str, mask: np.ndarray, malignancy: float = 0.3) -> Prediction:
    lesion = label != "normal"
    return Prediction(
        mask=mask,
        probs={"normal": 0.0 if lesion else 1.0, "benign": 0.0, "malignant": 0.0},
        malignancy=malignancy,
        lesion=lesion,
        label=label,
        bbox=None,
        mask_area=float(mask.mean()),
    )


def _box(y0: int, x0: int, h: int, w: int) -> np.ndarray:
    m = np.zeros(SHAPE, dtype=bool)
    m[y0 : y0 + h, x0 : x0 + w] = True
    return m


def _golden(items: list[tuple[int, Prediction]]) -> Golden:
    return Golden.from_predictions(items, {"model": "test"})


@pytest.fixture
def reference() -> Golden:
    empty = np.zeros(SHAPE, dtype=bool)
    return _golden(
        [
            (0, _pred("normal", empty)),
            (1, _pred("benign", _box(2, 2, 4, 4))),
            (2, _pred("malignant", _box(5, 3, 6, 5), 0.8)),
            (3, _pred("normal", empty)),
        ]
    )


def test_save_load_round_trip(tmp_path: Path, reference: Golden) -> None:
    path = reference.save(tmp_path / "sub" / GOLDEN_FILE)
    loaded = Golden.load(path)
    assert loaded.labels == reference.labels and loaded.mask_shape == SHAPE
    assert np.array_equal(loaded.frames, reference.frames) and np.array_equal(loaded.lesion, reference.lesion)
    assert np.array_equal(loaded.malignancy, reference.malignancy)
    for i in range(len(reference)):
        assert np.array_equal(loaded.mask(i), reference.mask(i))
    assert loaded.meta == {"model": "test"}
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_identical_runs_agree_completely(reference: Golden) -> None:
    cmp = compare_golden(reference, reference)
    assert (cmp.frames, cmp.class_agreement, cmp.lesion_agreement, cmp.mean_iou) == (len(reference), 1.0, 1.0, 1.0)
    assert cmp.iou_frames == int(reference.lesion.sum()) and cmp.missing == 0 and cmp.max_malignancy_diff == 0


def test_comparison_counts_labels_and_mask_iou(reference: Golden) -> None:
    moved = _box(3, 2, 4, 4)  # frame 1's box shifted down one row
    items = [
        (int(f), _pred(lab, reference.mask(i), float(reference.malignancy[i])))
        for i, (f, lab) in enumerate(zip(reference.frames, reference.labels, strict=True))
    ]
    items[1] = (1, _pred("benign", moved))
    items[3] = (3, _pred("benign", np.zeros(SHAPE, dtype=bool)))  # a label flip, masks both empty
    cmp = compare_golden(reference, _golden(items))
    a, b = reference.mask(1), moved
    expected_iou_1 = (a & b).sum() / (a | b).sum()
    assert cmp.class_agreement == pytest.approx(3 / 4) and cmp.lesion_agreement == pytest.approx(3 / 4)
    assert cmp.iou_frames == 2  # frames 1 and 2: the only ones where either mask is non-empty
    assert cmp.mean_iou == pytest.approx((expected_iou_1 + 1.0) / 2)


def test_comparison_uses_common_frames_only(reference: Golden) -> None:
    first_two = _golden(
        [
            (int(reference.frames[i]), _pred(reference.labels[i], reference.mask(i), float(reference.malignancy[i])))
            for i in range(2)
        ]
    )
    cmp = compare_golden(reference, first_two)
    assert cmp.frames == 2 and cmp.missing == len(reference) - 2 and cmp.class_agreement == 1.0
    nothing = compare_golden(reference, _golden([(99, _pred("normal", np.zeros(SHAPE, dtype=bool)))]))
    assert nothing.frames == 0 and nothing.class_agreement == 0.0


def test_missing_or_damaged_golden_is_a_one_line_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist .* regenerate"):
        Golden.load(tmp_path / GOLDEN_FILE)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ModelError, match="unreadable") as info:
        Golden.load(bad)
    assert "\n" not in str(info.value)


def test_fingerprint_excludes_the_golden_itself() -> None:
    manifest = resolve_model(None)
    with_golden = replace(
        manifest, files={**manifest.files, GOLDEN_ROLE: GOLDEN_FILE}, sha256={**manifest.sha256, GOLDEN_FILE: "0" * 64}
    )
    assert model_fingerprint(with_golden) == model_fingerprint(manifest)
    goldens = {p.name for p in golden_paths(manifest)}
    assert goldens >= {GOLDEN_FILE, "golden_demo_vnni.npz"}
    assert set(model_fingerprint(manifest)) == set(manifest.files.values()) - goldens


def test_make_golden_from_the_demo_clip_is_reproducible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = 12
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["--out", str(first), "--max-frames", str(frames)]) == 0
    assert main(["--model", "emt_net", "--out", str(second), "--max-frames", str(frames)]) == 0
    assert f"{frames} frames" in capsys.readouterr().out
    golden = Golden.load(first)
    manifest = resolve_model(None)
    assert len(golden) == frames and list(golden.frames) == list(range(frames))
    assert golden.mask_shape == (320, 320)
    assert golden.meta["model_sha256"] == model_fingerprint(manifest) and golden.meta["source"] == "demo"
    assert set(golden.labels) <= set(manifest.classes)
    assert all(golden.mask(i).any() <= bool(golden.lesion[i]) for i in range(frames))  # masks are lesion-gated
    cmp = compare_golden(first, second)
    assert cmp.frames == frames and cmp.class_agreement == 1.0 and cmp.mean_iou == 1.0
    assert json.dumps(golden.meta)  # metadata stays plain JSON


def test_golden_cli_reports_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--model", str(tmp_path / "nope"), "--out", str(tmp_path / "g.npz")])
    err = capsys.readouterr().err
    assert code == ModelError.exit_code and err.startswith("error: ") and err.count("\n") == 1


def test_register_outside_the_model_folder_fails_before_streaming(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It streamed the whole demo clip, wrote the file, then raised a ModelError traceback."""
    out = tmp_path / "elsewhere" / GOLDEN_FILE
    code = main(["--model", "emt_net", "--out", str(out), "--register"])
    err = capsys.readouterr().err
    assert code == ModelError.exit_code and err.count("\n") == 1
    assert "must be inside the model folder" in err and "leave --out out" in err
    assert not out.exists()


def test_a_golden_save_that_fails_leaves_no_temp_file(tmp_path: Path, reference: Golden) -> None:
    from edge_bus.errors import OutputError

    (tmp_path / "g.npz").mkdir()  # a folder in the way
    with pytest.raises(OutputError, match="it is a folder"):
        reference.save(tmp_path / "g.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npz"]


def test_every_shipped_model_ships_a_golden_made_by_it() -> None:
    """`edge-bus doctor --model hgm_net` always failed: its folder had no golden reference."""
    from edge_bus.zoo import list_models

    shipped = list_models()
    assert {m.name for m in shipped} >= {"emt_net", "hgm_net"}
    for manifest in shipped:
        assert manifest.has(GOLDEN_ROLE), f"{manifest.name} lists no golden reference"
        manifest.verify((GOLDEN_ROLE,))
        golden = Golden.load(manifest.path(GOLDEN_ROLE))
        assert golden.meta["model_sha256"] == model_fingerprint(manifest), f"{manifest.name}'s golden is stale"


def test_the_runtime_still_gives_the_shipped_golden_answers(tmp_path: Path) -> None:
    """Without ../shared/data, nothing compared the whole path (source, preprocessing, engine,
    postprocessing) with the answers the shipped golden file recorded: doctor's tests regenerate the
    golden with the code under test. The first 30 demo frames must agree with it."""
    shipped = resolve_model("emt_net")
    now = make_golden("emt_net", tmp_path / "now.npz", max_frames=30)
    cmp = compare_golden(shipped.folder / GOLDEN_FILE, now)
    assert cmp.frames == 30 and cmp.class_agreement >= 0.95 and cmp.mean_iou >= 0.9


def _model_with_references(folder: Path, references: dict[str, str | None], measured_on: str | None = "avx2"):
    """A manifest of the shipped model pointing at ``folder``, whose golden files (name → the kernel
    class in their meta, None for one made before edge-bus recorded it) are tiny stand-ins."""
    manifest = resolve_model(None)
    files = {role: name for role, name in manifest.files.items() if not role.startswith(GOLDEN_ROLE)}
    for name, cls in references.items():
        meta = {"model": "test"} if cls is None else {"model": "test", "kernel_class": cls}
        Golden.from_predictions([(0, _pred("benign", _box(2, 2, 4, 4)))], meta).save(folder / name)
        files[GOLDEN_ROLE if name == GOLDEN_FILE else Path(name).stem] = name
    raw = {**manifest.raw, "measured_on": {"isa": measured_on} if measured_on else None}
    return replace(manifest, folder=folder, files=files, raw=raw)


@pytest.mark.parametrize(
    ("here", "picked", "matched"),
    [("vnni", "golden_demo_vnni.npz", True), ("avx2", GOLDEN_FILE, True),
     ("amx", "golden_demo_vnni.npz", False),  # the nearest, at the cross-class bounds (no AMX CPU here)
     ("GPU", GOLDEN_FILE, False)],
)
def test_choose_golden_takes_the_reference_made_with_this_kernel_class(
    tmp_path: Path, here: str, picked: str, matched: bool
) -> None:
    """doctor compared every CPU with the one golden made on AVX2, and failed healthy VNNI machines."""
    manifest = _model_with_references(tmp_path, {GOLDEN_FILE: "avx2", "golden_demo_vnni.npz": "vnni"})
    choice = choose_golden(manifest, here)
    assert (choice.path.name, choice.matched) == (picked, matched)
    assert choice.made_with == choice.golden.kernel_class == ("vnni" if "vnni" in picked else "avx2")


def test_a_reference_that_records_no_class_is_taken_as_the_manifests(tmp_path: Path) -> None:
    legacy = _model_with_references(tmp_path, {GOLDEN_FILE: None})
    choice = choose_golden(legacy, "vnni")
    assert (choice.made_with, choice.matched) == ("avx2", False)  # measured_on says avx2
    unknown = choose_golden(_model_with_references(tmp_path, {GOLDEN_FILE: None}, measured_on=None), "vnni")
    assert (unknown.made_with, unknown.matched) == (None, True)  # as before: the one reference, strictly


def test_a_damaged_reference_is_a_model_error(tmp_path: Path) -> None:
    manifest = _model_with_references(tmp_path, {GOLDEN_FILE: "avx2", "golden_demo_vnni.npz": "vnni"})
    (tmp_path / "golden_demo_vnni.npz").write_bytes(b"not a zip file")
    with pytest.raises(ModelError, match="golden_demo_vnni.npz is unreadable"):
        choose_golden(manifest, "avx2")


def test_a_new_reference_goes_beside_the_primary_when_made_with_another_class(tmp_path: Path) -> None:
    empty = _model_with_references(tmp_path, {})
    assert default_golden_path(empty, "vnni") == tmp_path / GOLDEN_FILE  # the first one is the primary
    manifest = _model_with_references(tmp_path, {GOLDEN_FILE: "avx2"})
    assert default_golden_path(manifest, "avx2") == tmp_path / GOLDEN_FILE  # remade in place
    assert default_golden_path(manifest, "vnni") == tmp_path / "golden_demo_vnni.npz"


def test_register_lists_a_class_reference_under_its_own_role(tmp_path: Path) -> None:
    from edge_bus.golden import register_golden
    from edge_bus.zoo import load_manifest

    shipped = resolve_model(None)
    for role, name in shipped.files.items():
        if not role.startswith(GOLDEN_ROLE):
            (tmp_path / name).symlink_to(shipped.folder / name)
    (tmp_path / "manifest.json").write_text(json.dumps({**shipped.raw, "files": {
        r: n for r, n in shipped.files.items() if not r.startswith(GOLDEN_ROLE)}}))
    for name in (GOLDEN_FILE, "golden_demo_vnni.npz"):
        _golden([(0, _pred("normal", np.zeros(SHAPE, dtype=bool)))]).save(tmp_path / name)
        register_golden(load_manifest(tmp_path), tmp_path / name)
    manifest = load_manifest(tmp_path)
    assert manifest.files[GOLDEN_ROLE] == GOLDEN_FILE and manifest.files["golden_demo_vnni"] == "golden_demo_vnni.npz"
    manifest.verify((GOLDEN_ROLE, "golden_demo_vnni"))
    assert [p.name for p in golden_paths(manifest)] == [GOLDEN_FILE, "golden_demo_vnni.npz"]


def test_every_shipped_reference_records_its_class_and_the_two_classes_differ() -> None:
    """The shipped models carry an AVX2 and a VNNI reference; on this clip the two kernel classes
    disagree by more than doctor's strict bounds allow, which is why one golden did not do."""
    from edge_bus.doctor import CLASS_AGREEMENT_MIN, MASK_IOU_MIN
    from edge_bus.zoo import list_models

    for manifest in list_models():
        refs = {Golden.load(p).kernel_class: Golden.load(p) for p in golden_paths(manifest)}
        assert set(refs) == {"avx2", "vnni"}, manifest.name
        assert choose_golden(manifest, "avx2").path.name == GOLDEN_FILE
        assert choose_golden(manifest, "vnni").path.name == "golden_demo_vnni.npz"
    emt = {Golden.load(p).kernel_class: Golden.load(p) for p in golden_paths(resolve_model("emt_net"))}
    cmp = compare_golden(emt["avx2"], emt["vnni"])
    assert cmp.class_agreement < CLASS_AGREEMENT_MIN and cmp.mean_iou < MASK_IOU_MIN


def test_every_class_goes_with_register_and_without_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--every-class"], ["--every-class", "--register", "--out", str(tmp_path / "g.npz")]):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2 and "--every-class names its files itself" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_auto_on_a_machine_with_only_the_cpu_is_the_cpus_class(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_bus.golden as golden

    vnni = {"avx2": True, "avx512f": True, "avx512_vnni": True}
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(golden, "openvino_devices", lambda: ["CPU"])
    assert golden.reference_class("AUTO", vnni) == golden.reference_class("cpu", vnni) == "vnni"
    assert golden.reference_class("GPU", vnni) == "GPU"
    monkeypatch.setattr(golden, "openvino_devices", lambda: ["CPU", "GPU"])
    assert golden.reference_class("AUTO", vnni) == "AUTO"  # it may run on either


def test_golden_cli_records_on_the_device_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """doctor told a GPU user to record a reference of the GPU's own, with a command that ran the CPU."""
    import edge_bus.golden as golden

    devices: list[str] = []

    def fake_demo(model: str | None, out_dir: Path, max_frames: int = 0, device: str = "CPU") -> tuple[Golden, None]:
        devices.append(device)
        return _golden([(0, _pred("normal", np.zeros(SHAPE, dtype=bool)))]), None

    monkeypatch.setattr(golden, "run_demo", fake_demo)
    assert main(["--out", str(tmp_path / "g.npz"), "--device", "GPU"]) == 0
    assert devices == ["GPU"] and "frames, 0 with a lesion, precision None, on GPU" in capsys.readouterr().out


def test_a_capped_child_that_fails_or_hangs_is_a_one_line_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    import edge_bus.golden_cli as cli

    def failing(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        assert kw["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and kw["timeout"] == cli._CHILD_TIMEOUT_S  # type: ignore[index]
        return subprocess.CompletedProcess(cmd, 4, "", "some warning\nerror: no space left on device\n")

    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(ModelError, match=r"^recording the avx2 reference failed: no space left on device$"):
        cli._record_capped("m", "avx2", 0)

    def hanging(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(cmd, 900)

    monkeypatch.setattr(subprocess, "run", hanging)
    with pytest.raises(ModelError, match="did not finish in 900 s"):
        cli._record_capped("m", "avx2", 0)
