"""Tenants and API keys, in the Postgres schema `tenancy`.

An API key looks like ``pk_<key_id>_<secret>``: `key_id` is public (it names the key in lists,
logs and `parlay tenants keys revoke`), the secret is 256 bits of randomness. Only the SHA-256
of the whole key is stored (a fast hash is right for high-entropy keys: there is nothing to
brute-force), so the plain key is shown once, when it is created, and never again.

The dev key (`dev-key` for tenant `demo`) is stored the same way, flagged `dev`; the resolver
refuses it unless it runs in dev mode.

A *service key* belongs to no tenant: it authenticates one Parlay service calling another (the
conversation service asking orders "where is my order?") and may act for the tenant the call
names in `x-parlay-tenant` (see `parlay_kit.grpc_server`). It is stored under the reserved
principal `SERVICE_PRINCIPAL`, which no tenant id can equal (tenant ids never start with "_").
The dev service key is `dev-service-key`, dev mode only.

Every function takes an asyncpg connection (or pool) and, for tests, an optional `schema`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import string
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from parlay_kit.errors import AlreadyExists, InvalidArgument, NotFound

TENANCY_SCHEMA = "tenancy"

DEV_TENANT_ID = "demo"
DEV_TENANT_NAME = "Demo (dev mode)"
DEV_API_KEY = "dev-key"
DEV_KEY_ID = "dev"
DEV_SERVICE_API_KEY = "dev-service-key"
DEV_SERVICE_KEY_ID = "dev-service"

#: The principal of service keys (stored as their tenant_id; not a valid tenant id).
SERVICE_PRINCIPAL = "_services"

KEY_PREFIX = "pk"
_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_KEY_ID_LEN = 12
_SECRET_LEN = 43  # 43 * log2(62) ~ 256 bits

_TENANT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Advisory lock key serializing concurrent migrations of the tenancy schema.
_MIGRATION_LOCK = 0x7061726C61790001  # "parlay" + 1


class Executor(Protocol):
    """An asyncpg Connection or Pool."""

    async def execute(self, query: str, *args: Any) -> str: ...
    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never the plain text)."""

    key_id: str
    tenant_id: str
    created_at: datetime
    revoked_at: datetime | None
    dev: bool

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly created key: `key` is the plain text, available this once."""

    key_id: str
    tenant_id: str
    key: str
    created_at: datetime


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _schema(schema: str) -> str:
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


def hash_key(key: str) -> bytes:
    """SHA-256 of the plain key (what is stored and looked up)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def generate_api_key() -> tuple[str, str]:
    """A new (key_id, plain key) pair: key = pk_<key_id>_<secret>."""
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(_KEY_ID_LEN))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LEN))
    return key_id, f"{KEY_PREFIX}_{key_id}_{secret}"


def key_id_of(key: str) -> str | None:
    """The key id embedded in a `pk_<id>_<secret>` key (None for other shapes, e.g. dev-key)."""
    parts = key.split("_", 2)
    if len(parts) == 3 and parts[0] == KEY_PREFIX and parts[1] and parts[2]:
        return parts[1]
    return None


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")
    return slug[:63].rstrip("-")


def validate_tenant_id(tenant_id: str) -> str:
    if not _TENANT_ID_RE.match(tenant_id):
        raise InvalidArgument(
            "tenant_id",
            "must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
        )
    return tenant_id


def _tenant(row: asyncpg.Record) -> Tenant:
    return Tenant(row["tenant_id"], row["name"], row["created_at"])


def _api_key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(row["key_id"], row["tenant_id"], row["created_at"], row["revoked_at"], row["dev"])


# --------------------------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------------------------


def _ddl(schema: str) -> list[str]:
    s = _schema(schema)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.tenants (
            tenant_id  text PRIMARY KEY,
            name       text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.api_keys (
            key_id     text PRIMARY KEY,
            tenant_id  text NOT NULL REFERENCES {s}.tenants (tenant_id),
            key_hash   bytea NOT NULL UNIQUE,
            dev        boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        )""",
        f"CREATE INDEX IF NOT EXISTS api_keys_tenant_idx ON {s}.api_keys (tenant_id)",
        f"""INSERT INTO {s}.tenants (tenant_id, name) VALUES ('{SERVICE_PRINCIPAL}',
            'Parlay services (service keys)') ON CONFLICT (tenant_id) DO NOTHING""",
    ]


async def migrate(conn: asyncpg.Connection | asyncpg.Pool, schema: str = TENANCY_SCHEMA) -> None:
    """Create the tenancy schema and tables (idempotent, safe to run concurrently)."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as acquired:
            await migrate(acquired, schema)
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        for statement in _ddl(schema):
            await conn.execute(statement)


# --------------------------------------------------------------------------------------------
# tenants
# --------------------------------------------------------------------------------------------


async def create_tenant(
    conn: Executor, name: str, tenant_id: str | None = None, *, schema: str = TENANCY_SCHEMA
) -> Tenant:
    """Create a tenant; the id defaults to a slug of the name. AlreadyExists if taken."""
    name = name.strip()
    if not name:
        raise InvalidArgument("name", "must not be empty")
    tenant_id = validate_tenant_id(tenant_id if tenant_id is not None else slugify(name))
    s = _schema(schema)
    row = await conn.fetchrow(
        f"INSERT INTO {s}.tenants (tenant_id, name) VALUES ($1, $2) "
        "ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id, name, created_at",
        tenant_id,
        name,
    )
    if row is None:
        raise AlreadyExists(f"tenant {tenant_id!r} already exists")
    return _tenant(row)


async def get_tenant(conn: Executor, tenant_id: str, *, schema: str = TENANCY_SCHEMA) -> Tenant:
    row = await conn.fetchrow(
        f"SELECT tenant_id, name, created_at FROM {_schema(schema)}.tenants WHERE tenant_id = $1",
        tenant_id,
    )
    if row is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    return _tenant(row)


async def list_tenants(conn: Executor, *, schema: str = TENANCY_SCHEMA) -> list[Tenant]:
    rows = await conn.fetch(
        f"SELECT tenant_id, name, created_at FROM {_schema(schema)}.tenants "
        "WHERE tenant_id <> $1 ORDER BY created_at, tenant_id",
        SERVICE_PRINCIPAL,
    )
    return [_tenant(r) for r in rows]


# --------------------------------------------------------------------------------------------
# API keys
# --------------------------------------------------------------------------------------------


async def create_api_key(
    conn: Executor, tenant_id: str, *, schema: str = TENANCY_SCHEMA
) -> NewApiKey:
    """Create a key for the tenant; the returned `key` is the only time the plain text exists."""
    s = _schema(schema)
    if tenant_id == SERVICE_PRINCIPAL:
        raise InvalidArgument("tenant_id", "service keys are made with create_service_key")
    await get_tenant(conn, tenant_id, schema=schema)  # NotFound
    for _ in range(5):
        key_id, key = generate_api_key()
        row = await conn.fetchrow(
            f"INSERT INTO {s}.api_keys (key_id, tenant_id, key_hash) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING created_at",
            key_id,
            tenant_id,
            hash_key(key),
        )
        if row is not None:
            return NewApiKey(key_id, tenant_id, key, row["created_at"])
    raise RuntimeError("could not generate a unique key id")  # pragma: no cover


async def create_service_key(conn: Executor, *, schema: str = TENANCY_SCHEMA) -> NewApiKey:
    """Create a service key (for `PARLAY_SERVICE_API_KEY`): it may act for any tenant a call
    names in `x-parlay-tenant`, so give it only to Parlay's own services."""
    s = _schema(schema)
    for _ in range(5):
        key_id, key = generate_api_key()
        row = await conn.fetchrow(
            f"INSERT INTO {s}.api_keys (key_id, tenant_id, key_hash) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING created_at",
            key_id,
            SERVICE_PRINCIPAL,
            hash_key(key),
        )
        if row is not None:
            return NewApiKey(key_id, SERVICE_PRINCIPAL, key, row["created_at"])
    raise RuntimeError("could not generate a unique key id")  # pragma: no cover


async def revoke_api_key(conn: Executor, key_id: str, *, schema: str = TENANCY_SCHEMA) -> ApiKey:
    """Revoke a key (idempotent: an already revoked key keeps its revocation time)."""
    s = _schema(schema)
    row = await conn.fetchrow(
        f"UPDATE {s}.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1 "
        "RETURNING key_id, tenant_id, created_at, revoked_at, dev",
        key_id,
    )
    if row is None:
        raise NotFound(f"API key {key_id!r} not found")
    return _api_key(row)


async def list_api_keys(
    conn: Executor,
    tenant_id: str | None = None,
    *,
    include_revoked: bool = True,
    schema: str = TENANCY_SCHEMA,
) -> list[ApiKey]:
    s = _schema(schema)
    clauses, args = [], []
    if tenant_id is not None:
        args.append(tenant_id)
        clauses.append(f"tenant_id = ${len(args)}")
    if not include_revoked:
        clauses.append("revoked_at IS NULL")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await conn.fetch(
        f"SELECT key_id, tenant_id, created_at, revoked_at, dev FROM {s}.api_keys {where} "
        "ORDER BY created_at, key_id",
        *args,
    )
    return [_api_key(r) for r in rows]


async def seed_dev(conn: Executor, *, schema: str = TENANCY_SCHEMA) -> None:
    """Ensure the dev tenant `demo`, its key `dev-key` and the service key `dev-service-key`
    (both flagged dev) exist and are active."""
    s = _schema(schema)
    await conn.execute(
        f"INSERT INTO {s}.tenants (tenant_id, name) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING",
        DEV_TENANT_ID,
        DEV_TENANT_NAME,
    )
    await conn.execute(
        f"INSERT INTO {s}.api_keys (key_id, tenant_id, key_hash, dev) VALUES ($1, $2, $3, true) "
        "ON CONFLICT (key_id) DO UPDATE SET key_hash = EXCLUDED.key_hash, "
        "tenant_id = EXCLUDED.tenant_id, dev = true, revoked_at = NULL",
        DEV_KEY_ID,
        DEV_TENANT_ID,
        hash_key(DEV_API_KEY),
    )
    await conn.execute(
        f"INSERT INTO {s}.api_keys (key_id, tenant_id, key_hash, dev) VALUES ($1, $2, $3, true) "
        "ON CONFLICT (key_id) DO UPDATE SET key_hash = EXCLUDED.key_hash, "
        "tenant_id = EXCLUDED.tenant_id, dev = true, revoked_at = NULL",
        DEV_SERVICE_KEY_ID,
        SERVICE_PRINCIPAL,
        hash_key(DEV_SERVICE_API_KEY),
    )


# --------------------------------------------------------------------------------------------
# resolver
# --------------------------------------------------------------------------------------------


class ApiKeyResolver:
    """Maps a presented API key to its tenant id, with a short cache.

    `resolve` returns None for unknown, revoked or (outside dev mode) dev keys. Results,
    negative ones included, are cached for `ttl` seconds, so a revocation takes effect within
    `ttl` on every process. The cache holds key hashes, never plain keys.
    """

    def __init__(
        self,
        pool: Executor,
        *,
        dev_mode: bool = False,
        ttl: float = 5.0,
        max_entries: int = 10_000,
        schema: str = TENANCY_SCHEMA,
        clock: Any = time.monotonic,
    ) -> None:
        self._pool = pool
        self.dev_mode = dev_mode
        self.ttl = ttl
        self.max_entries = max_entries
        self._query = (
            f"SELECT tenant_id, dev FROM {_schema(schema)}.api_keys "
            "WHERE key_hash = $1 AND revoked_at IS NULL"
        )
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, str | None]] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[str | None]] = {}

    async def resolve(self, key: str) -> str | None:
        if not key or len(key) > 512:
            return None
        digest = hash_key(key)
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._inflight.get(digest)
        if pending is not None:  # coalesce concurrent lookups of the same key
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            row = await self._pool.fetchrow(self._query, digest)
            tenant_id: str | None = None
            if row is not None and (self.dev_mode or not row["dev"]):
                tenant_id = row["tenant_id"]
            self._store(digest, tenant_id)
            future.set_result(tenant_id)
            return tenant_id
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it
            raise
        finally:
            self._inflight.pop(digest, None)

    def _store(self, digest: bytes, tenant_id: str | None) -> None:
        self._cache[digest] = (self._clock() + self.ttl, tenant_id)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    def invalidate(self, key: str | None = None) -> None:
        """Forget one key, or everything."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(hash_key(key), None)
