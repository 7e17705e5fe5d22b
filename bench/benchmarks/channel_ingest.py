"""Webhook ingest throughput per channel family, next to the bare baseline.

The same setup as `ingest` (the real gateway as its own process with a fresh broker and schema;
`concurrency` keep-alive connections in a separate closed-loop load generator; warm-up + measured
window), once per family of webhook verification:

- JSON-signed:  Messenger (`X-Hub-Signature-256` over the JSON body; one text message each)
- form-signed:  Twilio SMS (`X-Twilio-Signature` over URL + sorted form parameters)
- XML:          WeChat (query-string SHA1 signature with a fresh timestamp; XML text message)

and the bare FastAPI endpoint of `ingest` (HMAC check only) as the baseline. Every request is
distinct (its own provider message id) and built, signed, before the clock starts.

    uv run python -m bench --only channel_ingest
    python -m bench.benchmarks.channel_ingest loadgen ...   (the load generator child)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.benchmarks.ingest import event_loop_of, measure_bare
from bench.core import Context, Result, read_json, register
from bench.httpclient import Connection, HttpError, get_status
from bench.procs import ChildExited, CpuWindow
from bench.stack import HOST, Stack, start_broker

TITLE = "Webhook ingest per channel family (JSON-signed, form-signed, XML) vs bare endpoint"
FAMILIES = {"messenger": "JSON-signed", "twilio": "form-signed", "wechat": "XML"}
META_SECRET = "bench-meta-app-secret"
TWILIO_TOKEN = "bench-twilio-auth-token"
WECHAT_TOKEN = "bench-wechat-token"
PUBLIC_URL = "https://bench.example.com"
PREGENERATE_PER_SECOND = 8_000


# ------------------------------------------------------------------------------------------
# Requests (pure)
# ------------------------------------------------------------------------------------------


def _http(host: str, target: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


def build_request(family: str, host: str, path: str, run_id: str, seq: int) -> bytes:
    if family == "messenger":
        body = json.dumps(
            {
                "object": "page",
                "entry": [
                    {
                        "id": "106540352242922",
                        "time": 1717430400000,
                        "messaging": [
                            {
                                "sender": {"id": f"{7_000_000 + seq % 5000}"},
                                "recipient": {"id": "106540352242922"},
                                "timestamp": 1717430400000,
                                "message": {"mid": f"m_{run_id}_{seq}", "text": f"Hi {seq}"},
                            }
                        ],
                    }
                ],
            },
            separators=(",", ":"),
        ).encode()
        sig = hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return _http(
            host,
            path,
            body,
            {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"},
        )
    if family == "twilio":
        sid = f"SM{run_id}{seq:024d}"
        params = [
            ("ToCountry", "US"),
            ("SmsMessageSid", sid),
            ("NumMedia", "0"),
            ("SmsSid", sid),
            ("SmsStatus", "received"),
            ("Body", f"Is order {seq} ready?"),
            ("To", "+15005550006"),
            ("NumSegments", "1"),
            ("MessageSid", sid),
            ("AccountSid", "AC" + "0" * 32),
            ("From", f"+1415{seq % 5000:07d}"),
            ("ApiVersion", "2010-04-01"),
        ]
        signed = PUBLIC_URL + path + "".join(k + v for k, v in sorted(params))
        sig = base64.b64encode(
            hmac.new(TWILIO_TOKEN.encode(), signed.encode(), hashlib.sha1).digest()
        ).decode()
        return _http(
            host,
            path,
            urlencode(params).encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
        )
    if family == "wechat":
        timestamp, nonce = str(int(time.time())), str(100000 + seq)
        signature = hashlib.sha1("".join(sorted([WECHAT_TOKEN, timestamp, nonce])).encode())
        query = urlencode(
            {"signature": signature.hexdigest(), "timestamp": timestamp, "nonce": nonce}
        )
        body = (
            "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
            f"<FromUserName><![CDATA[oBench{seq % 5000}]]></FromUserName>"
            f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[Hello {seq}]]></Content><MsgId>{run_id_number(run_id)}{seq:09d}</MsgId></xml>"
        ).encode()
        return _http(host, f"{path}?{query}", body, {"Content-Type": "text/xml"})
    raise ValueError(family)


def run_id_number(run_id: str) -> int:
    return int(hashlib.sha1(run_id.encode()).hexdigest()[:8], 16)


def accounts_file(path: Path, tenant: str, ids: dict[str, str]) -> Path:
    creds = {
        "messenger": {"app_secret": META_SECRET, "verify_token": "v", "access_token": "a"},
        "twilio": {"account_sid": "AC" + "0" * 32, "auth_token": TWILIO_TOKEN},
        "wechat": {"token": WECHAT_TOKEN, "app_id": "wxbench", "app_secret": "s"},
    }
    settings = {"twilio": {"public_url": PUBLIC_URL}, "wechat": {"max_clock_skew_seconds": "900"}}
    path.write_text(
        json.dumps(
            {
                "channel_accounts": [
                    {
                        "tenant_id": tenant,
                        "channel_account_id": ids[family],
                        "channel": family,
                        "credentials": creds[family],
                        "settings": settings.get(family, {}),
                    }
                    for family in FAMILIES
                ]
            }
        )
    )
    return path


# ------------------------------------------------------------------------------------------
# The load generator child (closed loop, like bench.loadgen closed)
# ------------------------------------------------------------------------------------------


async def _loadgen(args: argparse.Namespace) -> dict[str, Any]:
    from bench.loadgen import _percentiles, _sleep_until, _wait_go

    host = f"{args.host}:{args.port}"
    requests = [
        build_request(args.family, host, args.path, args.run_id, i) for i in range(args.pregenerate)
    ]
    requests.reverse()
    extra = args.pregenerate
    conns = [Connection(args.host, args.port) for _ in range(args.concurrency)]
    await asyncio.gather(*(c.connect() for c in conns))
    t0 = await _wait_go()
    await _sleep_until(t0)
    t_measure, t_end = t0 + args.warmup, t0 + args.warmup + args.duration
    window: Counter[str] = Counter()
    warmup: Counter[str] = Counter()
    latencies: list[float] = []
    built = 0

    async def worker(conn: Connection) -> None:
        nonlocal extra, built
        while (start := time.monotonic()) < t_end:
            if requests:
                data = requests.pop()
            else:
                data = build_request(args.family, host, args.path, args.run_id, extra)
                extra += 1
                built += 1
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
    for c in conns:
        c.close()
    ok = window.get("200", 0)
    return {
        "requests_per_second": ok / args.duration,
        "ok": ok,
        "errors": sum(v for k, v in window.items() if k != "200"),
        "status_counts": dict(window),
        "warmup_status_counts": dict(warmup),
        "latency_seconds": _percentiles(latencies),
        "built_on_the_fly": built,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.benchmarks.channel_ingest")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("loadgen")
    g.add_argument("--host", default=HOST)
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--path", required=True)
    g.add_argument("--family", choices=sorted(FAMILIES), required=True)
    g.add_argument("--run-id", required=True)
    g.add_argument("--concurrency", type=int, default=64)
    g.add_argument("--warmup", type=float, default=2.0)
    g.add_argument("--duration", type=float, default=10.0)
    g.add_argument("--pregenerate", type=int, default=50_000)
    g.add_argument("--out", required=True)
    args = p.parse_args(argv)
    from bench.loadgen import _use_uvloop

    loop = _use_uvloop()
    result = asyncio.run(_loadgen(args))
    result["client_loop"] = loop
    Path(args.out).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------


async def _measure(ctx: Context, family: str, port: int, path: str, server_pid: int) -> dict:
    opts = ctx.options
    out = ctx.path(f"channel-{family}.json")
    child = ctx.procs.spawn(
        f"loadgen-{family}",
        ctx.python_module(
            "bench.benchmarks.channel_ingest",
            "loadgen",
            "--port",
            str(port),
            "--path",
            path,
            "--family",
            family,
            "--run-id",
            ctx.run_id,
            "--concurrency",
            str(opts.concurrency),
            "--warmup",
            str(opts.warmup),
            "--duration",
            str(opts.duration),
            "--pregenerate",
            str(int(PREGENERATE_PER_SECOND * (opts.warmup + opts.duration))),
            "--out",
            str(out),
        ),
        stdin=-1,
        stdout_pipe=True,
    )
    try:
        t0 = await ctx.run_ready_go([child], ready_timeout=120)
        cpu = CpuWindow({"server": server_pid, "loadgen": child.pid})
        await asyncio.sleep(max(0.0, t0 + opts.warmup - time.monotonic()))
        cpu.start()
        await asyncio.sleep(max(0.0, t0 + opts.warmup + opts.duration - time.monotonic()))
        window = cpu.stop()
        if await ctx.wait_exit(child, 60) != 0:
            raise ChildExited(child)
        result = dict(read_json(out))
        server_cpu = window.get("server_cpu_seconds")
        if server_cpu is not None and result.get("ok"):
            result["server_cpu_ms_per_request"] = 1000 * server_cpu / result["ok"]
        return result
    finally:
        ctx.procs.stop(child)


@register("channel_ingest", TITLE, order=15)
async def run(ctx: Context) -> Result:
    result = Result("channel_ingest", TITLE)
    broker = await start_broker(ctx, "broker-channels")
    stack = Stack(ctx, broker)
    tenant = f"bench{ctx.run_id}"
    ids = {family: f"bench-{family[:4]}-{ctx.run_id}" for family in FAMILIES}
    figures: dict[str, dict[str, Any]] = {}
    try:
        accounts = accounts_file(ctx.path("channel-accounts.json"), tenant, ids)
        gateway = stack.start(
            "gateway",
            extra_env={"PARLAY_CHANNEL_ACCOUNTS_FILE": str(accounts)},
        )
        await stack.wait_ready()
        assert gateway.http_port is not None
        loop = event_loop_of(gateway.child.pid)
        for family in FAMILIES:
            path = f"/webhooks/{family}/{ids[family]}"
            probe = Connection(HOST, gateway.http_port)
            try:
                status = await probe.request(
                    build_request(family, f"{HOST}:{gateway.http_port}", path, ctx.run_id + "p", 0)
                )
            finally:
                probe.close()
            if status != 200:
                raise RuntimeError(f"gateway answered {status} to a signed {family} probe")
            figures[family] = await _measure(
                ctx, family, gateway.http_port, path, gateway.child.pid
            )
            stack.check_alive()
        assert await get_status(HOST, gateway.http_port, "/healthz") == 200
    finally:
        await stack.close()
        ctx.procs.stop(broker.child)
    bare = await measure_bare(ctx, loop)
    result.details = {"bare": bare, **figures, "server_loop": loop}
    bare_rps = bare["requests_per_second"]
    result.add("bare_rps", "bare FastAPI endpoint (HMAC only)", bare_rps, "req/s")
    for family, label in FAMILIES.items():
        load = figures[family]
        rps = load["requests_per_second"]
        result.add(f"{family}_rps", f"{label}: {family} (durable in Postgres)", rps, "req/s")
        result.add(
            f"{family}_ratio",
            f"{label}: ratio {family} / bare",
            rps / bare_rps if bare_rps else None,
            fmt=".2f",
        )
        result.add(
            f"{family}_errors",
            f"{label}: non-200 answers",
            load["errors"],
            target="0",
            ok=load["errors"] == 0,
        )
        lat = load.get("latency_seconds") or {}
        if lat:
            result.add(
                f"{family}_p99_ms",
                f"{label}: response time p99",
                lat["p99"] * 1000,
                "ms",
                fmt=".1f",
            )
    result.notes.append(
        f"one gateway process ({loop} loop), one account per family, "
        f"{ctx.options.concurrency} keep-alive connections, distinct signed requests"
    )
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
