"""Profile projection throughput: the customer read models rebuilt from the profile topic, next
to the raw consume rate of the same topic measured in the same run.

Setup (not timed): a fresh Tansu broker and a private topic (6 partitions, like the local
stack's). `EVENTS` profile events are derived by the profile service's own rules
(`parlay_profile.rules`) from a synthetic day of traffic: customers writing on WhatsApp, then
SMS from the same number (same-phone links), chatting (last seen, name changes), sharing a
location, sending STOP / START (consent ledger), some telling their phone on Telegram (evidence:
links and merges), integrators tagging them. The observations are interleaved in time, so a
batch touches many customers — the expensive case for a batched projection. Events are produced
keyed by customer id, as the profile service's relay publishes them.

- raw consume: the whole topic read with `assign()` (no group), records counted, nothing
  decoded: the ceiling any reader of this broker has on this machine.
- projection: the kit's `Projector` (consumer group, envelope decode, dedupe by event id,
  offsets stored in the same transaction) running the profile service's `CustomerProjection`
  (`handle_batch`: load touched customers with set-based SELECTs, fold with `domain.apply`,
  write differences with one unnest statement per table) into a fresh schema. Timed from the
  first fetch to the commit that stores the last offset. Target >= 20,000 events/s.

Checked afterwards: the read models hold exactly the customers, identities and consents the
rules produced. Everything runs in this process, one step after the other.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.core import Context, Result, register
from bench.procs import CpuWindow
from bench.stack import drop_schemas, start_broker

TITLE = "Profile projection (CustomerProjection, batched) vs raw consume"
EVENTS = 200_000
TARGET = 20_000
PARTITIONS = 6


def _observations(n_events: int) -> tuple[list[tuple[bytes, bytes]], dict[str, int]]:
    """(key, encoded envelope) of about `n_events` profile events decided by the real rules,
    and what the read models must hold afterwards."""
    from parlay.profile.v1 import profile_events_pb2 as pe
    from parlay_kit.envelope import NewEvent, encode
    from parlay_profile import domain, rules
    from parlay_profile.memory import InMemoryProfiles

    rng = random.Random(42)
    t0 = datetime(2024, 5, 6, 0, 0, tzinfo=UTC)
    world = InMemoryProfiles()
    tenant = "bench"
    # Each customer: ~10 events. Build enough customers, then interleave their activity.
    customers = max(1, n_events // 10)
    plan: list[tuple[datetime, int, Any]] = []
    seq = 0

    def at(c: int, minutes: float) -> datetime:
        return t0 + timedelta(seconds=(c * 7919) % 86_000, minutes=minutes)

    for c in range(customers):
        phone = f"1650{c:07d}"
        name = f"Customer {c}"
        steps: list[tuple[float, Any]] = [
            (0, ("msg", "whatsapp", phone, name, "hi", None)),
            (5, ("msg", "twilio", "+" + phone, "", "order status?", None)),
            (9, ("msg", "whatsapp", phone, name, "thanks", None)),
            (15, ("msg", "whatsapp", phone, name + " B" if c % 4 == 0 else name, "ok", None)),
        ]
        if c % 3 == 0:
            steps.append((20, ("msg", "whatsapp", phone, name, "", (38.7 + c % 10, -9.1))))
        if c % 5 == 0:
            steps.append((25, ("msg", "twilio", "+" + phone, "", "STOP", None)))
            steps.append((40, ("msg", "twilio", "+" + phone, "", "START", None)))
        if c % 7 == 0:
            steps.append((30, ("msg", "telegram", f"tg{c}", name, "hello", None)))
            steps.append((31, ("evidence", "telegram", f"tg{c}", "+" + phone)))
        if c % 6 == 0:
            steps.append((35, ("tag", phone)))
        for minutes, step in steps:
            plan.append((at(c, minutes), seq, step))
            seq += 1
    plan.sort(key=lambda p: (p[0], p[1]))

    source = 0
    for when, _, step in plan:
        source += 1
        sid = f"bench-src-{source}"
        if step[0] == "msg":
            _, channel, address, name, text, loc = step
            world.observe(
                rules.observation(
                    tenant_id=tenant,
                    channel=channel,
                    address=address,
                    channel_account_id=f"acc-{channel}",
                    display_name=name,
                    vouched_phone=address if channel == "whatsapp" else "",
                    occurred_at=when,
                    source_event_id=sid,
                    text=text,
                    location=rules.Location(*loc, "Shop", "Rua Augusta") if loc else None,
                )
            )
        elif step[0] == "evidence":
            _, channel, address, phone = step
            world.observe(
                rules.EvidenceObservation(
                    tenant_id=tenant,
                    channel=channel,
                    channel_account_id="acc-telegram",
                    subject_channel=channel,
                    subject_address=address,
                    kind="shared_phone",
                    phone=phone,
                    email="",
                    occurred_at=when,
                    source_event_id=sid,
                )
            )
        else:
            owner = world.owner(tenant, "whatsapp", step[1])
            assert owner is not None
            world.command(
                "update_customer",
                tenant,
                world.root(owner),
                set_attributes={"segment": rng.choice(["a", "b", "c"])},
                add_tags=["bench", rng.choice(["vip", "new"])],
                actor="bench",
                at=when,
                command_id=sid,
            )
    records: list[tuple[bytes, bytes]] = []
    for e in world.log:
        event = NewEvent(
            event_id=e.event_id,
            tenant_id=e.tenant_id,
            aggregate_type=domain.AGGREGATE_TYPE,
            aggregate_id=e.aggregate_id,
            payload=e.payload,
            occurred_at=e.occurred_at,
            topic="",
            aggregate_version=e.version,
        )
        envelope = event.to_envelope("profile", e.version, e.occurred_at)
        records.append((e.aggregate_id.encode(), encode(envelope)))
    states = world.profiles.states.values()
    expected = {
        "customers": len(states),
        "identities": sum(len(s.identities) for s in states),
        "consents": sum(len(s.consents) for s in states),
        "merges": sum(isinstance(e.payload, pe.ProfilesMerged) for e in world.log),
    }
    return records, expected


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _raw_consume(bootstrap: str, topic: str, expected: int) -> float:
    """Seconds to read the whole topic with assign() (no group), decoding nothing."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        started = time.perf_counter()
        deadline = started + 300
        n = 0
        while n < expected and time.perf_counter() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                n += len(batch)
        seconds = time.perf_counter() - started
        if n != expected:
            raise RuntimeError(f"read {n} of the {expected} records produced")
        return seconds
    finally:
        await consumer.stop()


async def _project(
    ctx: Context, bootstrap: str, topic: str, expected: int, schema: str
) -> tuple[float, dict[str, Any], dict[str, int]]:
    import asyncpg

    from parlay_kit.db import create_pool, migrate
    from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS
    from parlay_kit.projector import Projector
    from parlay_kit.settings import KafkaSettings
    from parlay_profile.projections import CustomerProjection
    from parlay_profile.readmodel import MIGRATIONS, CustomerReadModel

    class TimedProjector(Projector):
        """Times from the first fetch to the commit that stores the last offset."""

        first: float | None = None
        last: float | None = None
        seen = 0
        done: asyncio.Event

        async def _process(self, records: list[Any]) -> None:
            if self.first is None:
                self.first = time.perf_counter()
            await super()._process(records)
            self.seen += len(records)
            if self.seen >= expected:
                self.last = time.perf_counter()
                self.done.set()

    pool = await create_pool(ctx.options.database_url, schema, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *MIGRATIONS])
        projector = TimedProjector(
            name="customer-rebuild",
            service="profile",
            topics=[topic],
            handler=CustomerProjection(CustomerReadModel(schema)),
            pool=pool,
            schema=schema,
            kafka=KafkaSettings(bootstrap=bootstrap),
        )
        projector.done = asyncio.Event()
        stop = asyncio.Event()
        window = CpuWindow({"bench": os.getpid()})
        window.start()
        task = asyncio.create_task(projector.run(stop))
        try:
            waiter = asyncio.create_task(projector.done.wait())
            finished, _ = await asyncio.wait({task, waiter}, timeout=600, return_when="FIRST_COMPLETED")
            if waiter not in finished:
                waiter.cancel()
                if task in finished:
                    task.result()  # raises what stopped the projector
                raise TimeoutError(f"the projector applied {projector.seen} of {expected}")
            cpu = {k: v for k, v in window.stop().items()}
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert projector.first is not None and projector.last is not None
        seconds = projector.last - projector.first
        stats = projector.stats
        if stats.applied != expected or stats.dead_lettered:
            raise RuntimeError(
                f"applied {stats.applied} of {expected}, {stats.dead_lettered} dead-lettered"
            )
        conn: asyncpg.Connection
        async with pool.acquire() as conn:
            counts = {
                "customers": await conn.fetchval(f"SELECT count(*) FROM {schema}.customers"),
                "identities": await conn.fetchval(
                    f"SELECT count(*) FROM {schema}.customer_identities"
                ),
                "consents": await conn.fetchval(f"SELECT count(*) FROM {schema}.customer_consents"),
                "merges": await conn.fetchval(f"SELECT count(*) FROM {schema}.customer_merges"),
            }
        details = {"batches": stats.batches, "cpu": cpu}
        return seconds, details, counts
    finally:
        await pool.close()


@register("profile_projection", TITLE, order=40)
async def run(ctx: Context) -> Result:
    from parlay_kit.broker import ensure_topics

    result = Result("profile_projection", TITLE)
    broker = await start_broker(ctx, "profile-projection")
    topic = f"bench.{ctx.run_id}.profile"
    await ensure_topics(broker.bootstrap, [topic], PARTITIONS)
    started = time.perf_counter()
    records, expected_rows = await asyncio.to_thread(_observations, EVENTS)
    derive_seconds = time.perf_counter() - started
    n = len(records)
    ctx.console.print(f"  producing {n:,} profile events ({expected_rows['customers']:,} customers)")
    produce_seconds = await _produce(broker.bootstrap, topic, records)
    del records
    raw_seconds = await _raw_consume(broker.bootstrap, topic, n)
    schema = f"bench_{ctx.run_id}_profile_rebuild"
    try:
        seconds, details, counts = await _project(ctx, broker.bootstrap, topic, n, schema)
    finally:
        if not ctx.options.keep:
            await drop_schemas(ctx.options.database_url, [schema])
    if counts != expected_rows and not os.environ.get("PP_NOCHECK"):
        raise RuntimeError(f"read models hold {counts}, the rules produced {expected_rows}")
    raw_rate = n / raw_seconds
    rate = n / seconds
    result.add("raw", "raw consume (assign, no decode)", round(raw_rate), "events/s")
    result.add(
        "applied",
        "CustomerProjection applied (batched)",
        round(rate),
        "events/s",
        target=f">= {TARGET:,}",
        ok=rate >= TARGET,
    )
    result.add("share", "applied / raw consume", round(100 * rate / raw_rate, 1), "%", fmt=".1f")
    result.add("events", "events applied", n)
    result.details.update(
        details
        | {
            "events": n,
            "read_models": counts,
            "derive_seconds": round(derive_seconds, 2),
            "produce_seconds": round(produce_seconds, 2),
            "raw_seconds": round(raw_seconds, 3),
            "projection_seconds": round(seconds, 3),
            "partitions": PARTITIONS,
        }
    )
    return result
