"""Identity resolution against a real broker and Postgres: gateway MessageReceived envelopes go
onto a real topic, the real Projector runs the handler, and the read models, the event store
and the profile topic are checked. Waits are on stored offsets and relay positions."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import asyncpg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_kit import telemetry, topics
from parlay_kit.envelope import NewEvent, decode, unpack, utcnow
from parlay_kit.projector import ConsumedEvent, UnitOfWork
from parlay_kit.settings import KafkaSettings
from parlay_kit.testing import unique_name
from parlay_profile import domain
from parlay_profile.main import IDENTITY_RESOLUTION, build
from parlay_profile.projections import CustomerProjection, IdentityResolution
from parlay_profile.readmodel import CustomerReadModel
from parlay_profile.settings import ProfileSettings

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def wait_until(condition, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def start_profile(bus, runtimes, schema: str, name: str | None = None):
    runtime = await runtimes.open(schema)
    read_model = CustomerReadModel(schema)
    projector = runtime.add_projector(
        name or unique_name("identity"),
        [bus.inbound],
        IdentityResolution(read_model, topic=bus.profile),
    )
    await runtimes.start(runtime)
    return SimpleNamespace(runtime=runtime, rm=read_model, projector=projector)


@pytest.fixture(scope="module")
async def profile(bus, module_runtimes, module_schema):
    """One running profile service for the module's tests (each uses its own tenant)."""
    return await start_profile(bus, module_runtimes, module_schema)


async def snapshot(pool: asyncpg.Pool, schema: str, tenant: str) -> dict[str, list[tuple]]:
    """The tenant's read models, as comparable rows."""
    queries = {
        "customers": f"""SELECT customer_id, display_name, display_name_at, version, created_at,
                            updated_at FROM {schema}.customers WHERE tenant_id = $1
                         ORDER BY customer_id""",
        "identities": f"""SELECT channel, address, customer_id, normalized_phone, evidence_rule,
                             evidence_source_event_id, evidence_actor, linked_at
                          FROM {schema}.customer_identities WHERE tenant_id = $1
                          ORDER BY channel, address""",
        "channels": f"""SELECT customer_id, channel, channel_account_id, last_seen_at
                        FROM {schema}.customer_channels WHERE tenant_id = $1
                        ORDER BY customer_id, channel""",
    }
    return {k: [tuple(r) for r in await pool.fetch(q, tenant)] for k, q in queries.items()}


async def stored_events(pool: asyncpg.Pool, schema: str, tenant: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"""SELECT event_id::text, event_type, aggregate_id, aggregate_version, topic,
                   traceparent
            FROM {schema}.events WHERE tenant_id = $1 ORDER BY position""",
        tenant,
    )


async def test_new_customer_is_created_once_and_published(profile, bus) -> None:
    tenant = unique_name("tenant")
    spans = InMemorySpanExporter()
    telemetry.setup_telemetry("profile", span_exporter=spans)
    message = bus.message_received(tenant=tenant, address="16505551234", name="Ana", at=T0)
    await bus.produce(bus.inbound, message, traceparent=TRACEPARENT)
    await bus.wait_caught_up(profile.projector)

    pool, schema = profile.runtime.pool, profile.runtime.schema
    async with pool.acquire() as conn:
        state = await profile.rm.find_by_identity(conn, tenant, "whatsapp", "16505551234")
    assert state is not None
    assert state.customer_id == domain.customer_id_for(tenant, "whatsapp", "16505551234")
    assert state.display_name == "Ana"
    assert state.version == 3
    assert state.created_at == T0
    link = state.identities[("whatsapp", "16505551234")]
    assert link.normalized_phone == "+16505551234"
    assert (link.rule, link.source_event_id) == (domain.RULE_FIRST_CONTACT, message.event_id)

    events = await stored_events(pool, schema, tenant)
    assert [(e["event_type"], e["aggregate_version"]) for e in events] == [
        ("parlay.profile.v1.CustomerCreated", 1),
        ("parlay.profile.v1.IdentityLinked", 2),
        ("parlay.profile.v1.CustomerSeen", 3),
    ]
    assert {e["topic"] for e in events} == {bus.profile}
    # The webhook's trace continues through this consumer: a consumer span, child of the
    # record's context, is the parent the derived events carry.
    [span] = [
        s
        for s in spans.get_finished_spans()
        if s.attributes.get("parlay.event_id") == message.event_id
    ]
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == TRACEPARENT.split("-")[2]
    assert {e["traceparent"].split("-")[2] for e in events} == {
        format(span.context.span_id, "016x")
    }
    assert {telemetry.trace_id_of(e["traceparent"]) for e in events} == {TRACE_ID}

    # The relay publishes them, keyed by customer, caused by the gateway event.
    await bus.wait_published(profile.runtime)
    records = [r for r in await bus.read_all(bus.profile) if decode(r.value).tenant_id == tenant]
    envelopes = [decode(r.value) for r in records]
    assert [e.event_id for e in envelopes] == [e["event_id"] for e in events]
    assert {r.key for r in records} == {state.customer_id.encode()}
    for envelope in envelopes:
        assert envelope.source == "profile"
        assert envelope.aggregate_type == "customer"
        assert envelope.causation_id == message.event_id
        assert envelope.correlation_id == message.event_id
    linked = unpack(envelopes[1])
    assert isinstance(linked, pe.IdentityLinked)
    assert linked.identity.address == "16505551234"


async def test_same_identity_twice_and_duplicates_yield_one_customer(profile, bus) -> None:
    tenant = unique_name("tenant")
    first = bus.message_received(tenant=tenant, address="16505550001", name="Bo", at=T0)
    second = bus.message_received(
        tenant=tenant, address="16505550001", name="Bo", at=T0 + timedelta(seconds=20)
    )
    for event in (first, second, first, second):  # the gateway redelivers
        await bus.produce(bus.inbound, event)
    await bus.wait_caught_up(profile.projector)

    pool, schema = profile.runtime.pool, profile.runtime.schema
    snap = await snapshot(pool, schema, tenant)
    assert len(snap["customers"]) == 1
    assert len(snap["identities"]) == 1
    # Within the last-seen resolution the second message adds nothing to the log.
    assert len(await stored_events(pool, schema, tenant)) == 3


async def test_tenants_and_identities_are_separate_customers(profile, bus) -> None:
    a, b = unique_name("tenant"), unique_name("tenant")
    await bus.produce(bus.inbound, bus.message_received(tenant=a, address="16505550002", at=T0))
    await bus.produce(bus.inbound, bus.message_received(tenant=b, address="16505550002", at=T0))
    await bus.produce(
        bus.inbound,
        bus.message_received(tenant=a, address="4242", channel="telegram", account="tg", at=T0),
    )
    await bus.wait_caught_up(profile.projector)
    pool = profile.runtime.pool
    async with pool.acquire() as conn:
        in_a = await profile.rm.find_by_identity(conn, a, "whatsapp", "16505550002")
        in_b = await profile.rm.find_by_identity(conn, b, "whatsapp", "16505550002")
        telegram = await profile.rm.find_by_identity(conn, a, "telegram", "4242")
        assert await profile.rm.get(conn, b, in_a.customer_id) is None
    assert len({in_a.customer_id, in_b.customer_id, telegram.customer_id}) == 3
    assert (in_a.tenant_id, in_b.tenant_id) == (a, b)
    assert telegram.identities[("telegram", "4242")].normalized_phone == ""


async def test_name_changes_and_last_seen_follow_the_messages(profile, bus) -> None:
    tenant = unique_name("tenant")
    steps = [("Cy", 0), ("Cy", 0.5), ("Cyrus", 1), ("Cyrus", 5)]
    for name, minutes in steps:
        await bus.produce(
            bus.inbound,
            bus.message_received(
                tenant=tenant,
                address="16505550003",
                name=name,
                at=T0 + timedelta(minutes=minutes),
                # One contact is one partition: the gateway keys by account + address.
            ),
        )
    await bus.wait_caught_up(profile.projector)
    pool, schema = profile.runtime.pool, profile.runtime.schema
    kinds = [e["event_type"].rsplit(".", 1)[1] for e in await stored_events(pool, schema, tenant)]
    assert kinds == [
        "CustomerCreated",
        "IdentityLinked",
        "CustomerSeen",
        "DisplayNameChanged",
        "CustomerSeen",
        "CustomerSeen",
    ]
    async with pool.acquire() as conn:
        state = await profile.rm.find_by_identity(conn, tenant, "whatsapp", "16505550003")
    assert state.display_name == "Cyrus"
    assert state.version == 6
    assert state.seen["whatsapp"].last_seen_at == T0 + timedelta(minutes=5)


async def test_many_interleaved_identities_keep_versions_consistent(profile, bus) -> None:
    tenant = unique_name("tenant")
    for i in range(60):
        await bus.produce(
            bus.inbound,
            bus.message_received(
                tenant=tenant,
                address=f"1650555{i % 12:04d}",
                name=f"n{i % 12}",
                at=T0 + timedelta(minutes=i),
            ),
        )
    await bus.wait_caught_up(profile.projector)
    pool, schema = profile.runtime.pool, profile.runtime.schema
    snap = await snapshot(pool, schema, tenant)
    assert len(snap["customers"]) == 12
    assert len(snap["identities"]) == 12
    rows = await pool.fetch(
        f"""SELECT c.customer_id, c.version, max(e.aggregate_version) AS last, count(*) AS n
            FROM {schema}.customers c JOIN {schema}.events e ON e.aggregate_id = c.customer_id
            WHERE c.tenant_id = $1 GROUP BY c.customer_id, c.version""",
        tenant,
    )
    for row in rows:
        assert row["version"] == row["last"] == row["n"]


async def test_statuses_and_senderless_messages_are_skipped(profile, bus) -> None:
    tenant = unique_name("tenant")
    status = NewEvent(
        event_id=domain.event_id_for(unique_name("status"), "test"),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id="acc-1:16505550009",
        payload=ge.MessageStatusUpdated(
            channel="whatsapp",
            provider_message_id="wamid.out",
            status=ge.DELIVERY_STATUS_DELIVERED,
        ),
        occurred_at=T0,
        topic="",
    )
    senderless = bus.message_received(tenant=tenant, address="", at=T0)
    after = bus.message_received(tenant=tenant, address="16505550009", at=T0)
    for event in (status, senderless, after):
        await bus.produce(bus.inbound, event)
    await bus.wait_caught_up(profile.projector)
    snap = await snapshot(profile.runtime.pool, profile.runtime.schema, tenant)
    assert len(snap["customers"]) == 1
    assert profile.projector.stats.dead_lettered == 0


async def test_replay_changes_nothing_and_log_rebuilds_read_models(
    private_bus, runtimes, fresh_schema, second_schema
) -> None:
    bus = private_bus
    tenant = unique_name("tenant")
    profile = await start_profile(bus, runtimes, fresh_schema)
    for i in range(30):
        await bus.produce(
            bus.inbound,
            bus.message_received(
                tenant=tenant,
                address=f"1650666{i % 7:04d}",
                name=f"name{i % 7}-{i // 14}",
                at=T0 + timedelta(seconds=37 * i),
            ),
        )
    await bus.wait_caught_up(profile.projector)
    await bus.wait_published(profile.runtime)
    pool = profile.runtime.pool
    before = await snapshot(pool, fresh_schema, tenant)
    events_before = await stored_events(pool, fresh_schema, tenant)
    assert len(before["customers"]) == 7
    await runtimes.stop(profile.runtime)

    # A new consumer (no processed-events memory) re-reads the whole inbound topic.
    replay = await start_profile(bus, runtimes, fresh_schema, name=unique_name("replay"))
    await bus.wait_caught_up(replay.projector)
    assert await snapshot(replay.runtime.pool, fresh_schema, tenant) == before
    assert await stored_events(replay.runtime.pool, fresh_schema, tenant) == events_before

    # The profile topic alone rebuilds identical read models in an empty schema.
    rebuild = await runtimes.open(second_schema)
    projector = rebuild.add_projector(
        unique_name("rebuild"), [bus.profile], CustomerProjection(CustomerReadModel(second_schema))
    )
    await runtimes.start(rebuild)
    await bus.wait_caught_up(projector)
    assert await snapshot(rebuild.pool, second_schema, tenant) == before


async def _handle_in_tx(
    pool: asyncpg.Pool,
    store,
    handler: IdentityResolution,
    events: list[NewEvent],
    reached: asyncio.Event | None = None,
    gate: asyncio.Event | None = None,
) -> list[NewEvent]:
    """What the projector does for one batch, minus Kafka: handle, append, commit. With a gate
    the transaction stays open (locks held) after handling until the gate opens."""
    consumed = [
        ConsumedEvent(e.to_envelope("gateway", 1, utcnow()), e.payload, topics.INBOUND, 0, i, "")
        for i, e in enumerate(events)
    ]
    async with pool.acquire() as conn, conn.transaction():
        uow = UnitOfWork(conn)
        await handler.handle_batch(uow, consumed)
        if reached is not None:
            reached.set()
        if gate is not None:
            await gate.wait()
        await store.append(conn, uow.emitted)
    return uow.emitted


def _message(tenant: str, address: str, name: str, at: datetime) -> NewEvent:
    msg = ge.MessageReceived(
        channel="whatsapp",
        channel_account_id="acc-1",
        provider_message_id=unique_name("wamid"),
        sender=ge.ChannelAddress(channel="whatsapp", address=address),
        sender_display_name=name,
    )
    return NewEvent(
        event_id=domain.event_id_for(unique_name("src"), "test"),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id=f"acc-1:{address}",
        payload=msg,
        occurred_at=at,
        topic="",
    )


async def _racing(pool: asyncpg.Pool, store, handler, first: NewEvent, second: NewEvent):
    """Run `first` up to its commit, start `second` and wait until it is blocked on a lock
    held by `first`, then let `first` commit. Returns both tasks."""
    reached, gate = asyncio.Event(), asyncio.Event()
    one = asyncio.create_task(_handle_in_tx(pool, store, handler, [first], reached, gate))
    await reached.wait()
    two = asyncio.create_task(_handle_in_tx(pool, store, handler, [second]))
    schema = handler.read_model.schema

    async def second_is_blocked() -> bool:
        waiting = await pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE application_name = $1 AND wait_event_type = 'Lock'""",
            schema,
        )
        return waiting > 0

    await wait_until(second_is_blocked, what="the second writer to block on a lock")
    gate.set()
    return one, two


async def test_concurrent_writers_conflict_or_serialize(runtimes, fresh_schema) -> None:
    runtime = await runtimes.open(fresh_schema)
    handler = IdentityResolution(CustomerReadModel(fresh_schema))
    pool, store = runtime.pool, runtime.store
    tenant = unique_name("tenant")
    address = "16505557777"

    # Two writers see the same new identity: the tenant's writer lock makes the second wait
    # and then read what the first committed; it never forks the customer's stream.
    one, two = await _racing(
        pool,
        store,
        handler,
        _message(tenant, address, "A", T0),
        _message(tenant, address, "A", T0 + timedelta(seconds=1)),
    )
    assert [e.aggregate_version for e in await one] == [1, 2, 3]
    assert await two == []  # same name, within the last-seen resolution: nothing new

    # An existing customer: the lock serializes the writers; versions stay gapless.
    one, two = await _racing(
        pool,
        store,
        handler,
        _message(tenant, address, "B", T0 + timedelta(seconds=100)),
        _message(tenant, address, "C", T0 + timedelta(seconds=200)),
    )
    assert [e.aggregate_version for e in await one] == [4, 5]
    assert [e.aggregate_version for e in await two] == [6, 7]
    row = await pool.fetchrow(
        f"SELECT display_name, version FROM {fresh_schema}.customers WHERE tenant_id = $1", tenant
    )
    assert tuple(row) == ("C", 7)
    versions = await pool.fetch(
        f"SELECT aggregate_version FROM {fresh_schema}.events ORDER BY aggregate_version"
    )
    assert [v[0] for v in versions] == list(range(1, 8))


async def test_composition_root_wires_the_service(database_url, fresh_schema, kafka_bootstrap):
    settings = ProfileSettings(
        database_url=database_url,
        db_schema=fresh_schema,
        kafka=KafkaSettings(bootstrap=kafka_bootstrap),
    )
    assert (settings.service_name, settings.grpc_port) == ("profile", 50053)
    runtime = await build(settings)
    try:
        assert [(p.name, p.topics) for p in runtime.projectors] == [
            (IDENTITY_RESOLUTION, [topics.INBOUND, topics.ORDERS, topics.PAYMENTS])
        ]
        assert [name for _, _, name in runtime._grpc] == ["parlay.profile.v1.ProfileService"]
        tables = {
            r[0]
            for r in await runtime.pool.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                fresh_schema,
            )
        }
        assert {
            "customers",
            "customer_identities",
            "customer_channels",
            "customer_consents",
            "customer_merges",
            "events",
        } <= tables
    finally:
        await runtime.stop()
