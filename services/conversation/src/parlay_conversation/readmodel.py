"""Postgres adapter for the conversation read models and the timeline projector's working state.

Read models (a function of parlay.conversation.v1; TimelineProjection rebuilds them):

conversations          one row per conversation (version = the aggregate's current version)
conversation_messages  the timeline; message_id is unique, (conversation_id, seq) is the append
                       order, a provider message id appears at most once per channel account;
                       `tsv` is the full-text index of the message text
conversation_notes     private notes
scheduled_messages     proactive messages to send later (outcome '' until sent or suppressed)
inbox_config           agents, teams, automation rules, inbox settings (serialized protobuf)
sla_targets            SLA targets per tenant (from inbox settings, for the timer's queries)

Working state of the timeline projector (derived from the inbound, profile, orders and payments
topics; never rebuilt from the conversation topic):

identity_map           (tenant, channel, address) -> customer, from profile IdentityLinked
parked_messages        inbound messages whose identity profile has not linked yet
parked_statuses        provider statuses of messages whose provider id is not known yet
customer_aliases       merged customer -> survivor (profile ProfilesMerged / ProfilesUnmerged)
consents               the consent ledger's latest entry per customer, channel and purpose
purchases              paid orders per customer (first purchase -> thank-you)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg

from parlay_conversation import config, render
from parlay_conversation.domain import (
    OUTBOUND,
    STATUS_RANK,
    ChannelContact,
    ConversationState,
    Effect,
    NoteRow,
    ScheduleDone,
    ScheduleRow,
    StatusUpdate,
    TimelineMessage,
)
from parlay_kit.customer_aliases import CustomerAliases
from parlay_kit.db import Migration, WriteBehind, check_identifier

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
    ),
    Migration(
        "conversation_0002_inbox",
        """
        ALTER TABLE {schema}.conversations
            ADD COLUMN owner_customer_id text        NOT NULL DEFAULT '',
            ADD COLUMN snoozed_until     timestamptz,
            ADD COLUMN assignee_agent_id text        NOT NULL DEFAULT '',
            ADD COLUMN team_id           text        NOT NULL DEFAULT '',
            ADD COLUMN assigned_at       timestamptz,
            ADD COLUMN handler           text        NOT NULL DEFAULT 'human',
            ADD COLUMN bot_unanswered    integer     NOT NULL DEFAULT 0,
            ADD COLUMN labels            text[]      NOT NULL DEFAULT '{{}}',
            ADD COLUMN contacts          jsonb       NOT NULL DEFAULT '[]',
            ADD COLUMN channels          text[]      NOT NULL DEFAULT '{{}}',
            ADD COLUMN cycle             integer     NOT NULL DEFAULT 1,
            ADD COLUMN cycle_started_at  timestamptz,
            ADD COLUMN awaiting_since    timestamptz,
            ADD COLUMN first_response_at timestamptz,
            ADD COLUMN breaches          text[]      NOT NULL DEFAULT '{{}}',
            ADD COLUMN read_through_seq  integer     NOT NULL DEFAULT 0,
            ADD COLUMN resolved_at       timestamptz;
        UPDATE {schema}.conversations
           SET owner_customer_id = customer_id, cycle_started_at = opened_at,
               channels = ARRAY[last_channel]
         WHERE owner_customer_id = '';
        CREATE INDEX conversations_tenant_owner
            ON {schema}.conversations (tenant_id, owner_customer_id, last_activity_at DESC);
        CREATE INDEX conversations_tenant_status
            ON {schema}.conversations (tenant_id, status, last_activity_at DESC);
        CREATE INDEX conversations_tenant_assignee
            ON {schema}.conversations (tenant_id, assignee_agent_id, status);
        CREATE INDEX conversations_tenant_team
            ON {schema}.conversations (tenant_id, team_id, last_activity_at DESC);
        CREATE INDEX conversations_labels ON {schema}.conversations USING gin (labels);
        CREATE INDEX conversations_channels ON {schema}.conversations USING gin (channels);
        CREATE INDEX conversations_awaiting
            ON {schema}.conversations (awaiting_since)
            WHERE awaiting_since IS NOT NULL AND first_response_at IS NULL;
        CREATE INDEX conversations_unresolved_cycle
            ON {schema}.conversations (cycle_started_at)
            WHERE status <> 'resolved' AND handler = 'human';
        CREATE INDEX conversations_snoozed
            ON {schema}.conversations (snoozed_until) WHERE status = 'snoozed';

        ALTER TABLE {schema}.conversation_messages
            ADD COLUMN status            text        NOT NULL DEFAULT '',
            ADD COLUMN status_rank       smallint    NOT NULL DEFAULT -1,
            ADD COLUMN sender            text        NOT NULL DEFAULT '',
            ADD COLUMN purpose           text        NOT NULL DEFAULT '',
            ADD COLUMN client_message_id text        NOT NULL DEFAULT '',
            ADD COLUMN error_code        text        NOT NULL DEFAULT '',
            ADD COLUMN error_message     text        NOT NULL DEFAULT '',
            ADD COLUMN status_at         timestamptz,
            ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED;
        CREATE INDEX conversation_messages_search
            ON {schema}.conversation_messages USING gin (tsv);

        CREATE TABLE {schema}.conversation_notes (
            note_id         text        PRIMARY KEY,
            conversation_id text        NOT NULL,
            tenant_id       text        NOT NULL,
            author          text        NOT NULL DEFAULT '',
            text            text        NOT NULL,
            created_at      timestamptz NOT NULL
        );
        CREATE INDEX conversation_notes_conversation
            ON {schema}.conversation_notes (conversation_id, created_at, note_id);

        CREATE TABLE {schema}.scheduled_messages (
            schedule_id     text        PRIMARY KEY,
            tenant_id       text        NOT NULL,
            conversation_id text        NOT NULL,
            kind            text        NOT NULL,
            due_at          timestamptz NOT NULL,
            payload         bytea       NOT NULL,
            outcome         text        NOT NULL DEFAULT ''
        );
        CREATE INDEX scheduled_messages_due
            ON {schema}.scheduled_messages (due_at) WHERE outcome = '';

        CREATE TABLE {schema}.inbox_config (
            tenant_id text    NOT NULL,
            kind      text    NOT NULL,
            key       text    NOT NULL,
            version   bigint  NOT NULL,
            removed   boolean NOT NULL DEFAULT false,
            data      bytea   NOT NULL,
            PRIMARY KEY (tenant_id, kind, key)
        );

        CREATE TABLE {schema}.sla_targets (
            tenant_id              text    PRIMARY KEY,
            first_response_seconds bigint  NOT NULL DEFAULT 0,
            resolution_seconds     bigint  NOT NULL DEFAULT 0
        );

        CREATE TABLE {schema}.parked_statuses (
            event_id            text        PRIMARY KEY,
            tenant_id           text        NOT NULL,
            channel             text        NOT NULL,
            channel_account_id  text        NOT NULL,
            provider_message_id text        NOT NULL,
            envelope            bytea       NOT NULL,
            parked_at           timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX parked_statuses_key ON {schema}.parked_statuses
            (tenant_id, channel, channel_account_id, provider_message_id);

        CREATE TABLE {schema}.customer_aliases (
            tenant_id            text NOT NULL,
            customer_id          text NOT NULL,
            survivor_customer_id text NOT NULL,
            merge_id             text NOT NULL,
            PRIMARY KEY (tenant_id, customer_id)
        );
        CREATE INDEX customer_aliases_survivor
            ON {schema}.customer_aliases (tenant_id, survivor_customer_id);

        CREATE TABLE {schema}.consents (
            tenant_id   text        NOT NULL,
            customer_id text        NOT NULL,
            channel     text        NOT NULL,
            purpose     text        NOT NULL,
            granted     boolean     NOT NULL,
            changed_at  timestamptz NOT NULL,
            event_id    text        NOT NULL,
            PRIMARY KEY (tenant_id, customer_id, channel, purpose)
        );

        CREATE TABLE {schema}.purchases (
            tenant_id   text        NOT NULL,
            customer_id text        NOT NULL,
            order_id    text        NOT NULL,
            event_id    text        NOT NULL,
            paid_at     timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, customer_id, order_id)
        );
        """,
    ),
    Migration(
        "conversation_0003_message_api",
        """
        -- The message's API representation, rendered once (see render.py).
        ALTER TABLE {schema}.conversation_messages ADD COLUMN api bytea NOT NULL DEFAULT '';
        CREATE INDEX conversation_messages_outbound_provider
            ON {schema}.conversation_messages (tenant_id, channel_account_id, provider_message_id)
            WHERE direction = 'outbound' AND provider_message_id <> '';
        """,
    ),
    Migration(
        "conversation_0004_api_representation",
        """
        -- Pre-rendered API representation (see render.py).
        ALTER TABLE {schema}.conversations ADD COLUMN api bytea NOT NULL DEFAULT '';
        ALTER TABLE {schema}.conversation_messages
            ADD COLUMN api_static bytea NOT NULL DEFAULT '';
        ALTER TABLE {schema}.conversation_notes ADD COLUMN api bytea NOT NULL DEFAULT '';
        """,
    ),
]

IdentityKey = tuple[str, str, str]  # (tenant_id, channel, address)
ProviderKey = tuple[str, str, str, str, str]  # (tenant, channel, account, direction, provider id)
#: (tenant, "", channel account, provider message id): a provider message id is unique per
#: channel account, and the gateway may name a channel differently from the conversation
#: (twilio / sms), so statuses are matched without it.
StatusKey = tuple[str, str, str, str]

_SEP = "\x1f"

#: Conversation columns in the order of `_state_row`, with their unnest types.
_CONV = (
    ("conversation_id", "text"),
    ("tenant_id", "text"),
    ("customer_id", "text"),
    ("status", "text"),
    ("opened_at", "timestamptz"),
    ("last_activity_at", "timestamptz"),
    ("last_channel", "text"),
    ("last_channel_account_id", "text"),
    ("last_inbound_at", "timestamptz"),
    ("message_count", "int"),
    ("unread_count", "int"),
    ("version", "bigint"),
    ("owner_customer_id", "text"),
    ("snoozed_until", "timestamptz"),
    ("assignee_agent_id", "text"),
    ("team_id", "text"),
    ("assigned_at", "timestamptz"),
    ("handler", "text"),
    ("bot_unanswered", "int"),
    ("labels", "text"),
    ("contacts", "jsonb"),
    ("channels", "text"),
    ("cycle", "int"),
    ("cycle_started_at", "timestamptz"),
    ("awaiting_since", "timestamptz"),
    ("first_response_at", "timestamptz"),
    ("breaches", "text"),
    ("read_through_seq", "int"),
    ("resolved_at", "timestamptz"),
    ("api", "bytea"),
)
_ARRAY_COLUMNS = frozenset({"labels", "channels", "breaches"})
_CONVERSATION_COLUMNS = ", ".join(name for name, _ in _CONV)
_CONV_UNNEST = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(_CONV, start=1))
_CONV_SELECT = ", ".join(
    f"string_to_array(u.{name}, E'\\x1f')" if name in _ARRAY_COLUMNS else f"u.{name}"
    for name, _ in _CONV
)
_CONV_ALIAS = ", ".join(name for name, _ in _CONV)
_CONV_SET = ", ".join(
    f"{name} = string_to_array(u.{name}, E'\\x1f')"
    if name in _ARRAY_COLUMNS
    else f"{name} = u.{name}"
    for name, _ in _CONV[3:]
)

_MSG = (
    ("message_id", "text"),
    ("conversation_id", "text"),
    ("tenant_id", "text"),
    ("seq", "int"),
    ("direction", "text"),
    ("channel", "text"),
    ("channel_account_id", "text"),
    ("provider_message_id", "text"),
    ("text", "text"),
    ("content", "bytea"),
    ("occurred_at", "timestamptz"),
    ("source_event_id", "text"),
    ("status", "text"),
    ("status_rank", "smallint"),
    ("sender", "text"),
    ("purpose", "text"),
    ("client_message_id", "text"),
    ("error_code", "text"),
    ("error_message", "text"),
    ("status_at", "timestamptz"),
    ("api", "bytea"),
    ("api_static", "bytea"),
)
_MSG_NAMES = [name for name, _ in _MSG]
_MESSAGE_COLUMNS = ", ".join(_MSG_NAMES)
_MSG_UNNEST = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(_MSG, start=1))


@dataclass(frozen=True, slots=True)
class ConversationPage:
    #: A serialized Conversation: the stored header, the page's messages, the notes.
    blob: bytes
    #: The conversation's contacts (for its service windows, which depend on the time).
    contacts: tuple[ChannelContact, ...]
    #: (occurred_at, seq) of the page's last message when another page follows.
    last: tuple | None


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


@dataclass(frozen=True, slots=True)
class OutboundRef:
    """An outbound message of the timeline, as status handling needs it."""

    conversation_id: str
    message_id: str
    status: str
    tenant_id: str


@dataclass(frozen=True, slots=True)
class AgentView:
    agent: object  # ce.Agent
    open_conversations: int
    last_assigned_at: datetime | None


def _split_array(value: Sequence[str]) -> str:
    return _SEP.join(value)


def _contacts_json(contacts: Sequence[ChannelContact]) -> str:
    return json.dumps(
        [
            [
                c.channel,
                c.channel_account_id,
                c.address,
                c.last_inbound_at.isoformat() if c.last_inbound_at else None,
                c.last_provider_message_id,
            ]
            for c in contacts
        ],
        separators=(",", ":"),
    )


def _contacts_from(raw: str | None) -> tuple[ChannelContact, ...]:
    if not raw:
        return ()
    return tuple(
        ChannelContact(
            channel=c[0],
            channel_account_id=c[1],
            address=c[2],
            last_inbound_at=datetime.fromisoformat(c[3]) if c[3] else None,
            last_provider_message_id=c[4],
        )
        for c in json.loads(raw)
    )


def _breaches_from(values: Sequence[str]) -> tuple[tuple[str, int], ...]:
    out = []
    for v in values:
        kind, _, cycle = v.rpartition(":")
        out.append((kind, int(cycle)))
    return tuple(out)


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
        owner_customer_id=r["owner_customer_id"],
        snoozed_until=r["snoozed_until"],
        assignee_agent_id=r["assignee_agent_id"],
        team_id=r["team_id"],
        assigned_at=r["assigned_at"],
        handler=r["handler"],
        bot_unanswered=r["bot_unanswered"],
        labels=tuple(r["labels"]),
        contacts=_contacts_from(r["contacts"]),
        channels=tuple(r["channels"]),
        cycle=r["cycle"],
        cycle_started_at=r["cycle_started_at"],
        awaiting_since=r["awaiting_since"],
        first_response_at=r["first_response_at"],
        breaches=_breaches_from(r["breaches"]),
        read_through_seq=r["read_through_seq"],
        resolved_at=r["resolved_at"],
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
        c.owner,
        c.snoozed_until,
        c.assignee_agent_id,
        c.team_id,
        c.assigned_at,
        c.handler,
        c.bot_unanswered,
        _split_array(c.labels),
        _contacts_json(c.contacts),
        _split_array(c.channels),
        c.cycle,
        c.cycle_started_at,
        c.awaiting_since,
        c.first_response_at,
        _split_array([f"{k}:{n}" for k, n in c.breaches]),
        c.read_through_seq,
        c.resolved_at,
        render.header_bytes(c),
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
        status=r["status"],
        sender=r["sender"],
        purpose=r["purpose"],
        client_message_id=r["client_message_id"],
        error_code=r["error_code"],
        error_message=r["error_message"],
        status_at=r["status_at"],
    )


def _message_row(m: TimelineMessage) -> tuple:
    static = render.message_static_bytes(m)
    api = static
    if m.direction == OUTBOUND:
        api += render.progress_bytes(
            m.status, m.status_at, m.provider_message_id, m.error_code, m.error_message
        )
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
        m.status,
        STATUS_RANK.get(m.status, -1),
        m.sender,
        m.purpose,
        m.client_message_id,
        m.error_code,
        m.error_message,
        m.status_at,
        render.entry(api),
        # Only an outbound message's entry is rendered again (when its status moves).
        static if m.direction == OUTBOUND else b"",
    )


def _latest_statuses(statuses: Iterable[StatusUpdate]) -> dict[str, StatusUpdate]:
    """Per message, the status a batch leaves it in. Statuses only move forward, so the last
    one of a message in the batch is its highest; the rank check (again when it is written)
    keeps the read model monotone even against a stale row."""
    last: dict[str, StatusUpdate] = {}
    for u in statuses:
        current = last.get(u.message_id)
        if current is None or STATUS_RANK.get(u.status, -1) >= STATUS_RANK.get(current.status, -1):
            if current is not None and not u.provider_message_id:
                u = replace(u, provider_message_id=current.provider_message_id)
            last[u.message_id] = u
    return last


def _message_rows(
    messages: Sequence[TimelineMessage], last: dict[str, StatusUpdate]
) -> list[tuple]:
    """The rows of new timeline messages. A status in `last` of an outbound message among
    them (a rebuild reads both in one batch) is written with the row rather than by an UPDATE
    of it afterwards: the row is the same, and Postgres is spared a second version of it (its
    tsvector and every index entry written again); such statuses leave `last`."""
    if last:
        messages = [_with_status(m, last) for m in messages]
    return [_message_row(m) for m in messages]


def _with_status(m: TimelineMessage, last: dict[str, StatusUpdate]) -> TimelineMessage:
    """The outbound message `m` (not stored yet) with its batch's latest status, exactly as
    the row would be after the status UPDATE of `save`; the status is taken out of `last`."""
    if m.direction != OUTBOUND:
        return m
    u = last.pop(m.message_id, None)
    if u is None or STATUS_RANK.get(m.status, -1) >= STATUS_RANK.get(u.status, -1):
        return m
    return replace(
        m,
        status=u.status,
        provider_message_id=u.provider_message_id or m.provider_message_id,
        error_code=u.error_code,
        error_message=u.error_message,
        status_at=u.status_at,
    )


def _columns(rows: Sequence[tuple], width: int) -> list[list]:
    columns: list[list] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _split(keys: Sequence[tuple]) -> list[list]:
    return [list(col) for col in zip(*keys, strict=True)] if keys else []


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    customer_id: str = ""
    status: str = ""
    assignee_agent_id: str = ""
    team_id: str = ""
    channel: str = ""
    label: str = ""


class ConversationReadModel(CustomerAliases):
    def __init__(self, schema: str) -> None:
        self.schema = s = check_identifier(schema)
        self._insert_conversations = f"""
            INSERT INTO {s}.conversations ({_CONVERSATION_COLUMNS})
            SELECT {_CONV_SELECT} FROM unnest({_CONV_UNNEST}) AS u({_CONV_ALIAS})"""
        self._update_conversations = f"""
            UPDATE {s}.conversations c SET {_CONV_SET}
            FROM unnest({_CONV_UNNEST}) AS u({_CONV_ALIAS})
            WHERE c.conversation_id = u.conversation_id"""
        self._list_sql = f"""SELECT {{columns}} FROM {s}.conversations
                WHERE tenant_id = $1
                  AND ($2 = '' OR owner_customer_id = $2)
                  AND ($3 = '' OR status = $3)
                  AND ($4 = '' OR assignee_agent_id = $4)
                  AND ($5 = '' OR team_id = $5)
                  AND ($6 = '' OR channels @> ARRAY[$6])
                  AND ($7 = '' OR labels @> ARRAY[$7])
                  AND ($8::timestamptz IS NULL OR (last_activity_at, conversation_id) < ($8, $9))
                ORDER BY last_activity_at DESC, conversation_id DESC
                LIMIT $10"""
        self._page_sql = f"""
            WITH c AS (
                SELECT conversation_id, api, contacts FROM {s}.conversations
                WHERE tenant_id = $1 AND conversation_id = $2
            ), page AS (
                SELECT row_number() OVER (ORDER BY m.occurred_at, m.seq) - 1 AS n, m.api,
                       m.occurred_at, m.seq
                FROM {s}.conversation_messages m
                WHERE m.conversation_id = (SELECT conversation_id FROM c)
                  AND ($3::timestamptz IS NULL OR (m.occurred_at, m.seq) > ($3, $4))
                ORDER BY m.occurred_at, m.seq LIMIT $5 + 1
            )
            SELECT c.api
                    || (SELECT coalesce(string_agg(api, ''::bytea ORDER BY n), ''::bytea)
                          FROM page WHERE n < $5)
                    || CASE WHEN $6 THEN (
                           SELECT coalesce(string_agg(n.api, ''::bytea
                                                      ORDER BY n.created_at, n.note_id),
                                           ''::bytea)
                           FROM {s}.conversation_notes n
                           WHERE n.conversation_id = c.conversation_id)
                       ELSE ''::bytea END AS blob,
                c.contacts,
                (SELECT ROW(occurred_at, seq) FROM page WHERE n = $5 - 1) AS last_row,
                (SELECT count(*) > $5 FROM page) AS more
            FROM c"""
        self._insert_messages = f"""
            INSERT INTO {s}.conversation_messages ({_MESSAGE_COLUMNS})
            SELECT * FROM unnest({_MSG_UNNEST})"""

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

    async def unlink_identities(
        self, conn: asyncpg.Connection, unlinks: Sequence[tuple[IdentityKey, str]]
    ) -> None:
        """Forget identity -> customer where it still points at that customer."""
        for (tenant, channel, address), customer in unlinks:
            await conn.execute(
                f"""DELETE FROM {self.schema}.identity_map WHERE tenant_id = $1 AND channel = $2
                    AND address = $3 AND customer_id = $4""",
                tenant,
                channel,
                address,
                customer,
            )

    async def identities_of(
        self, conn: asyncpg.Connection, tenant_id: str, customer_ids: Sequence[str], channel: str
    ) -> list[str]:
        rows = await conn.fetch(
            f"""SELECT address FROM {self.schema}.identity_map
                WHERE tenant_id = $1 AND customer_id = ANY($2::text[]) AND channel = $3
                ORDER BY updated_at DESC""",
            tenant_id,
            list(customer_ids),
            channel,
        )
        return [r[0] for r in rows]

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

    # ------------------------------------------------------------------ outbound statuses

    async def outbound_by_id(
        self, conn: asyncpg.Connection, message_ids: Iterable[str]
    ) -> dict[str, OutboundRef]:
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return {}
        rows = await conn.fetch(
            f"""SELECT message_id, conversation_id, status, tenant_id
                FROM {self.schema}.conversation_messages
                WHERE message_id = ANY($1::text[]) AND direction = 'outbound'""",
            ids,
        )
        return {r[0]: OutboundRef(r[1], r[0], r[2], r[3]) for r in rows}

    async def outbound_by_provider(
        self, conn: asyncpg.Connection, keys: Iterable[StatusKey]
    ) -> dict[StatusKey, OutboundRef]:
        keys = [k for k in dict.fromkeys(keys) if k[3]]
        if not keys:
            return {}
        rows = await conn.fetch(
            f"""SELECT m.tenant_id, m.channel, m.channel_account_id, m.provider_message_id,
                       m.message_id, m.conversation_id, m.status
                FROM {self.schema}.conversation_messages m
                JOIN unnest($1::text[], $2::text[], $3::text[])
                  AS k(tenant_id, channel_account_id, provider_message_id)
                  ON m.tenant_id = k.tenant_id
                 AND m.channel_account_id = k.channel_account_id
                 AND m.provider_message_id = k.provider_message_id
                WHERE m.direction = 'outbound' AND m.provider_message_id <> ''""",
            *_split([(k[0], k[2], k[3]) for k in keys]),
        )
        return {(r[0], "", r[2], r[3]): OutboundRef(r[5], r[4], r[6], r[0]) for r in rows}

    async def park_statuses(
        self, conn: asyncpg.Connection, rows: Sequence[tuple[str, StatusKey, bytes]]
    ) -> None:
        if not rows:
            return
        await conn.execute(
            f"""INSERT INTO {self.schema}.parked_statuses
                    (event_id, tenant_id, channel, channel_account_id, provider_message_id,
                     envelope)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                     $6::bytea[])
                ON CONFLICT (event_id) DO NOTHING""",
            *_columns([(e, *k, env) for e, k, env in rows], 6),
        )

    async def parked_statuses_for(
        self, conn: asyncpg.Connection, keys: Iterable[StatusKey]
    ) -> dict[StatusKey, list[tuple[str, bytes]]]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        rows = await conn.fetch(
            f"""SELECT p.tenant_id, p.channel, p.channel_account_id, p.provider_message_id,
                       p.event_id, p.envelope
                FROM {self.schema}.parked_statuses p
                JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[])
                  AS k(tenant_id, channel, channel_account_id, provider_message_id)
                  ON p.tenant_id = k.tenant_id AND p.channel = k.channel
                 AND p.channel_account_id = k.channel_account_id
                 AND p.provider_message_id = k.provider_message_id
                ORDER BY p.parked_at, p.event_id
                FOR UPDATE OF p""",
            *_split(keys),
        )
        out: dict[StatusKey, list[tuple[str, bytes]]] = {}
        for r in rows:
            out.setdefault((r[0], r[1], r[2], r[3]), []).append((r[4], bytes(r[5])))
        return out

    async def unpark_statuses(self, conn: asyncpg.Connection, event_ids: Sequence[str]) -> None:
        if event_ids:
            await conn.execute(
                f"DELETE FROM {self.schema}.parked_statuses WHERE event_id = ANY($1::text[])",
                list(event_ids),
            )

    async def purge_parked_statuses(self, conn: asyncpg.Connection, older_than: datetime) -> int:
        """Statuses of messages Parlay never sent (sent from the provider's own app) wait for
        an OutboundMessageSent that never comes; they are dropped after a while."""
        result = await conn.execute(
            f"DELETE FROM {self.schema}.parked_statuses WHERE parked_at < $1", older_than
        )
        return int(result.split()[-1])

    # ------------------------------------------------------------------ merges, consent

    async def aliases(self, conn: asyncpg.Connection, tenant_id: str) -> dict[str, str]:
        rows = await conn.fetch(
            f"""SELECT customer_id, survivor_customer_id FROM {self.schema}.customer_aliases
                WHERE tenant_id = $1""",
            tenant_id,
        )
        return {r[0]: r[1] for r in rows}

    async def owners(
        self, conn: asyncpg.Connection, tenant_id: str, customer_ids: Iterable[str]
    ) -> dict[str, str]:
        """Customer -> the customer it is found under now (following merges)."""
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        rows = await conn.fetch(
            f"""WITH RECURSIVE chain(start, current, depth) AS (
                    SELECT c, c, 0 FROM unnest($2::text[]) AS c
                    UNION ALL
                    SELECT chain.start, a.survivor_customer_id, chain.depth + 1
                    FROM chain JOIN {self.schema}.customer_aliases a
                      ON a.tenant_id = $1 AND a.customer_id = chain.current
                    WHERE chain.depth < 64
                )
                SELECT DISTINCT ON (start) start, current FROM chain
                ORDER BY start, depth DESC""",
            tenant_id,
            ids,
        )
        return {r[0]: r[1] for r in rows}

    async def conversations_of_customers(
        self, conn: asyncpg.Connection, tenant_id: str, customer_ids: Sequence[str]
    ) -> list[str]:
        rows = await conn.fetch(
            f"""SELECT conversation_id FROM {self.schema}.conversations
                WHERE tenant_id = $1 AND customer_id = ANY($2::text[])""",
            tenant_id,
            list(customer_ids),
        )
        return [r[0] for r in rows]

    async def record_consent(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        customer_id: str,
        channel: str,
        purpose: str,
        granted: bool,
        changed_at: datetime,
        event_id: str,
    ) -> None:
        """Keep the latest entry (by its time; an older entry arriving late changes nothing)."""
        await conn.execute(
            f"""INSERT INTO {self.schema}.consents
                    (tenant_id, customer_id, channel, purpose, granted, changed_at, event_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (tenant_id, customer_id, channel, purpose) DO UPDATE
                SET granted = EXCLUDED.granted, changed_at = EXCLUDED.changed_at,
                    event_id = EXCLUDED.event_id
                WHERE (consents.changed_at, consents.event_id)
                      < (EXCLUDED.changed_at, EXCLUDED.event_id)""",
            tenant_id,
            customer_id,
            channel,
            purpose,
            granted,
            changed_at,
            event_id,
        )

    async def consent(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        customer_ids: Sequence[str],
        channel: str,
        purpose: str,
    ) -> tuple[bool, datetime, str] | None:
        """The latest consent entry for the channel (or all channels) and purpose among these
        customers (a customer and those merged into it): (granted, changed_at, channel)."""
        row = await conn.fetchrow(
            f"""SELECT granted, changed_at, channel FROM {self.schema}.consents
                WHERE tenant_id = $1 AND customer_id = ANY($2::text[])
                  AND channel = ANY($3::text[]) AND purpose = $4
                ORDER BY changed_at DESC, event_id DESC LIMIT 1""",
            tenant_id,
            list(customer_ids),
            [channel, "", "*", "all"],
            purpose,
        )
        return (row[0], row[1], row[2]) if row is not None else None

    async def record_purchase(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        customer_id: str,
        order_id: str,
        event_id: str,
        paid_at: datetime,
    ) -> bool:
        """Record a paid order; True when it is the customer's first."""
        existing = await conn.fetchval(
            f"""SELECT count(*) FROM {self.schema}.purchases
                WHERE tenant_id = $1 AND customer_id = $2 AND order_id <> $3""",
            tenant_id,
            customer_id,
            order_id,
        )
        await conn.execute(
            f"""INSERT INTO {self.schema}.purchases
                    (tenant_id, customer_id, order_id, event_id, paid_at)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            tenant_id,
            customer_id,
            order_id,
            event_id,
            paid_at,
        )
        return existing == 0

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
        effects: Sequence[Effect] = (),
    ) -> None:
        """Write changed conversations and the rows their events produced (a duplicate
        message id or provider message id raises UniqueViolationError: the batch is retried)."""
        s = self.schema
        new = [c for cid, c in after.items() if before.get(cid) is None]
        changed = [c for cid, c in after.items() if (b := before.get(cid)) is not None and b != c]
        width = len(_CONV)
        if new:
            await conn.execute(
                self._insert_conversations, *_columns([_state_row(c) for c in new], width)
            )
        if changed:
            await conn.execute(
                self._update_conversations, *_columns([_state_row(c) for c in changed], width)
            )
        messages: list[TimelineMessage] = []
        statuses: list[StatusUpdate] = []
        notes: list[NoteRow] = []
        schedules: list[ScheduleRow] = []
        done: list[ScheduleDone] = []
        for e in effects:
            if isinstance(e, TimelineMessage):
                messages.append(e)
            elif isinstance(e, StatusUpdate):
                statuses.append(e)
            elif isinstance(e, NoteRow):
                notes.append(e)
            elif isinstance(e, ScheduleRow):
                schedules.append(e)
            else:
                done.append(e)
        last = _latest_statuses(statuses)
        if messages:
            await self._copy_messages(conn, messages, last)
        if last:
            # Each entry is rendered again from its unchanging part and the new progress.
            rows = await conn.fetch(
                f"""SELECT message_id, api_static, provider_message_id, status_rank
                    FROM {s}.conversation_messages WHERE message_id = ANY($1::text[])""",
                list(last),
            )
            updates = []
            for message_id, static, stored_provider_id, stored_rank in rows:
                u = last[message_id]
                rank = STATUS_RANK.get(u.status, -1)
                if stored_rank >= rank:
                    continue
                provider_id = u.provider_message_id or stored_provider_id
                api = render.entry(
                    bytes(static)
                    + render.progress_bytes(
                        u.status, u.status_at, provider_id, u.error_code, u.error_message
                    )
                )
                updates.append(
                    (
                        message_id,
                        u.status,
                        rank,
                        provider_id,
                        u.error_code,
                        u.error_message,
                        u.status_at,
                        api,
                    )
                )
            if updates:
                await conn.execute(
                    f"""UPDATE {s}.conversation_messages m SET status = u.status,
                            status_rank = u.status_rank,
                            provider_message_id = u.provider_message_id,
                            error_code = u.error_code, error_message = u.error_message,
                            status_at = u.status_at, api = u.api
                        FROM unnest($1::text[], $2::text[], $3::smallint[], $4::text[],
                                    $5::text[], $6::text[], $7::timestamptz[], $8::bytea[])
                            AS u(message_id, status, status_rank, provider_message_id,
                                 error_code, error_message, status_at, api)
                        WHERE m.message_id = u.message_id AND m.status_rank < u.status_rank""",
                    *_columns(updates, 8),
                )
        if notes:
            await conn.execute(
                f"""INSERT INTO {s}.conversation_notes
                        (note_id, conversation_id, tenant_id, author, text, created_at, api)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                         $5::text[], $6::timestamptz[], $7::bytea[])""",
                *_columns(
                    [
                        (
                            n.note_id,
                            n.conversation_id,
                            n.tenant_id,
                            n.author,
                            n.text,
                            n.created_at,
                            render.note_entry(n),
                        )
                        for n in notes
                    ],
                    7,
                ),
            )
        if schedules:
            await conn.execute(
                f"""INSERT INTO {s}.scheduled_messages
                        (schedule_id, tenant_id, conversation_id, kind, due_at, payload)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                         $5::timestamptz[], $6::bytea[])
                    ON CONFLICT (schedule_id) DO NOTHING""",
                *_columns(
                    [
                        (r.schedule_id, r.tenant_id, r.conversation_id, r.kind, r.due_at, r.payload)
                        for r in schedules
                    ],
                    6,
                ),
            )
        if done:
            await conn.executemany(
                f"UPDATE {s}.scheduled_messages SET outcome = $2 WHERE schedule_id = $1",
                [(d.schedule_id, d.outcome) for d in done],
            )

    async def _copy_messages(
        self,
        conn: asyncpg.Connection,
        messages: Sequence[TimelineMessage],
        last: dict[str, StatusUpdate],
    ) -> None:
        await self._copy_rows(conn, _message_rows(messages, last))

    async def _copy_rows(self, conn: asyncpg.Connection, rows: list[tuple]) -> None:
        # COPY: no per-element type checks of array parameters (the hot path of a rebuild).
        await conn.copy_records_to_table(
            "conversation_messages", schema_name=self.schema, columns=_MSG_NAMES, records=rows
        )

    def message_stream(self, conn: asyncpg.Connection) -> MessageStream:
        """A writer of timeline rows that overlaps Postgres and Python (see MessageStream)."""
        return MessageStream(self, conn)

    # ------------------------------------------------------------------ configuration

    async def config_rows(
        self, conn: asyncpg.Connection, keys: Iterable[tuple[str, str, str]], *, lock: bool = False
    ) -> dict[tuple[str, str, str], config.ConfigRow]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        rows = await conn.fetch(
            f"""SELECT c.tenant_id, c.kind, c.key, c.version, c.removed, c.data
                FROM {self.schema}.inbox_config c
                JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(tenant_id, kind, key)
                  ON c.tenant_id = k.tenant_id AND c.kind = k.kind AND c.key = k.key
                ORDER BY c.tenant_id, c.kind, c.key"""
            + (" FOR UPDATE OF c" if lock else ""),
            *_split(keys),
        )
        return {
            (r[0], r[1], r[2]): config.ConfigRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]))
            for r in rows
        }

    async def save_config(self, conn: asyncpg.Connection, rows: Sequence[config.ConfigRow]) -> None:
        if not rows:
            return
        await conn.executemany(
            f"""INSERT INTO {self.schema}.inbox_config (tenant_id, kind, key, version, removed, data)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (tenant_id, kind, key) DO UPDATE
                SET version = EXCLUDED.version, removed = EXCLUDED.removed, data = EXCLUDED.data""",
            [(r.tenant_id, r.kind, r.key, r.version, r.removed, r.data) for r in rows],
        )
        targets = [r for r in rows if r.kind == config.SETTINGS]
        for r in targets:
            settings = config.parse_settings(r.data)
            await conn.execute(
                f"""INSERT INTO {self.schema}.sla_targets
                        (tenant_id, first_response_seconds, resolution_seconds)
                    VALUES ($1, $2, $3)
                    ON CONFLICT (tenant_id) DO UPDATE
                    SET first_response_seconds = EXCLUDED.first_response_seconds,
                        resolution_seconds = EXCLUDED.resolution_seconds""",
                r.tenant_id,
                settings.first_response_target_seconds,
                settings.resolution_target_seconds,
            )

    async def config_of(
        self, conn: asyncpg.Connection, tenant_ids: Iterable[str], kind: str
    ) -> dict[str, list[config.ConfigRow]]:
        """Live (not removed) configuration of a kind per tenant, ordered by key."""
        ids = list(dict.fromkeys(tenant_ids))
        if not ids:
            return {}
        rows = await conn.fetch(
            f"""SELECT tenant_id, kind, key, version, removed, data FROM {self.schema}.inbox_config
                WHERE tenant_id = ANY($1::text[]) AND kind = $2 AND NOT removed
                ORDER BY tenant_id, key""",
            ids,
            kind,
        )
        out: dict[str, list[config.ConfigRow]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(
                config.ConfigRow(r[0], r[1], r[2], r[3], r[4], bytes(r[5]))
            )
        return out

    async def agent_loads(
        self, conn: asyncpg.Connection, tenant_id: str
    ) -> dict[str, tuple[int, datetime | None]]:
        """Agent -> (open or pending conversations assigned, when last assigned)."""
        rows = await conn.fetch(
            f"""SELECT assignee_agent_id,
                       count(*) FILTER (WHERE status IN ('open', 'pending')),
                       max(assigned_at)
                FROM {self.schema}.conversations
                WHERE tenant_id = $1 AND assignee_agent_id <> ''
                GROUP BY assignee_agent_id""",
            tenant_id,
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    # ------------------------------------------------------------------ queries

    async def get(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        conversation_id: str,
        *,
        for_update: bool = False,
    ) -> ConversationState | None:
        row = await conn.fetchrow(
            f"""SELECT {_CONVERSATION_COLUMNS} FROM {self.schema}.conversations
                WHERE tenant_id = $1 AND conversation_id = $2"""
            + (" FOR UPDATE" if for_update else ""),
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
        filters: ConversationFilter | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int,
    ) -> list[ConversationState]:
        """Newest activity first; `after` is the (last_activity_at, conversation_id) of the
        last row of the previous page. customer_id matches the conversation's owner (the
        survivor after a merge)."""
        f = filters or ConversationFilter(customer_id=customer_id)
        if customer_id and not f.customer_id:
            f = ConversationFilter(
                customer_id, f.status, f.assignee_agent_id, f.team_id, f.channel, f.label
            )
        rows = await conn.fetch(
            self._list_sql.format(columns=_CONVERSATION_COLUMNS),
            tenant_id,
            f.customer_id,
            f.status,
            f.assignee_agent_id,
            f.team_id,
            f.channel,
            f.label,
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

    async def conversation_page(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        conversation_id: str,
        *,
        after: tuple[datetime, int] | None,
        limit: int,
        with_notes: bool,
    ) -> ConversationPage | None:
        """GetConversation in one round trip: the stored Conversation header, a page of its
        message entries (oldest first) and its note entries, as one serialized Conversation."""
        row = await conn.fetchrow(
            self._page_sql,
            tenant_id,
            conversation_id,
            after[0] if after else None,
            after[1] if after else 0,
            limit,
            with_notes,
        )
        if row is None:
            return None
        return ConversationPage(
            blob=bytes(row["blob"]),
            contacts=_contacts_from(row["contacts"]),
            last=tuple(row["last_row"]) if row["more"] and row["last_row"] else None,
        )

    async def list_page(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        filters: ConversationFilter,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[tuple[bytes, tuple[ChannelContact, ...], datetime, str]]:
        """ListConversations: (stored header, contacts, last_activity_at, conversation_id),
        newest activity first."""
        rows = await conn.fetch(
            self._list_sql.format(columns="api, contacts, last_activity_at, conversation_id"),
            tenant_id,
            filters.customer_id,
            filters.status,
            filters.assignee_agent_id,
            filters.team_id,
            filters.channel,
            filters.label,
            after[0] if after else None,
            after[1] if after else "",
            limit,
        )
        return [(bytes(r[0]), _contacts_from(r[1]), r[2], r[3]) for r in rows]

    async def message(
        self, conn: asyncpg.Connection, tenant_id: str, message_id: str
    ) -> TimelineMessage | None:
        row = await conn.fetchrow(
            f"""SELECT {_MESSAGE_COLUMNS} FROM {self.schema}.conversation_messages
                WHERE tenant_id = $1 AND message_id = $2""",
            tenant_id,
            message_id,
        )
        return _message(row) if row is not None else None

    async def notes(self, conn: asyncpg.Connection, conversation_id: str) -> list[NoteRow]:
        rows = await conn.fetch(
            f"""SELECT tenant_id, conversation_id, note_id, author, text, created_at
                FROM {self.schema}.conversation_notes WHERE conversation_id = $1
                ORDER BY created_at, note_id""",
            conversation_id,
        )
        return [NoteRow(*r) for r in rows]

    async def note(self, conn: asyncpg.Connection, tenant_id: str, note_id: str) -> NoteRow | None:
        r = await conn.fetchrow(
            f"""SELECT tenant_id, conversation_id, note_id, author, text, created_at
                FROM {self.schema}.conversation_notes WHERE tenant_id = $1 AND note_id = $2""",
            tenant_id,
            note_id,
        )
        return NoteRow(*r) if r is not None else None

    async def search(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        query: str,
        *,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[tuple[ConversationState, TimelineMessage, str]]:
        """Conversations with messages matching `query` (web-search syntax), the one with the
        newest match first, each with its newest matching message and a highlighted snippet."""
        rows = await conn.fetch(
            f"""WITH q AS (SELECT websearch_to_tsquery('simple', $2) AS q),
                hits AS (
                    SELECT DISTINCT ON (m.conversation_id) m.*
                    FROM {self.schema}.conversation_messages m, q
                    WHERE m.tenant_id = $1 AND m.tsv @@ q.q
                    ORDER BY m.conversation_id, m.occurred_at DESC, m.seq DESC
                )
                SELECT h.message_id AS h_message_id,
                       ts_headline('simple', h.text, q.q,
                                   'StartSel=[, StopSel=], MaxWords=30, MinWords=8') AS snippet,
                       c.*
                FROM hits h CROSS JOIN q
                JOIN {self.schema}.conversations c ON c.conversation_id = h.conversation_id
                WHERE ($3::timestamptz IS NULL OR (h.occurred_at, h.conversation_id) < ($3, $4))
                ORDER BY h.occurred_at DESC, h.conversation_id DESC
                LIMIT $5""",
            tenant_id,
            query,
            after[0] if after else None,
            after[1] if after else "",
            limit,
        )
        if not rows:
            return []
        by_id = {
            m.message_id: m
            for m in [
                _message(r)
                for r in await conn.fetch(
                    f"""SELECT {_MESSAGE_COLUMNS} FROM {self.schema}.conversation_messages
                        WHERE message_id = ANY($1::text[])""",
                    [r["h_message_id"] for r in rows],
                )
            ]
        }
        return [(_state(r), by_id[r["h_message_id"]], r["snippet"]) for r in rows]

    async def scheduled(
        self, conn: asyncpg.Connection, conversation_id: str
    ) -> list[tuple[str, str, datetime, str]]:
        rows = await conn.fetch(
            f"""SELECT schedule_id, kind, due_at, outcome FROM {self.schema}.scheduled_messages
                WHERE conversation_id = $1 ORDER BY due_at, schedule_id""",
            conversation_id,
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    # ------------------------------------------------------------------ timer

    async def due_work(self, conn: asyncpg.Connection, now: datetime, limit: int) -> list[str]:
        """Conversations with something due: an SLA clock past its target, a snooze that ended,
        a scheduled message whose time came."""
        rows = await conn.fetch(
            f"""SELECT c.conversation_id FROM {self.schema}.conversations c
                JOIN {self.schema}.sla_targets t ON t.tenant_id = c.tenant_id
                WHERE t.first_response_seconds > 0
                  AND c.awaiting_since IS NOT NULL AND c.first_response_at IS NULL
                  AND c.awaiting_since + make_interval(secs => t.first_response_seconds) <= $1
                  AND NOT (('first_response:' || c.cycle) = ANY(c.breaches))
                UNION
                SELECT c.conversation_id FROM {self.schema}.conversations c
                JOIN {self.schema}.sla_targets t ON t.tenant_id = c.tenant_id
                WHERE t.resolution_seconds > 0
                  AND c.status <> 'resolved' AND c.handler = 'human'
                  AND c.cycle_started_at + make_interval(secs => t.resolution_seconds) <= $1
                  AND NOT (('resolution:' || c.cycle) = ANY(c.breaches))
                UNION
                SELECT conversation_id FROM {self.schema}.conversations
                WHERE status = 'snoozed' AND snoozed_until <= $1
                UNION
                SELECT conversation_id FROM {self.schema}.scheduled_messages
                WHERE outcome = '' AND due_at <= $1
                LIMIT $2""",
            now,
            limit,
        )
        return [r[0] for r in rows]

    async def lock_some(
        self, conn: asyncpg.Connection, conversation_ids: Sequence[str]
    ) -> dict[str, ConversationState]:
        """Lock the conversations no other transaction holds (SKIP LOCKED: replicas share)."""
        rows = await conn.fetch(
            f"""SELECT {_CONVERSATION_COLUMNS} FROM {self.schema}.conversations
                WHERE conversation_id = ANY($1::text[]) ORDER BY conversation_id
                FOR UPDATE SKIP LOCKED""",
            sorted(set(conversation_ids)),
        )
        return {r["conversation_id"]: _state(r) for r in rows}

    async def sla_targets(
        self, conn: asyncpg.Connection, tenant_ids: Iterable[str]
    ) -> dict[str, tuple[int, int]]:
        ids = list(dict.fromkeys(tenant_ids))
        if not ids:
            return {}
        rows = await conn.fetch(
            f"""SELECT tenant_id, first_response_seconds, resolution_seconds
                FROM {self.schema}.sla_targets WHERE tenant_id = ANY($1::text[])""",
            ids,
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    async def due_schedules(
        self, conn: asyncpg.Connection, conversation_ids: Sequence[str], now: datetime
    ) -> list[tuple[str, str, bytes]]:
        rows = await conn.fetch(
            f"""SELECT schedule_id, conversation_id, payload FROM {self.schema}.scheduled_messages
                WHERE conversation_id = ANY($1::text[]) AND outcome = '' AND due_at <= $2
                ORDER BY due_at, schedule_id""",
            list(conversation_ids),
            now,
        )
        return [(r[0], r[1], bytes(r[2])) for r in rows]


class MessageStream(WriteBehind):
    """Writes a rebuild's timeline rows while the rest of the batch is still being folded.

    `ConversationReadModel.save` writes a batch's rows after the whole batch has been folded,
    so Python (fold, render) and Postgres (inserting rows: the tsvector, six indexes) take
    turns, each idle while the other works. A stream sends each group of conversations' rows
    as one COPY, in a task, and the caller folds the next group meanwhile; a group's COPY
    waits only for the previous one (one connection runs one statement at a time).

    `write(effects)` takes the effects of whole conversations (with their statuses: a status
    whose message is among them is written with the row, as `save` does; a conversation's
    statuses are about its own messages, so a group holds every status of its new rows and
    the outcome is the batch's, whatever the grouping — tests/test_projection_batches.py);
    what is left —
    every other effect — is returned by `rest()` for `save`, after the stream is closed
    (`async with`: the last COPY is awaited, as `parlay_kit.db.WriteBehind` does).
    """

    def __init__(self, read_model: ConversationReadModel, conn: asyncpg.Connection) -> None:
        super().__init__()
        self.read_model = read_model
        self.conn = conn
        self._rest: list[Effect] = []
        self._statuses: list[StatusUpdate] = []

    async def write(self, effects: Sequence[Effect]) -> None:
        messages: list[TimelineMessage] = []
        statuses: list[StatusUpdate] = []
        for e in effects:
            if isinstance(e, TimelineMessage):
                messages.append(e)
            elif isinstance(e, StatusUpdate):
                statuses.append(e)
            else:
                self._rest.append(e)
        last = _latest_statuses(statuses)
        if messages:
            rows = _message_rows(messages, last)  # while Postgres inserts the previous group
            await self.submit(self.read_model._copy_rows(self.conn, rows))
        # Statuses of messages stored earlier: `save` updates them, after the last COPY.
        self._statuses += last.values()

    def rest(self) -> list[Effect]:
        """The effects still to be saved (all but the rows written)."""
        return [*self._rest, *self._statuses]
