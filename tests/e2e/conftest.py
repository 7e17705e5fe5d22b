"""Fixtures the end-to-end modules share (each module builds its own `stack`)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
async def standin():
    """The provider stand-ins (WhatsApp, Telegram, ..., Stripe) on a real port."""
    from parlay_standins import StandinServer

    async with StandinServer() as server:
        yield server
