"""Orders service settings (environment prefix PARLAY_)."""

from __future__ import annotations

from parlay_kit.settings import ServiceSettings


class OrdersSettings(ServiceSettings):
    service_name: str = "orders"
    grpc_port: int = 50054
