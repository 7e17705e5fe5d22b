"""Kafka topic names. Each service is the single writer of its own topics."""

from __future__ import annotations

WEBHOOKS = "parlay.gateway.webhooks.v1"
INBOUND = "parlay.gateway.inbound.v1"
PROFILE = "parlay.profile.v1"
CONVERSATION = "parlay.conversation.v1"
ORDERS = "parlay.orders.v1"
PAYMENTS = "parlay.payments.v1"

SERVICES = ("gateway", "conversation", "profile", "orders", "payments")

#: Event topics by the service that writes them.
TOPICS_BY_SERVICE: dict[str, tuple[str, ...]] = {
    "gateway": (WEBHOOKS, INBOUND),
    "profile": (PROFILE,),
    "conversation": (CONVERSATION,),
    "orders": (ORDERS,),
    "payments": (PAYMENTS,),
}


def dead_letter_topic(service: str) -> str:
    """Poison events a service's consumers gave up on, with the error in headers."""
    return f"parlay.{service}.dlq.v1"


EVENT_TOPICS: tuple[str, ...] = tuple(t for ts in TOPICS_BY_SERVICE.values() for t in ts)
DEAD_LETTER_TOPICS: tuple[str, ...] = tuple(dead_letter_topic(s) for s in SERVICES)
ALL_TOPICS: tuple[str, ...] = EVENT_TOPICS + DEAD_LETTER_TOPICS

#: Default partition count for the local stack (production sets its own in deploy/k8s).
DEFAULT_PARTITIONS = 6
