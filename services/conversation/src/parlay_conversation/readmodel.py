"""Postgres adapter for the conversation read models and the timeline projector's working state.

conversations          one row per conversation (version = the aggregate's current version)
conversation_messages  the timeline; message_id is unique, (conversation_id, seq) is the append
                       order, and a provider message id appears at most once per channel account
identity_map           (tenant, channel, address) -> customer, learned from profile IdentityLinked
parked_messages        inbound messages whose identity profile has not linked yet
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from parlay_conversation.domain import ConversationState, TimelineMessage
from parlay_kit.db import Migration, check_identifier

MIGRATIONS = [
    Migration(
        "conversation_0001_read_models",
        """
        CREATE TABLE {schema}.conversations (
            conversation_id         text        PRIMARY KEY,
            tenant_id               text        NOT NULL,
            customer_id             text        NOT NULL,
            status                  text        NOT NULL,
            opened_at               timestamptz NOT NULL,
            last_activity_at        timestamptz NOT NULL,
            last_channel            text        NOT NULL DEFAULT '',
            last_channel_account_id text        NOT NULL DEFAULT '',
            last_inbound_at         timestamptz,
            message_count           integer     NOT NULL DEFAULT 0,
            unread_count            integer     NOT NULL DEFAULT 0,
            version                 bigint      NOT NULL
        );
        CREATE INDEX conversations_tenant_activity
            ON {schema}.conversations (tenant_id, last_activity_at DESC, conversation_id DESC);
        CREATE INDEX conversations_tenant_customer
            ON {schema}.conversations (tenant_id, customer_id, last_activity_at DESC);

        CREATE TABLE {schema}.conversation_messages (
            message_id          text        PRIMARY KEY,
            conversation_id     text        NOT NULL,
            tenant_id           text        NOT NULL,
            seq                 integer     NOT NULL,
            direction           text        NOT NULL,
            channel             text        NOT NULL,
            channel_account_id  text        NOT NULL DEFAULT '',
            provider_message_id text        NOT NULL DEFAULT '',
            text                text        NOT NULL DEFAULT '',
            content             bytea       NOT NULL DEFAULT '',
            occurred_at         timestamptz NOT NULL,
            source_event_id     text        NOT NULL DEFAULT '',
            CONSTRAINT conversation_messages_seq UNIQUE (conversation_id, seq)
        );
        CREATE INDEX conversation_messages_timeline
            ON {schema}.conversation_messages (conversation_id, occurred_at, seq);
        CREATE UNIQUE INDEX conversation_messages_provider_id
            ON {schema}.conversation_messages
               (tenant_id, channel, channel_account_id, direction, provider_message_id)
            WHERE provider_message_id <> '';

        CREATE TABLE {schema}.identity_map (
            tenant_id       text        NOT NULL,
            channel         text        NOT NULL,
            address         text        NOT NULL,
            customer_id     text        NOT NULL,
            linked_event_id text        NOT NULL,
            updated_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, channel, address)
        );

        CREATE TABLE {schema}.parked_messages (
            event_id    text        PRIMARY KEY,
            tenant_id   text        NOT NULL,
            channel     text        NOT NULL,
            address     text        NOT NULL,
            occurred_at timestamptz NOT NULL,
            arrival     bigint      GENERATED ALWAYS AS IDENTITY,
            envelope    bytea       NOT NULL,
            traceparent text        NOT NULL DEFAULT '',
            parked_at   timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX parked_messages_identity
            ON {schema}.parked_messages (tenant_id, channel, address, occurred_at, arrival);
        """,
    )
]

IdentityKey = tuple[str, str, str]  # (tenant_id, channel, address)
ProviderKey = tuple[str, str, str, str, str]  # (tenant, channel, account, direction, provider id)

_CONVERSATION_COLUMNS = """conversation_id, tenant_id, customer_id, status, opened_at,
    last_activity_at, last_channel, last_channel_account_id, last_inbound_at, message_count,
    unread_count, version"""
_MESSAGE_COLUMNS = """message_id, conversation_id, tenant_id, seq, direction, channel,
    channel_account_id, provider_message_id, text, content, occurred_at, source_event_id"""


@dataclass(frozen=True, slots=True)
class ParkedRow:
    event_id: str
    tenant_id: str
    channel: str
    address: str
    occurred_at: datetime
    arrival: int
    envelope: bytes
    traceparent: str


def _state(r: asyncpg.Record) -> ConversationState:
    return ConversationState(
        tenant_id=r["tenant_id"],
        conversation_id=r["conversation_id"],
        customer_id=r["customer_id"],
        status=r["status"],
        opened_at=r["opened_at"],
        last_activity_at=r["last_activity_at"],
        last_channel=r["last_channel"],
        last_channel_account_id=r["last_channel_account_id"],
        last_inbound_at=r["last_inbound_at"],
        message_count=r["message_count"],
        unread_count=r["unread_count"],
        version=r["version"],
    )


def _message(r: asyncpg.Record) -> TimelineMessage:
    return TimelineMessage(
        tenant_id=r["tenant_id"],
        conversation_id=r["conversation_id"],
        message_id=r["message_id"],
        seq=r["seq"],
        direction=r["direction"],
        channel=r["channel"],
        channel_account_id=r["channel_account_id"],
        provider_message_id=r["provider_message_id"],
        text=r["text"],
        content=bytes(r["content"]),
        occurred_at=r["occurred_at"],
        source_event_id=r["source_event_id"],
    )


def _state_row(c: ConversationState) -> tuple:
    return (
        c.conversation_id,
        c.tenant_id,
        c.customer_id,
        c.status,
        c.opened_at,
        c.last_activity_at,
        c.last_channel,
        c.last_channel_account_id,
        c.last_inbound_at,
        c.message_count,
        c.unread_count,
        c.version,
    )


def _message_row(m: TimelineMessage) -> tuple:
    return (
        m.message_id,
        m.conversation_id,
        m.tenant_id,
        m.seq,
        m.direction,
        m.channel,
        m.channel_account_id,
        m.provider_message_id,
        m.text,
        m.content,
        m.occurred_at,
        m.source_event_id,
    )


def _columns(rows: Sequence[tuple], width: int) -> list[list]:
    columns: list[list] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _split(keys: Sequence[tuple]) -> list[list]:
    return [list(col) for col in zip(*keys, strict=True)] if keys else []


class ConversationReadModel:
    def __init__(self, schema: str) -> None:
        self.schema = check_identifier(schema)

    # ------------------------------------------------------------------ projector state

    async def identity_map(
        self, conn: asyncpg.Connection, keys: Iterable[IdentityKey]
    ) -> dict[IdentityKey, str]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        rows = await conn.fetch(
            f"""SELECT m.tenant_id, m.channel, m.address, m.customer_id
                FROM {self.schema}.identity_map m
                JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(tenant_id, channel, address)
                  ON m.tenant_id = k.tenant_id AND m.channel = k.channel
                 AND m.address = k.address""",
            *_split(keys),
        )
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    async def link_identities(
        self, conn: asyncpg.Connection, links: Mapping[IdentityKey, tuple[str, str]]
    ) -> None:
        """Upsert identity -> (customer_id, linked_event_id)."""
        if not links:
            return
        rows = [(*k, c, e) for k, (c, e) in links.items()]
        await conn.execute(
            f"""INSERT INTO {self.schema}.identity_map
                    (tenant_id, channel, address, customer_id, linked_event_id)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                ON CONFLICT (tenant_id, channel, address) DO UPDATE
                SET customer_id = EXCLUDED.customer_id,
                    linked_event_id = EXCLUDED.linked_event_id, updated_at = now()""",
            *_columns(rows, 5),
        )

    async def parked_for(
        self, conn: asyncpg.Connection, keys: Iterable[IdentityKey]
    ) -> dict[IdentityKey, list[ParkedRow]]:
        """Parked messages of these identities, locked, oldest (provider time) first."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        rows = await conn.fetch(
            f"""SELECT p.event_id, p.tenant_id, p.channel, p.address, p.occurred_at, p.arrival,
                       p.envelope, p.traceparent
                FROM {self.schema}.parked_messages p
                JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(tenant_id, channel, address)
                  ON p.tenant_id = k.tenant_id AND p.channel = k.channel
                 AND p.address = k.address
                ORDER BY p.occurred_at, p.arrival
                FOR UPDATE OF p""",
            *_split(keys),
        )
        out: dict[IdentityKey, list[ParkedRow]] = {}
        for r in rows:
            row = ParkedRow(
                event_id=r["event_id"],
                tenant_id=r["tenant_id"],
                channel=r["channel"],
                address=r["address"],
                occurred_at=r["occurred_at"],
                arrival=r["arrival"],
                envelope=bytes(r["envelope"]),
                traceparent=r["traceparent"],
            )
            out.setdefault((row.tenant_id, row.channel, row.address), []).append(row)
        return out

    async def park(self, conn: asyncpg.Connection, rows: Sequence[ParkedRow]) -> None:
        """Park messages (arrival order = the order given). Already parked ids are kept."""
        if not rows:
            return
        await conn.execute(
            f"""INSERT INTO {self.schema}.parked_messages
                    (event_id, tenant_id, channel, address, occurred_at, envelope, traceparent)
                SELECT event_id, tenant_id, channel, address, occurred_at, envelope, traceparent
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                    $6::bytea[], $7::text[]) WITH ORDINALITY
                    AS u(event_id, tenant_id, channel, address, occurred_at, envelope,
                         traceparent, n)
                ORDER BY n
                ON CONFLICT (event_id) DO NOTHING""",
            *_columns(
                [
                    (
                        r.event_id,
                        r.tenant_id,
                        r.channel,
                        r.address,
                        r.occurred_at,
                        r.envelope,
                        r.traceparent,
                    )
                    for r in rows
                ],
                7,
            ),
        )

    async def unpark(self, conn: asyncpg.Connection, event_ids: Sequence[str]) -> None:
        if event_ids:
            await conn.execute(
                f"DELETE FROM {self.schema}.parked_messages WHERE event_id = ANY($1::text[])",
                list(event_ids),
            )

    async def count_parked(self, conn: asyncpg.Connection, tenant_id: str) -> int:
        return await conn.fetchval(
            f"SELECT count(*) FROM {self.schema}.parked_messages WHERE tenant_id = $1", tenant_id
        )

    async def existing_messages(
        self,
        conn: asyncpg.Connection,
        message_ids: Iterable[str],
        provider_keys: Iterable[ProviderKey],
    ) -> tuple[set[str], set[ProviderKey]]:
        """Which of these message ids and provider message ids the timeline already holds."""
        ids = list(dict.fromkeys(message_ids))
        keys = [k for k in dict.fromkeys(provider_keys) if k[4]]
        found_ids: set[str] = set()
        found_keys: set[ProviderKey] = set()
        if ids:
            rows = await conn.fetch(
                f"""SELECT message_id FROM {self.schema}.conversation_messages
                    WHERE message_id = ANY($1::text[])""",
                ids,
            )
            found_ids = {r[0] for r in rows}
        if keys:
            rows = await conn.fetch(
                f"""SELECT m.tenant_id, m.channel, m.channel_account_id, m.direction,
                           m.provider_message_id
                    FROM {self.schema}.conversation_messages m
                    JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                      AS k(tenant_id, channel, channel_account_id, direction, provider_message_id)
                      ON m.tenant_id = k.tenant_id AND m.channel = k.channel
                     AND m.channel_account_id = k.channel_account_id
                     AND m.direction = k.direction
                     AND m.provider_message_id = k.provider_message_id
                    WHERE m.provider_message_id <> ''""",
                *_split(keys),
            )
            found_keys = {(r[0], r[1], r[2], r[3], r[4]) for r in rows}
        return found_ids, found_keys

    # ------------------------------------------------------------------ conversations

    async def load(
        self,
        conn: asyncpg.Connection,
        conversation_ids: Iterable[str],
        *,
        for_update: bool = False,
    ) -> dict[str, ConversationState]:
        """States of the conversations that exist; `for_update` locks them in id order."""
        ids = sorted(set(conversation_ids))
        if not ids:
            return {}
        rows = await conn.fetch(
            f"""SELECT {_CONVERSATION_COLUMNS} FROM {self.schema}.conversations
                WHERE conversation_id = ANY($1::text[]) ORDER BY conversation_id"""
            + (" FOR UPDATE" if for_update else ""),
            ids,
        )
        return {r["conversation_id"]: _state(r) for r in rows}

    async def save(
        self,
        conn: asyncpg.Connection,
        before: Mapping[str, ConversationState | None],
        after: Mapping[str, ConversationState],
        messages: Sequence[TimelineMessage] = (),
    ) -> None:
        """Write changed conversations and append the messages (a duplicate message id or
        provider message id raises UniqueViolationError: the batch is retried)."""
        s = self.schema
        new = [c for cid, c in after.items() if before.get(cid) is None]
        changed = [c for cid, c in after.items() if (b := before.get(cid)) is not None and b != c]
        if new:
            await conn.execute(
                f"""INSERT INTO {s}.conversations ({_CONVERSATION_COLUMNS})
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                        $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[],
                        $9::timestamptz[], $10::int[], $11::int[], $12::bigint[])""",
                *_columns([_state_row(c) for c in new], 12),
            )
        if changed:
            await conn.execute(
                f"""UPDATE {s}.conversations c SET status = u.status,
                        last_activity_at = u.last_activity_at, last_channel = u.last_channel,
                        last_channel_account_id = u.last_channel_account_id,
                        last_inbound_at = u.last_inbound_at, message_count = u.message_count,
                        unread_count = u.unread_count, version = u.version
                    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                        $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[],
                        $9::timestamptz[], $10::int[], $11::int[], $12::bigint[])
                        AS u(conversation_id, tenant_id, customer_id, status, opened_at,
                             last_activity_at, last_channel, last_channel_account_id,
                             last_inbound_at, message_count, unread_count, version)
                    WHERE c.conversation_id = u.conversation_id""",
                *_columns([_state_row(c) for c in changed], 12),
            )
        if messages:
            await conn.execute(
                f"""INSERT INTO {s}.conversation_messages ({_MESSAGE_COLUMNS})
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[],
                        $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                        $10::bytea[], $11::timestamptz[], $12::text[])""",
                *_columns([_message_row(m) for m in messages], 12),
            )

    # ------------------------------------------------------------------ queries

    async def get(
        self, conn: asyncpg.Connection, tenant_id: str, conversation_id: str
    ) -> ConversationState | None:
        row = await conn.fetchrow(
            f"""SELECT {_CONVERSATION_COLUMNS} FROM {self.schema}.conversations
                WHERE tenant_id = $1 AND conversation_id = $2""",
            tenant_id,
            conversation_id,
        )
        return _state(row) if row is not None else None

    async def list_conversations(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        *,
        customer_id: str = "",
        after: tuple[datetime, str] | None = None,
        limit: int,
    ) -> list[ConversationState]:
        """Newest activity first; `after` is the (last_activity_at, conversation_id) of the
        last row of the previous page."""
        rows = await conn.fetch(
            f"""SELECT {_CONVERSATION_COLUMNS} FROM {self.schema}.conversations
                WHERE tenant_id = $1
                  AND ($2 = '' OR customer_id = $2)
                  AND ($3::timestamptz IS NULL OR (last_activity_at, conversation_id) < ($3, $4))
                ORDER BY last_activity_at DESC, conversation_id DESC
                LIMIT $5""",
            tenant_id,
            customer_id,
            after[0] if after else None,
            after[1] if after else "",
            limit,
        )
        return [_state(r) for r in rows]

    async def messages(
        self,
        conn: asyncpg.Connection,
        conversation_id: str,
        *,
        after: tuple[datetime, int] | None = None,
        limit: int,
    ) -> list[TimelineMessage]:
        """Oldest first (provider time, then append order); `after` is the (occurred_at, seq)
        of the last message of the previous page."""
        rows = await conn.fetch(
            f"""SELECT {_MESSAGE_COLUMNS} FROM {self.schema}.conversation_messages
                WHERE conversation_id = $1
                  AND ($2::timestamptz IS NULL OR (occurred_at, seq) > ($2, $3))
                ORDER BY occurred_at, seq
                LIMIT $4""",
            conversation_id,
            after[0] if after else None,
            after[1] if after else 0,
            limit,
        )
        return [_message(r) for r in rows]
