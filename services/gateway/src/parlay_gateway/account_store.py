"""Postgres adapter for channel accounts: the table (the only place secrets live), its queries,
and the cached lookup the webhook path uses."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TypeAlias

import asyncpg

from parlay_gateway.accounts import ChannelAccount
from parlay_kit.db import Migration, check_identifier

MIGRATIONS = [
    Migration(
        "gateway_0001_channel_accounts",
        """
        CREATE TABLE {schema}.channel_accounts (
            channel_account_id text PRIMARY KEY,
            tenant_id          text        NOT NULL,
            channel            text        NOT NULL,
            -- Secrets: never copied into events, never returned by a read RPC.
            credentials        jsonb       NOT NULL,
            settings           jsonb       NOT NULL,
            created_at         timestamptz NOT NULL,
            updated_at         timestamptz NOT NULL
        );
        CREATE INDEX channel_accounts_by_tenant
            ON {schema}.channel_accounts (tenant_id, channel_account_id);
        """,
    )
]

#: An asyncpg Connection or Pool.
Conn: TypeAlias = "asyncpg.Connection | asyncpg.Pool"

_COLUMNS = "channel_account_id, tenant_id, channel, credentials, settings, created_at"


def _account(row: asyncpg.Record) -> ChannelAccount:
    return ChannelAccount(
        channel_account_id=row["channel_account_id"],
        tenant_id=row["tenant_id"],
        channel=row["channel"],
        credentials=json.loads(row["credentials"]),
        settings=json.loads(row["settings"]),
        created_at=row["created_at"],
    )


class AccountRepository:
    def __init__(self, schema: str) -> None:
        self.schema = check_identifier(schema)

    async def insert(self, conn: Conn, account: ChannelAccount) -> bool:
        """False when the id is taken (by any tenant)."""
        row = await conn.fetchrow(
            f"""INSERT INTO {self.schema}.channel_accounts
                    (channel_account_id, tenant_id, channel, credentials, settings,
                     created_at, updated_at)
                VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $6)
                ON CONFLICT (channel_account_id) DO NOTHING
                RETURNING channel_account_id""",
            account.channel_account_id,
            account.tenant_id,
            account.channel,
            json.dumps(dict(account.credentials), sort_keys=True),
            json.dumps(dict(account.settings), sort_keys=True),
            account.created_at,
        )
        return row is not None

    async def update_config(
        self,
        conn: Conn,
        channel_account_id: str,
        credentials: Mapping[str, str],
        settings: Mapping[str, str],
    ) -> None:
        await conn.execute(
            f"""UPDATE {self.schema}.channel_accounts
                SET credentials = $2::jsonb, settings = $3::jsonb, updated_at = now()
                WHERE channel_account_id = $1""",
            channel_account_id,
            json.dumps(dict(credentials), sort_keys=True),
            json.dumps(dict(settings), sort_keys=True),
        )

    async def get(self, conn: Conn, channel_account_id: str) -> ChannelAccount | None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM {self.schema}.channel_accounts WHERE channel_account_id = $1",
            channel_account_id,
        )
        return _account(row) if row is not None else None

    async def list_for_tenant(
        self, conn: Conn, tenant_id: str, *, channel: str, after: str, limit: int
    ) -> list[ChannelAccount]:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM {self.schema}.channel_accounts
                WHERE tenant_id = $1 AND ($2 = '' OR channel = $2) AND channel_account_id > $3
                ORDER BY channel_account_id LIMIT $4""",
            tenant_id,
            channel,
            after,
            limit,
        )
        return [_account(r) for r in rows]


class AccountDirectory:
    """Channel-account lookup for the webhook path, with a small TTL cache so a busy account
    costs one query per `ttl` seconds. Accounts created in this process are cached at once; an
    unknown id is remembered for `negative_ttl` seconds (cheap 404s for junk traffic)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        repository: AccountRepository,
        *,
        ttl: float = 5.0,
        negative_ttl: float = 1.0,
        max_entries: int = 10_000,
    ) -> None:
        self._pool = pool
        self._repository = repository
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_entries = max_entries
        self._cache: dict[str, tuple[float, ChannelAccount | None]] = {}

    async def get(self, channel_account_id: str) -> ChannelAccount | None:
        now = time.monotonic()
        hit = self._cache.get(channel_account_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        account = await self._repository.get(self._pool, channel_account_id)
        self._remember(channel_account_id, account, now)
        return account

    def put(self, account: ChannelAccount) -> None:
        self._remember(account.channel_account_id, account, time.monotonic())

    def invalidate(self, channel_account_id: str | None = None) -> None:
        if channel_account_id is None:
            self._cache.clear()
        else:
            self._cache.pop(channel_account_id, None)

    def _remember(self, key: str, account: ChannelAccount | None, now: float) -> None:
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        ttl = self._ttl if account is not None else self._negative_ttl
        self._cache[key] = (now + ttl, account)
