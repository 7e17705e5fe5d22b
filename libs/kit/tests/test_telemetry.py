"""Trace context through Kafka headers, stored traceparents, another process and FastAPI."""

from __future__ import annotations

import contextvars
import subprocess
import sys

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from parlay_kit import telemetry

SPANS = InMemorySpanExporter()
PROVIDER = telemetry.setup_telemetry("parlay-telemetry-test", span_exporter=SPANS)
tracer = telemetry.get_tracer("test")


def _ids(span: trace.Span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def test_setup_is_idempotent() -> None:
    again = telemetry.setup_telemetry("parlay-telemetry-test", span_exporter=SPANS)
    assert again is PROVIDER
    assert telemetry.enabled()
    assert trace.get_tracer_provider() is PROVIDER
    with tracer.start_as_current_span("once"):
        pass
    assert [s.name for s in SPANS.get_finished_spans()].count("once") == 1  # exporter added once


def test_kafka_headers_round_trip_in_another_context() -> None:
    with tracer.start_as_current_span("webhook") as producer:
        headers = telemetry.inject_traceparent()
        trace_id, span_id = _ids(producer)
    assert [k for k, _ in headers] == ["traceparent"]
    assert headers[0][1].startswith(f"00-{trace_id}-{span_id}-".encode())  # flags: sampled(+random)

    def consumer() -> tuple[str, str | None]:
        assert telemetry.current_traceparent() == ""  # nothing leaks into the fresh context
        with tracer.start_as_current_span(
            "consume", context=telemetry.extract_context(headers)
        ) as s:
            parent = s.parent.span_id if s.parent else None
            return _ids(s)[0], format(parent, "016x") if parent else None

    consumed_trace, parent = contextvars.Context().run(consumer)
    assert consumed_trace == trace_id
    assert parent == span_id


def test_extract_accepts_dicts_str_values_and_first_header_wins() -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    for headers in (
        {"traceparent": tp.encode()},
        {"Traceparent": tp},
        [("traceparent", tp.encode()), ("traceparent", other.encode())],
        [("ce_id", b"x"), ("traceparent", tp)],
    ):
        assert telemetry.trace_id_of(telemetry.extract_context(headers)) == tp.split("-")[1]
        assert telemetry.traceparent_from_headers(headers) == tp


def test_missing_or_garbage_headers_start_a_new_trace() -> None:
    for headers in ([], None, [("traceparent", b"not-a-traceparent")], {"ce_type": b"x"}):
        ctx = telemetry.extract_context(headers)
        assert isinstance(ctx, Context)
        assert telemetry.trace_id_of(ctx) == ""
        with tracer.start_as_current_span("root", context=ctx) as span:
            assert span.parent is None


def test_traceparent_string_round_trip_with_tracestate() -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ctx = telemetry.context_from_traceparent(tp, "vendor=abc")
    assert telemetry.current_traceparent(ctx) == tp
    assert telemetry.current_tracestate(ctx) == "vendor=abc"
    assert telemetry.inject_traceparent(ctx) == [
        ("traceparent", tp.encode()),
        ("tracestate", b"vendor=abc"),
    ]
    assert telemetry.headers_for_traceparent(tp, "vendor=abc") == telemetry.inject_traceparent(ctx)
    assert telemetry.headers_for_traceparent("") == []
    assert telemetry.trace_id_of(telemetry.context_from_traceparent("")) == ""
    with telemetry.attached(ctx):
        assert telemetry.current_traceparent() == tp


def test_one_trace_across_store_relay_kafka_and_another_process() -> None:
    """webhook span -> traceparent stored with the event -> relay headers -> a consumer in another
    process appends its own event (stores its traceparent) -> next consumer: one trace id."""
    with tracer.start_as_current_span("POST /webhooks/whatsapp/acc") as webhook:
        stored = telemetry.current_traceparent()  # goes into the event store row
        trace_id, _ = _ids(webhook)
    relay_headers = telemetry.headers_for_traceparent(stored)  # relay: row -> Kafka record

    script = (
        "import sys\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from parlay_kit import telemetry\n"
        "telemetry.setup_telemetry('profile', span_exporter=InMemorySpanExporter())\n"
        "headers = [('traceparent', sys.argv[1].encode())]\n"
        "with telemetry.consume_span('parlay.gateway.inbound.v1 process', headers):\n"
        "    print(telemetry.current_traceparent())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, relay_headers[0][1].decode()],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    assert telemetry.trace_id_of(out) == trace_id
    assert out != stored  # the consumer's own span, child of the webhook's

    # The next consumer (this process again) continues the same trace.
    with telemetry.consume_span("next", telemetry.headers_for_traceparent(out)) as span:
        assert _ids(span)[0] == trace_id
        assert span.kind == trace.SpanKind.CONSUMER


async def test_fastapi_request_span_continues_incoming_trace() -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/webhooks/{channel}/{account}")
    async def webhook(channel: str, account: str) -> dict[str, str]:
        return {"traceparent": telemetry.current_traceparent()}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"traceparent": telemetry.current_traceparent()}

    telemetry.instrument_fastapi(app)
    telemetry.instrument_fastapi(app)  # idempotent
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        reply = await client.post("/webhooks/whatsapp/acc-1", headers={"traceparent": incoming})
        stored = reply.json()["traceparent"]
        assert telemetry.trace_id_of(stored) == "0af7651916cd43dd8448eb211c80319c"
        reply = await client.post("/webhooks/whatsapp/acc-1")
        assert telemetry.trace_id_of(reply.json()["traceparent"]) not in (
            "",
            incoming.split("-")[1],
        )
        reply = await client.get("/healthz")
        assert reply.json()["traceparent"] == ""  # excluded from tracing


def test_consumer_metrics_are_importable_and_labelled() -> None:
    labels = {"consumer": "profile-projector", "topic": "parlay.gateway.inbound.v1"}
    before = REGISTRY.get_sample_value("parlay_events_consumed_total", labels) or 0
    telemetry.EVENTS_CONSUMED.labels(**labels).inc(3)
    telemetry.EVENTS_SKIPPED.labels(**labels).inc()
    telemetry.EVENTS_DEAD_LETTERED.labels(**labels).inc()
    assert REGISTRY.get_sample_value("parlay_events_consumed_total", labels) == before + 3
    assert REGISTRY.get_sample_value("parlay_events_skipped_total", labels) >= 1
    assert REGISTRY.get_sample_value("parlay_events_dead_lettered_total", labels) >= 1
