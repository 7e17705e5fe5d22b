"""Fixtures of the deployment tests; the helpers and tool installation are in support.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import OVERLAYS, Rendered, ensure_checkov, ensure_kubectl, render


@pytest.fixture(scope="session")
def kubectl() -> Path:
    return ensure_kubectl()


@pytest.fixture(scope="session")
def rendered(kubectl: Path) -> dict[str, Rendered]:
    return {overlay: render(kubectl, overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def checkov() -> Path:
    return ensure_checkov()
