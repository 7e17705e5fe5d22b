"""`parlay events export` -> read back with DuckDB: counts and sums equal the log and the stores."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import duckdb
import pytest
from typer.testing import CliRunner

from parlay_kit.analytics.export import export
from parlay_kit.analytics.tail import TailFilter, tail
from parlay_kit.cli import app, load_plugins

from .conftest import T0, Live, end_offsets, message_received


def parquet(out: Path) -> str:
    return f"read_parquet('{out}/**/*.parquet', hive_partitioning = true)"


async def store_facts(live: Live, service: str, topic: str) -> tuple[int, int]:
    conn = await asyncpg.connect(live.database_url)
    try:
        row = await conn.fetchrow(
            f"""SELECT count(*) AS n, coalesce(sum(aggregate_version), 0) AS v
                FROM {live.schema(service)}.events WHERE topic = $1""",
            topic,
        )
        return int(row["n"]), int(row["v"])
    finally:
        await conn.close()


async def test_export_to_parquet_reads_back_in_duckdb_equal_to_the_log(
    world: Live, tmp_path
) -> None:
    t = world.topics
    out = tmp_path / "export"
    stats = await export(world.bootstrap, [t.inbound, t.profile, t.conversation], out)
    ends = await end_offsets(world.bootstrap, t.inbound, t.profile, t.conversation)
    per_topic = Counter()
    for (topic, _p), end in ends.items():
        per_topic[topic] += end
    assert stats.records == sum(per_topic.values()) > 0
    assert stats.errors == 0

    db = duckdb.connect()
    rows = dict(db.execute(f"SELECT topic, count(*) FROM {parquet(out)} GROUP BY topic").fetchall())
    assert rows == dict(per_topic)
    # Every event exactly once, and the same facts as the services' own stores.
    for service, topic in (("profile", t.profile), ("conversation", t.conversation)):
        n, versions = await store_facts(world, service, topic)
        got = db.execute(
            f"""SELECT count(DISTINCT event_id), sum(aggregate_version)
                FROM {parquet(out)} WHERE topic = '{topic}'"""
        ).fetchone()
        assert got == (n, versions)
    # Payloads are JSON by type: what was sent per channel is what DuckDB counts.
    sent = Counter(e.payload.channel for e in world.sent)
    by_channel = dict(
        db.execute(
            f"""SELECT json_extract_string(payload, '$.channel'), count(*) FROM {parquet(out)}
                WHERE event_type = 'parlay.gateway.v1.MessageReceived' GROUP BY 1"""
        ).fetchall()
    )
    assert by_channel == dict(sent)
    appended = db.execute(
        f"""SELECT count(*) FROM {parquet(out)}
            WHERE event_type = 'parlay.conversation.v1.MessageAppended'
              AND json_extract_string(payload, '$.direction') = 'MESSAGE_DIRECTION_INBOUND'"""
    ).fetchone()[0]
    assert appended == len(world.sent)
    # Typed columns: timestamps are timestamps, the partition column is the recorded date.
    types = {r[0]: r[1] for r in db.execute(f"DESCRIBE SELECT * FROM {parquet(out)}").fetchall()}
    assert "TIMESTAMP WITH TIME ZONE" in types["occurred_at"]
    bad_dates = db.execute(
        f"SELECT count(*) FROM {parquet(out)} WHERE CAST(date AS DATE) <> CAST(timezone('UTC', recorded_at) AS DATE)"
    ).fetchone()[0]
    assert bad_dates == 0
    manifest = json.loads((out / "_export.json").read_text())
    assert manifest["records"] == stats.records


async def test_export_between_offsets_and_between_times(world: Live, tmp_path) -> None:
    t = world.topics
    ends = await end_offsets(world.bootstrap, t.inbound)
    stats = await export(world.bootstrap, [t.inbound], tmp_path / "o", from_offset=1, to_offset=4)
    assert stats.records == sum(max(0, min(4, e) - 1) for e in ends.values())
    got = duckdb.execute(
        f'SELECT min("offset"), max("offset") FROM {parquet(tmp_path / "o")}'
    ).fetchone()
    assert got[0] >= 1 and got[1] <= 3

    # Times: the window of the record timestamps of the first half of the profile topic.
    everything = tmp_path / "all"
    await export(world.bootstrap, [t.profile], everything)
    # (epoch milliseconds: fetching TIMESTAMPTZ values into Python would need pytz)
    stamps = [
        r[0]
        for r in duckdb.execute(
            f"SELECT epoch_ms(kafka_timestamp) FROM {parquet(everything)} ORDER BY 1"
        ).fetchall()
    ]
    since_ms, until_ms = stamps[len(stamps) // 4], stamps[(3 * len(stamps)) // 4]
    since = datetime.fromtimestamp(since_ms / 1000, UTC)
    until = datetime.fromtimestamp(until_ms / 1000, UTC)
    windowed = tmp_path / "window"
    stats = await export(world.bootstrap, [t.profile], windowed, since=since, until=until)
    expected = sum(1 for s in stamps if since_ms <= s < until_ms)
    assert stats.records == expected
    if expected:
        lo, hi = duckdb.execute(
            f"SELECT min(epoch_ms(kafka_timestamp)), max(epoch_ms(kafka_timestamp)) FROM {parquet(windowed)}"
        ).fetchone()
        assert since_ms <= lo and hi < until_ms


def test_cli_export_jsonl_and_tail(world: Live, tmp_path) -> None:
    load_plugins()
    runner = CliRunner()
    target = tmp_path / "inbound.jsonl"
    result = runner.invoke(
        app,
        [
            "events",
            "export",
            world.topics.inbound,
            "--format",
            "jsonl",
            "-o",
            str(target),
            "--bootstrap",
            world.bootstrap,
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(lines) == len(world.sent)
    first = lines[0]
    assert first["event_type"] == "parlay.gateway.v1.MessageReceived"
    assert first["payload"]["content"]["text"]["body"].startswith("day ")
    assert {"event_id", "tenant_id", "aggregate_id", "occurred_at", "recorded_at"} <= set(first)

    # tail: filtered, from the beginning, stopping at the end of the log.
    address = "70001"
    result = runner.invoke(
        app,
        [
            "events",
            "tail",
            world.topics.inbound,
            world.topics.profile,
            "--from-beginning",
            "--no-follow",
            "--type",
            "MessageReceived",
            "--aggregate",
            f"acc-tg:{address}",
            "--bootstrap",
            world.bootstrap,
        ],
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    expected = [e for e in world.sent if e.aggregate_id == f"acc-tg:{address}"]
    assert len(events) == len(expected) > 0
    assert all(e["payload"]["sender"]["address"] == address for e in events)


@pytest.mark.parametrize("bad", ["nope", "2024-13-01"])
def test_time_parsing_rejects_garbage(bad: str) -> None:
    import typer

    from parlay_kit.events_cli import parse_time

    with pytest.raises(typer.BadParameter):
        parse_time(bad)


async def test_tail_follows_events_as_they_arrive(world: Live) -> None:
    """Started at the end of the log, tail prints what is produced afterwards (filtered)."""
    lines: list[str] = []
    ready = asyncio.Event()
    task = asyncio.create_task(
        tail(
            world.bootstrap,
            [world.topics.inbound],
            lines.append,
            flt=TailFilter(tenant=world.tenant, event_types=frozenset({"MessageReceived"})),
            max_events=1,
            ready=ready.set,
        )
    )
    await asyncio.wait_for(ready.wait(), 30)
    event = message_received(
        tenant=world.tenant,
        address="70002",
        text="live!",
        at=T0 + timedelta(days=6),
        channel="telegram",
        account="acc-tg",
        name="Eve",
    )
    await world.produce(world.topics.inbound, event)
    assert await asyncio.wait_for(task, 30) == 1
    got = json.loads(lines[0])
    assert (
        got["event_id"] == event.event_id and got["payload"]["content"]["text"]["body"] == "live!"
    )
    await world.settle()  # the shared world stays consistent for the other tests
