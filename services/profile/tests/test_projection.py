"""CustomerProjection (the rebuild) against real Postgres, without a broker: the log of a world
built by the rules is applied in many interleavings — each customer's stream in order, streams
interleaved at random and cut into random batches, as partitions deliver them — and must always
yield exactly the read models the live writers produce (the states saved directly), table by
table. Covers the rebuild's shortcuts: partial loads, link-before-unlink across customers, the
"newer wins" guards in SQL, idempotence by version."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from parlay_kit.db import create_pool, migrate
from parlay_kit.envelope import NewEvent, utcnow
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS
from parlay_kit.projector import ConsumedEvent, UnitOfWork
from parlay_kit.testing import unique_name
from parlay_profile import domain, rules
from parlay_profile.memory import InMemoryProfiles
from parlay_profile.projections import CustomerProjection
from parlay_profile.readmodel import MIGRATIONS, CustomerReadModel

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TABLES = (
    "customers",
    "customer_identities",
    "customer_channels",
    "customer_consents",
    "customer_merges",
)


def world() -> InMemoryProfiles:
    """A tenant's history touching every event type."""
    w = InMemoryProfiles()
    n = 0

    def src() -> str:
        nonlocal n
        n += 1
        return f"src-{n}"

    def msg(channel: str, address: str, minutes: float, name: str = "", text: str = "", loc=None):
        w.observe(
            rules.observation(
                tenant_id="t1",
                channel=channel,
                address=address,
                display_name=name,
                occurred_at=T0 + timedelta(minutes=minutes),
                source_event_id=src(),
                text=text,
                location=loc,
            )
        )

    def cmd(name: str, *args, minutes: float, **kw):
        return w.command(
            name, "t1", *args, at=T0 + timedelta(minutes=minutes), command_id=src(), **kw
        )

    msg("whatsapp", "16505550001", 0, "Ana")
    msg("twilio", "+16505550001", 1)  # same phone
    msg("twilio", "+16505550001", 2, text="STOP")
    msg("twilio", "+16505550001", 3, text="START")
    msg("telegram", "tg-1", 4, "ana_tg", loc=rules.Location(38.7, -9.1, "Home", "Lisboa"))
    w.observe(
        rules.EvidenceObservation(
            "t1",
            "telegram",
            "acc",
            "telegram",
            "tg-1",
            "shared_phone",
            "+16505550001",
            "",
            T0 + timedelta(minutes=5),
            src(),
        )
    )  # merge
    msg("whatsapp", "16505550002", 6, "Bo")
    msg("webchat", "v-1", 7)
    ana = w.owner("t1", "whatsapp", "16505550001")
    bo = w.owner("t1", "whatsapp", "16505550002")
    visitor = w.owner("t1", "webchat", "v-1")
    assert ana and bo and visitor
    cmd(
        "update_customer",
        bo,
        set_attributes={"tier": "gold"},
        add_tags=["vip"],
        minutes=8,
        actor="crm",
    )
    cmd("set_consent", bo, "whatsapp", "marketing", True, proof="form", actor="crm", minutes=9)
    merge = cmd("merge_customers", ana, bo, actor="agent", reason="same", minutes=10)
    cmd("unmerge_customers", merge, actor="agent", reason="not same", minutes=11)
    # The SMS number moves from Ana to a new customer (link after unlink, other streams).
    cmd("unlink_identity", ana, "twilio", "+16505550001", actor="agent", note="", minutes=12)
    msg("twilio", "+16505550001", 13, text="hello again")
    # ... and the shared phone is unlinked from the (merged) Telegram customer for good.
    cmd("unlink_identity", ana, "phone", "+16505550001", actor="agent", note="", minutes=13.5)
    cmd("link_identity", visitor, "email", "v@example.com", actor="agent", note="", minutes=14)
    w.observe(rules.PurchaseObservation("t1", bo, "o-1", "order_placed", "", 0, T0, src()))
    w.observe(
        rules.PurchaseObservation(
            "t1", bo, "o-1", "payment_captured", "EUR", 990, T0 + timedelta(minutes=15), src()
        )
    )
    msg("whatsapp", "16505550002", 20, "Bo B")  # seen + rename
    msg("whatsapp", "16505550002", 19, "Bo")  # late delivery: no flip back
    return w


def consumed(events: list[domain.ProfileEvent]) -> list[ConsumedEvent]:
    out = []
    for i, e in enumerate(events):
        new = NewEvent(
            event_id=e.event_id,
            tenant_id=e.tenant_id,
            aggregate_type=domain.AGGREGATE_TYPE,
            aggregate_id=e.aggregate_id,
            payload=e.payload,
            occurred_at=e.occurred_at,
            topic="",
            aggregate_version=e.version,
        )
        out.append(
            ConsumedEvent(new.to_envelope("profile", e.version, utcnow()), e.payload, "p", 0, i, "")
        )
    return out


def interleave(log: list[domain.ProfileEvent], rng: random.Random) -> list[domain.ProfileEvent]:
    """Streams in order, interleaved at random (what partitions may deliver)."""
    streams: dict[str, list[domain.ProfileEvent]] = defaultdict(list)
    for e in log:
        streams[e.aggregate_id].append(e)
    queues = [list(s) for s in streams.values()]
    out: list[domain.ProfileEvent] = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


async def checksums(pool: asyncpg.Pool, schema: str) -> dict[str, tuple[int, str]]:
    out = {}
    for table in TABLES:
        row = await pool.fetchrow(
            f"""SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))
                FROM {schema}.{table} t"""
        )
        out[table] = (row[0], row[1])
    return out


@pytest.fixture
async def schemas(database_url: str):
    names = [unique_name("t") for _ in range(2)]
    pool = await create_pool(database_url, names[0], max_size=2)
    try:
        async with pool.acquire() as conn:
            for name in names:
                await migrate(conn, name, [*EVENT_STORE_MIGRATIONS, *MIGRATIONS])
        yield pool, names
    finally:
        async with pool.acquire() as conn:
            for name in names:
                await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await pool.close()


async def _reset(pool: asyncpg.Pool, schema: str) -> None:
    async with pool.acquire() as conn:
        for table in TABLES:
            await conn.execute(f"TRUNCATE {schema}.{table}")


async def test_any_interleaving_and_batching_rebuilds_the_live_read_models(schemas) -> None:
    pool, (live, rebuilt) = schemas
    w = world()
    kinds = {type(e.payload).__name__ for e in w.log}
    assert {"IdentityUnlinked", "ProfilesUnmerged", "ConsentChanged", "PurchaseRecorded"} <= kinds
    # What the live writers keep: the states, saved directly.
    async with pool.acquire() as conn, conn.transaction():
        await CustomerReadModel(live).save(conn, {}, w.profiles.states)
    expected = await checksums(pool, live)

    projection = CustomerProjection(CustomerReadModel(rebuilt))
    rng = random.Random(7)
    for attempt in range(12):
        await _reset(pool, rebuilt)
        events = consumed(interleave(w.log, rng) if attempt else list(reversed_streams(w.log)))
        i = 0
        while i < len(events):
            size = rng.choice([1, 2, 3, 5, 8, 1000])
            async with pool.acquire() as conn, conn.transaction():
                await projection.handle_batch(UnitOfWork(conn), events[i : i + size])
            i += size
        assert await checksums(pool, rebuilt) == expected, f"interleaving {attempt}"
    # Applying everything again (a redelivery, an overlapping replay) changes nothing.
    async with pool.acquire() as conn, conn.transaction():
        await projection.handle_batch(UnitOfWork(conn), consumed(w.log))
    assert await checksums(pool, rebuilt) == expected


def reversed_streams(log: list[domain.ProfileEvent]) -> list[domain.ProfileEvent]:
    """The adversarial order: the customer written last first, each stream in order."""
    streams: dict[str, list[domain.ProfileEvent]] = defaultdict(list)
    for e in log:
        streams[e.aggregate_id].append(e)
    return [e for cid in reversed(list(streams)) for e in streams[cid]]
