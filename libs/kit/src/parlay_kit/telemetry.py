"""Tracing, trace-context propagation through Kafka, and the Prometheus metrics every service shares.

One trace id follows a fact through the system:

    webhook HTTP request (FastAPI span)
      -> event appended with `current_traceparent()` stored next to it
      -> outbox relay sends the record with that traceparent as its `traceparent` header
      -> consumer: `extract_context(record.headers)` (or `consume_span(...)`) is the parent of the
         work it does, and the events it appends store `current_traceparent()` (or, cheaper in a
         batch, `traceparent_from_headers(record.headers)` passed through)
      -> its relay publishes them with that traceparent -> the next consumer ...

We carry the context ourselves instead of using the aiokafka instrumentation: that one would add a
second `traceparent` header at send time (the relay's context, not the original request's) and a
span per consumed record, which a batched projector cannot afford.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter, Histogram

log = logging.getLogger("parlay_kit.telemetry")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_W3C = TraceContextTextMapPropagator()
_lock = threading.Lock()
_provider: TracerProvider | None = None
_exporters: set[int] = set()
_otlp_endpoints: set[str] = set()
_asyncpg_instrumented = False
#: True once spans go somewhere (an OTLP endpoint, a given exporter, or a provider someone else
#: set up). Without that, a span is pure cost: hot paths may skip it (`spans_exported`).
_spans_exported = False

Headers = Sequence[tuple[str, bytes | str | None]] | Mapping[str, Any]

# --------------------------------------------------------------------------------------------
# Prometheus metrics (module level: import and use them, do not re-create them).
# --------------------------------------------------------------------------------------------

EVENTS_CONSUMED = Counter(
    "parlay_events_consumed",
    "Events a consumer applied to its read models.",
    ["consumer", "topic"],
)
EVENTS_SKIPPED = Counter(
    "parlay_events_skipped",
    "Events a consumer skipped: already applied (replay, redelivery) or not of interest.",
    ["consumer", "topic"],
)
EVENTS_DEAD_LETTERED = Counter(
    "parlay_events_dead_lettered",
    "Events a consumer gave up on and sent to its dead-letter topic.",
    ["consumer", "topic"],
)
EVENTS_PUBLISHED = Counter(
    "parlay_events_published",
    "Events the outbox relay published to Kafka.",
    ["service", "topic"],
)
CONSUMER_BATCH_SECONDS = Histogram(
    "parlay_consumer_batch_seconds",
    "Time to apply one consumed batch and store its offsets.",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
GRPC_SERVER_HANDLED = Counter(
    "parlay_grpc_server_handled",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SERVER_HANDLING_SECONDS = Histogram(
    "parlay_grpc_server_handling_seconds",
    "Time the server spent handling an RPC.",
    ["grpc_service", "grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def metrics_asgi_app() -> Any:
    """An ASGI app serving the default Prometheus registry (mount it at /metrics)."""
    from prometheus_client import make_asgi_app

    return make_asgi_app()


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> None:
    """Serve /metrics on its own port (services without an HTTP server of their own)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr)


# --------------------------------------------------------------------------------------------
# Tracing setup
# --------------------------------------------------------------------------------------------


def setup_telemetry(
    service_name: str,
    otlp_endpoint: str = "",
    *,
    span_exporter: SpanExporter | None = None,
    instrument_asyncpg: bool = True,
) -> TracerProvider:
    """Install the process-wide TracerProvider and the W3C propagators. Idempotent: the first call
    creates the provider (its `service.name` is fixed then); later calls only add exporters not
    attached yet (an OTLP endpoint, or e.g. an InMemorySpanExporter in tests)."""
    global _provider, _asyncpg_instrumented, _spans_exported
    with _lock:
        if _provider is None:
            existing = trace.get_tracer_provider()
            if isinstance(existing, TracerProvider):
                _provider = existing  # someone (opentelemetry-instrument) set one up already
                # Its processors are not ours to inspect: assume they export.
                _spans_exported = True
            else:
                _provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
                trace.set_tracer_provider(_provider)
            propagate.set_global_textmap(
                CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
            )
        provider = _provider
        if otlp_endpoint and otlp_endpoint not in _otlp_endpoints:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            # An http:// endpoint means plaintext, https:// means TLS (the exporter decides).
            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint))
            )
            _otlp_endpoints.add(otlp_endpoint)
        if span_exporter is not None and id(span_exporter) not in _exporters:
            provider.add_span_processor(SimpleSpanProcessor(span_exporter))
            _exporters.add(id(span_exporter))
        # A span per SQL query only pays off when spans go somewhere: without an exporter the
        # trace context still propagates (webhook -> Kafka headers -> consumers) at no cost.
        exporting = bool(otlp_endpoint) or span_exporter is not None
        _spans_exported = _spans_exported or exporting
        if instrument_asyncpg and exporting and not _asyncpg_instrumented:
            from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

            instrumentor = AsyncPGInstrumentor()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=provider)
            _asyncpg_instrumented = True
    return provider


def enabled() -> bool:
    """True once `setup_telemetry` ran in this process."""
    return _provider is not None


def spans_exported() -> bool:
    """True when a span recorded in this process goes somewhere (an exporter is attached).
    Hot paths (one span per webhook) skip the span otherwise and carry the trace context on
    with `request_traceparent`: the trace id still follows the fact through the system."""
    return _spans_exported


def tracer_provider() -> trace.TracerProvider:
    return _provider or trace.get_tracer_provider()


def get_tracer(name: str) -> trace.Tracer:
    return tracer_provider().get_tracer(name)


def flush_telemetry(timeout_millis: int = 5_000) -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def shutdown_telemetry() -> None:
    """Flush and stop exporters; call once at process exit (the provider cannot be replaced)."""
    if _provider is not None:
        _provider.shutdown()


def instrument_fastapi(app: Any, *, excluded_urls: str = "healthz,readyz,metrics") -> Any:
    """Trace every HTTP request of a FastAPI app (extracts incoming traceparent). Idempotent."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider(), excluded_urls=excluded_urls
        )
    return app


# --------------------------------------------------------------------------------------------
# Trace context <-> traceparent strings and Kafka headers
# --------------------------------------------------------------------------------------------


def _carrier(headers: Headers | None) -> dict[str, str]:
    """Kafka headers (list of (key, bytes) or a mapping) as a str->str dict; first key wins."""
    out: dict[str, str] = {}
    if not headers:
        return out
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        k = key.lower()
        if k in out or value is None:
            continue
        if isinstance(value, list | tuple):
            if not value:
                continue
            value = value[0]
        out[k] = value.decode("latin-1") if isinstance(value, bytes | bytearray) else str(value)
    return out


def inject_traceparent(context: Context | None = None) -> list[tuple[str, bytes]]:
    """The current (or given) trace context as Kafka headers: `traceparent` and, if there is
    one, `tracestate`. Empty list when there is no valid span in the context."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    return [(k, v.encode("ascii")) for k, v in carrier.items() if k in (TRACEPARENT, TRACESTATE)]


def extract_context(headers: Headers | None, context: Context | None = None) -> Context:
    """A Context whose remote parent comes from the `traceparent`/`tracestate` headers of a Kafka
    record (or any mapping). Without those headers: an empty Context (a span started in it is a
    new root)."""
    return _W3C.extract(_carrier(headers), context=context)


def current_traceparent(context: Context | None = None) -> str:
    """The W3C traceparent of the current (or given) span, "" when there is none. Store it with
    the events you append so the relay can put it on the Kafka record."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    return carrier.get(TRACEPARENT, "")


# W3C trace-context `traceparent`: version-traceid-parentid-flags, lowercase hex. Version 00 has
# exactly four fields; a later version may append more (we keep only the four we understand).
_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16


def request_traceparent(traceparent: str | None) -> str:
    """The traceparent to store with work started by an incoming request when no span is
    recorded for it (`spans_exported()` is False): the caller's, if it sent a valid one (same
    rules as the W3C propagator), else a new trace. Costs a regex match or two random numbers
    instead of a span, and gives the same trace id the span would have carried."""
    if traceparent:
        match = _TRACEPARENT_RE.fullmatch(traceparent.strip())
        if match is not None:
            version, trace_id, span_id, flags, rest = match.groups()
            if (
                version != "ff"
                and not (version == "00" and rest)
                and trace_id != _INVALID_TRACE_ID
                and span_id != _INVALID_SPAN_ID
            ):
                # Only the sampled bit carries over, as it would to a child span.
                return f"00-{trace_id}-{span_id}-{int(flags, 16) & 1:02x}"
    # A new root, sampled like the SDK's default sampler samples a root (ids never zero).
    trace_id_int = random.getrandbits(128) or 1
    span_id_int = random.getrandbits(64) or 1
    return f"00-{trace_id_int:032x}-{span_id_int:016x}-01"


def current_tracestate(context: Context | None = None) -> str:
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=context)
    return carrier.get(TRACESTATE, "")


def traceparent_from_headers(headers: Headers | None) -> str:
    """The traceparent header of a Kafka record, "" when absent (pass it through to derived
    events when a span per event is too expensive)."""
    if not headers or isinstance(headers, Mapping):
        return _carrier(headers).get(TRACEPARENT, "")
    # A record's (key, value) list: look for the one key rather than decode every header into
    # a dict; consumers call this once per event. Same answer as the carrier (first wins).
    for key, value in headers:
        if key.lower() == TRACEPARENT:
            if isinstance(value, bytes):  # what a Kafka record holds
                return value.decode("latin-1")
            found = _carrier([(key, value)])
            if found:
                return found[TRACEPARENT]
    return ""


def context_from_traceparent(traceparent: str, tracestate: str = "") -> Context:
    """A Context with the remote span described by a stored traceparent (empty if invalid)."""
    carrier = {TRACEPARENT: traceparent} if traceparent else {}
    if traceparent and tracestate:
        carrier[TRACESTATE] = tracestate
    return _W3C.extract(carrier)


def headers_for_traceparent(traceparent: str, tracestate: str = "") -> list[tuple[str, bytes]]:
    """Kafka headers for a stored traceparent (what the outbox relay attaches to a record)."""
    if not traceparent:
        return []
    headers = [(TRACEPARENT, traceparent.encode("ascii"))]
    if tracestate:
        headers.append((TRACESTATE, tracestate.encode("ascii")))
    return headers


def trace_id_of(traceparent_or_context: str | Context | None = None) -> str:
    """32-hex trace id of a traceparent string, a Context, or (None) the current span; ""."""
    if isinstance(traceparent_or_context, str):
        ctx: Context | None = context_from_traceparent(traceparent_or_context)
    else:
        ctx = traceparent_or_context
    span_context = trace.get_current_span(ctx).get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


@contextmanager
def consume_span(
    name: str,
    headers: Headers | None,
    *,
    attributes: Mapping[str, Any] | None = None,
    kind: trace.SpanKind = trace.SpanKind.CONSUMER,
) -> Iterator[trace.Span]:
    """Run the block in a span whose parent is the trace context carried by `headers`; the span
    is current inside the block, so `current_traceparent()` there continues the same trace."""
    tracer = get_tracer("parlay_kit")
    with tracer.start_as_current_span(
        name, context=extract_context(headers), kind=kind, attributes=dict(attributes or {})
    ) as span:
        yield span


@contextmanager
def attached(context: Context) -> Iterator[Context]:
    """Make `context` current inside the block (e.g. one from `context_from_traceparent`)."""
    token = otel_context.attach(context)
    try:
        yield context
    finally:
        otel_context.detach(token)
