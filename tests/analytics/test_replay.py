"""`parlay replay`: every registered read-model projection rebuilt from zero equals the live
one; differences are reported; an interrupted rebuild resumes and still verifies; --swap makes
the rebuilt tables live and the restarted service carries on with them."""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
import pytest
from typer.testing import CliRunner

from parlay_kit import topics
from parlay_kit.analytics.registry import Projection, discover
from parlay_kit.cli import app, load_plugins
from parlay_kit.replay import Replayer, ReplayError

from .conftest import T0, Live, live_services, message_received, traffic


def private_topics(live: Live, projection: Projection) -> list[str]:
    mapping = {
        topics.WEBHOOKS: live.topics.webhooks,
        topics.INBOUND: live.topics.inbound,
        topics.PROFILE: live.topics.profile,
        topics.CONVERSATION: live.topics.conversation,
        topics.ORDERS: live.topics.orders,
        topics.PAYMENTS: live.topics.payments,
    }
    return [mapping[t] for t in projection.topics]


def replayer(live: Live, projection: Projection, **kw) -> Replayer:
    return Replayer(
        projection,
        database_url=live.database_url,
        bootstrap=live.bootstrap,
        live_schema=live.schema(projection.service),
        topics=private_topics(live, projection),
        **kw,
    )


def readmodel_projections() -> list[Projection]:
    return [p for p in discover().projections.values() if p.kind == "readmodel"]


async def table_rows(live: Live, schema: str, table: str) -> int:
    conn = await asyncpg.connect(live.database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.{table}"))
    finally:
        await conn.close()


class Crash(Exception):
    """Stands for a replay killed mid-way."""


def crash_after_first_commit(phase: str, done: int, total: int) -> None:
    if phase == "replay" and done > 0:
        raise Crash


async def index_definitions(live: Live, schema: str, tables: tuple[str, ...]) -> dict[str, str]:
    """The tables' indexes, by name, as `CREATE INDEX` statements without the schema name."""
    conn = await asyncpg.connect(live.database_url)
    try:
        rows = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = $1 AND tablename = ANY($2::text[])",
            schema,
            list(tables),
        )
    finally:
        await conn.close()
    return {r["indexname"]: r["indexdef"].replace(f" {schema}.", " ") for r in rows}


async def test_every_registered_projection_rebuilt_from_zero_equals_the_live_one(
    world: Live,
) -> None:
    projections = readmodel_projections()
    assert {p.name for p in projections} >= {"profile.customers", "conversation.timeline"}
    for p in projections:
        assert p.service in world.runtimes, f"add the {p.service} service to the world fixture"
        r = replayer(world, p)
        stats = await r.run()
        assert stats.complete and stats.errors == 0 and stats.records > 0
        report = await r.verify()
        assert report.equal, json.dumps(report.to_json(), indent=2, default=str)
        for t in report.tables:
            assert t.live_rows == t.rebuilt_rows
        assert sum(t.live_rows for t in report.tables) > 0
        # nothing was compared away: these read models hold no wall-clock columns
        assert all(not t.ignored for t in report.tables)
        # and the rebuilt tables have the live ones' indexes (deferred ones built at the end)
        assert await index_definitions(world, r.work_schema, p.tables) == await index_definitions(
            world, r.live_schema, p.tables
        )
        assert (stats.indexes_built > 0) == p.defer_secondary_indexes


async def test_partition_parallel_workers_rebuild_the_same(world: Live) -> None:
    p = discover().projections["profile.customers"]
    r = replayer(world, p, batch_size=5)
    stats = await r.run(workers=2)
    assert stats.complete and stats.errors == 0 and stats.batches > 2
    report = await r.verify()
    assert report.equal, json.dumps(report.to_json(), indent=2, default=str)


async def test_verify_reports_rows_that_differ(world: Live) -> None:
    p = discover().projections["conversation.timeline"]
    r = replayer(world, p)
    await r.run()
    conn = await asyncpg.connect(world.database_url)
    try:
        victim = await conn.fetchval(
            f"SELECT conversation_id FROM {r.work_schema}.conversations ORDER BY conversation_id LIMIT 1"
        )
        await conn.execute(
            f"UPDATE {r.work_schema}.conversations SET unread_count = unread_count + 100"
            " WHERE conversation_id = $1",
            victim,
        )
        await conn.execute(
            f"DELETE FROM {r.work_schema}.conversation_messages WHERE message_id ="
            f" (SELECT min(message_id) FROM {r.work_schema}.conversation_messages)"
        )
    finally:
        await conn.close()
    report = await r.verify()
    assert not report.equal
    by_table = {t.table: t for t in report.tables}
    conv = by_table["conversations"]
    assert conv.live_rows == conv.rebuilt_rows and conv.live_md5 != conv.rebuilt_md5
    assert [row["conversation_id"] for row in conv.missing_in_rebuild] == [victim]
    assert (
        conv.unexpected_in_rebuild[0]["unread_count"]
        == conv.missing_in_rebuild[0]["unread_count"] + 100
    )
    msgs = by_table["conversation_messages"]
    assert msgs.rebuilt_rows == msgs.live_rows - 1
    assert len(msgs.missing_in_rebuild) == 1 and msgs.unexpected_in_rebuild == []


async def test_interrupted_replay_resumes_and_still_verifies(world: Live) -> None:
    p = discover().projections["profile.customers"]

    first = replayer(world, p, batch_size=7, on_progress=crash_after_first_commit)
    with pytest.raises(Crash):
        await first.run()
    conn = await asyncpg.connect(world.database_url)
    try:
        committed = await conn.fetchval(
            f"SELECT coalesce(sum(next_offset), 0) FROM {first.work_schema}.replay_progress"
        )
        status = await conn.fetchval(f"SELECT status FROM {first.work_schema}.replay_runs")
    finally:
        await conn.close()
    assert status == "running"
    assert committed > 0

    resumed = replayer(world, p, batch_size=7)
    stats = await resumed.run(resume=True)
    assert stats.complete and stats.resumed_from == committed
    total_records = stats.resumed_from + stats.records
    from .conftest import end_offsets

    ends = await end_offsets(world.bootstrap, world.topics.profile)
    assert total_records == sum(ends.values())
    report = await resumed.verify()
    assert report.equal, json.dumps(report.to_json(), indent=2, default=str)


async def test_an_interrupted_rebuild_builds_its_deferred_indexes_on_resume(world: Live) -> None:
    p = discover().projections["conversation.timeline"]
    assert p.defer_secondary_indexes
    live_indexes = await index_definitions(world, world.schema(p.service), p.tables)

    first = replayer(world, p, batch_size=7, on_progress=crash_after_first_commit)
    with pytest.raises(Crash):
        await first.run()
    # Only the unique indexes exist during the load; the others wait, recorded.
    loading = await index_definitions(world, first.work_schema, p.tables)
    assert loading and set(loading) < set(live_indexes)
    conn = await asyncpg.connect(world.database_url)
    try:
        pending = await conn.fetchval(
            f"SELECT count(*) FROM {first.work_schema}.replay_deferred_indexes"
        )
    finally:
        await conn.close()
    assert pending == len(live_indexes) - len(loading)
    with pytest.raises(ReplayError, match="indexes still to build"):
        await first.swap(force=True)

    resumed = replayer(world, p, batch_size=7)
    stats = await resumed.run(resume=True)
    assert stats.complete and stats.indexes_built == pending
    assert await index_definitions(world, resumed.work_schema, p.tables) == live_indexes
    assert (await resumed.verify()).equal


def test_cli_stop_then_resume_then_verify(world: Live) -> None:
    """The same through the command line: a run cut short (--stop-after), then --resume
    --verify (exit 0 only when equal), as JSON."""
    load_plugins()
    runner = CliRunner()
    base = [
        "replay",
        "conversation.timeline",
        "--database-url",
        world.database_url,
        "--bootstrap",
        world.bootstrap,
        "--schema",
        world.schema("conversation"),
        "--topic",
        world.topics.conversation,
        "--batch-size",
        "5",
        "--json",
    ]
    cut = runner.invoke(app, [*base, "--stop-after", "10"])
    assert cut.exit_code == 0, cut.output
    first = json.loads(cut.stdout)[0]["replay"]
    assert first["records"] == 10 and not first["complete"]
    done = runner.invoke(app, [*base, "--resume", "--verify"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)[0]
    assert result["replay"]["complete"] and result["verify"]["equal"]
    listing = runner.invoke(app, ["replay", "--list"])
    assert "profile.customers" in listing.stdout and "gateway.normalizer" in listing.stdout


@pytest.mark.timeout(240)
async def test_swap_makes_the_rebuild_live_and_the_restarted_service_carries_on(
    kafka_bootstrap, database_url
) -> None:
    async with live_services(kafka_bootstrap, database_url) as live:
        await live.start_profile()
        await live.start_conversation()
        await live.produce_many(live.topics.inbound, traffic(live.tenant)[:20])
        await live.settle()
        p = discover().projections["conversation.timeline"]
        schema = live.schema("conversation")
        # A bug in the old projection code left wrong rows in the live read model.
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"UPDATE {schema}.conversations SET status = 'snoozed'")
        finally:
            await conn.close()
        r = replayer(live, p)
        await r.run()
        assert not (await r.verify()).equal
        with pytest.raises(ReplayError, match="not published|behind"):
            # a swap refuses while the rebuild is behind the log (new message, not replayed)
            await live.produce(
                live.topics.inbound,
                message_received(tenant=live.tenant, address="16505550101", text="late", at=T0),
            )
            await live.settle()
            await r.swap()

        # The procedure: stop the service's projectors, catch up, swap, start.
        await live.stop("conversation")
        await r.run(resume=True)
        backup = await r.swap()
        conn = await asyncpg.connect(database_url)
        try:
            assert (
                await conn.fetchval(
                    f"SELECT count(*) FROM {schema}.conversations WHERE status = 'snoozed'"
                )
                == 0
            )
            assert (
                await conn.fetchval(
                    f"SELECT count(*) FROM {backup}.conversations WHERE status = 'snoozed'"
                )
                > 0
            )
            assert not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", r.work_schema
            )
            before = await conn.fetchval(f"SELECT count(*) FROM {schema}.conversation_messages")
        finally:
            await conn.close()

        # The restarted service writes into the swapped-in tables.
        await live.open_runtime("conversation", schema=schema)
        await live.start_conversation()
        await live.produce(
            live.topics.inbound,
            message_received(
                tenant=live.tenant,
                address="16505550101",
                text="after swap",
                at=T0 + timedelta(days=9),
            ),
        )
        await live.settle()
        assert await table_rows(live, schema, "conversation_messages") == before + 1
        again = replayer(live, p)
        await again.run()
        assert (await again.verify()).equal
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"DROP SCHEMA {backup} CASCADE")
        finally:
            await conn.close()
