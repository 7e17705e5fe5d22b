"""Fixtures for the cross-service tests in tests/.

The shared infrastructure fixtures (`kafka_bootstrap`, `database_url`, `fresh_schema`) come from
the `parlay_kit.testing` plugin, registered in the repository's root conftest.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def services_available() -> list[str]:
    """Services whose `python -m parlay_<svc>` entry point exists."""
    from parlay_kit.dev import SERVICE_PORTS

    return [svc for svc in SERVICE_PORTS if importlib.util.find_spec(f"parlay_{svc}.__main__")]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
