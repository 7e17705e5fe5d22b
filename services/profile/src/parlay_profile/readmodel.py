"""Postgres adapter for the profile read models.

customers           one row per customer (version = the aggregate's current version)
customer_identities (tenant, channel, address) -> customer, with the link's evidence;
                    UNIQUE (tenant_id, channel, address): an identity belongs to one customer
customer_channels   last seen per (customer, channel)

The rows are a projection of CustomerState (domain.py): `save` writes the difference between the
states a batch started from and the states it ended with. Rows are written in the same
transaction as the events that produced them (and the consumer offsets), so they never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import asyncpg

from parlay_kit.db import Migration, check_identifier
from parlay_profile.domain import ChannelSeen, CustomerState, LinkedIdentity

MIGRATIONS = [
    Migration(
        "profile_0001_read_models",
        """
        CREATE TABLE {schema}.customers (
            customer_id     text        PRIMARY KEY,
            tenant_id       text        NOT NULL,
            display_name    text        NOT NULL DEFAULT '',
            display_name_at timestamptz,
            version         bigint      NOT NULL,
            created_at      timestamptz NOT NULL,
            updated_at      timestamptz NOT NULL
        );
        CREATE INDEX customers_tenant_created ON {schema}.customers (tenant_id, created_at);

        CREATE TABLE {schema}.customer_identities (
            tenant_id                text        NOT NULL,
            channel                  text        NOT NULL,
            address                  text        NOT NULL,
            customer_id              text        NOT NULL,
            normalized_phone         text        NOT NULL DEFAULT '',
            evidence_rule            text        NOT NULL DEFAULT '',
            evidence_source_event_id text        NOT NULL DEFAULT '',
            evidence_actor           text        NOT NULL DEFAULT '',
            evidence_note            text        NOT NULL DEFAULT '',
            linked_at                timestamptz NOT NULL,
            CONSTRAINT customer_identities_identity UNIQUE (tenant_id, channel, address)
        );
        CREATE INDEX customer_identities_customer ON {schema}.customer_identities (customer_id);
        CREATE INDEX customer_identities_phone ON {schema}.customer_identities
            (tenant_id, normalized_phone) WHERE normalized_phone <> '';

        CREATE TABLE {schema}.customer_channels (
            customer_id        text        NOT NULL,
            channel            text        NOT NULL,
            tenant_id          text        NOT NULL,
            channel_account_id text        NOT NULL DEFAULT '',
            last_seen_at       timestamptz NOT NULL,
            PRIMARY KEY (customer_id, channel)
        );
        """,
    )
]

IdentityKey = tuple[str, str, str]  # (tenant_id, channel, address)


class CustomerReadModel:
    def __init__(self, schema: str) -> None:
        self.schema = s = check_identifier(schema)
        self._owners_sql = f"""
            SELECT i.tenant_id, i.channel, i.address, i.customer_id
            FROM {s}.customer_identities i
            JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(tenant_id, channel, address)
              ON i.tenant_id = k.tenant_id AND i.channel = k.channel AND i.address = k.address"""
        self._customers_sql = f"""
            SELECT customer_id, tenant_id, display_name, display_name_at, version, created_at,
                   updated_at
            FROM {s}.customers WHERE customer_id = ANY($1::text[])
            ORDER BY customer_id"""
        self._identities_sql = f"""
            SELECT customer_id, channel, address, normalized_phone, evidence_rule,
                   evidence_source_event_id, evidence_actor, evidence_note, linked_at
            FROM {s}.customer_identities WHERE customer_id = ANY($1::text[])
            ORDER BY linked_at, channel, address"""
        self._channels_sql = f"""
            SELECT customer_id, channel, channel_account_id, last_seen_at
            FROM {s}.customer_channels WHERE customer_id = ANY($1::text[])"""

    # ------------------------------------------------------------------ loading

    async def identity_owners(
        self, conn: asyncpg.Connection, keys: Iterable[IdentityKey]
    ) -> dict[IdentityKey, str]:
        """The customer each identity is linked to (identities not linked are absent)."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        rows = await conn.fetch(
            self._owners_sql, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
        )
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    async def load(
        self, conn: asyncpg.Connection, customer_ids: Iterable[str], *, for_update: bool = False
    ) -> dict[str, CustomerState]:
        """Full states of the customers that exist. `for_update` locks their rows (in id order,
        so concurrent writers cannot deadlock) until the transaction ends."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        sql = self._customers_sql + (" FOR UPDATE" if for_update else "")
        rows = await conn.fetch(sql, ids)
        if not rows:
            return {}
        found = [r["customer_id"] for r in rows]
        identities: dict[str, dict[tuple[str, str], LinkedIdentity]] = {c: {} for c in found}
        for r in await conn.fetch(self._identities_sql, found):
            link = LinkedIdentity(
                channel=r["channel"],
                address=r["address"],
                normalized_phone=r["normalized_phone"],
                rule=r["evidence_rule"],
                source_event_id=r["evidence_source_event_id"],
                actor=r["evidence_actor"],
                note=r["evidence_note"],
                linked_at=r["linked_at"],
            )
            identities[r["customer_id"]][link.key] = link
        seen: dict[str, dict[str, ChannelSeen]] = {c: {} for c in found}
        for r in await conn.fetch(self._channels_sql, found):
            seen[r["customer_id"]][r["channel"]] = ChannelSeen(
                r["channel_account_id"], r["last_seen_at"]
            )
        return {
            r["customer_id"]: CustomerState(
                tenant_id=r["tenant_id"],
                customer_id=r["customer_id"],
                display_name=r["display_name"],
                display_name_at=r["display_name_at"],
                version=r["version"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                identities=identities[r["customer_id"]],
                seen=seen[r["customer_id"]],
            )
            for r in rows
        }

    # ------------------------------------------------------------------ saving

    async def save(
        self,
        conn: asyncpg.Connection,
        before: Mapping[str, CustomerState | None],
        after: Mapping[str, CustomerState],
    ) -> None:
        """Write what changed between `before` and `after` (keyed by customer id). A new
        identity row that collides with another customer's link raises UniqueViolationError:
        the batch is retried and re-reads the link."""
        s = self.schema
        new_customers: list[CustomerState] = []
        changed_customers: list[CustomerState] = []
        add_links: list[tuple[CustomerState, LinkedIdentity]] = []
        change_links: list[tuple[CustomerState, LinkedIdentity]] = []
        drop_links: list[tuple[str, str, str]] = []
        channels: list[tuple[CustomerState, str, ChannelSeen]] = []
        for customer_id, new in after.items():
            old = before.get(customer_id)
            if old == new:
                continue
            if old is None:
                new_customers.append(new)
            elif _row(old) != _row(new):
                changed_customers.append(new)
            old_links = old.identities if old is not None else {}
            for key, link in new.identities.items():
                previous = old_links.get(key)
                if previous is None:
                    add_links.append((new, link))
                elif previous != link:
                    change_links.append((new, link))
            for key in old_links.keys() - new.identities.keys():
                drop_links.append((new.tenant_id, *key))
            old_seen = old.seen if old is not None else {}
            for channel, seen in new.seen.items():
                if old_seen.get(channel) != seen:
                    channels.append((new, channel, seen))

        if new_customers:
            await conn.execute(
                f"""INSERT INTO {s}.customers (customer_id, tenant_id, display_name,
                        display_name_at, version, created_at, updated_at)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                        $5::bigint[], $6::timestamptz[], $7::timestamptz[])""",
                *_columns([_row(c) for c in new_customers], 7),
            )
        if changed_customers:
            await conn.execute(
                f"""UPDATE {s}.customers c SET display_name = u.display_name,
                        display_name_at = u.display_name_at, version = u.version,
                        updated_at = u.updated_at
                    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                        $5::bigint[], $6::timestamptz[], $7::timestamptz[])
                        AS u(customer_id, tenant_id, display_name, display_name_at, version,
                             created_at, updated_at)
                    WHERE c.customer_id = u.customer_id""",
                *_columns([_row(c) for c in changed_customers], 7),
            )
        if drop_links:
            await conn.executemany(
                f"""DELETE FROM {s}.customer_identities
                    WHERE tenant_id = $1 AND channel = $2 AND address = $3""",
                drop_links,
            )
        if change_links:
            await conn.executemany(
                f"""UPDATE {s}.customer_identities SET customer_id = $4, normalized_phone = $5,
                        evidence_rule = $6, evidence_source_event_id = $7, evidence_actor = $8,
                        evidence_note = $9, linked_at = $10
                    WHERE tenant_id = $1 AND channel = $2 AND address = $3""",
                [_link_row(c, link) for c, link in change_links],
            )
        if add_links:
            await conn.execute(
                f"""INSERT INTO {s}.customer_identities (tenant_id, channel, address,
                        customer_id, normalized_phone, evidence_rule, evidence_source_event_id,
                        evidence_actor, evidence_note, linked_at)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                        $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                        $10::timestamptz[])""",
                *_columns([_link_row(c, link) for c, link in add_links], 10),
            )
        if channels:
            await conn.execute(
                f"""INSERT INTO {s}.customer_channels (customer_id, channel, tenant_id,
                        channel_account_id, last_seen_at)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                        $5::timestamptz[])
                    ON CONFLICT (customer_id, channel) DO UPDATE
                    SET channel_account_id = EXCLUDED.channel_account_id,
                        last_seen_at = EXCLUDED.last_seen_at""",
                *_columns(
                    [
                        (c.customer_id, ch, c.tenant_id, seen.channel_account_id, seen.last_seen_at)
                        for c, ch, seen in channels
                    ],
                    5,
                ),
            )

    # ------------------------------------------------------------------ queries

    async def get(
        self, conn: asyncpg.Connection, tenant_id: str, customer_id: str
    ) -> CustomerState | None:
        state = (await self.load(conn, [customer_id])).get(customer_id)
        if state is None or state.tenant_id != tenant_id:
            return None
        return state

    async def find_by_identity(
        self, conn: asyncpg.Connection, tenant_id: str, channel: str, address: str
    ) -> CustomerState | None:
        owners = await self.identity_owners(conn, [(tenant_id, channel, address)])
        customer_id = owners.get((tenant_id, channel, address))
        if customer_id is None:
            return None
        return await self.get(conn, tenant_id, customer_id)


def _row(c: CustomerState) -> tuple:
    return (
        c.customer_id,
        c.tenant_id,
        c.display_name,
        c.display_name_at,
        c.version,
        c.created_at,
        c.updated_at,
    )


def _link_row(c: CustomerState, link: LinkedIdentity) -> tuple:
    return (
        c.tenant_id,
        link.channel,
        link.address,
        c.customer_id,
        link.normalized_phone,
        link.rule,
        link.source_event_id,
        link.actor,
        link.note,
        link.linked_at,
    )


def _columns(rows: Sequence[tuple], width: int) -> list[list]:
    columns: list[list] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns
