"""GetConversation over gRPC: the real conversation service next to an empty-handler gRPC server,
in the same run, served the same way.

- service: `python -m parlay_conversation` as the request tier is deployed (deploy/k8s:
  `PARLAY_PROJECTORS=none`; the timeline projector runs in its own deployment) on a fresh schema holding
  CONVERSATIONS conversations of MESSAGES messages each (inbound and outbound with statuses, two
  notes) written by the service's own read-model adapter; GetConversation returns the
  conversation with its first page of messages (all of them) and its notes.
- baseline: this module's `baseline` process — the kit's `build_server` (API-key auth against the
  same tenancy table, status mapping, health, reflection, telemetry set up as in a service), on
  uvloop like the service, with a ConversationService whose GetConversation returns an empty
  response.

The load generator is this module's `load` process: CHANNELS grpc.aio channels, CONCURRENCY
requests in flight, for warm-up + duration seconds, the same requests for both servers (one real
API key, GetConversation over the seeded ids in turn). Figures: OK responses/s in the measured
window for each, their ratio (target >= 0.6), errors, latency percentiles.

    python -m bench.benchmarks.conversation_grpc baseline --port P --database-url URL
    python -m bench.benchmarks.conversation_grpc load --target HOST:PORT --api-key K --ids FILE \\
        --warmup W --duration D --concurrency C --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.core import Context, Result, read_json, register
from bench.procs import CpuWindow
from bench.stack import HOST, Stack, free_port, start_broker

TITLE = "GetConversation gRPC rate: conversation service vs empty-handler baseline"
TARGET_RATIO = 0.6
CONVERSATIONS = 500
MESSAGES = 30
CHANNELS = 4
CONCURRENCY = 64


# ------------------------------------------------------------------------------- processes


async def serve_baseline(port: int, database_url: str) -> None:
    from parlay.conversation.v1 import conversation_service_pb2 as cs
    from parlay.conversation.v1 import conversation_service_pb2_grpc as cs_grpc
    from parlay_kit.db import create_pool
    from parlay_kit.grpc_server import build_server
    from parlay_kit.telemetry import setup_telemetry
    from parlay_kit.tenancy import ApiKeyResolver

    class Empty(cs_grpc.ConversationServiceServicer):
        async def GetConversation(  # noqa: N802 - gRPC method name
            self, request: cs.GetConversationRequest, context: Any = None
        ) -> cs.GetConversationResponse:
            return cs.GetConversationResponse()

    setup_telemetry("conversation")  # as every service's runtime does
    pool = await create_pool(database_url, "tenancy", max_size=2)
    server = build_server(
        [(cs_grpc.add_ConversationServiceServicer_to_server, Empty())],
        resolver=ApiKeyResolver(pool),
        service_names=["parlay.conversation.v1.ConversationService"],
        host="127.0.0.1",
        port=port,
    )
    await server.start()
    print("READY", flush=True)
    await asyncio.Event().wait()


async def load(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    import grpc

    from parlay.conversation.v1 import conversation_service_pb2 as cs
    from parlay.conversation.v1 import conversation_service_pb2_grpc as cs_grpc

    requests = [cs.GetConversationRequest(conversation_id=i) for i in ids]
    metadata = (("authorization", f"Bearer {args.api_key}"),)
    channels = [grpc.aio.insecure_channel(args.target) for _ in range(args.channels)]
    stubs = [cs_grpc.ConversationServiceStub(c) for c in channels]
    for stub in stubs:  # connected and authorized before the clock starts
        await stub.GetConversation(requests[0], metadata=metadata, timeout=10)
    start = time.monotonic()
    measure_from = start + args.warmup
    end = measure_from + args.duration
    ok = errors = 0
    latencies: list[float] = []
    codes: dict[str, int] = {}

    async def worker(n: int) -> None:
        nonlocal ok, errors
        stub = stubs[n % len(stubs)]
        i = n
        while True:
            sent = time.monotonic()
            if sent >= end:
                return
            try:
                await stub.GetConversation(
                    requests[i % len(requests)], metadata=metadata, timeout=10
                )
                failed = ""
            except grpc.aio.AioRpcError as exc:
                failed = exc.code().name
            done = time.monotonic()
            i += args.concurrency
            if sent >= measure_from and done <= end:
                if failed:
                    errors += 1
                    codes[failed] = codes.get(failed, 0) + 1
                else:
                    ok += 1
                    latencies.append((done - sent) * 1000)

    await asyncio.gather(*(worker(n) for n in range(args.concurrency)))
    for c in channels:
        await c.close()
    latencies.sort()

    def q(p: float) -> float | None:
        return (
            round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)
            if (latencies)
            else None
        )

    return {
        "ok": ok,
        "errors": errors,
        "codes": codes,
        "rps": ok / args.duration,
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.benchmarks.conversation_grpc")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("baseline")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--database-url", required=True)
    lo = sub.add_parser("load")
    lo.add_argument("--target", required=True)
    lo.add_argument("--api-key", required=True)
    lo.add_argument("--ids", required=True)
    lo.add_argument("--warmup", type=float, default=2.0)
    lo.add_argument("--duration", type=float, default=10.0)
    lo.add_argument("--concurrency", type=int, default=CONCURRENCY)
    lo.add_argument("--channels", type=int, default=CHANNELS)
    lo.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.cmd == "baseline":
        try:  # served like the service: uvloop where installed (parlay_conversation.main)
            import uvloop
        except ImportError:  # pragma: no cover
            asyncio.run(serve_baseline(args.port, args.database_url))
        else:
            uvloop.run(serve_baseline(args.port, args.database_url))
    else:
        result = asyncio.run(load(args, json.loads(Path(args.ids).read_text())))
        Path(args.out).write_text(json.dumps(result))


# ------------------------------------------------------------------------------- seeding


def seeded_conversations(tenant: str) -> tuple[list[Any], list[Any]]:
    """(states, effects) of CONVERSATIONS conversations, folded by the service's own rules."""
    from parlay.gateway.v1 import gateway_events_pb2 as ge
    from parlay_conversation import domain

    t0 = datetime.now(UTC) - timedelta(hours=2)
    states, effects = [], []
    for c in range(CONVERSATIONS):
        customer = f"bench-customer-{c}"
        state = None
        events: list[domain.ConversationEvent] = []
        for i in range(MESSAGES):
            at = t0 + timedelta(seconds=c * 60 + i)
            if i % 3 != 2:
                msg = domain.InboundMessage(
                    tenant_id=tenant,
                    source_event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-grpc-{c}-{i}")),
                    channel="whatsapp",
                    channel_account_id="acc-bench",
                    address=f"1650{c:07d}",
                    provider_message_id=f"wamid.bench.{c}.{i}",
                    content=ge.MessageContent(
                        text=ge.TextContent(body=f"Message {i}: do you have this in blue, size M?")
                    ),
                    occurred_at=at,
                )
                decided = domain.decide_inbound(state, customer, msg)
            else:
                assert state is not None
                out = domain.Outbound(
                    message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-grpc-out-{c}-{i}")),
                    content=ge.OutboundContent(
                        text=ge.TextContent(body="Yes, blue in M is in stock. Want one?")
                    ),
                    sender="agent:ana",
                )
                decided, _ = domain.decide_send(
                    state, out, at=at, windows={}, event_id=str(uuid.uuid4())
                )
            for e in decided:
                state, produced = domain.apply_event(state, e)
                effects += produced
                events.append(e)
            if i % 3 == 2:
                assert state is not None
                status = domain.decide_status(
                    state,
                    message_id=out.message_id,
                    current_status="pending",
                    new_status="delivered",
                    provider_message_id=f"wamid.out.{c}.{i}",
                    status_at=at,
                    source_event_id=str(uuid.uuid4()),
                )
                for e in status:
                    state, produced = domain.apply_event(state, e)
                    effects += produced
        assert state is not None
        for n in range(2):
            note = domain.decide_note(
                state,
                note_id=f"note-{c}-{n}",
                author="agent:ana",
                text="VIP customer",
                at=t0,
                event_id=str(uuid.uuid4()),
            )
            state, produced = domain.apply_event(state, note[0])
            effects += produced
        states.append(state)
    return states, effects


async def seed(database_url: str, schema: str, tenant: str) -> list[str]:
    import asyncpg

    from parlay_conversation.readmodel import ConversationReadModel

    states, effects = await asyncio.to_thread(seeded_conversations, tenant)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await ConversationReadModel(schema).save(
                conn, {}, {s.conversation_id: s for s in states}, effects
            )
    finally:
        await conn.close()
    return [s.conversation_id for s in states]


# ------------------------------------------------------------------------------- benchmark


async def _api_key(database_url: str, run_id: str) -> tuple[str, str, str]:
    """A tenant and a real API key in the tenancy schema: (tenant_id, key, key_id)."""
    import asyncpg

    from parlay_kit import tenancy

    conn = await asyncpg.connect(database_url)
    try:
        await tenancy.migrate(conn)
        tenant = await tenancy.create_tenant(conn, f"bench {run_id}", f"bench-grpc-{run_id}")
        key = await tenancy.create_api_key(conn, tenant.tenant_id)
        return tenant.tenant_id, key.key, key.key_id
    finally:
        await conn.close()


async def _remove_tenant(database_url: str, tenant_id: str) -> None:
    """The run's tenant and key leave the tenancy tables with the run."""
    import asyncpg

    from parlay_kit.tenancy import TENANCY_SCHEMA

    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(
                f"DELETE FROM {TENANCY_SCHEMA}.api_keys WHERE tenant_id = $1", tenant_id
            )
            await conn.execute(
                f"DELETE FROM {TENANCY_SCHEMA}.tenants WHERE tenant_id = $1", tenant_id
            )
    finally:
        await conn.close()


async def _wait_serving(target: str, timeout: float = 60.0) -> None:
    from parlay_kit.dev import grpc_health

    deadline = time.monotonic() + timeout
    while await grpc_health(target, 1.0) != "SERVING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target} not SERVING after {timeout}s")
        await asyncio.sleep(0.1)


async def _run_load(
    ctx: Context, name: str, target: str, api_key: str, ids_file: Path, server_pid: int
) -> dict[str, Any]:
    opts = ctx.options
    out = ctx.path(f"{name}.json")
    child = ctx.procs.spawn(
        name,
        ctx.python_module(
            "bench.benchmarks.conversation_grpc",
            "load",
            "--target",
            target,
            "--api-key",
            api_key,
            "--ids",
            str(ids_file),
            "--warmup",
            str(opts.warmup),
            "--duration",
            str(opts.duration),
            "--out",
            str(out),
        ),
    )
    await asyncio.sleep(opts.warmup)  # the measured window starts after the warm-up
    window = CpuWindow({"server": server_pid, "loadgen": child.pid})
    window.start()
    code = await ctx.wait_exit(child, opts.warmup + opts.duration + 60)
    cpu = window.stop()
    if code != 0:
        raise RuntimeError(f"{name} load generator exited {code}: {child.log_tail()}")
    return read_json(out) | {"cpu": cpu}


@register("conversation-grpc", TITLE, order=41)
async def run(ctx: Context) -> Result:
    result = Result("conversation-grpc", TITLE)
    broker = await start_broker(ctx, "conv-grpc")
    stack = Stack(ctx, broker)
    tenant, api_key, _key_id = await _api_key(ctx.options.database_url, ctx.run_id)
    try:
        # The request tier as deployed (deploy/k8s: the gRPC deployment runs no projector; the
        # timeline projector has its own deployment): nothing else competes for its CPU.
        service = stack.start("conversation", extra_env={"PARLAY_PROJECTORS": "none"})
        await stack.wait_ready()
        ids = await seed(ctx.options.database_url, service.schema, tenant)
        ids_file = ctx.path("conversation-ids.json")
        ids_file.write_text(json.dumps(ids))

        port = free_port()
        baseline = ctx.procs.spawn(
            "grpc-baseline",
            ctx.python_module(
                "bench.benchmarks.conversation_grpc",
                "baseline",
                "--port",
                str(port),
                "--database-url",
                ctx.options.database_url,
            ),
        )
        await _wait_serving(f"{HOST}:{port}")
        base = await _run_load(
            ctx, "load-baseline", f"{HOST}:{port}", api_key, ids_file, baseline.pid
        )
        ctx.procs.stop(baseline)
        real = await _run_load(
            ctx,
            "load-conversation",
            f"{HOST}:{service.grpc_port}",
            api_key,
            ids_file,
            service.child.pid,
        )
        stack.check_alive()
    finally:
        await stack.close()
        await _remove_tenant(ctx.options.database_url, tenant)
    if base["errors"] or real["errors"] or not base["ok"] or not real["ok"]:
        raise RuntimeError(f"errors: baseline {base['codes']}, service {real['codes']}")
    ratio = real["rps"] / base["rps"]
    result.add("baseline", "empty handler (kit server, auth)", round(base["rps"]), "req/s")
    result.add(
        "service",
        f"GetConversation ({MESSAGES} messages, 2 notes)",
        round(real["rps"]),
        "req/s",
    )
    result.add(
        "ratio",
        "service / baseline",
        round(ratio, 2),
        "",
        target=f">= {TARGET_RATIO}",
        ok=ratio >= TARGET_RATIO,
        fmt=".2f",
    )
    result.add("p99", "GetConversation p99", real["p99_ms"], "ms", fmt=".1f")
    result.details.update(
        {
            "baseline": base,
            "service": real,
            "conversations": CONVERSATIONS,
            "messages_per_conversation": MESSAGES,
            "concurrency": CONCURRENCY,
            "channels": CHANNELS,
        }
    )
    return result


if __name__ == "__main__":
    main()
