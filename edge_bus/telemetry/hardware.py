"""Facts about the machine a run happened on (for latency.json and the HTML report).

Everything is best effort: a fact that can't be found is ``None``, never an exception.
``/proc`` reads and the OpenVINO device query are cached (one read per process).
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TypedDict

__all__ = [
    "ISA_FLAGS",
    "HardwareFacts",
    "cpu_flags",
    "free_disk_gb",
    "hardware_facts",
    "isa_class",
    "kernel_class",
    "measured_on",
    "openvino_devices",
]

# the /proc/cpuinfo flag names edge-bus cares about (INT8/BF16 speed depends on them)
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


def isa_class(isa: Mapping[str, object]) -> str:
    """``"amx"``, ``"vnni"`` or ``"avx2"``/``"unknown"`` from ``hardware_facts()["isa"]``: the class of
    INT8 kernels OpenVINO runs (their speed, and their results to within ~0.01, differ by class)."""
    if any(isa.get(k) for k in ("amx_int8", "amx_tile", "amx_bf16")):
        return "amx"
    if isa.get("avx512_vnni") or isa.get("avx_vnni"):
        return "vnni"
    if isa.get("avx2"):
        return "avx2"
    return "unknown"


class HardwareFacts(TypedDict):
    """What :func:`hardware_facts` returns (a plain dict at runtime; JSON-ready)."""

    cpu_model: str | None
    cores_logical: int | None
    cores_physical: int | None
    cores_available: int | None
    isa: dict[str, bool | None]
    ram_gb: float | None
    os: str
    python: str
    openvino: str | None
    onnxruntime: str | None
    device: str | None
    precision: str | None


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[dict[str, str], ...]:
    """``/proc/cpuinfo`` as one dict per logical CPU; empty where there is none (non-Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    blocks: list[dict[str, str]] = []
    for chunk in text.split("\n\n"):
        entry: dict[str, str] = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            blocks.append(entry)
    return tuple(blocks)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """The CPU feature flags (Linux ``/proc/cpuinfo``); ``None`` when they can't be read."""
    for entry in _cpuinfo():
        flags = entry.get("flags") or entry.get("Features")
        if flags is not None:
            return frozenset(flags.split())
    return None


def _cpu_model() -> str | None:
    for entry in _cpuinfo():
        for key in ("model name", "Hardware", "Processor", "cpu model"):
            if entry.get(key):
                return entry[key]
    return platform.processor() or platform.machine() or None


def _physical_cores() -> int | None:
    cores = {(e.get("physical id", "0"), e["core id"]) for e in _cpuinfo() if "core id" in e}
    if cores:
        return len(cores)
    try:  # optional dependency, used only when present; a fact unknown must never fail a run's report
        import psutil

        n = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - not installed, or it can't tell here
        return None
    return int(n) if n else None


@functools.lru_cache(maxsize=1)
def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) * 1024 / 1e9, 1)  # kibibytes → GB (10^9 bytes, as labelled)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (AttributeError, ValueError, OSError):
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _isa() -> dict[str, bool | None]:
    flags = cpu_flags()
    if flags is None:
        # x86 ISA extensions can't exist on other architectures; elsewhere we simply don't know
        known_absent = platform.machine().lower() in {"arm64", "aarch64", "armv7l", "ppc64le", "s390x"}
        return {name: (False if known_absent else None) for name in ISA_FLAGS}
    return {name: name in flags for name in ISA_FLAGS}


def hardware_facts(device: str | None = None, precision: str | None = None) -> HardwareFacts:
    """cpu_model, cores_logical, cores_physical, cores_available, isa{...}, ram_gb, os, python,
    openvino, onnxruntime, device, precision. Unknown facts are ``None``."""
    try:
        available: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": _physical_cores(),
        "cores_available": available,
        "isa": _isa(),
        "ram_gb": _ram_gb(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "openvino": _version("openvino"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-openvino") or _version("onnxruntime-gpu"),
        "device": device,
        "precision": precision,
    }


@functools.lru_cache(maxsize=1)
def _openvino_devices() -> tuple[str, ...]:
    from edge_bus.engines.openvino import available_devices  # only the engine touches the runtime

    return available_devices()


def openvino_devices() -> list[str]:
    """OpenVINO's available devices (e.g. ``["CPU", "GPU"]``); ``[]`` when OpenVINO can't say. Cached."""
    return list(_openvino_devices())


def free_disk_gb(path: str | os.PathLike[str]) -> float | None:
    """Free space (GB, 10^9 bytes) on the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    for candidate in (p, *p.parents):
        if candidate.exists():
            try:
                return round(shutil.disk_usage(candidate).free / 1e9, 2)
            except OSError:
                return None
    return None


def measured_on() -> dict[str, object]:
    """This machine as a model manifest's ``measured_on`` records it: ``cpu_model``, the ``isa``
    class of INT8 kernels (:func:`isa_class`) and the ``openvino`` version. INT8 outputs depend on
    the kernel class (AVX2 and AVX512-VNNI differ by ~0.01 in P(malignant) on the same IR), so
    thresholds chosen here are reproduced exactly only on a CPU of the same class."""
    hw = hardware_facts()
    return {"cpu_model": hw["cpu_model"], "isa": kernel_class(hw["isa"]), "openvino": hw["openvino"]}


_CLASS_ORDER = ("unknown", "avx2", "vnni", "amx")
_ONEDNN_CAPS = {"AVX2": "avx2", "AVX2_VNNI": "vnni", "AVX512_CORE": "avx2", "AVX512_CORE_VNNI": "vnni",
                "AVX512_CORE_BF16": "vnni", "AVX512_CORE_AMX": "amx"}


CLASS_CAPS = {"avx2": "AVX2", "vnni": "AVX512_CORE_VNNI"}
"""The ``ONEDNN_MAX_CPU_ISA`` value that makes a CPU of a higher class run each class's INT8 kernels."""


def classes_below(here: str) -> list[str]:
    """The INT8 kernel classes a CPU of class ``here`` can also run, capped (:data:`CLASS_CAPS`)."""
    if here not in _CLASS_ORDER:
        return []
    return [c for c in CLASS_CAPS if _CLASS_ORDER.index(c) < _CLASS_ORDER.index(here)]


def kernel_class(isa: Mapping[str, object] | None = None) -> str:
    """:func:`isa_class` of ``isa`` (default: this machine's flags), lowered to the cap oneDNN is given
    (``ONEDNN_MAX_CPU_ISA``, which OpenVINO's CPU plugin honours): the class of INT8 kernels that
    actually run."""
    here = isa_class(isa if isa is not None else hardware_facts()["isa"])
    cap = _ONEDNN_CAPS.get((os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper())
    if cap is not None and _CLASS_ORDER.index(cap) < _CLASS_ORDER.index(here):
        return cap
    return here
