"""`parlay dev` points the services at the stand-ins (libs/kit dev.py) unless told not to."""

from __future__ import annotations

from pathlib import Path

from parlay_kit import dev
from parlay_standins import env_for


def test_services_get_the_standin_base_urls() -> None:
    opts = dev.DevOptions(state_dir=Path("/tmp/x"), port_offset=100, standins=True)
    gateway = next(s for s in opts.specs() if s.name == "gateway")
    env = dev.service_env(gateway, opts, "postgresql://db/parlay", base={})
    assert opts.standins_url == "http://127.0.0.1:8190"
    # the kit's table and the stand-ins' own mapping agree
    assert {k: env[k] for k in env_for(opts.standins_url)} == env_for(opts.standins_url)
    assert env["PARLAY_WHATSAPP_API_BASE_URL"] == "http://127.0.0.1:8190/meta"
    assert "telegram" in env["PARLAY_OUTBOUND_IDEMPOTENT_RESEND_CHANNELS"]


def test_standins_can_be_switched_off(monkeypatch) -> None:
    monkeypatch.setenv("PARLAY_DEV_STANDINS", "0")
    opts = dev.DevOptions(state_dir=Path("/tmp/x"))
    assert opts.standins is False
    gateway = next(s for s in opts.specs() if s.name == "gateway")
    env = dev.service_env(gateway, opts, "postgresql://db/parlay", base={})
    assert "PARLAY_WHATSAPP_API_BASE_URL" not in env
