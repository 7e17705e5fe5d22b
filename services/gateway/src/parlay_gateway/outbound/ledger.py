"""The delivery ledger: one row per outbound message id, the state machine of its delivery.

    requested ──claim──▶ sending ──2xx──────────────▶ sent     (+ OutboundMessageSent)
        ▲                  │ ──4xx / attempts spent─▶ failed   (+ OutboundMessageFailed)
        └──429/5xx/conn.───┘ ──lost answer, no key──▶ unknown  (+ OutboundMessageFailed
           (next_attempt_at)                                      error_code outcome_unknown)

`message_id` is the primary key, so a redelivered request (or a second request event carrying the
same message id) never makes a second row. 'sending' is committed *before* the HTTP call; the
outcome and its event commit together afterwards. A row left 'sending' by a dead sender is found
by recovery (see dispatcher.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from parlay_kit.db import Migration, check_identifier

MIGRATIONS = [
    Migration(
        "gateway_0101_outbound_ledger",
        """
        CREATE TABLE {schema}.outbound_deliveries (
            message_id          text        PRIMARY KEY,
            request_event_id    uuid        NOT NULL,
            tenant_id           text        NOT NULL,
            conversation_id     text        NOT NULL,
            channel             text        NOT NULL,
            channel_account_id  text        NOT NULL,
            recipient           text        NOT NULL,
            -- the OutboundMessageRequested payload, serialized
            request             bytea       NOT NULL,
            correlation_id      text        NOT NULL DEFAULT '',
            traceparent         text        NOT NULL DEFAULT '',
            state               text        NOT NULL DEFAULT 'requested'
                CHECK (state IN ('requested', 'sending', 'sent', 'failed', 'unknown')),
            attempts            integer     NOT NULL DEFAULT 0,
            next_attempt_at     timestamptz NOT NULL,
            claimed_by          text        NOT NULL DEFAULT '',
            claimed_at          timestamptz,
            provider_message_id text        NOT NULL DEFAULT '',
            error_code          text        NOT NULL DEFAULT '',
            last_error          text        NOT NULL DEFAULT '',
            requested_at        timestamptz NOT NULL,
            updated_at          timestamptz NOT NULL DEFAULT now(),
            completed_at        timestamptz
        );
        CREATE INDEX outbound_deliveries_due
            ON {schema}.outbound_deliveries (next_attempt_at) WHERE state = 'requested';
        CREATE INDEX outbound_deliveries_sending
            ON {schema}.outbound_deliveries (claimed_by) WHERE state = 'sending';

        -- One row per HTTP attempt: what was tried when, and what came back (for operators).
        CREATE TABLE {schema}.outbound_attempts (
            message_id   text        NOT NULL,
            attempt      integer     NOT NULL,
            claimed_by   text        NOT NULL,
            started_at   timestamptz NOT NULL,
            finished_at  timestamptz NOT NULL,
            outcome      text        NOT NULL,
            http_status  integer,
            error_code   text        NOT NULL DEFAULT '',
            error        text        NOT NULL DEFAULT '',
            PRIMARY KEY (message_id, attempt, claimed_by)
        );

        -- Token buckets of the per-account rate limits, shared by every sender replica.
        CREATE TABLE {schema}.outbound_rate_buckets (
            channel_account_id text             PRIMARY KEY,
            tokens             double precision NOT NULL,
            updated_at         timestamptz      NOT NULL
        );
        """,
    )
]

STATES = ("requested", "sending", "sent", "failed", "unknown")
TERMINAL = ("sent", "failed", "unknown")


def notify_channel(schema: str) -> str:
    return f"{schema}_outbound"


class Ledger:
    def __init__(self, schema: str) -> None:
        self.schema = s = check_identifier(schema)
        self.notify_channel = notify_channel(schema)
        self._insert = f"""
            INSERT INTO {s}.outbound_deliveries (message_id, request_event_id, tenant_id,
                conversation_id, channel, channel_account_id, recipient, request, correlation_id,
                traceparent, next_attempt_at, requested_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11)
            ON CONFLICT (message_id) DO NOTHING"""

    # ------------------------------------------------------------ the consumer's side

    async def record_requested(
        self,
        conn: asyncpg.Connection,
        *,
        message_id: str,
        request_event_id: str,
        tenant_id: str,
        conversation_id: str,
        channel: str,
        channel_account_id: str,
        recipient: str,
        request: bytes,
        correlation_id: str,
        traceparent: str,
        requested_at: datetime,
    ) -> bool:
        """Idempotent on message_id; True when the row is new. Wakes the sender at commit."""
        status = await conn.execute(
            self._insert,
            message_id,
            request_event_id,
            tenant_id,
            conversation_id,
            channel,
            channel_account_id,
            recipient,
            request,
            correlation_id,
            traceparent,
            requested_at,
        )
        inserted = status.endswith(" 1")
        if inserted:
            await conn.execute("SELECT pg_notify($1, '')", self.notify_channel)
        return inserted

    # ------------------------------------------------------------ the sender's side

    async def due(self, conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
        """Due 'requested' rows, locked for this transaction (other replicas skip them)."""
        return await conn.fetch(
            f"""SELECT message_id, channel_account_id FROM {self.schema}.outbound_deliveries
                WHERE state = 'requested' AND next_attempt_at <= now()
                ORDER BY next_attempt_at, requested_at
                LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
        )

    async def mark_sending(
        self, conn: asyncpg.Connection, message_ids: Sequence[str], instance: str
    ) -> list[asyncpg.Record]:
        return await conn.fetch(
            f"""UPDATE {self.schema}.outbound_deliveries
                SET state = 'sending', attempts = attempts + 1, claimed_by = $2,
                    claimed_at = now(), updated_at = now()
                WHERE message_id = ANY($1::text[]) AND state = 'requested'
                RETURNING *""",
            list(message_ids),
            instance,
        )

    async def seconds_until_due(self, conn: asyncpg.Connection | asyncpg.Pool) -> float | None:
        value = await conn.fetchval(
            f"""SELECT extract(epoch FROM min(next_attempt_at) - now())
                FROM {self.schema}.outbound_deliveries WHERE state = 'requested'"""
        )
        return None if value is None else max(0.0, float(value))

    async def take_tokens(
        self,
        conn: asyncpg.Connection,
        channel_account_id: str,
        wanted: int,
        rate: float,
        burst: float,
    ) -> tuple[int, float]:
        """Take up to `wanted` tokens from the account's bucket (in the caller's transaction).
        Returns (granted, seconds until the next token when not all were granted)."""
        from parlay_gateway.outbound.ratelimit import refill, seconds_until

        await conn.execute(
            f"""INSERT INTO {self.schema}.outbound_rate_buckets (channel_account_id, tokens, updated_at)
                VALUES ($1, $2, clock_timestamp()) ON CONFLICT (channel_account_id) DO NOTHING""",
            channel_account_id,
            burst,
        )
        row = await conn.fetchrow(
            f"""SELECT tokens, extract(epoch FROM clock_timestamp() - updated_at) AS elapsed,
                       clock_timestamp() AS now
                FROM {self.schema}.outbound_rate_buckets WHERE channel_account_id = $1
                FOR UPDATE""",
            channel_account_id,
        )
        tokens = refill(float(row["tokens"]), float(row["elapsed"]), rate, burst)
        granted = min(wanted, int(tokens + 1e-9))
        tokens -= granted
        await conn.execute(
            f"""UPDATE {self.schema}.outbound_rate_buckets SET tokens = $2, updated_at = $3
                WHERE channel_account_id = $1""",
            channel_account_id,
            tokens,
            row["now"],
        )
        return granted, (seconds_until(tokens, rate) if granted < wanted else 0.0)

    async def finish(
        self,
        conn: asyncpg.Connection,
        *,
        message_id: str,
        instance: str,
        state: str,
        provider_message_id: str = "",
        error_code: str = "",
        error: str = "",
    ) -> asyncpg.Record | None:
        """Terminal outcome, only if this sender still holds the claim (None otherwise)."""
        assert state in TERMINAL
        return await conn.fetchrow(
            f"""UPDATE {self.schema}.outbound_deliveries
                SET state = $3, provider_message_id = $4, error_code = $5, last_error = $6,
                    completed_at = now(), updated_at = now()
                WHERE message_id = $1 AND state = 'sending' AND claimed_by = $2
                RETURNING *""",
            message_id,
            instance,
            state,
            provider_message_id,
            error_code,
            error[:2000],
        )

    async def reschedule(
        self,
        conn: asyncpg.Connection,
        *,
        message_id: str,
        instance: str,
        delay_seconds: float,
        error_code: str,
        error: str,
    ) -> bool:
        row = await conn.fetchrow(
            f"""UPDATE {self.schema}.outbound_deliveries
                SET state = 'requested', claimed_by = '',
                    next_attempt_at = now() + make_interval(secs => $3),
                    error_code = $4, last_error = $5, updated_at = now()
                WHERE message_id = $1 AND state = 'sending' AND claimed_by = $2
                RETURNING message_id""",
            message_id,
            instance,
            delay_seconds,
            error_code,
            error[:2000],
        )
        if row is not None:
            await conn.execute("SELECT pg_notify($1, '')", self.notify_channel)
        return row is not None

    async def log_attempt(
        self,
        conn: asyncpg.Connection,
        *,
        message_id: str,
        attempt: int,
        instance: str,
        started_at: datetime,
        outcome: str,
        http_status: int | None,
        error_code: str,
        error: str,
    ) -> None:
        await conn.execute(
            f"""INSERT INTO {self.schema}.outbound_attempts (message_id, attempt, claimed_by,
                    started_at, finished_at, outcome, http_status, error_code, error)
                VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8)
                ON CONFLICT DO NOTHING""",
            message_id,
            attempt,
            instance,
            started_at,
            outcome,
            http_status,
            error_code,
            error[:2000],
        )

    # ------------------------------------------------------------ recovery

    async def sending_owners(
        self, conn: asyncpg.Connection | asyncpg.Pool, instance: str
    ) -> list[str]:
        rows = await conn.fetch(
            f"""SELECT DISTINCT claimed_by FROM {self.schema}.outbound_deliveries
                WHERE state = 'sending' AND claimed_by <> $1""",
            instance,
        )
        return [r[0] for r in rows]

    async def sending_of(self, conn: asyncpg.Connection, owner: str) -> list[asyncpg.Record]:
        return await conn.fetch(
            f"""SELECT * FROM {self.schema}.outbound_deliveries
                WHERE state = 'sending' AND claimed_by = $1 FOR UPDATE""",
            owner,
        )

    async def get(
        self, conn: asyncpg.Connection | asyncpg.Pool, message_id: str
    ) -> asyncpg.Record | None:
        return await conn.fetchrow(
            f"SELECT * FROM {self.schema}.outbound_deliveries WHERE message_id = $1", message_id
        )
