"""Which saved benchmark run a new one is compared with: one recorded on the same class of machine.

pytest-benchmark compares a run's absolute medians with a saved baseline. A baseline recorded on
another CPU compares nothing (OpenVINO INT8 took ~7 ms a frame on the 2-core AVX2 EPYC and ~1.4 ms
on the 2-core AVX512-VNNI one), so ``benchmarks/conftest.py`` picks the newest saved run whose
machine has the same :data:`BASELINE_KEYS`, and skips the comparison when there is none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["BASELINE_KEYS", "machine_class", "matching_baseline"]

#: What makes two machines comparable in absolute milliseconds. The kernel release, clock readings
#: and host name are left out: they change from one boot of the same machine class to the next.
BASELINE_KEYS = ("cpu_model", "isa", "cores_available")


def machine_class(edge_bus_info: Mapping[str, object]) -> dict[str, object]:
    """The part of ``hardware_facts()`` (a run's ``machine_info["edge_bus"]``) named by :data:`BASELINE_KEYS`."""
    return {k: edge_bus_info.get(k) for k in BASELINE_KEYS}


def matching_baseline(storage: Path, current: Mapping[str, object]) -> Path | None:
    """The newest saved run (``<machine id>/NNNN_*.json``) under ``storage`` recorded on a machine of
    class ``current``, or None. Unreadable files are passed over."""
    best: Path | None = None
    for path in sorted(storage.glob("*/[0-9][0-9][0-9][0-9]_*.json"), key=lambda p: p.name):
        try:
            info = json.loads(path.read_text())["machine_info"].get("edge_bus", {})
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            continue
        if machine_class(info) == dict(current):
            best = path  # sorted by run number: the last match is the newest
    return best
