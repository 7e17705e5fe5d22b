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
- projector, no-op handler: the kit's `Projector` (consumer group, envelope decode, dedupe by
  event id in `processed_events`, offsets stored in the same transaction) with a handler that
  does nothing: the ceiling of any projection run by the live projector on this machine.
- projector: the same `Projector` running the profile service's `CustomerProjection`
  (`handle_batch`: load the touched customers with set-based SELECTs, fold with
  `domain.apply`, write the differences with one unnest statement per table) into a fresh
  schema. Timed from the first fetch to the commit that stores the last offset.
  Target >= 20,000 events/s.
- replay: `parlay replay profile.customers` (`parlay_kit.replay.Replayer`, the rebuild tool:
  no consumer group, decode pipelined with the writes, offsets in the same transaction, no
  per-event dedupe table) running the same `CustomerProjection`. Target >= 20,000 events/s.

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
from bench.projections import NoOpHandler, produce, raw_consume, time_projector
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

    for source, (when, _, step) in enumerate(plan, start=1):
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
                    location=rules.Location(loc[0], loc[1], "Shop", "Rua Augusta") if loc else None,
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


async def _counts(conn: Any, schema: str) -> dict[str, int]:
    return {
        "customers": await conn.fetchval(f"SELECT count(*) FROM {schema}.customers"),
        "identities": await conn.fetchval(f"SELECT count(*) FROM {schema}.customer_identities"),
        "consents": await conn.fetchval(f"SELECT count(*) FROM {schema}.customer_consents"),
        "merges": await conn.fetchval(f"SELECT count(*) FROM {schema}.customer_merges"),
    }


async def _project(
    ctx: Context, bootstrap: str, topic: str, expected: int, schema: str, *, noop: bool = False
) -> tuple[float, dict[str, Any], dict[str, Any] | None]:
    from parlay_profile.projections import CustomerProjection
    from parlay_profile.readmodel import MIGRATIONS, CustomerReadModel

    return await time_projector(
        ctx,
        bootstrap,
        topic,
        expected,
        schema,
        name="customer-rebuild",
        service="profile",
        handler=NoOpHandler() if noop else CustomerProjection(CustomerReadModel(schema)),
        migrations=MIGRATIONS,
        counts=_counts,
    )


async def _replay(
    ctx: Context, bootstrap: str, topic: str, expected: int
) -> tuple[float, dict[str, Any], dict[str, Any] | None]:
    import asyncpg

    from parlay_kit.analytics.registry import discover
    from parlay_kit.replay import Replayer

    projection = discover().projections["profile.customers"]
    replayer = Replayer(
        projection,
        database_url=ctx.options.database_url,
        bootstrap=bootstrap,
        live_schema=f"bench_{ctx.run_id}_profile",
        topics=[topic],
    )
    window = CpuWindow({"bench": os.getpid()})
    window.start()
    try:
        stats = await replayer.run()
        cpu = dict(window.stop())
        conn = await asyncpg.connect(ctx.options.database_url)
        try:
            counts = await _counts(conn, replayer.work_schema)
        finally:
            await conn.close()
    finally:
        if not ctx.options.keep:
            await drop_schemas(ctx.options.database_url, [replayer.work_schema])
    if stats.records != expected or stats.errors:
        raise RuntimeError(f"replay read {stats.records} of {expected}, {stats.errors} errors")
    return (
        stats.seconds,
        {"batches": stats.batches, "cpu": cpu, "seconds": round(stats.seconds, 3)},
        counts,
    )


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
    ctx.console.print(
        f"  producing {n:,} profile events ({expected_rows['customers']:,} customers)"
    )
    produce_seconds = await produce(broker.bootstrap, topic, records)
    del records
    raw_seconds = await raw_consume(broker.bootstrap, topic, n)
    runs: dict[str, tuple[float, dict[str, Any]]] = {}
    for kind in ("noop", "projector", "replay"):
        ctx.console.print(f"  {kind}")
        if kind == "replay":
            seconds, details, counts = await _replay(ctx, broker.bootstrap, topic, n)
        else:
            schema = f"bench_{ctx.run_id}_profile_{kind}"
            try:
                seconds, details, counts = await _project(
                    ctx, broker.bootstrap, topic, n, schema, noop=kind == "noop"
                )
            finally:
                if not ctx.options.keep:
                    await drop_schemas(ctx.options.database_url, [schema])
        if kind != "noop" and counts != expected_rows:
            raise RuntimeError(f"{kind}: read models hold {counts}, the rules made {expected_rows}")
        runs[kind] = (seconds, details)
    raw_rate = n / raw_seconds
    rates = {k: n / v[0] for k, v in runs.items()}
    result.add("raw", "raw consume (assign, no decode)", round(raw_rate), "events/s")
    result.add("noop", "kit Projector, no-op handler (ceiling)", round(rates["noop"]), "events/s")
    result.add(
        "applied",
        "kit Projector + CustomerProjection (batched)",
        round(rates["projector"]),
        "events/s",
        target=f">= {TARGET:,}",
        ok=rates["projector"] >= TARGET,
    )
    result.add(
        "replay",
        "parlay replay profile.customers (batched)",
        round(rates["replay"]),
        "events/s",
        target=f">= {TARGET:,}",
        ok=rates["replay"] >= TARGET,
    )
    result.add(
        "share",
        "projector / no-op projector",
        round(100 * rates["projector"] / rates["noop"], 1),
        "%",
        fmt=".1f",
    )
    result.add("events", "events applied", n)
    result.details.update(
        {
            "events": n,
            "read_models": expected_rows,
            "derive_seconds": round(derive_seconds, 2),
            "produce_seconds": round(produce_seconds, 2),
            "raw_seconds": round(raw_seconds, 3),
            "partitions": PARTITIONS,
            "runs": {k: v[1] for k, v in runs.items()},
        }
    )
    return result
