"""The gateway's Prometheus metrics (module level: created once per process)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOK_REQUESTS = Counter(
    "parlay_gateway_webhook_requests",
    "Webhook requests by channel ('other' for an unknown one), method and HTTP status answered.",
    ["channel", "method", "status"],
)
WEBHOOK_DUPLICATES = Counter(
    "parlay_gateway_webhook_duplicates",
    "Webhooks stored before (provider retries), answered 200 without a new event.",
    ["channel"],
)
WEBHOOK_INGEST_SECONDS = Histogram(
    "parlay_gateway_webhook_ingest_seconds",
    "Time from request start until the raw webhook is durable.",
    ["channel"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
NORMALIZED_EVENTS = Counter(
    "parlay_gateway_normalized_events",
    "Normalized events produced from raw webhooks (a retried batch counts again).",
    ["channel", "event_type"],
)
