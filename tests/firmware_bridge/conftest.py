"""Fixtures for the firmware_bridge tests: fast link timings and simulated boards (no hardware)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from firmware_bridge import LinkConfig, SimConfig, SimulatedDevice

# heartbeats, loss detection and reconnects in tens of milliseconds instead of seconds
FAST_LINK = LinkConfig(
    heartbeat_s=0.05, link_timeout_s=0.4, backoff_initial_s=0.02, backoff_max_s=0.2, read_poll_s=0.05
)


@pytest.fixture
def fast_link() -> LinkConfig:
    return FAST_LINK


@pytest.fixture
def sim_device() -> Iterator[SimulatedDevice]:
    """A running in-process board at 60 fps; reach it at ``sim_device.url``."""
    with SimulatedDevice(SimConfig(fps=60, seed=7)) as device:
        yield device
