"""Webhook ingest throughput: the real gateway next to a bare FastAPI endpoint.

Both servers run as their own process, served the same way (the gateway's `HttpServer`: uvicorn,
1 worker, same loop / HTTP implementation / log settings). The load generator is a third process
(`bench.loadgen closed`): `concurrency` keep-alive connections posting pre-built, distinct,
correctly signed WhatsApp webhooks (one text message each) for warm-up + duration seconds.

- bare:    reads the raw body, checks the HMAC, answers 200.
- gateway: the production process (`python -m parlay_gateway`) with its broker and a fresh
  Postgres schema: account lookup, HMAC, append to its event store by group commit, 200 once
  durable — while its relay publishes to Kafka and its normalizer turns raw webhooks into
  messages, as in production.

Figures: requests/s answered 200 in the measured window for each, their ratio (target >= 0.6),
non-200 answers (errors), and for the gateway how many raw webhooks are in its store afterwards
(every 200 must be durable).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from bench.core import Context, Result, read_json, register
from bench.httpclient import Connection, get_status
from bench.payloads import APP_SECRET, Message, body_for, http_request, wamid_for
from bench.procs import ChildExited
from bench.profiling import start_profiler, summarize_profiles
from bench.stack import HOST, Account, Stack, free_port, start_broker

TITLE = "Webhook ingest throughput: real gateway vs bare FastAPI endpoint"
TARGET_RATIO = 0.6
#: Requests built before the clock starts, per second of run (more are built on the fly and
#: counted if a server is faster than this).
PREGENERATE_PER_SECOND = 9_000


async def run_loadgen(
    ctx: Context, name: str, port: int, path: str, secret: str, profile_pid: int | None = None
) -> dict[str, Any]:
    opts = ctx.options
    out = ctx.path(f"{name}.json")
    total = opts.warmup + opts.duration
    child = ctx.procs.spawn(
        name,
        ctx.python_module(
            "bench.loadgen",
            "closed",
            "--port",
            str(port),
            "--path",
            path,
            "--secret",
            secret,
            "--run-id",
            f"{ctx.run_id}{name[-2:]}",
            "--concurrency",
            str(opts.concurrency),
            "--warmup",
            str(opts.warmup),
            "--duration",
            str(opts.duration),
            "--pregenerate",
            str(int(PREGENERATE_PER_SECOND * total)),
            "--out",
            str(out),
        ),
        stdin=-1,
        stdout_pipe=True,
    )
    try:
        t0 = await ctx.run_ready_go([child])
        if profile_pid is not None:
            await asyncio.sleep(max(0.0, t0 + opts.warmup - time.monotonic()))
            start_profiler(ctx, profile_pid, name, opts.duration)
        code = await ctx.wait_exit(child, total + 60)
        if code != 0:
            raise ChildExited(child)
        return dict(read_json(out))
    finally:
        ctx.procs.stop(child)


async def _wait_http(child_running: Any, port: int, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await get_status(HOST, port, "/healthz") != 200:
        if not child_running():
            raise RuntimeError("server exited before it answered /healthz")
        if loop.time() > deadline:
            raise TimeoutError(f"no /healthz on port {port} after {timeout:.0f}s")
        await asyncio.sleep(0.1)


async def probe(port: int, path: str, secret: str, run_id: str) -> int:
    """One signed webhook; the status it gets (200 means the account and route work)."""
    message = Message(0, wamid_for(run_id + "probe", 0), "15550000000", "Probe", "probe")
    conn = Connection(HOST, port)
    try:
        return await conn.request(http_request(f"{HOST}:{port}", path, body_for(message), secret))
    finally:
        conn.close()


async def measure_bare(ctx: Context) -> dict[str, Any]:
    port = free_port()
    path = "/webhooks/whatsapp/bench-bare"
    child = ctx.procs.spawn(
        "bare_app",
        ctx.python_module(
            "bench.bare_app", "--host", HOST, "--port", str(port), "--secret", APP_SECRET
        ),
    )
    try:
        await _wait_http(child.running, port)
        status = await probe(port, path, APP_SECRET, ctx.run_id)
        if status != 200:
            raise RuntimeError(f"bare endpoint answered {status} to a signed probe")
        return await run_loadgen(ctx, "loadgen-bare", port, path, APP_SECRET)
    finally:
        ctx.procs.stop(child)


async def measure_gateway(ctx: Context) -> dict[str, Any]:
    broker = await start_broker(ctx, "broker-ingest")
    stack = Stack(ctx, broker)
    account = Account(tenant_id=f"bench{ctx.run_id}", channel_account_id=f"bench-wa-{ctx.run_id}")
    try:
        accounts_file = account.write_config(ctx.path("ingest-accounts.json"))
        gateway = stack.start(
            "gateway", extra_env={"PARLAY_CHANNEL_ACCOUNTS_FILE": str(accounts_file)}
        )
        await stack.wait_ready()
        assert gateway.http_port is not None
        status = await probe(
            gateway.http_port, account.webhook_path, account.app_secret, ctx.run_id
        )
        if status != 200:
            raise RuntimeError(
                f"gateway answered {status} to a signed probe webhook:\n" + gateway.child.log_tail()
            )
        result = await run_loadgen(
            ctx,
            "loadgen-gateway",
            gateway.http_port,
            account.webhook_path,
            account.app_secret,
            profile_pid=gateway.child.pid if ctx.options.profile else None,
        )
        stack.check_alive()
        conn = await asyncpg.connect(ctx.options.database_url)
        try:
            result["stored_webhooks"] = await conn.fetchval(
                f"SELECT count(*) FROM {gateway.schema}.events "
                "WHERE event_type LIKE '%.WebhookReceived'"
            )
        finally:
            await conn.close()
        return result
    finally:
        await stack.close()
        ctx.procs.stop(broker.child)


def _summary(load: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "requests_per_second",
        "ok",
        "errors",
        "status_counts",
        "warmup_status_counts",
        "requests_sent",
        "latency_seconds",
        "built_on_the_fly",
        "stored_webhooks",
        "client_loop",
    )
    return {k: load[k] for k in keep if k in load}


@register("ingest", TITLE)
async def run(ctx: Context) -> Result:
    opts = ctx.options
    result = Result("ingest", TITLE)
    result.details["settings"] = {
        "concurrency": opts.concurrency,
        "warmup_seconds": opts.warmup,
        "duration_seconds": opts.duration,
        "payload": "WhatsApp Cloud API webhook, one text message, distinct wamid, signed",
    }
    if opts.profile:
        result.notes.append(
            "profiled run (--profile): py-spy samples the gateway, figures are lower than usual"
        )
    bare = await measure_bare(ctx)
    result.details["bare"] = _summary(bare)
    gateway = await measure_gateway(ctx)
    result.details["gateway"] = _summary(gateway)

    bare_rps = bare["requests_per_second"]
    gw_rps = gateway["requests_per_second"]
    ratio = gw_rps / bare_rps if bare_rps else None
    result.add("bare_rps", "bare FastAPI endpoint (HMAC only)", bare_rps, "req/s")
    result.add("gateway_rps", "real gateway (durable in Postgres)", gw_rps, "req/s")
    result.add(
        "ratio",
        "ratio gateway / bare",
        ratio,
        fmt=".2f",
        target=f">= {TARGET_RATIO}",
        ok=None if ratio is None else ratio >= TARGET_RATIO,
    )
    result.add(
        "bare_errors", "bare: non-200 answers", bare["errors"], target="0", ok=bare["errors"] == 0
    )
    result.add(
        "gateway_errors",
        "gateway: non-200 answers",
        gateway["errors"],
        target="0",
        ok=gateway["errors"] == 0,
    )
    for name, load in (("bare", bare), ("gateway", gateway)):
        lat = load.get("latency_seconds") or {}
        if lat:
            result.add(
                f"{name}_latency_p99_ms",
                f"{name}: response time p99 (p50 {lat['p50'] * 1000:.1f} ms)",
                lat["p99"] * 1000,
                "ms",
                fmt=".1f",
            )
    stored = gateway.get("stored_webhooks")
    answered = sum(
        n
        for counts in (gateway["status_counts"], gateway["warmup_status_counts"])
        for s, n in counts.items()
        if s == "200"
    )
    if stored is not None:
        # +1: the probe webhook sent before the run.
        durable = stored >= answered + 1
        result.add(
            "gateway_stored",
            "gateway: raw webhooks in its store (>= 200s answered)",
            stored,
            target=f">= {answered + 1}",
            ok=durable,
        )
    if opts.profile:
        result.details["profile"] = await summarize_profiles(ctx)
    for name, load in (("bare", bare), ("gateway", gateway)):
        if load.get("built_on_the_fly"):
            result.notes.append(
                f"{name}: {load['built_on_the_fly']} requests were built during the run "
                "(pre-generated pool exhausted); raise PREGENERATE_PER_SECOND."
            )
    return result
