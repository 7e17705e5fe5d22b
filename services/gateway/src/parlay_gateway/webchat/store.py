"""The web-chat history table: both directions of every visitor's conversation, per account.

    <schema>.webchat_messages (seq, channel_account_id, visitor, direction in|out, message_id,
                               body jsonb, created_at), unique (account, visitor, direction, id)

Writers (all idempotent on the unique key, so retries/replays/recovery never double a row):
* the socket handler, for a visitor message, right after its WebhookReceived is durable (so a
  reconnect a moment later already shows it);
* the normalizer, for the same stored message (the durable, replayable path: a lost eager
  insert is filled in when the raw frame is normalized);
* the webchat outbound sender (projectors tier), for agent messages.
Every insert of a new row `pg_notify`s `<schema>_webchat` with `{"a": account, "v": visitor}`;
the HTTP tier listens and pushes the row to that visitor's open sockets (any gateway process).
`{"k": "typing", ...}` notifications are relayed to the sockets without being stored.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from parlay_kit.db import Migration, check_identifier

MIGRATIONS = [
    Migration(
        "gateway_0301_webchat_messages",
        """
        CREATE TABLE {schema}.webchat_messages (
            seq                bigserial   PRIMARY KEY,
            channel_account_id text        NOT NULL,
            visitor            text        NOT NULL,
            direction          text        NOT NULL CHECK (direction IN ('in', 'out')),
            message_id         text        NOT NULL,
            body               jsonb       NOT NULL,
            created_at         timestamptz NOT NULL DEFAULT now(),
            UNIQUE (channel_account_id, visitor, direction, message_id)
        );
        CREATE INDEX webchat_messages_by_visitor
            ON {schema}.webchat_messages (channel_account_id, visitor, seq);
        """,
    )
]

#: Rows shown on (re)connect.
HISTORY_LIMIT = 100
#: A pump re-reads rows this recent besides `seq > last`: a row whose transaction committed
#: after a higher seq was already read is still found (sessions de-duplicate by key).
LATE_COMMIT_WINDOW_SECONDS = 10


def notify_channel(schema: str) -> str:
    return f"{schema}_webchat"


class WebchatHistory:
    def __init__(self, schema: str) -> None:
        self.schema = s = check_identifier(schema)
        self.channel = notify_channel(schema)
        self._insert = f"""
            INSERT INTO {s}.webchat_messages (channel_account_id, visitor, direction, message_id,
                body, created_at)
            VALUES ($1, $2, $3, $4, $5::jsonb, COALESCE($6, now()))
            ON CONFLICT (channel_account_id, visitor, direction, message_id) DO NOTHING"""

    async def record(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        *,
        channel_account_id: str,
        visitor: str,
        direction: str,
        message_id: str,
        body: dict[str, Any],
        at: datetime | None = None,
    ) -> bool:
        """Idempotent; True (and a notification at commit) when the row is new."""
        status = await conn.execute(
            self._insert,
            channel_account_id,
            visitor,
            direction,
            message_id,
            json.dumps(body, ensure_ascii=False),
            at,
        )
        inserted: bool = status.endswith(" 1")
        if inserted:
            await self.notify(conn, channel_account_id, visitor)
        return inserted

    async def notify(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        channel_account_id: str,
        visitor: str,
        **extra: Any,
    ) -> None:
        payload = json.dumps({"a": channel_account_id, "v": visitor, **extra})
        await conn.execute("SELECT pg_notify($1, $2)", self.channel, payload)

    async def notify_typing(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        channel_account_id: str,
        visitor: str,
        state: bool = True,
    ) -> None:
        """Show (or hide) the agent-typing indicator on the visitor's open sockets. Ephemeral:
        nothing is stored; a visitor who is not connected never sees it."""
        await self.notify(conn, channel_account_id, visitor, k="typing", s=state)

    async def recent(
        self, pool: asyncpg.Pool, channel_account_id: str, visitor: str, limit: int = HISTORY_LIMIT
    ) -> list[asyncpg.Record]:
        rows = await pool.fetch(
            f"""SELECT seq, direction, message_id, body, created_at
                FROM {self.schema}.webchat_messages
                WHERE channel_account_id = $1 AND visitor = $2
                ORDER BY seq DESC LIMIT $3""",
            channel_account_id,
            visitor,
            limit,
        )
        return list(reversed(rows))

    async def since(
        self, pool: asyncpg.Pool, channel_account_id: str, visitor: str, after_seq: int
    ) -> list[asyncpg.Record]:
        return list(
            await pool.fetch(
                f"""SELECT seq, direction, message_id, body, created_at
                    FROM {self.schema}.webchat_messages
                    WHERE channel_account_id = $1 AND visitor = $2
                      AND (seq > $3 OR created_at > now() - make_interval(secs => $4))
                    ORDER BY seq""",
                channel_account_id,
                visitor,
                after_seq,
                float(LATE_COMMIT_WINDOW_SECONDS),
            )
        )


def row_frame(row: asyncpg.Record) -> dict[str, Any]:
    """A history row as the frame the widget renders."""
    body = row["body"]
    if isinstance(body, str):
        body = json.loads(body)
    return {
        "type": "message",
        "direction": row["direction"],
        "id": row["message_id"],
        "at": row["created_at"].isoformat(),
        **body,
    }
