"""Postgres pools and schema migrations. Each service owns one schema (its own database in
production); its event store, relay progress, consumer offsets and read models live there."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import asyncpg

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_identifier(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


async def create_pool(
    dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10, password: str | None = None
) -> asyncpg.Pool:
    check_identifier(schema)
    pool = await asyncpg.create_pool(
        dsn,
        password=password,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": f"{schema},public", "application_name": schema},
    )
    assert pool is not None
    return pool


class WriteBehind:
    """Statements on one connection that run while the caller prepares the next one.

    A batch handler that folds everything first and then writes leaves Postgres idle while
    Python folds and Python idle while Postgres writes. Handing each group's statement to
    `submit` instead starts it in a task and returns, so the caller folds the next group
    meanwhile; a statement waits only for the one before it (a connection runs one statement at
    a time). Leaving the `async with` awaits the last one, also when the caller failed, so the
    connection is free for the rollback (the caller's error wins over the statement's).
    """

    def __init__(self) -> None:
        self._running: asyncio.Future[object] | None = None

    async def submit(self, statement: Awaitable[object]) -> None:
        await self.wait()
        self._running = asyncio.ensure_future(statement)
        # Let the task send its statement now: Postgres works while the caller goes on.
        await asyncio.sleep(0)

    async def wait(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            await running

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.wait()
            return
        running, self._running = self._running, None
        if running is not None:
            await asyncio.gather(running, return_exceptions=True)


@dataclass(frozen=True)
class Migration:
    """One forward-only step. `sql` may use {schema} for the service's schema name."""

    id: str
    sql: str


async def migrate(
    conn: asyncpg.Connection, schema: str, migrations: Sequence[Migration]
) -> list[str]:
    """Apply the migrations not yet applied, in order, under an advisory lock so replicas that
    start together do not race. Returns the ids applied now."""
    check_identifier(schema)
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                    id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["id"] for r in await conn.fetch(f"SELECT id FROM {schema}.schema_migrations")}
        for migration in migrations:
            if migration.id in done:
                continue
            await conn.execute(migration.sql.format(schema=schema))
            await conn.execute(
                f"INSERT INTO {schema}.schema_migrations (id) VALUES ($1)", migration.id
            )
            applied_now.append(migration.id)
    return applied_now
