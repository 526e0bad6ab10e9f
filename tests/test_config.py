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


def test_the_documented_config_example_runs_as_written() -> None:
    """examples/stream.toml (README and --config's help point to it) holds every setting. The example
    once set a ROI that did not fit the demo clip it also set, so it failed as written; and it left
    out the capture_* keys."""
    from dataclasses import fields

    from edge_bus.preprocess import check_roi_fits

    path = Path(__file__).resolve().parents[1] / "examples" / "stream.toml"
    settings = load_toml(path)
    # every setting is shown; the scan area, the model's lesion threshold and the board commented out
    assert set(settings) | {"roi", "lesion_threshold", "bridge"} == {f.name for f in fields(StreamConfig)}
    text = path.read_text()
    assert all(f"# {key} = " in text for key in ("roi", "lesion_threshold", "url"))
    cfg = build_config(path)
    assert cfg.source == "demo" and cfg.bridge is None and cfg.out == Path("runs/example")
    roi = ROI.parse(text.split('# roi = "')[1].split('"')[0])
    check_roi_fits(roi, 320, 320)  # the demo clip's frame


def test_config_files_that_are_not_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder: give a .toml file"):
        load_toml(tmp_path)
    with pytest.raises(ConfigError, match="File name too long"):
        load_toml(tmp_path / ("a" * 300 + ".toml"))
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 * 1024 * 1024))
    with pytest.raises(ConfigError, match="is over 1024 KB: it is not a config file"):
        load_toml(big)  # /dev/zero was read until memory ran out
    bom = tmp_path / "notepad.toml"
    bom.write_bytes("\ufeff[source]\nmax_frames = 5\n".encode())
    assert load_toml(bom) == {"max_frames": 5}
    nul = tmp_path / "nul.toml"
    nul.write_text('[output]\nout = "a\\u0000b"\n')
    with pytest.raises(ConfigError, match="NUL character"):
        build_config(nul)  # was a ValueError traceback when the run made the folder


def test_paths_in_a_config_expand_home_and_bridge_none_turns_off_the_files_board(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "c.toml"
    path.write_text('[output]\nout = "~/runs/x"\n[bridge]\nurl = "sim://"\n')
    cfg = build_config(path)
    assert cfg.out == tmp_path / "runs" / "x" and cfg.bridge == "sim://"  # not a folder named "~"
    assert build_config(path, bridge="none").bridge is None and build_config(path, bridge="None").bridge is None


def test_an_error_from_a_files_setting_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[source]\nmax_frames = -1\n")
    with pytest.raises(ConfigError, match=r"c\.toml: max-frames must be >= 0"):
        build_config(path)
    assert build_config(path, max_frames=10).max_frames == 10  # the flag overrides it: no error
    with pytest.raises(ConfigError, match=r"^requests must be 0 to 64") as err:
        build_config(path, max_frames=10, requests=99)  # the flag's own error does not blame the file
    assert "c.toml" not in str(err.value)

