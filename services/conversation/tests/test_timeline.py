"""The timeline projector against a real broker and Postgres: gateway MessageReceived and profile
IdentityLinked envelopes go onto real topics, the real Projector runs the handler, and the read
models, the event store and the conversation topic are checked. Waits are on stored offsets and
relay positions, never on sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import asyncpg
import pytest

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import domain
from parlay_conversation.main import TIMELINE, build
from parlay_conversation.projections import Timeline, TimelineProjection
from parlay_conversation.readmodel import ConversationReadModel
from parlay_conversation.settings import ConversationSettings
from parlay_kit import telemetry, topics
from parlay_kit.envelope import NewEvent, decode, deterministic_event_id, unpack
from parlay_kit.settings import KafkaSettings
from parlay_kit.testing import unique_name
from parlay_profile import domain as profile_domain
from parlay_profile.projections import IdentityResolution
from parlay_profile.readmodel import CustomerReadModel

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def start_conversation(bus, runtimes, schema: str, name: str | None = None):
    runtime = await runtimes.open(schema, "conversation")
    read_model = ConversationReadModel(schema)
    projector = runtime.add_projector(
        name or unique_name("timeline"),
        [bus.inbound, bus.profile],
        Timeline(read_model, topic=bus.conversation),
    )
    await runtimes.start(runtime)
    return SimpleNamespace(runtime=runtime, rm=read_model, projector=projector)


@pytest.fixture(scope="module")
async def conversation(bus, module_runtimes, module_schema):
    """One running conversation service for the module's tests (each uses its own tenant)."""
    return await start_conversation(bus, module_runtimes, module_schema)


async def snapshot(pool: asyncpg.Pool, schema: str, tenant: str) -> dict[str, list[tuple]]:
    queries = {
        "conversations": f"""SELECT conversation_id, customer_id, status, opened_at,
                                last_activity_at, last_channel, last_channel_account_id,
                                last_inbound_at, message_count, unread_count, version
                             FROM {schema}.conversations WHERE tenant_id = $1
                             ORDER BY conversation_id""",
        "messages": f"""SELECT message_id, conversation_id, seq, direction, channel,
                           channel_account_id, provider_message_id, text, content, occurred_at,
                           source_event_id
                        FROM {schema}.conversation_messages WHERE tenant_id = $1
                        ORDER BY conversation_id, seq""",
    }
    return {k: [tuple(r) for r in await pool.fetch(q, tenant)] for k, q in queries.items()}


async def timeline(conv, tenant: str, customer_id: str) -> list[domain.TimelineMessage]:
    async with conv.runtime.pool.acquire() as conn:
        return await conv.rm.messages(
            conn, domain.conversation_id_for(tenant, customer_id), limit=1000
        )


async def parked(conv, tenant: str) -> int:
    async with conv.runtime.pool.acquire() as conn:
        return await conv.rm.count_parked(conn, tenant)


async def stored_events(pool: asyncpg.Pool, schema: str, tenant: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"""SELECT event_id::text, event_type, aggregate_id, aggregate_version, traceparent
            FROM {schema}.events WHERE tenant_id = $1 ORDER BY position""",
        tenant,
    )


async def test_message_from_a_linked_identity_opens_and_appends(conversation, bus) -> None:
    tenant, customer = unique_name("tenant"), unique_name("customer")
    await bus.produce(
        bus.profile,
        bus.identity_linked(tenant=tenant, customer_id=customer, address="16505551234"),
        source="profile",
    )
    await bus.wait_caught_up(conversation.projector)
    message = bus.message_received(tenant=tenant, address="16505551234", text="hola", at=T0)
    await bus.produce(bus.inbound, message, traceparent=TRACEPARENT)
    await bus.wait_caught_up(conversation.projector)

    assert await parked(conversation, tenant) == 0
    cid = domain.conversation_id_for(tenant, customer)
    async with conversation.runtime.pool.acquire() as conn:
        state = await conversation.rm.get(conn, tenant, cid)
    assert state is not None
    assert (state.customer_id, state.status, state.message_count, state.unread_count) == (
        customer,
        domain.STATUS_OPEN,
        1,
        1,
    )
    assert (state.last_channel, state.last_activity_at, state.version) == ("whatsapp", T0, 2)
    [msg] = await timeline(conversation, tenant, customer)
    assert msg.message_id == domain.message_id_for(message.event_id)
    assert (msg.text, msg.direction, msg.channel, msg.occurred_at) == (
        "hola",
        domain.INBOUND,
        "whatsapp",
        T0,
    )

    pool, schema = conversation.runtime.pool, conversation.runtime.schema
    events = await stored_events(pool, schema, tenant)
    assert [(e["event_type"], e["aggregate_version"]) for e in events] == [
        ("parlay.conversation.v1.ConversationOpened", 1),
        ("parlay.conversation.v1.MessageAppended", 2),
    ]
    assert {telemetry.trace_id_of(e["traceparent"]) for e in events} == {TRACE_ID}
    await bus.wait_published(conversation.runtime)
    records = [
        r for r in await bus.read_all(bus.conversation) if decode(r.value).tenant_id == tenant
    ]
    assert {r.key for r in records} == {cid.encode()}
    envelopes = [decode(r.value) for r in records]
    assert [e.event_id for e in envelopes] == [e["event_id"] for e in events]
    for envelope in envelopes:
        assert (envelope.source, envelope.aggregate_type) == ("conversation", "conversation")
        assert envelope.causation_id == envelope.correlation_id == message.event_id
    appended = unpack(envelopes[1])
    assert isinstance(appended, ce.MessageAppended)
    assert appended.content.text.body == "hola"
    assert appended.provider_message_id == message.payload.provider_message_id


async def test_message_before_the_link_is_parked_then_appended_in_order(conversation, bus) -> None:
    tenant, customer = unique_name("tenant"), unique_name("customer")
    # Provider times out of arrival order: the timeline follows provider time.
    for text, seconds in (("second", 2), ("zeroth", 0), ("first", 1)):
        await bus.produce(
            bus.inbound,
            bus.message_received(
                tenant=tenant, address="16505550002", text=text, at=T0 + timedelta(seconds=seconds)
            ),
            traceparent=TRACEPARENT if text == "first" else "",
        )
    await bus.wait_caught_up(conversation.projector)
    assert await parked(conversation, tenant) == 3
    assert await timeline(conversation, tenant, customer) == []

    await bus.produce(
        bus.profile,
        bus.identity_linked(tenant=tenant, customer_id=customer, address="16505550002"),
        source="profile",
    )
    await bus.wait_caught_up(conversation.projector)
    assert await parked(conversation, tenant) == 0
    messages = await timeline(conversation, tenant, customer)
    assert [(m.text, m.seq) for m in messages] == [("zeroth", 1), ("first", 2), ("second", 3)]
    # A parked message keeps its own trace: its events continue that webhook's trace.
    events = await stored_events(conversation.runtime.pool, conversation.runtime.schema, tenant)
    traced = [e for e in events if telemetry.trace_id_of(e["traceparent"]) == TRACE_ID]
    assert [e["event_id"] for e in traced] == [
        domain.event_id_for(messages[1].source_event_id, "message_appended")
    ]

    # Later messages go straight in.
    await bus.produce(
        bus.inbound,
        bus.message_received(
            tenant=tenant, address="16505550002", text="third", at=T0 + timedelta(seconds=3)
        ),
    )
    await bus.wait_caught_up(conversation.projector)
    assert [m.text for m in await timeline(conversation, tenant, customer)] == [
        "zeroth",
        "first",
        "second",
        "third",
    ]
    assert await parked(conversation, tenant) == 0


async def test_duplicates_yield_one_message(conversation, bus) -> None:
    tenant, customer = unique_name("tenant"), unique_name("customer")
    await bus.produce(
        bus.profile,
        bus.identity_linked(tenant=tenant, customer_id=customer, address="16505550003"),
        source="profile",
    )
    message = bus.message_received(tenant=tenant, address="16505550003", wamid="wamid.dup", at=T0)
    # Same provider message under another event id (e.g. an older normalizer): still one.
    reparsed = bus.message_received(
        tenant=tenant,
        address="16505550003",
        wamid="wamid.dup",
        at=T0,
        event_id=deterministic_event_id("other", "wamid.dup"),
    )
    # The original first (the two ids may sit on different partitions, whose order is not
    # defined), then its redeliveries and the reparse: they add nothing and change nothing.
    await bus.produce(bus.inbound, message)
    await bus.wait_caught_up(conversation.projector)
    for event in (message, reparsed, message):
        await bus.produce(bus.inbound, event)
    await bus.wait_caught_up(conversation.projector)
    [msg] = await timeline(conversation, tenant, customer)
    assert msg.message_id == domain.message_id_for(message.event_id)
    events = await stored_events(conversation.runtime.pool, conversation.runtime.schema, tenant)
    assert len(events) == 2


async def test_ordering_is_preserved_and_unknown_statuses_wait(conversation, bus) -> None:
    tenant, customer = unique_name("tenant"), unique_name("customer")
    await bus.produce(
        bus.profile,
        bus.identity_linked(tenant=tenant, customer_id=customer, address="16505550004"),
        source="profile",
    )
    status = NewEvent(
        event_id=deterministic_event_id("status", tenant),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id="acc-1:16505550004",
        payload=ge.MessageStatusUpdated(
            channel="whatsapp",
            channel_account_id="acc-1",
            provider_message_id="wamid.out",
            recipient=ge.ChannelAddress(channel="whatsapp", address="16505550004"),
            status=ge.DELIVERY_STATUS_READ,
        ),
        occurred_at=T0,
        topic="",
    )
    for i in range(25):
        await bus.produce(
            bus.inbound,
            bus.message_received(
                tenant=tenant,
                address="16505550004",
                text=f"m{i:02d}",
                at=T0 + timedelta(seconds=i),
            ),
        )
        if i == 10:
            await bus.produce(bus.inbound, status)
    await bus.wait_caught_up(conversation.projector)
    messages = await timeline(conversation, tenant, customer)
    assert [m.text for m in messages] == [f"m{i:02d}" for i in range(25)]
    assert [m.seq for m in messages] == list(range(1, 26))
    assert conversation.projector.stats.dead_lettered == 0
    async with conversation.runtime.pool.acquire() as conn:
        state = await conversation.rm.get(
            conn, tenant, domain.conversation_id_for(tenant, customer)
        )
    assert (state.message_count, state.version) == (25, 26)
    # A status for a message this service has not seen sent waits for its OutboundMessageSent.
    parked_statuses = await conversation.runtime.pool.fetchval(
        f"SELECT count(*) FROM {conversation.runtime.schema}.parked_statuses WHERE tenant_id = $1",
        tenant,
    )
    assert parked_statuses == 1


async def test_replay_changes_nothing_and_log_rebuilds_read_models(
    private_bus, runtimes, fresh_schema, second_schema
) -> None:
    bus = private_bus
    tenant = unique_name("tenant")
    conv = await start_conversation(bus, runtimes, fresh_schema)
    customers = [unique_name("customer") for _ in range(4)]
    # Customers 0 and 1 are linked first; 2 and 3 only after their messages (parked path).
    for i in (0, 1):
        await bus.produce(
            bus.profile,
            bus.identity_linked(tenant=tenant, customer_id=customers[i], address=f"1650777{i:04d}"),
            source="profile",
        )
    for n in range(24):
        i = n % 4
        await bus.produce(
            bus.inbound,
            bus.message_received(
                tenant=tenant,
                address=f"1650777{i:04d}",
                text=f"c{i}-{n}",
                at=T0 + timedelta(seconds=n),
                channel="whatsapp" if n % 3 else "telegram",
            ),
        )
    await bus.wait_caught_up(conv.projector)
    for i in (2, 3):
        for channel in ("whatsapp", "telegram"):
            await bus.produce(
                bus.profile,
                bus.identity_linked(
                    tenant=tenant,
                    customer_id=customers[i],
                    address=f"1650777{i:04d}",
                    channel=channel,
                ),
                source="profile",
            )
    for i in (0, 1):
        await bus.produce(
            bus.profile,
            bus.identity_linked(
                tenant=tenant,
                customer_id=customers[i],
                address=f"1650777{i:04d}",
                channel="telegram",
            ),
            source="profile",
        )
    await bus.wait_caught_up(conv.projector)
    await bus.wait_published(conv.runtime)
    pool = conv.runtime.pool
    before = await snapshot(pool, fresh_schema, tenant)
    events_before = await stored_events(pool, fresh_schema, tenant)
    assert len(before["conversations"]) == 4
    assert len(before["messages"]) == 24
    assert await parked(conv, tenant) == 0
    await runtimes.stop(conv.runtime)

    # A new consumer (no processed-events memory) re-reads both topics from the start.
    replay = await start_conversation(bus, runtimes, fresh_schema, name=unique_name("replay"))
    await bus.wait_caught_up(replay.projector)
    assert await snapshot(replay.runtime.pool, fresh_schema, tenant) == before
    assert await stored_events(replay.runtime.pool, fresh_schema, tenant) == events_before
    assert await parked(replay, tenant) == 0

    # The conversation topic alone rebuilds identical read models in an empty schema.
    rebuild = await runtimes.open(second_schema, "conversation")
    projector = rebuild.add_projector(
        unique_name("rebuild"),
        [bus.conversation],
        TimelineProjection(ConversationReadModel(second_schema)),
    )
    await runtimes.start(rebuild)
    await bus.wait_caught_up(projector)
    assert await snapshot(rebuild.pool, second_schema, tenant) == before


async def test_with_the_real_profile_service(
    private_bus, runtimes, fresh_schema, second_schema
) -> None:
    """Profile and conversation projectors together: each customer profile resolves is the
    owner of exactly one conversation holding all of its messages."""
    bus = private_bus
    tenant = unique_name("tenant")
    profile_rt = await runtimes.open(second_schema, "profile")
    profile_rm = CustomerReadModel(second_schema)
    profile_projector = profile_rt.add_projector(
        unique_name("identity"), [bus.inbound], IdentityResolution(profile_rm, topic=bus.profile)
    )
    await runtimes.start(profile_rt)
    conv = await start_conversation(bus, runtimes, fresh_schema)

    senders = [("whatsapp", "16505558001"), ("whatsapp", "16505558002"), ("telegram", "9001")]
    for n in range(15):
        channel, address = senders[n % 3]
        await bus.produce(
            bus.inbound,
            bus.message_received(
                tenant=tenant,
                address=address,
                channel=channel,
                account=f"{channel}-acc",
                text=f"{address}-{n}",
                at=T0 + timedelta(seconds=n),
            ),
        )
    await bus.wait_caught_up(profile_projector)
    await bus.wait_published(profile_rt)
    await bus.wait_caught_up(conv.projector)

    assert await parked(conv, tenant) == 0
    for channel, address in senders:
        async with profile_rt.pool.acquire() as conn:
            customer = await profile_rm.find_by_identity(conn, tenant, channel, address)
        assert customer is not None
        assert customer.customer_id == profile_domain.customer_id_for(tenant, channel, address)
        messages = await timeline(conv, tenant, customer.customer_id)
        assert [m.text for m in messages] == [
            f"{address}-{n}" for n in range(15) if senders[n % 3] == (channel, address)
        ]
        assert {m.channel for m in messages} == {channel}
    async with conv.runtime.pool.acquire() as conn:
        listed = await conv.rm.list_conversations(conn, tenant, limit=10)
    assert len(listed) == 3

    # The first WhatsApp customer now texts from the same number over SMS: profile links the
    # SMS identity to the same customer (same phone), so it is one conversation with both.
    await bus.produce(
        bus.inbound,
        bus.message_received(
            tenant=tenant,
            address="+16505558001",
            channel="sms",
            account="sms-acc",
            text="same person, on SMS",
            at=T0 + timedelta(minutes=1),
        ),
    )
    await bus.wait_caught_up(profile_projector)
    await bus.wait_published(profile_rt)
    await bus.wait_caught_up(conv.projector)
    async with profile_rt.pool.acquire() as conn:
        sms = await profile_rm.find_by_identity(conn, tenant, "sms", "+16505558001")
    assert sms is not None
    whatsapp_customer = profile_domain.customer_id_for(tenant, "whatsapp", "16505558001")
    assert sms.customer_id == whatsapp_customer
    messages = await timeline(conv, tenant, whatsapp_customer)
    assert [m.channel for m in messages] == ["whatsapp"] * 5 + ["sms"]
    assert messages[-1].text == "same person, on SMS"
    async with conv.runtime.pool.acquire() as conn:
        assert len(await conv.rm.list_conversations(conn, tenant, limit=10)) == 3
        state = await conv.rm.get(
            conn, tenant, domain.conversation_id_for(tenant, whatsapp_customer)
        )
    assert state is not None and state.last_channel == "sms"


async def test_composition_root_wires_the_service(database_url, fresh_schema, kafka_bootstrap):
    settings = ConversationSettings(
        database_url=database_url,
        db_schema=fresh_schema,
        kafka=KafkaSettings(bootstrap=kafka_bootstrap),
    )
    assert (settings.service_name, settings.grpc_port) == ("conversation", 50052)
    assert settings.service_windows == {
        "whatsapp": 86400,
        "messenger": 86400,
        "instagram": 86400,
        "wechat": 172800,
    }
    runtime = await build(settings)
    try:
        assert [(p.name, p.topics) for p in runtime.projectors] == [
            (TIMELINE, [topics.INBOUND, topics.PROFILE, topics.ORDERS, topics.PAYMENTS])
        ]
        assert [(name, role) for name, role, _, _ in runtime._tasks] == [
            ("read-pool", "grpc"),
            ("timer", "projectors"),
        ]
        assert [name for _, _, name in runtime._grpc] == [
            "parlay.conversation.v1.ConversationService"
        ]
        tables = {
            r[0]
            for r in await runtime.pool.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                fresh_schema,
            )
        }
        assert {
            "conversations",
            "conversation_messages",
            "conversation_notes",
            "scheduled_messages",
            "inbox_config",
            "sla_targets",
            "identity_map",
            "parked_messages",
            "parked_statuses",
            "customer_aliases",
            "consents",
            "purchases",
            "events",
        } <= tables
    finally:
        await runtime.stop()


def test_service_windows_are_configurable(monkeypatch) -> None:
    monkeypatch.setenv("PARLAY_SERVICE_WINDOWS", '{"whatsapp": 3600, "LINE": 600, "wechat": 0}')
    settings = ConversationSettings()
    assert settings.service_windows == {
        "whatsapp": 3600,
        "messenger": 86400,
        "instagram": 86400,
        "line": 600,
    }
