"""Conversation service settings (environment prefix PARLAY_)."""

from __future__ import annotations

from parlay_kit.settings import ServiceSettings


class ConversationSettings(ServiceSettings):
    service_name: str = "conversation"
    grpc_port: int = 50052
