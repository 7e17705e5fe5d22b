"""Postgres adapter for the profile read models.

customers           one row per customer: its own state (version = its stream's version), the
                    survivor it is merged into, separations, unlinked identities, purchase sums
customer_identities (tenant, channel, address) -> customer, with the link's evidence;
                    UNIQUE (tenant_id, channel, address): an identity belongs to one customer
customer_channels   last seen per (customer, channel)
customer_consents   the consent entry in force per (customer, channel, purpose)
customer_merges     every merge a customer survived, with its evidence and its undoing

The rows are a projection of CustomerState (domain.py): `save` writes the difference between the
states a batch started from and the states it ended with, with set-based statements (unnest).
Rows are written in the same transaction as the events that produced them (and the consumer
offsets), so they never disagree. Nothing here decides anything.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from parlay_kit.db import Migration, check_identifier
from parlay_profile.domain import (
    ChannelSeen,
    ConsentRecord,
    CustomerState,
    LinkedIdentity,
    MergeRecord,
    SharedLocation,
    make_state,
)

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
    ),
    Migration(
        "profile_0002_merges_consent_profile_data",
        """
        ALTER TABLE {schema}.customers
            ADD COLUMN display_name_source text    NOT NULL DEFAULT '',
            ADD COLUMN locale              text    NOT NULL DEFAULT '',
            ADD COLUMN attributes          jsonb   NOT NULL DEFAULT '{{}}',
            ADD COLUMN tags                text[]  NOT NULL DEFAULT '{{}}',
            ADD COLUMN location            jsonb,
            ADD COLUMN merged_into         text    NOT NULL DEFAULT '',
            ADD COLUMN merge_id            text    NOT NULL DEFAULT '',
            ADD COLUMN separated           jsonb   NOT NULL DEFAULT '{{}}',
            ADD COLUMN detached            jsonb   NOT NULL DEFAULT '[]',
            ADD COLUMN order_count         bigint  NOT NULL DEFAULT 0,
            ADD COLUMN lifetime_value      jsonb   NOT NULL DEFAULT '{{}}',
            ADD COLUMN purchase_keys       text[]  NOT NULL DEFAULT '{{}}';
        CREATE INDEX customers_merged_into ON {schema}.customers (merged_into)
            WHERE merged_into <> '';
        CREATE INDEX customers_tags ON {schema}.customers USING gin (tags)
            WHERE tags <> '{{}}';
        -- Unused by any query (tenant-wide listing goes through customers_name).
        DROP INDEX {schema}.customers_tenant_created;
        CREATE INDEX customers_name ON {schema}.customers
            (tenant_id, lower(display_name) text_pattern_ops);

        ALTER TABLE {schema}.customer_identities ADD COLUMN email text NOT NULL DEFAULT '';
        CREATE INDEX customer_identities_email ON {schema}.customer_identities (tenant_id, email)
            WHERE email <> '';

        CREATE TABLE {schema}.customer_consents (
            customer_id              text        NOT NULL,
            channel                  text        NOT NULL,
            purpose                  text        NOT NULL,
            tenant_id                text        NOT NULL,
            granted                  boolean     NOT NULL,
            source                   text        NOT NULL,
            evidence_rule            text        NOT NULL DEFAULT '',
            evidence_source_event_id text        NOT NULL DEFAULT '',
            evidence_actor           text        NOT NULL DEFAULT '',
            evidence_note            text        NOT NULL DEFAULT '',
            identity_channel         text        NOT NULL DEFAULT '',
            identity_address         text        NOT NULL DEFAULT '',
            changed_at               timestamptz NOT NULL,
            PRIMARY KEY (customer_id, channel, purpose)
        );

        CREATE TABLE {schema}.customer_merges (
            merge_id                 text        PRIMARY KEY,
            tenant_id                text        NOT NULL,
            survivor_customer_id     text        NOT NULL,
            merged_customer_id       text        NOT NULL,
            evidence_rule            text        NOT NULL DEFAULT '',
            evidence_source_event_id text        NOT NULL DEFAULT '',
            evidence_actor           text        NOT NULL DEFAULT '',
            evidence_note            text        NOT NULL DEFAULT '',
            reason                   text        NOT NULL DEFAULT '',
            merged_at                timestamptz NOT NULL,
            unmerged_at              timestamptz,
            unmerge_actor            text        NOT NULL DEFAULT '',
            unmerge_reason           text        NOT NULL DEFAULT ''
        );
        CREATE INDEX customer_merges_survivor ON {schema}.customer_merges (survivor_customer_id);
        CREATE INDEX customer_merges_merged ON {schema}.customer_merges (merged_customer_id);
        """,
    ),
]

IdentityKey = tuple[str, str, str]  # (tenant_id, channel, address)

#: Column order of `customers` as written by `save` (and read by `load`).
_CUSTOMER_COLUMNS = (
    "customer_id",
    "tenant_id",
    "display_name",
    "display_name_at",
    "version",
    "created_at",
    "updated_at",
    "display_name_source",
    "locale",
    "attributes",
    "tags",
    "location",
    "merged_into",
    "merge_id",
    "separated",
    "detached",
    "order_count",
    "lifetime_value",
    "purchase_keys",
)
_CUSTOMER_TYPES = (
    "text",
    "text",
    "text",
    "timestamptz",
    "bigint",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "jsonb",
    "text",  # tags: text[] as a '{...}' literal (unnest cannot take a 2-d array)
    "jsonb",
    "text",
    "text",
    "jsonb",
    "jsonb",
    "bigint",
    "jsonb",
    "text",  # purchase_keys: as tags
)
_IDENTITY_COLUMNS = (
    "tenant_id",
    "channel",
    "address",
    "customer_id",
    "normalized_phone",
    "evidence_rule",
    "evidence_source_event_id",
    "evidence_actor",
    "evidence_note",
    "linked_at",
    "email",
)
_IDENTITY_TYPES = ("text",) * 9 + ("timestamptz", "text")
_CONSENT_COLUMNS = (
    "customer_id",
    "channel",
    "purpose",
    "tenant_id",
    "granted",
    "source",
    "evidence_rule",
    "evidence_source_event_id",
    "evidence_actor",
    "evidence_note",
    "identity_channel",
    "identity_address",
    "changed_at",
)
_CONSENT_TYPES = ("text",) * 4 + ("boolean",) + ("text",) * 7 + ("timestamptz",)
_MERGE_COLUMNS = (
    "merge_id",
    "tenant_id",
    "survivor_customer_id",
    "merged_customer_id",
    "evidence_rule",
    "evidence_source_event_id",
    "evidence_actor",
    "evidence_note",
    "reason",
    "merged_at",
    "unmerged_at",
    "unmerge_actor",
    "unmerge_reason",
)
_MERGE_TYPES = ("text",) * 9 + ("timestamptz", "timestamptz", "text", "text")


def _unnest(types: Sequence[str], start: int = 1) -> str:
    return ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=start))


def _array_literal(values: Iterable[str]) -> str:
    """A Postgres text[] literal ('{"a","b"}'), to pass arrays of arrays through unnest."""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in escaped) + "}"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _iso(at: datetime) -> str:
    return at.isoformat()


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _json(text: str) -> Any:
    """json.loads, with the empty values most rows hold short-cut."""
    if text == "{}":
        return {}
    if text == "[]":
        return []
    return json.loads(text)


def tenant_lock_key(tenant_id: str) -> int:
    return zlib.crc32(tenant_id.encode()) & 0x7FFFFFFF


class CustomerReadModel:
    def __init__(self, schema: str) -> None:
        self.schema = s = check_identifier(schema)
        self._lock_space = zlib.crc32(f"parlay:{s}:profile-tenant".encode()) & 0x7FFFFFFF
        self._owners_sql = f"""
            SELECT i.tenant_id, i.channel, i.address, i.customer_id
            FROM {s}.customer_identities i
            JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(tenant_id, channel, address)
              ON i.tenant_id = k.tenant_id AND i.channel = k.channel AND i.address = k.address"""
        self._phone_owners_sql = f"""
            SELECT DISTINCT i.tenant_id, i.normalized_phone, i.customer_id
            FROM {s}.customer_identities i
            JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, phone)
              ON i.tenant_id = k.tenant_id AND i.normalized_phone = k.phone"""
        self._email_owners_sql = f"""
            SELECT DISTINCT i.tenant_id, i.email, i.customer_id
            FROM {s}.customer_identities i
            JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, email)
              ON i.tenant_id = k.tenant_id AND i.email = k.email"""
        self._customers_sql = f"""
            SELECT {", ".join(_CUSTOMER_COLUMNS)}
            FROM {s}.customers WHERE customer_id = ANY($1::text[])
            ORDER BY customer_id"""
        self._identities_sql = f"""
            SELECT {", ".join(_IDENTITY_COLUMNS)}
            FROM {s}.customer_identities WHERE customer_id = ANY($1::text[])"""
        self._channels_sql = f"""
            SELECT customer_id, channel, channel_account_id, last_seen_at
            FROM {s}.customer_channels WHERE customer_id = ANY($1::text[])"""
        self._consents_sql = f"""
            SELECT {", ".join(_CONSENT_COLUMNS)}
            FROM {s}.customer_consents WHERE customer_id = ANY($1::text[])"""
        self._merges_sql = f"""
            SELECT {", ".join(_MERGE_COLUMNS)}
            FROM {s}.customer_merges WHERE survivor_customer_id = ANY($1::text[])"""

    # ------------------------------------------------------------------ locking

    async def lock_tenants(self, conn: asyncpg.Connection, tenant_ids: Iterable[str]) -> None:
        """Serialize the writers of these tenants' customers until the transaction ends (the
        identity-resolution projector and the command handlers). Taken in a fixed order, before
        anything is read, so concurrent writers neither deadlock nor decide on stale reads."""
        for tenant in sorted(set(tenant_ids)):
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, $2)", self._lock_space, tenant_lock_key(tenant)
            )

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

    async def phone_owners(
        self, conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]]
    ) -> set[str]:
        """Customers holding an identity with one of these (tenant, normalized phone)."""
        pairs = [p for p in dict.fromkeys(pairs) if p[1]]
        if not pairs:
            return set()
        rows = await conn.fetch(
            self._phone_owners_sql, [p[0] for p in pairs], [p[1] for p in pairs]
        )
        return {r[2] for r in rows}

    async def email_owners(
        self, conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]]
    ) -> set[str]:
        pairs = [p for p in dict.fromkeys(pairs) if p[1]]
        if not pairs:
            return set()
        rows = await conn.fetch(
            self._email_owners_sql, [p[0] for p in pairs], [p[1] for p in pairs]
        )
        return {r[2] for r in rows}

    async def merge_survivors(self, conn: asyncpg.Connection, merge_ids: Iterable[str]) -> set[str]:
        ids = list(set(merge_ids))
        if not ids:
            return set()
        rows = await conn.fetch(
            f"""SELECT survivor_customer_id, merged_customer_id FROM {self.schema}.customer_merges
                WHERE merge_id = ANY($1::text[])""",
            ids,
        )
        return {r[0] for r in rows} | {r[1] for r in rows}

    async def load(
        self,
        conn: asyncpg.Connection,
        customer_ids: Iterable[str],
        *,
        for_update: bool = False,
        only: Mapping[str, Iterable[str]] | None = None,
    ) -> dict[str, CustomerState]:
        """Full states of the customers that exist. `for_update` locks their rows (in id order,
        so concurrent writers cannot deadlock) until the transaction ends.

        `only` (the rebuild's fast path) limits which customers' child rows are read, per
        part: {"identities": ids, "seen": ids, "consents": ids, "merges": ids}; a part not
        named is read for every customer. Parts not read are empty in the returned states:
        only for a fold that provably does not read them (see CustomerProjection)."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        sql = self._customers_sql + (" FOR UPDATE" if for_update else "")
        rows = await conn.fetch(sql, ids)
        if not rows:
            return {}
        found = [r["customer_id"] for r in rows]

        def which(part: str) -> list[str]:
            if only is None or part not in only:
                return found
            wanted = set(only[part])
            return [c for c in found if c in wanted]

        identities: dict[str, dict[tuple[str, str], LinkedIdentity]] = {c: {} for c in found}
        if wanted := which("identities"):
            for r in await conn.fetch(self._identities_sql, wanted):
                link = LinkedIdentity(
                    r["channel"],
                    r["address"],
                    r["normalized_phone"],
                    r["evidence_rule"],
                    r["evidence_source_event_id"],
                    r["evidence_actor"],
                    r["evidence_note"],
                    r["linked_at"],
                    r["email"],
                )
                identities[r["customer_id"]][link.key] = link
        seen: dict[str, dict[str, ChannelSeen]] = {c: {} for c in found}
        if wanted := which("seen"):
            for r in await conn.fetch(self._channels_sql, wanted):
                seen[r["customer_id"]][r["channel"]] = ChannelSeen(
                    r["channel_account_id"], r["last_seen_at"]
                )
        consents: dict[str, dict[tuple[str, str], ConsentRecord]] = {c: {} for c in found}
        if wanted := which("consents"):
            for r in await conn.fetch(self._consents_sql, wanted):
                consents[r["customer_id"]][(r["channel"], r["purpose"])] = ConsentRecord(
                    r["granted"],
                    r["source"],
                    r["evidence_rule"],
                    r["evidence_source_event_id"],
                    r["evidence_actor"],
                    r["evidence_note"],
                    r["changed_at"],
                    r["identity_channel"],
                    r["identity_address"],
                )
        merges: dict[str, dict[str, MergeRecord]] = {c: {} for c in found}
        if wanted := which("merges"):
            for r in await conn.fetch(self._merges_sql, wanted):
                merges[r["survivor_customer_id"]][r["merge_id"]] = MergeRecord(
                    r["merged_customer_id"],
                    r["evidence_rule"],
                    r["evidence_source_event_id"],
                    r["evidence_actor"],
                    r["evidence_note"],
                    r["reason"],
                    r["merged_at"],
                    r["unmerged_at"],
                    r["unmerge_actor"],
                    r["unmerge_reason"],
                )
        return {r["customer_id"]: _state(r, identities, seen, consents, merges) for r in rows}

    async def load_closure(
        self, conn: asyncpg.Connection, customer_ids: Iterable[str]
    ) -> dict[str, CustomerState]:
        """The customers and everything merged with them: the survivors they are merged into
        and the customers merged into those, transitively (whole merged groups)."""
        states = await self.load(conn, customer_ids)
        while True:
            need = set()
            for state in states.values():
                if state.merged_into:
                    need.add(state.merged_into)
                need.update(state.members.values())
            need -= states.keys()
            if not need:
                return states
            more = await self.load(conn, need)
            if not more:
                return states
            states.update(more)

    # ------------------------------------------------------------------ saving

    async def save(
        self,
        conn: asyncpg.Connection,
        before: Mapping[str, CustomerState | None],
        after: Mapping[str, CustomerState],
        *,
        rebuild: bool = False,
    ) -> None:
        """Write what changed between `before` and `after` (keyed by customer id).

        Live writers (the tenant's lock held) never link an identity two customers hold, so a
        colliding identity row raises UniqueViolationError (a bug; the batch is retried).
        A rebuild from the topic reads customers' streams in partition order, not in the order
        they were written: an identity unlinked from one customer and linked to another may
        arrive link-first. With `rebuild`, the later link wins an identity row and an unlink only
        removes the row its own customer holds, so the end state is the same either way."""
        s = self.schema
        new_customers: list[tuple] = []
        changed_customers: list[tuple] = []
        #: Customers whose row changed only in version / updated_at (most: a CustomerSeen).
        touched_customers: list[tuple] = []
        add_links: list[tuple] = []
        change_links: list[tuple] = []
        drop_links: list[tuple[str, str, str, str]] = []
        channels: list[tuple] = []
        consents: list[tuple] = []
        merges: list[tuple] = []
        for customer_id, new in after.items():
            old = before.get(customer_id)
            if old is new:
                continue
            if old is None:
                new_customers.append(_row(new))
            elif _row_key(old) != _row_key(new):
                changed_customers.append(_unnest_row(_row(new)))
            elif old.version != new.version or old.updated_at != new.updated_at:
                touched_customers.append((customer_id, new.version, new.updated_at))
            tenant = new.tenant_id
            old_links = old.identities if old is not None else {}
            if old is None or old.identities is not new.identities:
                for key, link in new.identities.items():
                    previous = old_links.get(key)
                    if previous is None:
                        add_links.append(_link_row(tenant, customer_id, link))
                    elif previous != link:
                        change_links.append(_link_row(tenant, customer_id, link))
                for key in old_links.keys() - new.identities.keys():
                    drop_links.append((tenant, *key, customer_id))
            old_seen = old.seen if old is not None else {}
            if old is None or old.seen is not new.seen:
                for channel, seen in new.seen.items():
                    if old_seen.get(channel) != seen:
                        channels.append(
                            (
                                customer_id,
                                channel,
                                tenant,
                                seen.channel_account_id,
                                seen.last_seen_at,
                            )
                        )
            old_consents = old.consents if old is not None else {}
            if old is None or old.consents is not new.consents:
                for (channel, purpose), record in new.consents.items():
                    if old_consents.get((channel, purpose)) != record:
                        consents.append(_consent_row(tenant, customer_id, channel, purpose, record))
            old_merges = old.merges if old is not None else {}
            if old is None or old.merges is not new.merges:
                for merge_id, merge in new.merges.items():
                    if old_merges.get(merge_id) != merge:
                        merges.append(_merge_row(tenant, customer_id, merge_id, merge))

        if new_customers:
            # Binary COPY: the widest rows, and they cannot collide (they did not exist when
            # loaded, and writers of a tenant are serialized; a rebuild has one writer).
            await conn.copy_records_to_table(
                "customers",
                schema_name=s,
                columns=_CUSTOMER_COLUMNS,
                records=new_customers,
            )
        if changed_customers:
            sets = ", ".join(
                f"{c} = u.{c}" + ("::text[]" if c in ("tags", "purchase_keys") else "")
                for c in _CUSTOMER_COLUMNS[2:]
            )
            await conn.execute(
                f"""UPDATE {s}.customers c SET {sets}
                    FROM unnest({_unnest(_CUSTOMER_TYPES)}) AS u({", ".join(_CUSTOMER_COLUMNS)})
                    WHERE c.customer_id = u.customer_id""",
                *_columns(changed_customers, len(_CUSTOMER_COLUMNS)),
            )
        if touched_customers:
            await conn.execute(
                f"""UPDATE {s}.customers c SET version = u.version, updated_at = u.updated_at
                    FROM unnest($1::text[], $2::bigint[], $3::timestamptz[])
                        AS u(customer_id, version, updated_at)
                    WHERE c.customer_id = u.customer_id""",
                *_columns(touched_customers, 3),
            )
        if drop_links:
            await conn.execute(
                f"""DELETE FROM {s}.customer_identities i
                    USING unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(t, c, a, o)
                    WHERE i.tenant_id = k.t AND i.channel = k.c AND i.address = k.a
                      AND i.customer_id = k.o""",
                *_columns(drop_links, 4),
            )
        if change_links:
            sets = ", ".join(f"{c} = u.{c}" for c in _IDENTITY_COLUMNS[4:])
            await conn.execute(
                f"""UPDATE {s}.customer_identities i SET {sets}
                    FROM unnest({_unnest(_IDENTITY_TYPES)}) AS u({", ".join(_IDENTITY_COLUMNS)})
                    WHERE i.tenant_id = u.tenant_id AND i.channel = u.channel
                      AND i.address = u.address AND i.customer_id = u.customer_id""",
                *_columns(change_links, len(_IDENTITY_COLUMNS)),
            )
        if add_links:
            conflict = ""
            if rebuild:
                sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _IDENTITY_COLUMNS[3:])
                conflict = f"""ON CONFLICT (tenant_id, channel, address) DO UPDATE SET {sets}
                    WHERE EXCLUDED.linked_at >= customer_identities.linked_at"""
            await conn.execute(
                f"""INSERT INTO {s}.customer_identities AS customer_identities
                        ({", ".join(_IDENTITY_COLUMNS)})
                    SELECT * FROM unnest({_unnest(_IDENTITY_TYPES)}) {conflict}""",
                *_columns(add_links, len(_IDENTITY_COLUMNS)),
            )
        if channels:
            await conn.execute(
                f"""INSERT INTO {s}.customer_channels (customer_id, channel, tenant_id,
                        channel_account_id, last_seen_at)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                        $5::timestamptz[])
                    ON CONFLICT (customer_id, channel) DO UPDATE
                    SET channel_account_id = EXCLUDED.channel_account_id,
                        last_seen_at = EXCLUDED.last_seen_at
                    WHERE EXCLUDED.last_seen_at >= customer_channels.last_seen_at""",
                *_columns(channels, 5),
            )
        if consents:
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _CONSENT_COLUMNS[3:])
            await conn.execute(
                f"""INSERT INTO {s}.customer_consents ({", ".join(_CONSENT_COLUMNS)})
                    SELECT * FROM unnest({_unnest(_CONSENT_TYPES)})
                    ON CONFLICT (customer_id, channel, purpose) DO UPDATE SET {sets}
                    WHERE EXCLUDED.changed_at >= customer_consents.changed_at""",
                *_columns(consents, len(_CONSENT_COLUMNS)),
            )
        if merges:
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _MERGE_COLUMNS[1:])
            await conn.execute(
                f"""INSERT INTO {s}.customer_merges ({", ".join(_MERGE_COLUMNS)})
                    SELECT * FROM unnest({_unnest(_MERGE_TYPES)})
                    ON CONFLICT (merge_id) DO UPDATE SET {sets}""",
                *_columns(merges, len(_MERGE_COLUMNS)),
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
        """The customer whose own stream holds the identity (not resolved to a survivor)."""
        owners = await self.identity_owners(conn, [(tenant_id, channel, address)])
        customer_id = owners.get((tenant_id, channel, address))
        if customer_id is None:
            return None
        return await self.get(conn, tenant_id, customer_id)

    async def roots_of(self, conn: asyncpg.Connection, customer_ids: Iterable[str]) -> set[str]:
        """The survivors the customers are (transitively) merged into, or themselves."""
        pending = set(customer_ids)
        roots: set[str] = set()
        seen: set[str] = set()
        while pending:
            seen |= pending
            rows = await conn.fetch(
                f"""SELECT customer_id, merged_into FROM {self.schema}.customers
                    WHERE customer_id = ANY($1::text[])""",
                list(pending),
            )
            pending = set()
            for r in rows:
                if r["merged_into"]:
                    if r["merged_into"] not in seen:
                        pending.add(r["merged_into"])
                else:
                    roots.add(r["customer_id"])
        return roots

    async def owners_by(
        self, conn: asyncpg.Connection, tenant_id: str, *, phone: str = "", email: str = ""
    ) -> set[str]:
        if phone:
            return await self.phone_owners(conn, [(tenant_id, phone)])
        return await self.email_owners(conn, [(tenant_id, email)])

    async def search(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        *,
        among: set[str] | None,
        name_prefix: str,
        tag: str,
        after: str,
        limit: int,
    ) -> list[str]:
        """Ids of survivors (customers not merged into another) in the tenant, by id, after
        `after`: among the given ids (None: any), whose own display name starts with
        `name_prefix` (case-insensitive) and who carry `tag`."""
        pattern = ""
        if name_prefix:
            escaped = (
                name_prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            )
            pattern = escaped + "%"
        rows = await conn.fetch(
            f"""SELECT customer_id FROM {self.schema}.customers
                WHERE tenant_id = $1 AND merged_into = ''
                  AND ($2::text[] IS NULL OR customer_id = ANY($2::text[]))
                  AND ($3 = '' OR lower(display_name) LIKE $3)
                  AND ($4 = '' OR (tags <> '{{}}' AND tags @> ARRAY[$4]::text[]))
                  AND customer_id > $5
                ORDER BY customer_id LIMIT $6""",
            tenant_id,
            sorted(among) if among is not None else None,
            pattern,
            tag,
            after,
            limit,
        )
        return [r[0] for r in rows]


def _state(
    r: asyncpg.Record,
    identities: dict[str, dict[tuple[str, str], LinkedIdentity]],
    seen: dict[str, dict[str, ChannelSeen]],
    consents: dict[str, dict[tuple[str, str], ConsentRecord]],
    merges: dict[str, dict[str, MergeRecord]],
) -> CustomerState:
    cid = r["customer_id"]
    location = None
    if r["location"] is not None:
        loc = json.loads(r["location"])
        location = SharedLocation(
            channel=loc["channel"],
            latitude=loc["latitude"],
            longitude=loc["longitude"],
            name=loc["name"],
            address=loc["address"],
            shared_at=_when(loc["shared_at"]),
        )
    return make_state(
        tenant_id=r["tenant_id"],
        customer_id=cid,
        display_name=r["display_name"],
        display_name_at=r["display_name_at"],
        version=r["version"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        identities=identities[cid],
        seen=seen[cid],
        display_name_source=r["display_name_source"],
        locale=r["locale"],
        attributes=_json(r["attributes"]),
        tags=tuple(r["tags"]),
        consents=consents[cid],
        location=location,
        merged_into=r["merged_into"],
        merge_id=r["merge_id"],
        merges=merges[cid],
        separated={k: _when(v) for k, v in _json(r["separated"]).items()},
        detached={(c, a): _when(t) for c, a, t in _json(r["detached"])},
        order_count=r["order_count"],
        lifetime_value=_json(r["lifetime_value"]),
        purchase_keys=frozenset(r["purchase_keys"]),
    )


def _row_key(c: CustomerState) -> tuple:
    """What `_row` is made of but version and updated_at, without encoding it (to compare
    cheaply)."""
    return (
        c.display_name,
        c.display_name_at,
        c.created_at,
        c.display_name_source,
        c.locale,
        c.attributes,
        c.tags,
        c.location,
        c.merged_into,
        c.merge_id,
        c.separated,
        c.detached,
        c.order_count,
        c.lifetime_value,
        c.purchase_keys,
    )


def _row(c: CustomerState) -> tuple:
    location = None
    if c.location is not None:
        loc = c.location
        location = _dumps(
            {
                "channel": loc.channel,
                "latitude": loc.latitude,
                "longitude": loc.longitude,
                "name": loc.name,
                "address": loc.address,
                "shared_at": _iso(loc.shared_at),
            }
        )
    return (
        c.customer_id,
        c.tenant_id,
        c.display_name,
        c.display_name_at,
        c.version,
        c.created_at,
        c.updated_at,
        c.display_name_source,
        c.locale,
        _dumps(dict(c.attributes)) if c.attributes else "{}",
        list(c.tags),
        location,
        c.merged_into,
        c.merge_id,
        _dumps({k: _iso(v) for k, v in c.separated.items()}) if c.separated else "{}",
        _dumps(sorted([ch, a, _iso(t)] for (ch, a), t in c.detached.items()))
        if c.detached
        else "[]",
        c.order_count,
        _dumps(dict(c.lifetime_value)) if c.lifetime_value else "{}",
        sorted(c.purchase_keys),
    )


def _unnest_row(row: tuple) -> tuple:
    """A `_row` for unnest: its two arrays as literals (unnest cannot take 2-d arrays)."""
    r = list(row)
    r[10] = _array_literal(r[10])
    r[18] = _array_literal(r[18])
    return tuple(r)


def _link_row(tenant: str, customer_id: str, link: LinkedIdentity) -> tuple:
    return (
        tenant,
        link.channel,
        link.address,
        customer_id,
        link.normalized_phone,
        link.rule,
        link.source_event_id,
        link.actor,
        link.note,
        link.linked_at,
        link.email,
    )


def _consent_row(
    tenant: str, customer_id: str, channel: str, purpose: str, r: ConsentRecord
) -> tuple:
    return (
        customer_id,
        channel,
        purpose,
        tenant,
        r.granted,
        r.source,
        r.rule,
        r.source_event_id,
        r.actor,
        r.note,
        r.identity_channel,
        r.identity_address,
        r.changed_at,
    )


def _merge_row(tenant: str, survivor: str, merge_id: str, m: MergeRecord) -> tuple:
    return (
        merge_id,
        tenant,
        survivor,
        m.merged_customer_id,
        m.rule,
        m.source_event_id,
        m.actor,
        m.note,
        m.reason,
        m.merged_at,
        m.unmerged_at,
        m.unmerge_actor,
        m.unmerge_reason,
    )


def _columns(rows: Sequence[tuple], width: int) -> list[list]:
    """Rows to columns (unnest's arguments)."""
    if not rows:
        return [[] for _ in range(width)]
    columns = [list(c) for c in zip(*rows, strict=True)]
    assert len(columns) == width
    return columns
