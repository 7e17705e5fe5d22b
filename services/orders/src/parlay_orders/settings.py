"""Orders service settings (environment prefix PARLAY_)."""

from __future__ import annotations

from pydantic import field_validator

from parlay_kit.settings import ServiceSettings
from parlay_orders.domain import PAYMENT_METHODS


class OrdersSettings(ServiceSettings):
    service_name: str = "orders"
    grpc_port: int = 50054
    #: PARLAY_ORDERS_DEFAULT_PAYMENT_METHOD: how orders placed from a conversation (WhatsApp
    #: carts) and CreateOrder without a method are paid.
    orders_default_payment_method: str = "payment_link"
    #: PARLAY_ORDERS_MAX_PAYMENT_ATTEMPTS: payment links per order; when the last one expires
    #: unpaid the order is cancelled (reason payment_expired).
    orders_max_payment_attempts: int = 2

    @field_validator("orders_default_payment_method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in PAYMENT_METHODS:
            raise ValueError(f"must be one of {', '.join(PAYMENT_METHODS)}")
        return value

    @field_validator("orders_max_payment_attempts")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value
