"""Payments service settings (environment prefix PARLAY_)."""

from __future__ import annotations

from parlay_kit.settings import ServiceSettings


class PaymentsSettings(ServiceSettings):
    service_name: str = "payments"
    grpc_port: int = 50055
