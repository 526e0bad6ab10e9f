from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edge_bus.telemetry.hardware import ISA_FLAGS, free_disk_gb, hardware_facts, openvino_devices

KEYS = {"cpu_model", "cores_logical", "cores_physical", "isa", "ram_gb", "os", "python", "openvino", "onnxruntime"}


def test_hardware_facts_keys_and_types() -> None:
    facts = hardware_facts(device="CPU", precision="INT8")
    assert KEYS | {"device", "precision"} <= set(facts)
    assert facts["device"] == "CPU" and facts["precision"] == "INT8"
    isa = facts["isa"]
    assert isinstance(isa, dict) and set(isa) == set(ISA_FLAGS)
    assert all(v is None or isinstance(v, bool) for v in isa.values())
    assert isinstance(facts["cores_logical"], int) and facts["cores_logical"] >= 1
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/cpuinfo is Linux-only")
def test_linux_isa_flags_are_booleans_and_ram_is_known() -> None:
    facts = hardware_facts()
    assert all(isinstance(v, bool) for v in facts["isa"].values())
    assert isinstance(facts["ram_gb"], float) and facts["ram_gb"] > 0


def test_openvino_devices_is_a_cached_list() -> None:
    devices = openvino_devices()
    assert isinstance(devices, list) and devices == openvino_devices()
    assert all(isinstance(d, str) for d in devices)


def test_free_disk_gb_uses_nearest_existing_parent(tmp_path: Path) -> None:
    gb = free_disk_gb(tmp_path / "not" / "yet" / "there")
    assert isinstance(gb, float) and gb >= 0
