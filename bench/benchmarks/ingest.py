"""Webhook ingest throughput: the real gateway next to a bare FastAPI endpoint.

Both servers run as their own process, served the same way (the gateway's `HttpServer`: uvicorn,
1 worker, same loop / HTTP implementation / log settings). The load generator is a third process
(`bench.loadgen closed`): `concurrency` keep-alive connections posting pre-built, distinct,
correctly signed WhatsApp webhooks (one text message each) for warm-up + duration seconds.

- bare:    reads the raw body, checks the HMAC, answers 200.
- gateway: the production request tier (`python -m parlay_gateway`, PARLAY_ROLES=http,grpc)
  with its broker and a fresh Postgres schema: account lookup, HMAC, append to its event store
  by group commit, 200 once durable — while the relay, in its own process as deployed, publishes
  to Kafka.

Figures: requests/s answered 200 in the measured window for each, their ratio (target >= 0.6),
non-200 answers (errors), and for the gateway how many raw webhooks are in its store afterwards
(every 200 must be durable).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.core import Context, Result, read_json, register
from bench.httpclient import Connection, get_status
from bench.payloads import APP_SECRET, Message, body_for, http_request, wamid_for
from bench.procs import ChildExited, CpuWindow
from bench.profiling import start_profiler, summarize_profiles
from bench.stack import HOST, Account, Stack, free_port, start_broker

TITLE = "Webhook ingest throughput: real gateway vs bare FastAPI endpoint"
TARGET_RATIO = 0.6
#: Requests built before the clock starts, per second of run (more are built on the fly and
#: counted if a server is faster than this).
PREGENERATE_PER_SECOND = 12_000


async def run_loadgen(
    ctx: Context,
    name: str,
    port: int,
    path: str,
    secret: str,
    server_pid: int,
    profile: bool = False,
) -> dict[str, Any]:
    """Run the closed-loop generator against a server; adds the CPU the server process (and
    the generator, and the machine) used during the measured window."""
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
        stdin=subprocess.PIPE,
        stdout_pipe=True,
    )
    try:
        t0 = await ctx.run_ready_go([child])
        cpu = CpuWindow({"server": server_pid, "loadgen": child.pid})
        await asyncio.sleep(max(0.0, t0 + opts.warmup - time.monotonic()))
        cpu.start()
        if profile:
            start_profiler(ctx, server_pid, name, opts.duration)
        await asyncio.sleep(max(0.0, t0 + total - time.monotonic()))
        window = cpu.stop()
        code = await ctx.wait_exit(child, 60)
        if code != 0:
            raise ChildExited(child)
        result = dict(read_json(out))
        result["cpu"] = window
        server_cpu = window.get("server_cpu_seconds")
        if server_cpu is not None and result.get("ok"):
            result["server_cpu_ms_per_request"] = 1000 * server_cpu / result["ok"]
        return result
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


def event_loop_of(pid: int) -> str:
    """The event loop a process runs on: uvloop if its extension is loaded, else asyncio."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "asyncio"
    return "uvloop" if "/uvloop/" in maps else "asyncio"


async def measure_bare(ctx: Context, loop: str) -> dict[str, Any]:
    port = free_port()
    path = "/webhooks/whatsapp/bench-bare"
    child = ctx.procs.spawn(
        "bare_app",
        ctx.python_module(
            "bench.bare_app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--secret",
            APP_SECRET,
            "--loop",
            loop,
        ),
    )
    try:
        await _wait_http(child.running, port)
        status = await probe(port, path, APP_SECRET, ctx.run_id)
        if status != 200:
            raise RuntimeError(f"bare endpoint answered {status} to a signed probe")
        return await run_loadgen(ctx, "loadgen-bare", port, path, APP_SECRET, child.pid)
    finally:
        ctx.procs.stop(child)


async def measure_gateway(ctx: Context) -> dict[str, Any]:
    broker = await start_broker(ctx, "broker-ingest")
    stack = Stack(ctx, broker)
    account = Account(tenant_id=f"bench{ctx.run_id}", channel_account_id=f"bench-wa-{ctx.run_id}")
    try:
        accounts_file = account.write_config(ctx.path("ingest-accounts.json"))
        # The request tier (HTTP + gRPC) measured, with the outbox relay publishing beside it
        # in its own process (on the same two cores), as deployed (deploy/k8s). The
        # normalizer is the projector tier's work and runs in its own process in production.
        gateway = stack.start_gateway(accounts_file, "api", "relay")
        await stack.wait_ready()
        assert gateway.http_port is not None
        status = await probe(
            gateway.http_port, account.webhook_path, account.app_secret, ctx.run_id
        )
        if status != 200:
            raise RuntimeError(
                f"gateway answered {status} to a signed probe webhook:\n" + gateway.child.log_tail()
            )
        loop = event_loop_of(gateway.child.pid)
        result = await run_loadgen(
            ctx,
            "loadgen-gateway",
            gateway.http_port,
            account.webhook_path,
            account.app_secret,
            gateway.child.pid,
            profile=ctx.options.profile,
        )
        stack.check_alive()
        conn = await asyncpg.connect(ctx.options.database_url)
        try:
            result["server_loop"] = loop
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
        "cpu",
        "server_cpu_ms_per_request",
        "server_loop",
    )
    return {k: load[k] for k in keep if k in load}


@register("ingest", TITLE, order=10)
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
    # The gateway first: the bare endpoint then runs on the event loop the gateway ran on.
    gateway = await measure_gateway(ctx)
    result.details["gateway"] = _summary(gateway)
    bare = await measure_bare(ctx, gateway["server_loop"])
    bare["server_loop"] = gateway["server_loop"]
    result.details["bare"] = _summary(bare)

    result.notes.append(
        f"both servers: uvicorn through parlay_gateway's HttpServer, 1 worker, "
        f"{gateway['server_loop']} event loop; {opts.concurrency} keep-alive connections"
    )
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
    for name, load in (("bare", bare), ("gateway", gateway)):
        per_request = load.get("server_cpu_ms_per_request")
        if per_request is not None:
            cpu = load["cpu"]
            server_pct = 100 * cpu["server_cpu_seconds"] / cpu["seconds"]
            pg_pct = 100 * (cpu.get("postgres_cpu_seconds") or 0) / cpu["seconds"]
            result.add(
                f"{name}_cpu_ms_per_request",
                f"{name}: server process CPU per request (it used {server_pct:.0f}% of a core; "
                f"all Postgres {pg_pct:.0f}%; machine {cpu.get('machine_busy_pct')}% busy)",
                per_request,
                "ms",
                fmt=".3f",
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
