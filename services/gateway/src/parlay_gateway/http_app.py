"""The internet-facing HTTP entry point: webhooks, /healthz, /metrics.

POST /webhooks/<channel>/<channel_account_id>, in this order:
  413 Content-Length above the limit · 404 unknown channel or account · 413 body above the limit
  while reading · adapter.verify on the raw bytes (401 missing / 403 wrong signature) ·
  adapter.check_body (400 malformed, nothing stored) · append WebhookReceived via group commit ·
  200 once durable (duplicates too) · 503 if it cannot be stored (the provider retries).
GET  /webhooks/<channel>/<channel_account_id>: the adapter's subscription handshake.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from parlay_gateway import metrics
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels.base import ChannelAdapter, InboundRequest, Reply, WebhookRejected
from parlay_gateway.channels.registry import AdapterRegistry
from parlay_gateway.ingest import Appender, build_webhook_event
from parlay_kit import telemetry
from parlay_kit.envelope import utcnow

log = logging.getLogger(__name__)

WEBHOOK_ROUTE = "/webhooks/{channel}/{channel_account_id}"

AccountLookup = Callable[[str], Awaitable[ChannelAccount | None]]


class _Unavailable(Exception):
    """A dependency (Postgres) failed: answer 503 so the provider retries."""


def _headers(request: Request) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}


def _path_with_query(request: Request) -> str:
    query = request.scope.get("query_string", b"")
    path: str = request.scope["path"]
    return f"{path}?{query.decode('latin-1')}" if query else path


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as it grows past `limit`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_declared_length(headers: Mapping[str, str], limit: int) -> None:
    declared = headers.get("content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        raise WebhookRejected(400, "Content-Length is not a number") from None
    if length > limit:
        raise WebhookRejected(413, f"body larger than {limit} bytes")


def _reply(reply: Reply) -> Response:
    return Response(content=reply.body, status_code=reply.status, media_type=reply.media_type)


def create_app(
    *,
    lookup_account: AccountLookup,
    registry: AdapterRegistry,
    appender: Appender,
    max_body_bytes: int = 1_048_576,
    ingest_timeout_seconds: float = 10.0,
    public_url: str = "",
) -> FastAPI:
    app = FastAPI(
        title="Parlay gateway",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's native telemetry (and the generic OpenTelemetry ASGI middleware) would cost
        # several times the webhook handler and record the query string, i.e. Meta's
        # hub.verify_token, on spans. The webhook routes get their own span (`_traced`).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )

    def rejected(
        request: Request, channel: str, account_id: str, method: str, exc: WebhookRejected
    ) -> Response:
        metrics.WEBHOOK_REQUESTS.labels(channel, method, str(exc.status)).inc()
        client = request.client.host if request.client else ""
        fields = {
            "channel": channel,
            "channel_account_id": account_id,
            "method": method,
            "status": exc.status,
            "reason": exc.reason,
            "client": client,
        }
        log.warning(
            "webhook rejected " + " ".join(f"{k}=%s" for k in fields),
            *fields.values(),
            extra={"webhook": fields},
        )
        return Response(content=exc.reason, status_code=exc.status, media_type="text/plain")

    async def account_for(
        adapter: ChannelAdapter | None, channel: str, channel_account_id: str
    ) -> tuple[ChannelAdapter, ChannelAccount]:
        if adapter is None:
            raise WebhookRejected(404, f"unknown channel {channel[:32]!r}")
        try:
            account = await lookup_account(channel_account_id)
        except Exception as exc:
            raise _Unavailable(f"account lookup failed: {exc!r}") from exc
        # An account of another channel is not found on this channel's route.
        if account is None or account.channel != adapter.channel:
            raise WebhookRejected(404, "unknown channel account")
        return adapter, account

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The webhook routes are plain Starlette endpoints: FastAPI's parameter solving and
    # validation would cost more than everything else the hot path does.
    async def handshake(request: Request) -> Response:
        channel: str = request.path_params["channel"]
        channel_account_id: str = request.path_params["channel_account_id"]
        adapter = registry.get(channel)
        label = adapter.channel if adapter else "other"
        try:
            adapter, account = await account_for(adapter, channel, channel_account_id)
            reply = adapter.handshake(dict(request.query_params), account)
        except WebhookRejected as exc:
            return rejected(request, label, channel_account_id, "GET", exc)
        except _Unavailable as exc:
            log.error("webhook handshake unavailable channel=%s: %s", label, exc)
            metrics.WEBHOOK_REQUESTS.labels(label, "GET", "503").inc()
            return Response("temporarily unavailable", status_code=503, media_type="text/plain")
        metrics.WEBHOOK_REQUESTS.labels(label, "GET", str(reply.status)).inc()
        return _reply(reply)

    async def receive(request: Request) -> Response:
        started = time.perf_counter()
        channel: str = request.path_params["channel"]
        channel_account_id: str = request.path_params["channel_account_id"]
        adapter = registry.get(channel)
        label = adapter.channel if adapter else "other"
        try:
            headers = _headers(request)
            _check_declared_length(headers, max_body_bytes)
            adapter, account = await account_for(adapter, channel, channel_account_id)
            inbound = InboundRequest(
                method="POST",
                path=_path_with_query(request),
                headers=headers,
                body=await _read_body(request, max_body_bytes),
                query=dict(request.query_params),
                public_url=public_url,
            )
            adapter.verify(inbound, account)  # before anything looks at the body
            adapter.check_body(inbound)
            event = build_webhook_event(
                adapter,
                inbound,
                account,
                received_at=utcnow(),
                traceparent=telemetry.current_traceparent(),
            )
            try:
                async with asyncio.timeout(ingest_timeout_seconds):
                    stored = await appender.append([event])
            except Exception as exc:
                raise _Unavailable(f"raw webhook not stored: {exc!r}") from exc
        except WebhookRejected as exc:
            return rejected(request, label, channel_account_id, "POST", exc)
        except _Unavailable as exc:
            log.error(
                "webhook unavailable channel=%s channel_account_id=%s: %s",
                label,
                channel_account_id,
                exc,
            )
            metrics.WEBHOOK_REQUESTS.labels(label, "POST", "503").inc()
            return Response(
                "temporarily unavailable",
                status_code=503,
                media_type="text/plain",
                headers={"Retry-After": "5"},
            )
        if stored and stored[0].duplicate:
            metrics.WEBHOOK_DUPLICATES.labels(label).inc()
        metrics.WEBHOOK_INGEST_SECONDS.labels(label).observe(time.perf_counter() - started)
        ack = adapter.ack()
        metrics.WEBHOOK_REQUESTS.labels(label, "POST", str(ack.status)).inc()
        return _reply(ack)

    tracer = telemetry.get_tracer("parlay_gateway.http")
    app.add_route(WEBHOOK_ROUTE, _traced(tracer, "GET", handshake), methods=["GET"])
    app.add_route(WEBHOOK_ROUTE, _traced(tracer, "POST", receive), methods=["POST"])
    return app


def _traced(
    tracer: trace.Tracer, method: str, endpoint: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """One SERVER span per webhook request, continuing the caller's W3C trace context; it is
    current while the handler runs, so the stored event carries its traceparent."""
    name = f"{method} {WEBHOOK_ROUTE}"

    async def handler(request: Request) -> Response:
        parent = telemetry.extract_context(_headers(request))
        with tracer.start_as_current_span(
            name,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": WEBHOOK_ROUTE,
                "parlay.channel": request.path_params.get("channel", ""),
            },
        ) as span:
            response = await endpoint(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return response

    return handler
