"""The lean ASGI path for webhook POSTs answers exactly as the FastAPI route does, and the
cheaper event building gives the same WebhookReceived."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gateway_testkit import WHATSAPP_CREDENTIALS, body_of, signed_headers, single_text, wamid
from starlette.routing import Match, Route

from parlay.gateway.v1.gateway_events_pb2 import WebhookReceived
from parlay_gateway import http_app
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels.base import InboundRequest
from parlay_gateway.channels.registry import default_registry
from parlay_gateway.channels.whatsapp import WhatsAppAdapter
from parlay_gateway.ingest import build_webhook_event
from parlay_kit import telemetry
from parlay_kit.envelope import NewEvent, to_timestamp, utcnow
from parlay_kit.eventstore import StoredEvent

ACCOUNT = ChannelAccount("fast-wa", "acme", "whatsapp", WHATSAPP_CREDENTIALS, {}, utcnow())


class RecordingAppender:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[NewEvent] = []
        self.fail = fail

    async def append(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        if self.fail:
            raise OSError("store is down")
        self.events += events
        return [StoredEvent(e.event_id, 1, None) for e in events]


async def _lookup(account_id: str) -> ChannelAccount | None:
    return ACCOUNT if account_id == ACCOUNT.channel_account_id else None


def _client(appender: RecordingAppender, *, lean: bool) -> TestClient:
    app = http_app.create_app(
        lookup_account=_lookup,
        registry=default_registry(),
        appender=appender,
        max_body_bytes=4096,
    )
    if not lean:
        app.webhook_post = None  # every request through FastAPI's router
    return TestClient(app)


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/whatsapp/acc",
        "/webhooks/whatsapp/acc/",
        "/webhooks/whatsapp/",
        "/webhooks/whatsapp",
        "/webhooks//acc",
        "/webhooks/whatsapp/a/b",
        "/webhooks/wh%20at/acc",
        "/webhooksx/whatsapp/acc",
        "/webchat/acc/socket",
        "/healthz",
    ],
)
def test_fast_path_takes_exactly_the_paths_the_route_matches(path: str) -> None:
    route = Route(http_app.WEBHOOK_ROUTE, lambda request: None, methods=["POST"])
    scope = {"type": "http", "method": "POST", "path": path, "root_path": ""}
    match, child = route.matches(scope)
    expected = (
        (child["path_params"]["channel"], child["path_params"]["channel_account_id"])
        if match is Match.FULL
        else None
    )
    assert http_app.webhook_path_params(scope) == expected
    # Under a root_path the router's rules apply: the fast path stays out of it.
    assert http_app.webhook_path_params({**scope, "root_path": "/gw"}) is None


def _cases() -> list[tuple[str, str, bytes, dict[str, str]]]:
    body = body_of(single_text("wamid.FAST1"))
    return [
        ("signed", "/webhooks/whatsapp/fast-wa", body, signed_headers(body)),
        ("with query", "/webhooks/whatsapp/fast-wa?a=1&a=2", body, signed_headers(body)),
        ("unsigned", "/webhooks/whatsapp/fast-wa", body, {"Content-Type": "application/json"}),
        ("bad signature", "/webhooks/whatsapp/fast-wa", body, signed_headers(body + b" ")),
        ("unknown account", "/webhooks/whatsapp/nobody", body, signed_headers(body)),
        ("unknown channel", "/webhooks/carrier-pigeon/fast-wa", body, signed_headers(body)),
        ("malformed", "/webhooks/whatsapp/fast-wa", b"[1, 2", signed_headers(b"[1, 2")),
        ("too large", "/webhooks/whatsapp/fast-wa", b"x" * 5000, signed_headers(b"x" * 5000)),
        ("bad length", "/webhooks/whatsapp/fast-wa", body, {"Content-Length": "x"}),
    ]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
@pytest.mark.parametrize("store_down", [False, True])
def test_lean_path_answers_like_the_routed_path(
    case: tuple[str, str, bytes, dict[str, str]], store_down: bool
) -> None:
    _, path, body, headers = case
    answers = []
    stored = []
    for lean in (True, False):
        appender = RecordingAppender(fail=store_down)
        with _client(appender, lean=lean) as client:
            response = client.post(path, content=body, headers=headers)
        answers.append(
            (
                response.status_code,
                response.content,
                sorted((k, v) for k, v in response.headers.items()),
            )
        )
        stored.append([e.event_id for e in appender.events])
    assert answers[0] == answers[1]
    assert stored[0] == stored[1]


@pytest.mark.parametrize("exported", [False, True])
def test_stored_traceparent_continues_the_callers_trace(
    monkeypatch: pytest.MonkeyPatch, exported: bool
) -> None:
    """Without an exporter no span is made, but the stored event still carries the caller's
    trace id (or a new, valid trace); with one, the request's span does as before."""
    monkeypatch.setattr(telemetry, "_spans_exported", exported)
    appender = RecordingAppender()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with _client(appender, lean=True) as client:
        for traceparent in (f"00-{trace_id}-00f067aa0ba902b7-01", None):
            body = body_of(single_text(wamid()))
            headers = signed_headers(body)
            if traceparent:
                headers["traceparent"] = traceparent
            assert client.post("/webhooks/whatsapp/fast-wa", content=body, headers=headers)
    with_parent, without = appender.events
    assert with_parent.traceparent.split("-")[1] == trace_id
    if not exported:
        assert telemetry.trace_id_of(without.traceparent) not in ("", trace_id)


@pytest.mark.parametrize(
    "received_at",
    [
        datetime(2026, 11, 23, 19, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 23, 21, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2))),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0),  # naive: read as local time, as to_timestamp does
    ],
)
def test_webhook_event_equals_the_reference_construction(received_at: datetime) -> None:
    adapter = WhatsAppAdapter()
    body = body_of(single_text("wamid.REF"))
    request = InboundRequest(
        method="POST",
        path="/webhooks/whatsapp/fast-wa",
        headers={**{k.lower(): v for k, v in signed_headers(body).items()}, "x-other": "1"},
        body=body,
    )
    event = build_webhook_event(adapter, request, ACCOUNT, received_at=received_at)
    reference: Any = WebhookReceived(
        channel="whatsapp",
        channel_account_id=ACCOUNT.channel_account_id,
        http_method="POST",
        path=request.path,
        headers={
            name: request.headers[name]
            for name in adapter.retained_headers
            if name in request.headers
        },
        body=body,
        received_at=to_timestamp(received_at),
    )
    assert event.payload == reference
    assert event.payload.SerializeToString(deterministic=True) == reference.SerializeToString(
        deterministic=True
    )
