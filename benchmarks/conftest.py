"""Shared fixtures for the latency benchmarks (pytest-benchmark) and their regression gates.

``--bench-profile short`` (the default, for CI: a couple of minutes) or ``full``. Benchmarks
that need the real cine clips in ``../shared/data`` skip when it is absent and fail under
``CI=true``. The machine's hardware facts go into the benchmark JSON's ``machine_info`` and every
gate verdict into its ``edge_bus_gates`` list (see benchmarks/README.md).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_bus.bench_baseline import machine_class, matching_baseline
from edge_bus.bench_engines import open_engines, preprocess_all, sample_frames
from edge_bus.bench_gates import Gate
from edge_bus.engines import Engine
from edge_bus.telemetry.hardware import hardware_facts, openvino_devices
from edge_bus.zoo import Manifest, resolve_model

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass(frozen=True)
class Profile:
    """How much to measure. ``*_rounds``: pytest-benchmark rounds; ``*_seconds``: time per engine
    or stage in the interleaved gate measurements; ``clip_frames`` 0 = whole clip;
    ``pipeline_repeats``: pipeline runs alternated with engine-only runs for the pipeline gate;
    ``app_seconds``: length of each OpenVINO ``benchmark_app`` run alternated with them."""

    name: str
    engine_rounds: int
    stage_rounds: int
    gate_seconds: float
    stage_seconds: float
    clips: int
    clip_frames: int
    pipeline_frames: int
    pipeline_repeats: int
    realtime_frames: int
    app_seconds: float


PROFILES = {
    "short": Profile(
        "short",
        engine_rounds=20,
        stage_rounds=100,
        gate_seconds=1.5,
        stage_seconds=0.4,
        clips=1,
        clip_frames=90,
        # 150 frames (~1 s a run) read the pipeline/engine ratio ~5% low, filling and draining weigh there
        pipeline_frames=300,
        pipeline_repeats=3,
        realtime_frames=90,
        app_seconds=3.0,
    ),
    "full": Profile(
        "full",
        engine_rounds=200,
        stage_rounds=1000,
        gate_seconds=6.0,
        stage_seconds=2.0,
        clips=4,
        clip_frames=0,
        pipeline_frames=300,
        pipeline_repeats=3,
        realtime_frames=300,
        app_seconds=10.0,
    ),
}

_GATES = pytest.StashKey[list[Gate]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-profile",
        choices=sorted(PROFILES),
        default="short",
        help="edge-bus benchmarks: short (CI, 65-100 s on 2 cores) or full",
    )


_BASELINE_NOTE = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark's own, which loads the run to compare with
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_GATES] = []
    if config.getoption("benchmark_compare", None) is not True:  # no comparison, or a run named by the caller
        return
    storage = str(config.getoption("benchmark_storage"))
    folder = Path(storage.removeprefix("file://"))
    current = machine_class(hardware_facts())
    found = matching_baseline(folder, current) if storage.startswith("file://") or "://" not in storage else None
    if found is None:
        config.option.benchmark_compare = []  # off: absolute times from another CPU compare nothing
        config.option.benchmark_compare_fail = None
        config.stash[_BASELINE_NOTE] = (
            f"no baseline in {folder} was recorded on this machine class ({current}): the comparison with it is "
            "skipped (the ratio gates still apply); `make bench-baseline` on an idle machine records one")
        return
    config.option.benchmark_compare = str(found.resolve())
    config.stash[_BASELINE_NOTE] = f"compared with {found.name}, recorded on this machine class ({current})"
    # the same class, another boot: the kernel release and clock readings in machine_info differ, which
    # pytest-benchmark warns of (and warnings are errors here)
    warnings.filterwarnings("ignore", message="Benchmark machine_info is different")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "clip_index" in metafunc.fixturenames:
        n = PROFILES[metafunc.config.getoption("--bench-profile")].clips
        metafunc.parametrize("clip_index", range(n), ids=[f"clip{i}" for i in range(n)])


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info["edge_bus"] = {**hardware_facts(), "openvino_devices": openvino_devices()}


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One screen of gates at the end of the run: PASS / FAIL (required) / MISS (target) / N/A,
    with value and threshold, so a passing run shows its margins too (a gate that fails also fails
    its test, with the same message)."""
    note = config.stash.get(_BASELINE_NOTE, "")
    if note:
        terminalreporter.section("edge-bus baseline")
        terminalreporter.write_line(note)
    gates: list[Gate] = config.stash.get(_GATES, [])
    if not gates:
        return
    terminalreporter.section("edge-bus gates (required) and targets (reported)")
    for g in gates:
        terminalreporter.write_line(f"{g.verdict:4}  {g.name:30} {g.shown(g.value):>9}  vs {g.shown(g.threshold):>9}"
                                    f"  {g.message}")


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    output_json["edge_bus_profile"] = config.getoption("--bench-profile")
    output_json["edge_bus_gates"] = [g.to_json() for g in config.stash.get(_GATES, [])]


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> Profile:
    return PROFILES[pytestconfig.getoption("--bench-profile")]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skipped when absent, a failure when ``CI=true``."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI=true but the shared data folder {SHARED_DATA} is missing — CI must provide ../shared/data")
    pytest.skip(f"needs the real data in {SHARED_DATA} (absent on this machine)")


@pytest.fixture(scope="session")
def cine_clips(shared_data: Path) -> list[Path]:
    clips = sorted((shared_data / "cine").glob("*.avi"))
    if not clips:
        pytest.fail(f"no cine clips (*.avi) in {shared_data / 'cine'}")
    return clips


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    """The shipped default model (EDGE_BUS_MODELS may point at another zoo)."""
    return resolve_model(None)


@pytest.fixture(scope="session")
def hardware() -> dict[str, object]:
    return dict(hardware_facts())


@pytest.fixture(scope="session")
def demo_tensors(manifest: Manifest) -> list[np.ndarray]:
    """Model inputs from the bundled demo clip: engine benchmarks run everywhere."""
    return preprocess_all(manifest, sample_frames("demo", 30))


@pytest.fixture(scope="session")
def engines(manifest: Manifest) -> Iterator[dict[str, Engine]]:
    """All five engine variants, compiled once (LATENCY hint, one request)."""
    opened, errors = open_engines(manifest)
    if errors:
        for engine in opened.values():
            engine.close()
        pytest.fail("engines did not load: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    yield opened
    for engine in opened.values():
        engine.close()


@pytest.fixture
def gate_log(pytestconfig: pytest.Config) -> list[Gate]:
    """Append each gate's verdict here; it ends up in the --benchmark-json file."""
    return pytestconfig.stash[_GATES]


def _record(benchmark: Any, **extra: object) -> None:
    benchmark.extra_info.update(extra)
    stats = getattr(benchmark, "stats", None)
    data = getattr(getattr(stats, "stats", None), "data", None)
    if data and len(data) > 1:  # per-call stats; None with --benchmark-disable (ran once, untimed)
        ms = np.asarray(data, dtype=np.float64) * 1e3
        benchmark.extra_info["p99_ms"] = round(float(np.percentile(ms, 99)), 3)
        benchmark.extra_info["median_ms"] = round(float(np.median(ms)), 3)
        benchmark.extra_info.setdefault("fps", round(1000.0 / float(ms.mean()), 2))


@pytest.fixture
def record() -> Callable[..., None]:
    """``record(benchmark, **extra)``: extra_info plus the p99 / median / FPS of the timed rounds."""
    return _record
