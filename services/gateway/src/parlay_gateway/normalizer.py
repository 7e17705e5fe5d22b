"""The normalizer: a projector on the raw-webhook topic that turns each stored webhook into the
normalized inbound events (MessageReceived, MessageStatusUpdated, ...) on the inbound topic.

It runs after the webhook was acknowledged, so a parser bug never loses a message: the handler
raises, the projector retries and then dead-letters the webhook with the reason; fix the parser
and replay the raw topic. Emitted events have deterministic ids, so replays add nothing twice.

Status monotonicity (every channel). Providers send status webhooks in any order (a "read" may
overtake its "delivered"; Twilio's "sent" may arrive after "undelivered"). The normalizer keeps a
small per-message table, `message_status` (channel account, provider message id -> highest rank
seen, failed flag and code), updated in the projector's batch transaction, and emits
MessageStatusUpdated only when a message's status *advances*:

* sent (1) < delivered (2) < read (3): emitted when higher than anything seen before for that
  message; a lower or equal one that arrives later is recorded nowhere and emitted never.
* failed: emitted once per message, with the provider's error code, whatever came before.
  Failed is final: a sent/delivered/read arriving after it is not emitted.
So whatever order the webhooks arrive in, consumers see a monotone sequence that ends in the
same state. Skipping a rank is allowed (a message can go straight to read).

Watermarks (Messenger/Instagram delivery and read receipts: "every message sent to this person
at or before T"): the adapter emits a MessageStatusUpdated without a provider message id. The
normalizer expands it into one event per message of that person it knows of (from echoes and
earlier statuses; `first_seen_at` <= T) whose rank is lower, and keeps the watermark in
`status_watermarks` so a message it learns about later (its echo arrives after the read receipt)
is advanced at once. Messages it never heard of cannot be named.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

import asyncpg

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay.gateway.v1.gateway_events_pb2 import WebhookReceived
from parlay_gateway import metrics
from parlay_gateway.channels import common, webchat
from parlay_gateway.channels.registry import AdapterRegistry
from parlay_gateway.webchat.store import WebchatHistory
from parlay_kit.db import Migration, check_identifier
from parlay_kit.envelope import NewEvent, from_timestamp, to_timestamp
from parlay_kit.projector import ConsumedEvent, UnitOfWork

log = logging.getLogger(__name__)

NAME = "normalizer"

MIGRATIONS = [
    Migration(
        "gateway_0101_message_status",
        """
        -- Highest delivery status seen per message the business sent (normalizer read model).
        CREATE TABLE {schema}.message_status (
            channel_account_id  text        NOT NULL,
            provider_message_id text        NOT NULL,
            recipient           text        NOT NULL,
            -- 0 none yet, 1 sent, 2 delivered, 3 read
            rank                smallint    NOT NULL,
            failed              boolean     NOT NULL DEFAULT false,
            error_code          text        NOT NULL DEFAULT '',
            -- Earliest provider time known for the message: an upper bound of when it was sent.
            first_seen_at       timestamptz NOT NULL,
            updated_at          timestamptz NOT NULL,
            PRIMARY KEY (channel_account_id, provider_message_id)
        );
        CREATE INDEX message_status_by_recipient
            ON {schema}.message_status (channel_account_id, recipient, first_seen_at);
        -- Latest delivery/read watermark per person (Messenger, Instagram).
        CREATE TABLE {schema}.status_watermarks (
            channel_account_id text NOT NULL,
            recipient          text NOT NULL,
            delivered_until    timestamptz,
            read_until         timestamptz,
            PRIMARY KEY (channel_account_id, recipient)
        );
        """,
    )
]

RANKS = {
    pb.DELIVERY_STATUS_SENT: 1,
    pb.DELIVERY_STATUS_DELIVERED: 2,
    pb.DELIVERY_STATUS_READ: 3,
}
_BY_RANK = {rank: status for status, rank in RANKS.items()}


class UnknownChannel(LookupError):
    pass


class StatusLedger:
    """Decides which MessageStatusUpdated events advance a message (see the module doc)."""

    def __init__(self, schema: str | None = None) -> None:
        prefix = f"{check_identifier(schema)}." if schema else ""
        self.status_table = f"{prefix}message_status"
        self.watermark_table = f"{prefix}status_watermarks"

    async def admit(self, conn: asyncpg.Connection, event: NewEvent) -> list[NewEvent]:
        status = event.payload
        assert isinstance(status, pb.MessageStatusUpdated)
        if not status.provider_message_id:
            return await self._watermark(conn, event, status)
        at = from_timestamp(status.status_at)
        account = status.channel_account_id
        if status.status == pb.DELIVERY_STATUS_FAILED:
            row = await conn.fetchrow(
                f"""INSERT INTO {self.status_table} AS s (channel_account_id, provider_message_id,
                        recipient, rank, failed, error_code, first_seen_at, updated_at)
                    VALUES ($1, $2, $3, 0, true, $4, $5, $5)
                    ON CONFLICT (channel_account_id, provider_message_id) DO UPDATE
                        SET failed = true, error_code = EXCLUDED.error_code,
                            updated_at = EXCLUDED.updated_at
                        WHERE NOT s.failed
                    RETURNING 1""",
                account,
                status.provider_message_id,
                status.recipient.address,
                status.error_code,
                at,
            )
            return [event] if row is not None else []
        rank = RANKS.get(status.status)
        if rank is None:
            log.warning("status %s of %s not understood; skipped", status.status, event.event_id)
            return []
        row = await conn.fetchrow(
            f"""WITH prev AS (
                    SELECT rank, failed FROM {self.status_table}
                    WHERE channel_account_id = $1 AND provider_message_id = $2
                ), up AS (
                    INSERT INTO {self.status_table} AS s (channel_account_id, provider_message_id,
                        recipient, rank, first_seen_at, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $5)
                    ON CONFLICT (channel_account_id, provider_message_id) DO UPDATE
                        SET rank = GREATEST(s.rank, EXCLUDED.rank),
                            first_seen_at = LEAST(s.first_seen_at, EXCLUDED.first_seen_at),
                            updated_at = EXCLUDED.updated_at
                    RETURNING rank
                )
                SELECT (SELECT rank FROM prev) AS prev_rank,
                       (SELECT failed FROM prev) AS prev_failed,
                       w.delivered_until, w.read_until
                FROM (SELECT 1) one
                LEFT JOIN {self.watermark_table} w
                    ON w.channel_account_id = $1 AND w.recipient = $3""",
            account,
            status.provider_message_id,
            status.recipient.address,
            rank,
            at,
        )
        assert row is not None
        prev_rank, prev_failed = row["prev_rank"], row["prev_failed"]
        out: list[NewEvent] = []
        if prev_failed:
            return out
        if prev_rank is None or rank > prev_rank:
            out.append(event)
        current = max(rank, prev_rank or 0)
        # A watermark seen earlier may already cover this message (its echo came late).
        implied = 0
        if row["read_until"] is not None and at <= row["read_until"]:
            implied = 3
        elif row["delivered_until"] is not None and at <= row["delivered_until"]:
            implied = 2
        if implied > current:
            watermark_at = row["read_until"] if implied == 3 else row["delivered_until"]
            await conn.execute(
                f"""UPDATE {self.status_table} SET rank = $3, updated_at = $4
                    WHERE channel_account_id = $1 AND provider_message_id = $2""",
                account,
                status.provider_message_id,
                implied,
                watermark_at,
            )
            out.append(_derived(event, status, status.provider_message_id, implied, watermark_at))
        return out

    async def _watermark(
        self, conn: asyncpg.Connection, event: NewEvent, status: pb.MessageStatusUpdated
    ) -> list[NewEvent]:
        rank = RANKS.get(status.status)
        if rank not in (2, 3):
            return []
        at = from_timestamp(status.status_at)
        account = status.channel_account_id
        recipient = status.recipient.address
        column = "read_until" if rank == 3 else "delivered_until"
        await conn.execute(
            f"""INSERT INTO {self.watermark_table} AS w (channel_account_id, recipient, {column})
                VALUES ($1, $2, $3)
                ON CONFLICT (channel_account_id, recipient) DO UPDATE
                    SET {column} = GREATEST(w.{column}, EXCLUDED.{column})""",
            account,
            recipient,
            at,
        )
        rows = await conn.fetch(
            f"""UPDATE {self.status_table} SET rank = $4, updated_at = $3
                WHERE channel_account_id = $1 AND recipient = $2 AND first_seen_at <= $3
                  AND rank < $4 AND NOT failed
                RETURNING provider_message_id, first_seen_at""",
            account,
            recipient,
            at,
            rank,
        )
        ordered = sorted(rows, key=lambda r: (r["first_seen_at"], r["provider_message_id"]))
        return [_derived(event, status, r["provider_message_id"], rank, at) for r in ordered]


def _derived(
    event: NewEvent,
    status: pb.MessageStatusUpdated,
    provider_message_id: str,
    rank: int,
    at: datetime,
) -> NewEvent:
    """The per-message status a watermark implies (same id as a direct status would have)."""
    new_status = _BY_RANK[rank]
    payload = pb.MessageStatusUpdated()
    payload.CopyFrom(status)
    payload.provider_message_id = provider_message_id
    payload.status = new_status
    payload.status_at.CopyFrom(to_timestamp(at))
    return replace(
        event,
        event_id=common.status_event_id(
            status.channel,
            status.channel_account_id,
            provider_message_id,
            common.STATUS_NAMES[new_status],
        ),
        payload=payload,
        occurred_at=at,
    )


class Normalizer:
    def __init__(self, registry: AdapterRegistry, schema: str | None = None) -> None:
        """`schema`: where the status tables live; None = the connection's search_path."""
        self._registry = registry
        self._ledger = StatusLedger(schema)
        # Web chat keeps a per-visitor history (both directions); inbound rows come from here.
        self._webchat = WebchatHistory(schema) if schema else None

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        webhook = event.payload
        if not isinstance(webhook, WebhookReceived):
            return  # e.g. ChannelAccountCreated shares the topic
        adapter = self._registry.get(webhook.channel)
        if adapter is None:
            raise UnknownChannel(f"no adapter for channel {webhook.channel!r}")
        normalized_events = adapter.normalize(webhook, event.tenant_id, event.event_id)
        if webhook.channel == webchat.CHANNEL and self._webchat is not None:
            row = webchat.inbound_history_row(webhook)
            if row is not None:
                address, message_id, body = row
                await self._webchat.record(
                    uow.conn,
                    channel_account_id=webhook.channel_account_id,
                    visitor=address,
                    direction="in",
                    message_id=message_id,
                    body=body,
                    at=webchat.received_at(webhook),
                )
        for normalized in normalized_events:
            admitted = (
                await self._ledger.admit(uow.conn, normalized)
                if isinstance(normalized.payload, pb.MessageStatusUpdated)
                else [normalized]
            )
            for out in admitted:
                uow.emit(out)
                metrics.NORMALIZED_EVENTS.labels(webhook.channel, out.event_type).inc()
