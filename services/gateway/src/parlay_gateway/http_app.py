"""The internet-facing HTTP entry point: webhooks, /healthz, /metrics.

POST /webhooks/<channel>/<channel_account_id>, in this order:
  413 Content-Length above the limit · 404 unknown channel or account · 413 body above the limit
  while reading · adapter.verify on the raw bytes (401 missing / 403 wrong signature) ·
  adapter.check_body (400 malformed, nothing stored) · append WebhookReceived via group commit ·
  200 once durable (duplicates too) · 503 if it cannot be stored (the provider retries).
GET  /webhooks/<channel>/<channel_account_id>: the adapter's subscription handshake.

The POST is the hot path (every provider delivery) and is served as a lean ASGI path: the app's
`__call__` recognises it before FastAPI/Starlette's middleware stack and router, which cost more
per request than the verification itself. Everything else (GET handshakes, /healthz, /metrics,
web chat, unusual paths) goes through FastAPI; the POST route is also registered there, so a
request the fast path does not take (e.g. under a root_path) is answered the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import QueryParams
from starlette.responses import PlainTextResponse

from parlay_gateway import metrics
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels.base import ChannelAdapter, InboundRequest, Reply, WebhookRejected
from parlay_gateway.channels.registry import AdapterRegistry
from parlay_gateway.ingest import Appender, build_webhook_event
from parlay_kit import telemetry
from parlay_kit.envelope import utcnow

log = logging.getLogger(__name__)

WEBHOOK_ROUTE = "/webhooks/{channel}/{channel_account_id}"

_WEBHOOK_PREFIX = "/webhooks/"

AccountLookup = Callable[[str], Awaitable[ChannelAccount | None]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Unavailable(Exception):
    """A dependency (Postgres) failed: answer 503 so the provider retries."""


class _ClientGone(Exception):
    """The client disconnected before its body arrived: there is no one to answer."""


def _scope_headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _headers(request: Request) -> dict[str, str]:
    return _scope_headers(request.scope)


def _path_with_query(scope: Scope) -> str:
    query = scope.get("query_string", b"")
    path: str = scope["path"]
    return f"{path}?{query.decode('latin-1')}" if query else path


def _query(scope: Scope) -> dict[str, str]:
    query: bytes = scope.get("query_string", b"")
    # Starlette's parsing (last value of a repeated key wins), only when there is a query.
    return dict(QueryParams(query)) if query else {}


def webhook_path_params(scope: Scope) -> tuple[str, str] | None:
    """(channel, channel_account_id) when the request is exactly the webhook route's path as
    Starlette would match it (two non-empty segments after /webhooks/); None otherwise."""
    path: str = scope["path"]
    if scope.get("root_path") or not path.startswith(_WEBHOOK_PREFIX):
        return None
    channel, slash, account_id = path[len(_WEBHOOK_PREFIX) :].partition("/")
    if not channel or not slash or not account_id or "/" in account_id:
        return None
    return channel, account_id


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as it grows past `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise WebhookRejected(413, f"body larger than {limit} bytes")
            if not message.get("more_body", False):
                if not chunks:
                    return chunk  # the usual case: the whole body in one message
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)
        elif message["type"] == "http.disconnect":
            raise _ClientGone()


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


class _Replies:
    """Adapter replies as ready-made responses: a Reply is an immutable value and so is the
    Starlette response built from it (sending it does not change it), so build each once."""

    def __init__(self) -> None:
        self._cache: dict[Reply, Response] = {}

    def __call__(self, reply: Reply) -> Response:
        response = self._cache.get(reply)
        if response is None:
            response = _reply(reply)
            if len(self._cache) < 256:  # acks are a handful of constants; never grow unbounded
                self._cache[reply] = response
        return response


class GatewayApp(FastAPI):
    """The gateway's FastAPI app; webhook POSTs take the lean path (`webhook_post`) when set."""

    webhook_post: Callable[[Scope, Receive, Send, str, str], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.webhook_post is not None and scope["type"] == "http" and scope["method"] == "POST":
            params = webhook_path_params(scope)
            if params is not None:
                await self.webhook_post(scope, receive, send, *params)
                return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]


class _Counters:
    """Labelled Prometheus children, looked up once per label set: `labels()` takes a lock and
    builds a key each time, which is measurable on a path that costs a few dozen microseconds."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._ingest: dict[str, Any] = {}

    def request(self, channel: str, method: str, status: int) -> None:
        key = (channel, method, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = metrics.WEBHOOK_REQUESTS.labels(
                channel, method, str(status)
            )
        child.inc()

    def ingest_seconds(self, channel: str, seconds: float) -> None:
        child = self._ingest.get(channel)
        if child is None:
            child = self._ingest[channel] = metrics.WEBHOOK_INGEST_SECONDS.labels(channel)
        child.observe(seconds)


def create_app(
    *,
    lookup_account: AccountLookup,
    registry: AdapterRegistry,
    appender: Appender,
    max_body_bytes: int = 1_048_576,
    ingest_timeout_seconds: float = 10.0,
    public_url: str = "",
) -> GatewayApp:
    app = GatewayApp(
        title="Parlay gateway",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's native telemetry (and the generic OpenTelemetry ASGI middleware) would cost
        # several times the webhook handler and record the query string, i.e. Meta's
        # hub.verify_token, on spans. The webhook routes get their own span (`_traced`).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    counters = _Counters()
    replies = _Replies()
    tracer = telemetry.get_tracer("parlay_gateway.http")

    def rejected(
        scope: Scope, channel: str, account_id: str, method: str, exc: WebhookRejected
    ) -> Response:
        counters.request(channel, method, exc.status)
        client = scope.get("client")
        fields = {
            "channel": channel,
            "channel_account_id": account_id,
            "method": method,
            "status": exc.status,
            "reason": exc.reason,
            "client": client[0] if client else "",
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
            return rejected(request.scope, label, channel_account_id, "GET", exc)
        except _Unavailable as exc:
            log.error("webhook handshake unavailable channel=%s: %s", label, exc)
            counters.request(label, "GET", 503)
            return Response("temporarily unavailable", status_code=503, media_type="text/plain")
        counters.request(label, "GET", reply.status)
        return _reply(reply)

    async def ingest(
        scope: Scope,
        receive: Receive,
        headers: dict[str, str],
        channel: str,
        channel_account_id: str,
        traceparent: str | None,
    ) -> Response:
        """The POST, on plain ASGI values. `traceparent` None: take the current span's."""
        started = time.perf_counter()
        adapter = registry.get(channel)
        label = adapter.channel if adapter else "other"
        try:
            _check_declared_length(headers, max_body_bytes)
            adapter, account = await account_for(adapter, channel, channel_account_id)
            inbound = InboundRequest(
                method="POST",
                path=_path_with_query(scope),
                headers=headers,
                body=await _read_body(receive, max_body_bytes),
                query=_query(scope),
                public_url=public_url,
            )
            adapter.verify(inbound, account)  # before anything looks at the body
            adapter.check_body(inbound)
            event = build_webhook_event(
                adapter,
                inbound,
                account,
                received_at=utcnow(),
                traceparent=telemetry.current_traceparent() if traceparent is None else traceparent,
            )
            try:
                async with asyncio.timeout(ingest_timeout_seconds):
                    stored = await appender.append([event])
            except Exception as exc:
                raise _Unavailable(f"raw webhook not stored: {exc!r}") from exc
        except WebhookRejected as exc:
            return rejected(scope, label, channel_account_id, "POST", exc)
        except _Unavailable as exc:
            log.error(
                "webhook unavailable channel=%s channel_account_id=%s: %s",
                label,
                channel_account_id,
                exc,
            )
            counters.request(label, "POST", 503)
            return Response(
                "temporarily unavailable",
                status_code=503,
                media_type="text/plain",
                headers={"Retry-After": "5"},
            )
        if stored and stored[0].duplicate:
            metrics.WEBHOOK_DUPLICATES.labels(label).inc()
        counters.ingest_seconds(label, time.perf_counter() - started)
        ack = adapter.ack()
        counters.request(label, "POST", ack.status)
        return replies(ack)

    post_name = f"POST {WEBHOOK_ROUTE}"

    async def post(
        scope: Scope, receive: Receive, channel: str, channel_account_id: str
    ) -> Response:
        headers = _scope_headers(scope)
        if not telemetry.spans_exported():
            # No exporter: a span would only cost (about a tenth of the request). The stored
            # event still carries the caller's trace context, or starts a new trace.
            traceparent = telemetry.request_traceparent(headers.get("traceparent"))
            return await ingest(scope, receive, headers, channel, channel_account_id, traceparent)
        with _server_span(tracer, post_name, "POST", headers, channel) as span:
            response = await ingest(scope, receive, headers, channel, channel_account_id, None)
            _end_server_span(span, response)
            return response

    async def webhook_post(
        scope: Scope, receive: Receive, send: Send, channel: str, channel_account_id: str
    ) -> None:
        """The lean ASGI path (see GatewayApp). An unexpected error is answered 500 and
        re-raised for the server to log, as Starlette's ServerErrorMiddleware does."""
        try:
            response = await post(scope, receive, channel, channel_account_id)
        except _ClientGone:
            return
        except Exception:
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)  # type: ignore[arg-type]

    async def receive_route(request: Request) -> Response:
        """The same POST through FastAPI's router (requests the lean path does not take)."""
        params = request.path_params
        try:
            return await post(
                request.scope, request.receive, params["channel"], params["channel_account_id"]
            )
        except _ClientGone:
            return Response(status_code=400)  # no one is listening any more

    app.add_route(WEBHOOK_ROUTE, _traced(tracer, "GET", handshake), methods=["GET"])
    app.add_route(WEBHOOK_ROUTE, receive_route, methods=["POST"])
    app.webhook_post = webhook_post
    return app


@contextlib.contextmanager
def _server_span(
    tracer: trace.Tracer, name: str, method: str, headers: Mapping[str, str], channel: str
) -> Iterator[trace.Span]:
    """One SERVER span per webhook request, continuing the caller's W3C trace context; it is
    current while the handler runs, so the stored event carries its traceparent."""
    with tracer.start_as_current_span(
        name,
        context=telemetry.extract_context(headers),
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": method,
            "http.route": WEBHOOK_ROUTE,
            "parlay.channel": channel,
        },
    ) as span:
        yield span


def _end_server_span(span: trace.Span, response: Response) -> None:
    span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 500:
        span.set_status(trace.StatusCode.ERROR)


def _traced(
    tracer: trace.Tracer, method: str, endpoint: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """`_server_span` around a Starlette endpoint (the GET handshake)."""
    name = f"{method} {WEBHOOK_ROUTE}"

    async def handler(request: Request) -> Response:
        channel = request.path_params.get("channel", "")
        with _server_span(tracer, name, method, _headers(request), channel) as span:
            response = await endpoint(request)
            _end_server_span(span, response)
            return response

    return handler
