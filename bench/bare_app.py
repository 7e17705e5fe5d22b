"""The baseline for the ingest benchmark: a bare FastAPI endpoint on the gateway's webhook route
that reads the raw body, checks X-Hub-Signature-256 (HMAC-SHA256, constant-time compare) and
answers 200 — nothing stored, no account lookup.

Run as its own process: ``python -m bench.bare_app --port N``. It is served exactly as the
gateway serves its HTTP app — the gateway's own `HttpServer` (same uvicorn.Config: 1 worker,
lifespan off, no access log, no server header; loop and HTTP implementation chosen the same way),
started under `asyncio.run` like the gateway's `main()`, with the gateway's log configuration —
so the ratio gateway/bare measures what the gateway does per request, not server settings.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import os
import signal
from typing import Any

from fastapi import FastAPI, Request, Response

from bench.payloads import APP_SECRET

log = logging.getLogger("bench.bare_app")


def create_app(app_secret: str) -> FastAPI:
    secret = app_secret.encode()
    app = FastAPI(title="bench bare endpoint", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # The leanest FastAPI endpoint: no declared parameters to solve, just the request.
    @app.post("/webhooks/{channel}/{channel_account_id}")
    async def receive(request: Request) -> Response:
        body = await request.body()
        provided = request.headers.get("x-hub-signature-256", "")
        if not provided:
            return Response("missing signature", status_code=401, media_type="text/plain")
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), provided.encode("latin-1", "replace")):
            return Response("bad signature", status_code=403, media_type="text/plain")
        return Response(b"", status_code=200, media_type="text/plain")

    return app


def _configure_logging(level: str) -> None:
    try:
        from parlay_kit.runtime import configure_logging
    except ImportError:  # pragma: no cover - kit not installed
        logging.basicConfig(level=level)
    else:
        configure_logging(level)


async def _serve_like_gateway(app: Any, host: str, port: int) -> str:
    """Serve with the gateway's HttpServer (a fallback mirrors its uvicorn.Config)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        from parlay_gateway.http_server import HttpServer
    except ImportError:
        HttpServer = None  # noqa: N806
    if HttpServer is not None:
        server = HttpServer(app, host, port, graceful_shutdown_seconds=10.0)
        await server.run(stop)
        return "parlay_gateway.http_server.HttpServer"
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server_ = uvicorn.Server(config)
    serving = asyncio.create_task(server_.serve())
    await stop.wait()
    server_.should_exit = True
    await serving
    return "uvicorn.Server (mirrored config)"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--secret", default=os.environ.get("BENCH_APP_SECRET", APP_SECRET))
    parser.add_argument("--log-level", default=os.environ.get("PARLAY_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop the gateway process runs on (the bench detects it)",
    )
    args = parser.parse_args()
    _configure_logging(args.log_level)
    log.info("bare endpoint on %s:%d, %s event loop", args.host, args.port, args.loop)
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_serve_like_gateway(create_app(args.secret), args.host, args.port))


if __name__ == "__main__":
    main()
