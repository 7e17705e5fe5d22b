"""Tenants, API keys and the resolver, against the real Postgres (schema per test)."""

from __future__ import annotations

import asyncio
import hashlib

import asyncpg
import pytest

from parlay_kit import tenancy
from parlay_kit.errors import AlreadyExists, InvalidArgument, NotFound


@pytest.fixture
async def conn(database_url, fresh_schema):
    c = await asyncpg.connect(database_url)
    await tenancy.migrate(c, schema=fresh_schema)
    yield c
    await c.close()


@pytest.fixture
def schema(fresh_schema):
    return fresh_schema


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_migrate_is_idempotent_and_safe_concurrently(database_url, fresh_schema):
    async def one() -> None:
        c = await asyncpg.connect(database_url)
        try:
            await tenancy.migrate(c, schema=fresh_schema)
        finally:
            await c.close()

    await asyncio.gather(one(), one(), one())
    await one()
    c = await asyncpg.connect(database_url)
    try:
        tables = {
            r["table_name"]
            for r in await c.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                fresh_schema,
            )
        }
    finally:
        await c.close()
    assert tables == {"tenants", "api_keys"}


async def test_migrate_accepts_a_pool(database_url, fresh_schema):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await tenancy.migrate(pool, schema=fresh_schema)
        assert await tenancy.list_tenants(pool, schema=fresh_schema) == []
    finally:
        await pool.close()


async def test_create_and_list_tenants(conn, schema):
    acme = await tenancy.create_tenant(conn, "Acme Shoes & Co", schema=schema)
    assert acme.tenant_id == "acme-shoes-co"
    other = await tenancy.create_tenant(conn, "Other", tenant_id="t_other", schema=schema)
    assert other.tenant_id == "t_other"
    listed = await tenancy.list_tenants(conn, schema=schema)
    assert [t.tenant_id for t in listed] == ["acme-shoes-co", "t_other"]
    assert (await tenancy.get_tenant(conn, "t_other", schema=schema)).name == "Other"


async def test_tenant_errors(conn, schema):
    await tenancy.create_tenant(conn, "Acme", schema=schema)
    with pytest.raises(AlreadyExists):
        await tenancy.create_tenant(conn, "ACME", schema=schema)
    with pytest.raises(InvalidArgument):
        await tenancy.create_tenant(conn, "x", tenant_id="Bad Id", schema=schema)
    with pytest.raises(InvalidArgument):
        await tenancy.create_tenant(conn, "   ", schema=schema)
    with pytest.raises(NotFound):
        await tenancy.get_tenant(conn, "nope", schema=schema)


async def test_api_key_is_returned_once_and_stored_only_as_sha256(conn, schema):
    await tenancy.create_tenant(conn, "Acme", schema=schema)
    new = await tenancy.create_api_key(conn, "acme", schema=schema)
    assert new.key.startswith(f"pk_{new.key_id}_")
    assert tenancy.key_id_of(new.key) == new.key_id
    assert len(new.key.split("_", 2)[2]) == 43

    row = await conn.fetchrow(f"SELECT * FROM {schema}.api_keys WHERE key_id = $1", new.key_id)
    assert bytes(row["key_hash"]) == hashlib.sha256(new.key.encode()).digest()
    dump = " ".join(str(v) for v in row.values())
    assert new.key not in dump and new.key.split("_", 2)[2] not in dump
    assert row["dev"] is False

    keys = await tenancy.list_api_keys(conn, "acme", schema=schema)
    assert [k.key_id for k in keys] == [new.key_id]
    assert keys[0].active


async def test_keys_are_unique(conn, schema):
    await tenancy.create_tenant(conn, "Acme", schema=schema)
    keys = [await tenancy.create_api_key(conn, "acme", schema=schema) for _ in range(5)]
    assert len({k.key for k in keys}) == 5
    assert len({k.key_id for k in keys}) == 5


async def test_key_for_unknown_tenant(conn, schema):
    with pytest.raises(NotFound):
        await tenancy.create_api_key(conn, "ghost", schema=schema)


async def test_revoke(conn, schema):
    await tenancy.create_tenant(conn, "Acme", schema=schema)
    new = await tenancy.create_api_key(conn, "acme", schema=schema)
    revoked = await tenancy.revoke_api_key(conn, new.key_id, schema=schema)
    assert revoked.revoked_at is not None and not revoked.active
    again = await tenancy.revoke_api_key(conn, new.key_id, schema=schema)
    assert again.revoked_at == revoked.revoked_at
    assert await tenancy.list_api_keys(conn, "acme", include_revoked=False, schema=schema) == []
    with pytest.raises(NotFound):
        await tenancy.revoke_api_key(conn, "nope", schema=schema)


async def test_resolver_maps_key_to_tenant(conn, schema):
    await tenancy.create_tenant(conn, "Acme", schema=schema)
    await tenancy.create_tenant(conn, "Other", schema=schema)
    k1 = await tenancy.create_api_key(conn, "acme", schema=schema)
    k2 = await tenancy.create_api_key(conn, "other", schema=schema)
    resolver = tenancy.ApiKeyResolver(conn, schema=schema)
    assert await resolver.resolve(k1.key) == "acme"
    assert await resolver.resolve(k2.key) == "other"
    assert await resolver.resolve(k1.key + "x") is None
    assert await resolver.resolve("") is None
    assert await resolver.resolve("pk_" + "a" * 600) is None


async def test_service_keys_belong_to_no_tenant(conn, schema):
    service = await tenancy.create_service_key(conn, schema=schema)
    resolver = tenancy.ApiKeyResolver(conn, schema=schema)
    assert await resolver.resolve(service.key) == tenancy.SERVICE_PRINCIPAL
    assert tenancy.SERVICE_PRINCIPAL not in [
        t.tenant_id for t in await tenancy.list_tenants(conn, schema=schema)
    ]
    with pytest.raises(InvalidArgument):
        await tenancy.create_api_key(conn, tenancy.SERVICE_PRINCIPAL, schema=schema)
    with pytest.raises(InvalidArgument):  # no tenant can be named like the service principal
        tenancy.validate_tenant_id(tenancy.SERVICE_PRINCIPAL)


async def test_revocation_takes_effect_after_ttl(conn, schema):
    await tenancy.create_tenant(conn, "Acme", schema=schema)
    new = await tenancy.create_api_key(conn, "acme", schema=schema)
    clock = FakeClock()
    resolver = tenancy.ApiKeyResolver(conn, ttl=5.0, schema=schema, clock=clock)
    assert await resolver.resolve(new.key) == "acme"
    await tenancy.revoke_api_key(conn, new.key_id, schema=schema)
    clock.now += 4.0
    assert await resolver.resolve(new.key) == "acme"  # cached
    clock.now += 1.5
    assert await resolver.resolve(new.key) is None  # expired -> re-read -> revoked


async def test_negative_results_are_cached_and_invalidate_works(conn, schema):
    await tenancy.create_tenant(conn, "Acme", schema=schema)
    clock = FakeClock()
    resolver = tenancy.ApiKeyResolver(conn, ttl=5.0, schema=schema, clock=clock)
    new = await tenancy.create_api_key(conn, "acme", schema=schema)
    await conn.execute(f"UPDATE {schema}.api_keys SET revoked_at = now()")
    assert await resolver.resolve(new.key) is None
    await conn.execute(f"UPDATE {schema}.api_keys SET revoked_at = NULL")
    assert await resolver.resolve(new.key) is None  # negative result cached
    resolver.invalidate(new.key)
    assert await resolver.resolve(new.key) == "acme"


async def test_cache_is_bounded(conn, schema):
    resolver = tenancy.ApiKeyResolver(conn, schema=schema, max_entries=3)
    for i in range(10):
        assert await resolver.resolve(f"pk_x_{i}") is None
    assert len(resolver._cache) == 3


async def test_dev_key_only_in_dev_mode(conn, schema):
    await tenancy.seed_dev(conn, schema=schema)
    await tenancy.seed_dev(conn, schema=schema)  # idempotent
    keys = await tenancy.list_api_keys(conn, tenancy.DEV_TENANT_ID, schema=schema)
    assert [(k.key_id, k.dev) for k in keys] == [(tenancy.DEV_KEY_ID, True)]
    row = await conn.fetchrow(f"SELECT key_hash FROM {schema}.api_keys WHERE key_id = 'dev'")
    assert bytes(row["key_hash"]) == hashlib.sha256(b"dev-key").digest()

    assert await tenancy.ApiKeyResolver(conn, schema=schema).resolve("dev-key") is None
    dev = tenancy.ApiKeyResolver(conn, schema=schema, dev_mode=True)
    assert await dev.resolve("dev-key") == "demo"


async def test_seed_dev_reactivates_a_revoked_dev_key(conn, schema):
    await tenancy.seed_dev(conn, schema=schema)
    await tenancy.revoke_api_key(conn, tenancy.DEV_KEY_ID, schema=schema)
    await tenancy.seed_dev(conn, schema=schema)
    dev = tenancy.ApiKeyResolver(conn, schema=schema, dev_mode=True)
    assert await dev.resolve(tenancy.DEV_API_KEY) == tenancy.DEV_TENANT_ID


async def test_concurrent_resolves_share_one_lookup(database_url, schema, conn):
    await tenancy.create_tenant(conn, "Acme", schema=schema)
    new = await tenancy.create_api_key(conn, "acme", schema=schema)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    calls = 0

    class Counting:
        async def fetchrow(self, query, *args):
            nonlocal calls
            calls += 1
            return await pool.fetchrow(query, *args)

    try:
        resolver = tenancy.ApiKeyResolver(Counting(), schema=schema)
        results = await asyncio.gather(*(resolver.resolve(new.key) for _ in range(20)))
    finally:
        await pool.close()
    assert results == ["acme"] * 20
    assert calls == 1


async def test_resolver_propagates_database_errors(conn, schema):
    class Broken:
        async def fetchrow(self, query, *args):
            raise asyncpg.PostgresConnectionError("down")

    resolver = tenancy.ApiKeyResolver(Broken(), schema=schema)
    with pytest.raises(asyncpg.PostgresConnectionError):
        await resolver.resolve("pk_a_b")
    # not cached: a later call tries again
    with pytest.raises(asyncpg.PostgresConnectionError):
        await resolver.resolve("pk_a_b")


def test_invalid_schema_name_is_rejected():
    with pytest.raises(ValueError):
        tenancy.ApiKeyResolver(None, schema="x; drop table")  # type: ignore[arg-type]


def test_slugify_and_key_id_of():
    assert tenancy.slugify("  Hello, World!  ") == "hello-world"
    assert tenancy.key_id_of("pk_abc_def_ghi") == "abc"
    assert tenancy.key_id_of("dev-key") is None
