"""Upcasting: events written with an older schema are read as the current message, in one
registry, by every read path (projector decode, replay, export). The "v1" message here is built
from a descriptor in the test — it is not in the generated code any more, exactly like a message
removed by a breaking change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_kit import upcasting
from parlay_kit.analytics.decode import PayloadDecoder, decode_record, to_json_obj
from parlay_kit.analytics.registry import discover
from parlay_kit.envelope import NewEvent, encode, pack
from parlay_kit.replay import Replayer
from parlay_kit.testing import unique_name

from .conftest import live_services

OLD_TYPE = "parlay.profile.v0.CustomerRenamed"


def old_schema() -> type:
    """parlay.profile.v0.CustomerRenamed { string customer_id = 1; string name = 2; }"""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="parlay/profile/v0/legacy_events.proto", package="parlay.profile.v0", syntax="proto3"
    )
    msg = fdp.message_type.add(name="CustomerRenamed")
    for number, name in ((1, "customer_id"), (2, "name")):
        msg.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(OLD_TYPE)), pool


OldRenamed, OLD_POOL = old_schema()


def renamed_to_display_name(envelope: Envelope) -> pe.DisplayNameChanged:
    old = upcasting.parse_old(envelope, OLD_POOL)
    return pe.DisplayNameChanged(customer_id=old.customer_id, display_name=old.name)


def envelope_of(payload, *, version: int, customer: str, tenant: str, event_id: str) -> Envelope:
    env = Envelope(
        event_id=event_id,
        event_type=payload.DESCRIPTOR.full_name,
        source="profile",
        tenant_id=tenant,
        aggregate_type="customer",
        aggregate_id=customer,
        aggregate_version=version,
        payload=pack(payload),
    )
    env.occurred_at.FromDatetime(datetime(2024, 5, 6, 9, version))
    env.recorded_at.FromDatetime(datetime(2024, 5, 6, 9, version))
    return env


def test_registry_upcasts_renamed_types_chains_and_keeps_the_envelope() -> None:
    old = envelope_of(
        OldRenamed(customer_id="c1", name="Ana Maria"),
        version=2,
        customer="c1",
        tenant="t",
        event_id="e2",
    )
    # Without an upcaster the current code cannot read it.
    assert upcasting.upcast(old) is old
    assert PayloadDecoder().decode(old) is None
    with upcasting.REGISTRY.registered(OLD_TYPE, renamed_to_display_name):
        new = upcasting.upcast(old)
        assert new is not old and new.event_type == "parlay.profile.v1.DisplayNameChanged"
        assert (new.event_id, new.aggregate_id, new.aggregate_version) == ("e2", "c1", 2)
        assert new.occurred_at == old.occurred_at
        payload = PayloadDecoder().decode(new)
        assert payload == pe.DisplayNameChanged(customer_id="c1", display_name="Ana Maria")

        # A (type, predicate) upcaster on the *current* type chains after it: old shapes of a
        # type that kept its name (here: names written untrimmed by an old version).
        def untrimmed(e: Envelope) -> bool:
            m = pe.DisplayNameChanged.FromString(e.payload.value)
            return m.display_name != m.display_name.strip()

        def trim(e: Envelope) -> pe.DisplayNameChanged:
            m = pe.DisplayNameChanged.FromString(e.payload.value)
            return pe.DisplayNameChanged(
                customer_id=m.customer_id, display_name=m.display_name.strip()
            )

        with upcasting.REGISTRY.registered(
            pe.DisplayNameChanged.DESCRIPTOR.full_name, trim, when=untrimmed
        ):
            spaced = envelope_of(
                OldRenamed(customer_id="c1", name="  Ana  "),
                version=3,
                customer="c1",
                tenant="t",
                event_id="e3",
            )
            got = PayloadDecoder().decode(upcasting.upcast(spaced))
            assert got.display_name == "Ana"
            # Current events that do not match the predicate are returned as they are.
            current = envelope_of(
                pe.DisplayNameChanged(customer_id="c1", display_name="Bo"),
                version=4,
                customer="c1",
                tenant="t",
                event_id="e4",
            )
            assert upcasting.upcast(current) is current
            # The export/tail decoder goes through the same registry.
            d = decode_record(PayloadDecoder(), "t", 0, 0, 0, b"c1", encode(old))
            assert to_json_obj(d)["payload"] == {"customer_id": "c1", "display_name": "Ana Maria"}
    assert upcasting.upcast(old) is old  # unregistered again


def test_a_looping_or_failing_upcaster_is_an_error_not_a_hang() -> None:
    env = envelope_of(
        pe.DisplayNameChanged(customer_id="c", display_name="x"),
        version=1,
        customer="c",
        tenant="t",
        event_id="e",
    )
    with (
        upcasting.REGISTRY.registered(
            pe.DisplayNameChanged.DESCRIPTOR.full_name,
            lambda e: pe.DisplayNameChanged.FromString(e.payload.value),
            when=lambda e: True,
        ),
        pytest.raises(upcasting.UpcastError, match="loop"),
    ):
        upcasting.upcast(env)
    with (
        upcasting.REGISTRY.registered(OLD_TYPE, lambda e: 1 / 0),
        pytest.raises(upcasting.UpcastError),
    ):
        upcasting.upcast(
            envelope_of(OldRenamed(), version=1, customer="c", tenant="t", event_id="x")
        )


def test_the_projector_decode_path_upcasts() -> None:
    from parlay_kit.projector import Projector

    projector = Projector.__new__(Projector)  # only its decoding is exercised here
    projector.name = "p"
    from parlay_kit.projector import ProjectorStats

    projector.stats = ProjectorStats()
    old = envelope_of(
        OldRenamed(customer_id="c9", name="Zoe"),
        version=2,
        customer="c9",
        tenant="t",
        event_id="e9",
    )
    record = ConsumerRecord("topic", 0, 5, 0, 0, b"c9", encode(old), None, 0, 0, ())
    events, undecodable = projector._decode([record])
    assert events == [] and undecodable == [] and projector.stats.skipped_unknown == 1
    with upcasting.REGISTRY.registered(OLD_TYPE, renamed_to_display_name):
        events, undecodable = projector._decode([record])
    assert undecodable == []
    assert events[0].payload == pe.DisplayNameChanged(customer_id="c9", display_name="Zoe")
    assert events[0].event_id == "e9" and events[0].offset == 5


async def test_v1_events_written_then_schema_changed_then_replayed_through_the_upcaster(
    kafka_bootstrap, database_url
) -> None:
    """Write v1 events to a topic, 'change the schema' (the v1 type is unknown to the code),
    replay the profile projection: without the upcaster the rename is lost, with it the
    read model has the new name."""
    async with live_services(kafka_bootstrap, database_url) as live:
        customer = unique_name("cust")
        created = NewEvent(
            event_id=str(uuid.uuid4()),
            tenant_id=live.tenant,
            aggregate_type="customer",
            aggregate_id=customer,
            payload=pe.CustomerCreated(customer_id=customer, display_name="Ana"),
            occurred_at=datetime(2024, 5, 6, 9, 0, tzinfo=UTC),
            topic="",
            aggregate_version=1,
        )
        await live.produce(live.topics.profile, created, source="profile")
        old = envelope_of(
            OldRenamed(customer_id=customer, name="Ana Maria"),
            version=2,
            customer=customer,
            tenant=live.tenant,
            event_id=str(uuid.uuid4()),
        )
        await live.producer.send_and_wait(live.topics.profile, encode(old), key=customer.encode())

        projection = discover().projections["profile.customers"]
        schema = unique_name("pr")
        live.schemas.append(schema)

        async def rebuild() -> tuple[int, str]:
            replayer = Replayer(
                projection,
                database_url=database_url,
                bootstrap=kafka_bootstrap,
                live_schema=schema,
                topics=[live.topics.profile],
            )
            stats = await replayer.run()
            conn = await asyncpg.connect(database_url)
            try:
                row = await conn.fetchrow(
                    f"SELECT display_name, version FROM {replayer.work_schema}.customers WHERE customer_id = $1",
                    customer,
                )
            finally:
                await conn.close()
            return stats.skipped_unknown, (row["display_name"], row["version"])

        skipped, (name, version) = await rebuild()
        assert skipped == 1 and (name, version) == ("Ana", 1)
        with upcasting.REGISTRY.registered(OLD_TYPE, renamed_to_display_name):
            skipped, (name, version) = await rebuild()
        assert skipped == 0 and (name, version) == ("Ana Maria", 2)
