"""What `parlay replay` and `parlay at` can do with the conversation service (analysts, issue 8).

Discovered through the `parlay.projections` entry point in services/conversation/pyproject.toml.

conversation.timeline (read model)
    TimelineProjection folds parlay.conversation.v1 into conversations, conversation_messages,
    conversation_notes, scheduled_messages (the timeline, with the same `domain.apply` the live
    projector uses) and inbox_config, sla_targets (with `config.apply_config`). Every column of
    those tables is a function of the log, so --verify compares them all. The timeline
    projector's working state (identity_map, parked_messages, parked_statuses,
    customer_aliases, consents, purchases) is not a projection of the conversation topic — it is
    how the live process decides, learnt from inbound, profile and orders — and is neither
    rebuilt nor swapped (identity_map.updated_at and the parked_at columns are wall-clock time
    anyway).

conversation (aggregate view for `parlay at`)
    The conversation's events from conversation.events folded with `domain.apply`: the state
    and the timeline as it stood (message content decoded to ProtoJSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import domain
from parlay_conversation.projections import TimelineProjection
from parlay_conversation.readmodel import MIGRATIONS, ConversationReadModel
from parlay_kit import topics
from parlay_kit.analytics.jsonify import message_to_dict
from parlay_kit.analytics.registry import AggregateView, Projection
from parlay_kit.envelope import from_timestamp


def _timeline(schema: str) -> TimelineProjection:
    return TimelineProjection(ConversationReadModel(schema))


def fold_conversation(events: Sequence[tuple[Envelope, Message]]) -> dict[str, Any] | None:
    state: domain.ConversationState | None = None
    messages: list[dict[str, Any]] = []
    for envelope, payload in events:
        state, row = domain.apply(
            state,
            domain.ConversationEvent(
                tenant_id=envelope.tenant_id,
                aggregate_id=envelope.aggregate_id,
                version=envelope.aggregate_version,
                occurred_at=from_timestamp(envelope.occurred_at),
                payload=payload,
                event_id=envelope.event_id,
            ),
        )
        if row is not None:
            content = ge.MessageContent.FromString(row.content)
            messages.append(
                {
                    "seq": row.seq,
                    "message_id": row.message_id,
                    "direction": row.direction,
                    "channel": row.channel,
                    "channel_account_id": row.channel_account_id,
                    "provider_message_id": row.provider_message_id,
                    "occurred_at": row.occurred_at,
                    "text": row.text,
                    "content": message_to_dict(content),
                    "source_event_id": row.source_event_id,
                }
            )
    if state is None:
        return None
    return {"conversation": state, "messages": messages}


PROJECTIONS = [
    Projection(
        name="conversation.timeline",
        service="conversation",
        topics=(topics.CONVERSATION,),
        handler=_timeline,
        migrations=MIGRATIONS,
        tables=(
            "conversations",
            "conversation_messages",
            "conversation_notes",
            "scheduled_messages",
            "inbox_config",
            "sla_targets",
        ),
        description="conversations, timelines, notes, schedules, inbox config (parlay.conversation.v1)",
        # The handler reads its tables by primary key only (conversations, messages, notes,
        # schedules, config rows), so the search, inbox-filter and timeline indexes are built
        # once at the end instead of row by row: compact indexes, and less Postgres CPU (11.0
        # -> 10.3 s for the bench's 200,000 events; the unique indexes, which the rebuild
        # needs, cost more than these).
        defer_secondary_indexes=True,
    )
]

AGGREGATES = [
    AggregateView(
        kind="conversation",
        service="conversation",
        aggregate_type=domain.AGGREGATE_TYPE,
        fold=fold_conversation,
        description="a conversation: status, counters, last channel, and its timeline",
    )
]
