"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO, require_shared_data


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared_data()


@pytest.fixture(scope="session")
def shipped_model_dir() -> Path:
    return REPO / "models" / "emt_net"
