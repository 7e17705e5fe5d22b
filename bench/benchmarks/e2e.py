"""End-to-end latency: webhook sent -> message visible in the conversation read model.

The full pipeline runs as in production, each part its own process: a fresh Tansu broker, the
gateway (HTTP ingest, group commit, relay, normalizer), profile (customer + identity) and
conversation (timeline), each on a fresh Postgres schema. After a short priming (a few messages
end to end, so every consumer has joined its group), the load generator (`bench.loadgen open`)
sends webhooks at a fixed rate — open loop: each on its own clock tick, never waiting for
earlier answers — from a small pool of returning customers plus new ones, while a poller
(`bench.poller`) reads, every few ms, the `MessageAppended` events newly committed to the
conversation service's store, each in the same transaction as its `conversation_messages` row
(and checks afterwards that every message it saw is in that table).

Latency of a message = time its row was first seen by the poller - time its request was written
to the socket. Messages of the warm-up seconds are sent but not counted.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import asyncpg

from bench.core import Context, Result, percentiles, read_json, register
from bench.httpclient import Connection
from bench.payloads import Message, body_for, http_request, open_loop_schedule, write_schedule
from bench.poller import visible_query
from bench.procs import ChildExited, CpuWindow
from bench.stack import HOST, Account, Stack, start_broker

TITLE = "End-to-end latency: webhook -> visible in the conversation read model"
TARGET_P99_MS = 100.0
REPEAT_CUSTOMERS = 200
NEW_SHARE = 0.3
PRIME_MESSAGES = 20


async def prime(ctx: Context, stack: Stack, account: Account, timeout: float = 90.0) -> float:
    """Send a few messages one by one and wait until all are visible: every consumer group has
    joined and every code path is warm before the clock starts. Returns the seconds it took."""
    gateway = stack.services["gateway"]
    assert gateway.http_port is not None
    started = time.monotonic()
    messages = [
        Message(
            i, f"wamid.BENCHPRIME{ctx.run_id.upper()}{i:04d}", f"1777{i:07d}", f"Prime {i}", "hi"
        )
        for i in range(PRIME_MESSAGES)
    ]
    conn = Connection(HOST, gateway.http_port)
    try:
        for m in messages:
            data = http_request(
                f"{HOST}:{gateway.http_port}",
                account.webhook_path,
                body_for(m),
                account.app_secret,
            )
            status = await conn.request(data)
            if status != 200:
                raise RuntimeError(
                    f"gateway answered {status} while priming:\n{gateway.child.log_tail()}"
                )
    finally:
        conn.close()
    pending = {m.wamid for m in messages}
    db = await asyncpg.connect(ctx.options.database_url)
    try:
        query = visible_query(stack.services["conversation"].schema)
        while pending:
            stack.check_alive()
            rows = await db.fetch(
                query, account.tenant_id, account.channel_account_id, list(pending)
            )
            pending -= {r[0] for r in rows}
            if not pending:
                break
            if time.monotonic() - started > timeout:
                raise TimeoutError(
                    f"{len(pending)}/{PRIME_MESSAGES} priming messages not visible in the "
                    f"conversation read model after {timeout:.0f}s; conversation log:\n"
                    + stack.services["conversation"].child.log_tail()
                )
            await asyncio.sleep(0.05)
    finally:
        await db.close()
    return time.monotonic() - started


async def stage_times(ctx: Context, stack: Stack) -> dict[str, dict[str, float]]:
    """When each message passed each stage, on the monotonic clock, from the `recorded_at` of
    the events the services stored: {wamid: {"stored": t, "normalized": t, "appended": t}}.

    stored      the raw WebhookReceived in the gateway's store (answered 200 right after)
    normalized  MessageReceived appended by the gateway's normalizer
    appended    MessageAppended appended by the conversation service (its read-model row is
                written in the same transaction)
    """
    from parlay.conversation.v1 import conversation_events_pb2  # noqa: F401 - registers types
    from parlay.gateway.v1 import gateway_events_pb2  # noqa: F401
    from parlay_kit.envelope import decode, unpack

    offset = time.time() - time.monotonic()
    gw = stack.services["gateway"].schema
    conv = stack.services["conversation"].schema
    out: dict[str, dict[str, float]] = {}
    db = await asyncpg.connect(ctx.options.database_url)
    try:
        stored = {
            str(r[0]): r[1].timestamp() - offset
            for r in await db.fetch(
                f"SELECT event_id, recorded_at FROM {gw}.events "
                "WHERE event_type = 'parlay.gateway.v1.WebhookReceived'"
            )
        }
        for r in await db.fetch(
            f"SELECT recorded_at, envelope FROM {gw}.events "
            "WHERE event_type = 'parlay.gateway.v1.MessageReceived'"
        ):
            envelope = decode(r[1])
            times = out.setdefault(unpack(envelope).provider_message_id, {})
            times["normalized"] = r[0].timestamp() - offset
            if envelope.causation_id in stored:
                times["stored"] = stored[envelope.causation_id]
        for r in await db.fetch(
            f"SELECT recorded_at, envelope FROM {conv}.events "
            "WHERE event_type = 'parlay.conversation.v1.MessageAppended'"
        ):
            wamid = unpack(decode(r[1])).provider_message_id
            out.setdefault(wamid, {})["appended"] = r[0].timestamp() - offset
    finally:
        await db.close()
    return out


def stage_breakdown(
    records: dict[int, list[Any]],
    measured: dict[int, Message],
    seen_at: dict[int, float],
    stages: dict[str, dict[str, float]],
) -> dict[str, dict[str, float]]:
    """Percentiles (ms) of the time spent between consecutive stages."""
    spans: dict[str, list[float]] = {
        "1 sent -> raw webhook stored (gateway ingest)": [],
        "2 stored -> MessageReceived (relay + normalizer)": [],
        "3 MessageReceived -> MessageAppended (relay + profile/conversation)": [],
        "4 MessageAppended -> seen by the poller (commit + poll)": [],
    }
    names = list(spans)
    for seq, record in records.items():
        t = stages.get(measured[seq].wamid, {})
        points = [record[2], t.get("stored"), t.get("normalized"), t.get("appended")]
        points.append(seen_at.get(seq))
        for i, name in enumerate(names):
            a, b = points[i], points[i + 1]
            if a is not None and b is not None:
                spans[name].append(b - a)
    return {
        name: {k: round(v * 1000, 2) for k, v in percentiles(values).items()}
        for name, values in spans.items()
        if values
    }


@register("e2e", TITLE, order=20)
async def run(ctx: Context) -> Result:
    opts = ctx.options
    result = Result("e2e", TITLE)
    total = opts.warmup + opts.duration
    broker = await start_broker(ctx, "broker-e2e")
    stack = Stack(ctx, broker)
    account = Account(
        tenant_id=f"bench{ctx.run_id}e2e", channel_account_id=f"bench-e2e-{ctx.run_id}"
    )
    try:
        accounts_file = account.write_config(ctx.path("e2e-accounts.json"))
        # Request tier, relay and projector tier in separate processes, as deployed.
        stack.start_gateway(accounts_file, "api", "relay", "projectors")
        stack.start("profile")
        stack.start("conversation")
        await stack.wait_ready()
        gateway = stack.services["gateway"]
        assert gateway.http_port is not None
        prime_seconds = await prime(ctx, stack, account)

        schedule = open_loop_schedule(
            ctx.run_id,
            rate=opts.rate,
            seconds=total,
            repeat_customers=REPEAT_CUSTOMERS,
            new_share=NEW_SHARE,
        )
        schedule_file = ctx.path("e2e-schedule.json")
        write_schedule(schedule_file, schedule)
        poller_out, loadgen_out = ctx.path("e2e-poller.json"), ctx.path("e2e-loadgen.json")
        poller = ctx.procs.spawn(
            "poller",
            ctx.python_module(
                "bench.poller",
                "--dsn",
                opts.database_url,
                "--schema",
                stack.services["conversation"].schema,
                "--tenant",
                account.tenant_id,
                "--account",
                account.channel_account_id,
                "--schedule",
                str(schedule_file),
                "--interval-ms",
                str(opts.poll_interval_ms),
                "--out",
                str(poller_out),
            ),
            stdin=subprocess.PIPE,
            stdout_pipe=True,
        )
        loadgen = ctx.procs.spawn(
            "loadgen-e2e",
            ctx.python_module(
                "bench.loadgen",
                "open",
                "--port",
                str(gateway.http_port),
                "--path",
                account.webhook_path,
                "--secret",
                account.app_secret,
                "--schedule",
                str(schedule_file),
                "--out",
                str(loadgen_out),
            ),
            stdin=subprocess.PIPE,
            stdout_pipe=True,
        )
        t0 = await ctx.run_ready_go([poller, loadgen], start_in=0.5)
        pids = {name: svc.child.pid for name, svc in stack.services.items()}
        pids.update(broker=broker.child.pid, loadgen=loadgen.pid)
        pids["poller"] = poller.pid
        window = CpuWindow(pids)
        await asyncio.sleep(max(0.0, t0 + opts.warmup - time.monotonic()))
        window.start()
        await asyncio.sleep(max(0.0, t0 + total - time.monotonic()))
        result.details["cpu"] = window.stop()
        for child, limit in ((loadgen, 60.0), (poller, 60.0)):
            if await ctx.wait_exit(child, limit) != 0:
                raise ChildExited(child)
        stack.check_alive()
        load, seen = read_json(loadgen_out), read_json(poller_out)
        try:
            stages = await stage_times(ctx, stack)
        except Exception as exc:  # best effort: depends on the services' event types
            stages = {}
            result.notes.append(f"no per-stage breakdown: {type(exc).__name__}: {exc}")
    finally:
        await stack.close()
        ctx.procs.stop(broker.child)

    measured = {m.seq: m for m in schedule if m.offset >= opts.warmup}
    records = {r[0]: r for r in load["records"] if r[0] in measured}
    sent = len(records)
    ok = sum(1 for r in records.values() if r[4] == 200)
    errors = sent - ok
    seen_at = {int(k): v for k, v in seen["seen"].items()}
    # From the scheduled send time: a send the generator could not make on time (all its
    # connections busy) still counts from when it was due (no coordinated omission).
    latencies = [seen_at[s] - r[1] for s, r in records.items() if s in seen_at]
    from_write = [seen_at[s] - r[2] for s, r in records.items() if s in seen_at]
    acks = [r[3] - r[2] for r in records.values()]
    lat = percentiles(latencies)
    by_kind = {
        kind: percentiles(
            [
                seen_at[s] - r[1]
                for s, r in records.items()
                if s in seen_at and measured[s].repeat == repeat
            ]
        )
        for kind, repeat in (("repeat_customers", True), ("new_customers", False))
    }
    send_window = (
        max(r[2] for r in records.values()) - min(r[2] for r in records.values()) if records else 0
    )

    result.details.update(
        {
            "settings": {
                "rate_per_second": opts.rate,
                "warmup_seconds": opts.warmup,
                "duration_seconds": opts.duration,
                "repeat_customers": REPEAT_CUSTOMERS,
                "new_customer_share": NEW_SHARE,
                "poll_interval_ms": opts.poll_interval_ms,
                "priming_messages": PRIME_MESSAGES,
            },
            "priming_seconds": round(prime_seconds, 2),
            "messages": {
                "scheduled": len(measured),
                "sent": sent,
                "answered_200": ok,
                "errors": errors,
                "status_counts": _count(str(r[4]) for r in records.values()),
                "seen": len(latencies),
                "repeat_customer_messages": sum(1 for m in measured.values() if m.repeat),
            },
            "latency_ms": {k: round(v * 1000, 2) for k, v in lat.items()},
            "latency_by_customer_ms": {
                kind: {k: round(v * 1000, 2) for k, v in p.items()} for kind, p in by_kind.items()
            },
            "stages_ms": stage_breakdown(records, measured, seen_at, stages) if stages else {},
            "latency_from_request_write_ms": {
                k: round(v * 1000, 2) for k, v in percentiles(from_write).items()
            },
            "webhook_ack_ms": {k: round(v * 1000, 2) for k, v in percentiles(acks).items()},
            "send_lag_ms": {
                k: round(v * 1000, 2) for k, v in (load.get("send_lag_seconds") or {}).items()
            },
            "connections_opened": load.get("connections_opened"),
            "poller": {k: v for k, v in seen.items() if k != "seen"},
        }
    )

    achieved = (sent - 1) / send_window if send_window else None
    result.add(
        "rate", f"send rate (target {opts.rate:g}/s, open loop)", achieved, "msg/s", fmt=",.0f"
    )
    result.add(
        "seen_vs_sent",
        "visible / sent",
        len(latencies),
        f"of {sent}",
        target=f"{sent}",
        ok=len(latencies) == sent and sent > 0,
    )
    missing = seen.get("not_in_read_model", 0)
    result.add(
        "not_in_read_model",
        "seen committed but not in the read model",
        missing,
        target="0",
        ok=missing == 0,
    )
    result.add("errors", "webhook non-200 answers", errors, target="0", ok=errors == 0)
    for key in ("p50", "p95", "p99", "max"):
        value = lat.get(key)
        result.add(
            f"latency_{key}_ms",
            f"webhook -> visible {key}",
            None if value is None else value * 1000,
            "ms",
            fmt=".1f",
            target=f"< {TARGET_P99_MS:g} ms" if key == "p99" else "",
            ok=(value is not None and value * 1000 < TARGET_P99_MS) if key == "p99" else None,
        )
    for kind, p in by_kind.items():
        if p:
            result.add(
                f"latency_p99_{kind}_ms",
                f"  p99, {kind.replace('_', ' ')} only (p50 {p['p50'] * 1000:.1f} ms)",
                p["p99"] * 1000,
                "ms",
                fmt=".1f",
            )
    for i, (stage, p) in enumerate(result.details["stages_ms"].items(), 1):
        result.add(
            f"stage{i}_p99_ms",
            f"  stage {stage[2:]}: p99 (p50 {p['p50']:.1f} ms)",
            p["p99"],
            "ms",
            fmt=".1f",
        )
    ack = percentiles(acks)
    if ack:
        result.add(
            "ack_p99_ms",
            f"webhook 200 response time p99 (p50 {ack['p50'] * 1000:.1f} ms)",
            ack["p99"] * 1000,
            "ms",
            fmt=".1f",
        )
    lag = load.get("send_lag_seconds") or {}
    if lag:
        result.add(
            "send_lag_p99_ms",
            f"generator send lag p99 (connections used {load.get('connections_opened')})",
            lag["p99"] * 1000,
            "ms",
            fmt=".1f",
            target="< 5 ms",
            ok=lag["p99"] * 1000 < 5,
        )
    poll = seen
    result.add(
        "poll_interval_ms",
        f"poll interval (query p50 {poll.get('query_ms_p50') or 0:.2f} ms, "
        f"gap p99 {poll.get('gap_ms_p99') or 0:.1f} ms)",
        opts.poll_interval_ms,
        "ms",
        fmt=".0f",
    )
    cpu = result.details.get("cpu") or {}
    if cpu.get("seconds"):
        shares = ", ".join(
            f"{k.removesuffix('_cpu_seconds')} {100 * v / cpu['seconds']:.0f}%"
            for k, v in cpu.items()
            if k.endswith("_cpu_seconds") and v is not None
        )
        result.notes.append(
            f"CPU during the measured window (% of one core): {shares}; "
            f"machine {cpu.get('machine_busy_pct')}% busy"
        )
    if seen.get("timed_out"):
        result.notes.append(
            f"{len(schedule) - len(seen_at)} messages were still not visible 20 s after the "
            "last send."
        )
    return result


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out
