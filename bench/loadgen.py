"""Load generator, run as its own process: ``python -m bench.loadgen {closed|open} ...``.

Both modes build every request (body, signature, headers) before the clock starts, print
``READY`` and wait for ``GO <t0>`` on stdin (t0 on the machine-wide monotonic clock, so the
orchestrator can start a poller and this generator together), then write a JSON result file.

closed  `concurrency` keep-alive connections, each sending its next request as soon as the
        previous answer arrives, for warm-up + duration seconds. Counts the requests completed
        inside the measured window (after warm-up) by status: throughput.
open    the schedule file's messages, each sent at t0 + offset whatever the server does
        (open loop: a send never waits for an earlier answer; it takes an idle keep-alive
        connection or opens another). Records per message the scheduled time, the time the
        request was written and the time the answer arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.httpclient import Connection, HttpError
from bench.payloads import body_for, distinct_messages, http_request, read_schedule


def _use_uvloop() -> str:
    # The generator is our tool, not the system under test: make it as cheap as possible.
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    except ImportError:  # pragma: no cover
        return "asyncio"


async def _wait_go() -> float:
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    parts = line.split()
    if len(parts) != 2 or parts[0] != "GO":
        raise SystemExit(f"expected 'GO <t0>' on stdin, got {line!r}")
    return float(parts[1])


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    n = len(values)

    def q(p: float) -> float:
        return values[min(n - 1, int(p * n))]

    return {"p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": values[-1]}


# ------------------------------------------------------------------------------------------
# closed loop: throughput
# ------------------------------------------------------------------------------------------


async def run_closed(args: argparse.Namespace) -> dict[str, Any]:
    host_header = f"{args.host}:{args.port}"
    t_gen = time.monotonic()
    stream = distinct_messages(args.run_id)
    requests = [
        http_request(host_header, args.path, body_for(next(stream)), args.secret)
        for _ in range(args.pregenerate)
    ]
    generation_seconds = time.monotonic() - t_gen
    on_the_fly = 0

    def next_request() -> bytes:
        nonlocal on_the_fly
        if requests:
            return requests.pop()
        on_the_fly += 1  # pool exhausted: still distinct and signed, built now
        return http_request(host_header, args.path, body_for(next(stream)), args.secret)

    conns = [Connection(args.host, args.port) for _ in range(args.concurrency)]
    await asyncio.gather(*(c.connect() for c in conns))

    t0 = await _wait_go()
    await _sleep_until(t0)
    t_measure = t0 + args.warmup
    t_end = t_measure + args.duration
    window: Counter[str] = Counter()
    warmup: Counter[str] = Counter()
    latencies: list[float] = []
    sent = 0

    async def worker(conn: Connection) -> None:
        nonlocal sent
        while True:
            start = time.monotonic()
            if start >= t_end:
                return
            data = next_request()
            sent += 1
            try:
                status = str(await conn.request(data))
            except HttpError:
                status = "connection error"
            done = time.monotonic()
            if t_measure <= done < t_end:
                window[status] += 1
                latencies.append(done - start)
            elif done < t_measure:
                warmup[status] += 1

    await asyncio.gather(*(worker(c) for c in conns))
    finished = time.monotonic()
    for c in conns:
        c.close()
    ok = window.get("200", 0)
    return {
        "mode": "closed",
        "concurrency": args.concurrency,
        "warmup_seconds": args.warmup,
        "duration_seconds": args.duration,
        "requests_sent": sent,
        "ok": ok,
        "errors": sum(v for k, v in window.items() if k != "200"),
        "status_counts": dict(window),
        "warmup_status_counts": dict(warmup),
        "requests_per_second": ok / args.duration,
        "latency_seconds": _percentiles(latencies),
        "pregenerated": args.pregenerate,
        "built_on_the_fly": on_the_fly,
        "generation_seconds": generation_seconds,
        "drain_seconds": finished - t_end,
    }


# ------------------------------------------------------------------------------------------
# open loop: fixed rate
# ------------------------------------------------------------------------------------------


async def run_open(args: argparse.Namespace) -> dict[str, Any]:
    host_header = f"{args.host}:{args.port}"
    schedule = read_schedule(Path(args.schedule))
    requests = [http_request(host_header, args.path, body_for(m), args.secret) for m in schedule]

    idle: list[Connection] = [Connection(args.host, args.port) for _ in range(args.connections)]
    await asyncio.gather(*(c.connect() for c in idle))
    opened = len(idle)
    freed = asyncio.Condition()
    # per message: [seq, t_scheduled, t_sent, t_answered, status]
    records: list[list[Any]] = []
    pending: set[asyncio.Task[None]] = set()

    t0 = await _wait_go()

    async def send(seq: int, scheduled: float, data: bytes) -> None:
        nonlocal opened
        if idle:
            conn = idle.pop()
        elif opened < args.max_connections:
            opened += 1
            conn = Connection(args.host, args.port)
        else:
            async with freed:
                await freed.wait_for(lambda: bool(idle))
                conn = idle.pop()
        sent = time.monotonic()
        try:
            status: int | str = await conn.request(data)
        except HttpError:
            status = "connection error"
        answered = time.monotonic()
        records.append([seq, scheduled, sent, answered, status])
        idle.append(conn)
        async with freed:
            freed.notify()

    for message, data in zip(schedule, requests, strict=True):
        scheduled = t0 + message.offset
        await _sleep_until(scheduled)
        task = asyncio.create_task(send(message.seq, scheduled, data))
        pending.add(task)
        task.add_done_callback(pending.discard)
    t_last = time.monotonic()
    if pending:
        await asyncio.wait(pending, timeout=args.drain_timeout)
    for c in idle:
        c.close()
    records.sort()
    lags = [r[2] - r[1] for r in records]
    return {
        "mode": "open",
        "scheduled": len(schedule),
        "answered": len(records),
        "connections_opened": opened,
        "send_lag_seconds": _percentiles(lags),
        "last_send_late_seconds": t_last - (t0 + schedule[-1].offset),
        "records": records,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("closed", "open"):
        p = sub.add_parser(name)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--path", required=True)
        p.add_argument("--secret", required=True)
        p.add_argument("--out", required=True)
        if name == "closed":
            p.add_argument("--run-id", required=True)
            p.add_argument("--concurrency", type=int, default=64)
            p.add_argument("--warmup", type=float, default=2.0)
            p.add_argument("--duration", type=float, default=10.0)
            p.add_argument("--pregenerate", type=int, default=100_000)
        else:
            p.add_argument("--schedule", required=True)
            p.add_argument("--connections", type=int, default=32)
            p.add_argument("--max-connections", type=int, default=512)
            p.add_argument("--drain-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    loop_name = _use_uvloop()
    result = asyncio.run(run_closed(args) if args.mode == "closed" else run_open(args))
    result["client_loop"] = loop_name
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
