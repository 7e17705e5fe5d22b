"""Conversation service settings (environment prefix PARLAY_)."""

from __future__ import annotations

from pydantic import field_validator

from parlay_conversation.domain import DEFAULT_SERVICE_WINDOWS
from parlay_kit.settings import ServiceSettings


class ConversationSettings(ServiceSettings):
    service_name: str = "conversation"
    grpc_port: int = 50052
    #: Customer-service windows in seconds per channel, as JSON, merged over the defaults
    #: (whatsapp/messenger/instagram 86400, wechat 172800); 0 removes a channel's window.
    #: PARLAY_SERVICE_WINDOWS='{"whatsapp": 86400, "line": 0}'
    service_windows: dict[str, int] = {}
    #: Marketing messages to a customer with no consent entry on the channel: not allowed
    #: (opt-in, as profile's CanContact answers); true makes marketing opt-out.
    marketing_consent_default: bool = False
    #: How often the timer looks for due SLA deadlines, snoozes and scheduled messages.
    timer_interval_seconds: float = 1.0
    #: Provider statuses for messages this service never sent are dropped after this long.
    parked_status_ttl_hours: int = 168
    #: Orders service (order-status answers; used once it serves ListOrders).
    orders_grpc_target: str = "127.0.0.1:50054"
    #: This service's own API key for calls to other Parlay services (see docs/conversation.md,
    #: "Calling other services"). Empty: no service-to-service calls.
    service_api_key: str = ""

    @field_validator("service_windows")
    @classmethod
    def _windows(cls, value: dict[str, int]) -> dict[str, int]:
        merged = dict(DEFAULT_SERVICE_WINDOWS)
        for channel, seconds in value.items():
            if seconds < 0:
                raise ValueError(f"service window of {channel} must not be negative")
            merged[channel.strip().lower()] = int(seconds)
        return {k: v for k, v in merged.items() if v > 0}
