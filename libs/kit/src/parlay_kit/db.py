"""Postgres pools and schema migrations. Each service owns one schema (its own database in
production); its event store, relay progress, consumer offsets and read models live there."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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
