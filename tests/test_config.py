"""Config: defaults ← TOML ← CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_bus.config import StreamConfig, build_config, load_toml
from edge_bus.errors import ConfigError
from edge_bus.types import ROI


def test_toml_then_flags(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[source]\nsource = "clip.avi"\nroi = "1,2,30,40"\n[engine]\nprecision = "fp32"\n'
                        '[postprocess]\nsmoothing = 0.2\nlesion_threshold = 0.9\n[output]\nvideo = false\n')
    cfg = build_config(cfg_file, precision=None, smoothing=0.7)
    assert cfg.source == "clip.avi" and cfg.roi == ROI(1, 2, 30, 40) and cfg.precision == "fp32"
    assert cfg.smoothing == 0.7 and cfg.video is False and cfg.lesion_threshold == 0.9
    assert build_config(cfg_file, lesion_threshold=0.95).lesion_threshold == 0.95


@pytest.mark.parametrize(("text", "match"), [
    ("[engine]\nprecision = 'int4'\n", "precision 'int4'"),
    ("[engine]\nturbo = true\n", "unknown setting engine.turbo"),
    ("[source]\nroi = '1,2'\n", "ROI must be"),
    ("not toml = = 1", "cannot read config"),
    ("[source]\nloop = 'false'\n", r"source\.loop = 'false' must be true or false"),
    ("[output]\nvideo = 'false'\n", r"output\.video = 'false' must be true or false"),
    ("[source]\nmax_frames = '10'\n", r"source\.max_frames = '10' must be a whole number"),
    ("[source]\nmax_frames = 10.5\n", r"source\.max_frames = 10\.5 must be a whole number"),
    ("[postprocess]\nsmoothing = '0.5'\n", r"postprocess\.smoothing = '0\.5' must be a number"),
    ("[postprocess]\nlesion_threshold = 1.0\n", "lesion threshold must be between 0 and 1"),
    ("[postprocess]\nlesion_threshold = '0.9'\n", r"postprocess\.lesion_threshold = '0\.9' must be a number"),
    ("[source]\nsource = 7\n", r"source\.source = 7 must be a string"),
    ("[engine]\nmodel = 3\n", r"engine\.model = 3 must be a string"),
    ("[engine]\nrequests = -3\n", "requests must be 0 to 64"),
    ("[engine]\nrequests = 9223372036854775807\n", "requests must be 0 to 64"),  # was OpenVINO's error, on the model
    ("[engine]\nmodel = ''\n", "model is empty"),  # ran the default without a word
    ("[output]\nout = ''\n", "out is empty"),  # wrote into the current folder
    ("[bridge]\nurl = ''\n", "bridge is empty"),  # made the run live (frames dropped) with no board
    ("[source]\ncapture_fps = 1e-9\n", "capture fps 1e-09 is not a frame rate"),  # a replay waited 1e9 s a frame
    ("[source]\nroi = '0,0,1,1'\n", "ROI .* 1x1 is too small"),  # the model read one pixel
    ("[engine]\nbatch = 0\n", "batch must be 1 to 16 frames, got 0"),
    ("[engine]\nbatch = 4.0\n", r"engine\.batch = 4\.0 must be a whole number"),
    ("[source]\ncapture_fps = inf\n", "capture fps inf is not a frame rate"),
    ("[source]\ncapture_fps = nan\n", "capture fps nan is not a frame rate"),
    ("[source]\ncapture_fps = 1e300\n", "capture fps 1e\\+300 is not a frame rate"),
    ("[source]\ncapture_width = 100000\ncapture_height = 480\n", "capture size 100000x480 is larger"),
    ("[bridge]\nurl = true\n", r"bridge\.url = True must be a string"),
    ("source = 'demo'\n", r"top-level key 'source' must be a \[section\]"),
])
def test_bad_config_is_a_config_error(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        build_config(f)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(Path("/nonexistent/edge-bus.toml"))


def test_device_names_take_openvinos_spelling_and_unknown_ones_are_config_errors() -> None:
    """``--device cpu`` failed as "OpenVINO cannot use device 'cpu'" (doctor: 4 machine FAILs and
    "reinstall openvino"); a name no OpenVINO device has is the user's typo, exit 2."""
    from edge_bus.config import check_device
    from edge_bus.errors import ConfigError

    assert [check_device(d) for d in ("cpu", " gpu.1", "auto:gpu,cpu", "NPU")] == ["CPU", "GPU.1", "AUTO:GPU,CPU",
                                                                                    "NPU"]
    assert build_config(device="cpu").validate().device == "CPU"
    with pytest.raises(ConfigError, match=r"unknown device 'FOO': OpenVINO devices are CPU, GPU, NPU, AUTO") as err:
        build_config(device="FOO").validate()
    assert err.value.exit_code == 2


def test_the_documented_config_example_runs_as_written(tmp_path: Path) -> None:
    """The example in edge_bus/config.py (README points to it) set a ROI that does not fit the demo
    clip it also set, so it failed as written; and it left out the capture_* keys."""
    import textwrap

    import edge_bus.config as config_module
    from edge_bus.preprocess import check_roi_fits

    doc = config_module.__doc__ or ""
    example = textwrap.dedent(doc[doc.index("    [source]"):])
    path = tmp_path / "edge-bus.toml"
    path.write_text(example)
    settings = load_toml(path)
    from dataclasses import fields

    # every setting is shown; the two left to the data (the scan area, the model's lesion threshold) commented out
    assert set(settings) | {"roi", "lesion_threshold"} == {f.name for f in fields(StreamConfig)}
    cfg = build_config(path)
    assert cfg.source == "demo" and cfg.bridge == "sim://"
    if cfg.roi is not None:
        check_roi_fits(cfg.roi, 320, 320)  # the demo clip's frame
