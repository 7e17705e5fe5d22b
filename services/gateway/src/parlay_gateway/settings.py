"""Gateway settings (environment variables with the PARLAY_ prefix, e.g. PARLAY_HTTP_PORT)."""

from __future__ import annotations

from parlay_kit.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    grpc_port: int = 50051
    #: The internet-facing HTTP server: webhooks, /healthz, /metrics.
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    #: Webhook bodies above this size are refused with 413 (checked on Content-Length and while
    #: reading). Meta's webhooks are a few KiB; 1 MiB leaves room for large batches.
    max_body_bytes: int = 1_048_576
    #: How long a webhook request waits for its raw event to become durable before answering 503
    #: (the provider retries; the retry is deduplicated by its deterministic event id).
    ingest_timeout_seconds: float = 10.0
    #: Optional JSON or YAML file of channel accounts created (or updated) at start.
    channel_accounts_file: str = ""
    #: The public base URL the providers call, e.g. https://chat.example.com. Channels that sign
    #: the URL (Twilio) need it; ChannelAccount.webhook_path is relative to it.
    public_url: str = ""
    #: Seconds a looked-up channel account stays cached by the webhook path (and an unknown id).
    account_cache_ttl_seconds: float = 5.0
    account_negative_cache_ttl_seconds: float = 1.0
    #: Seconds uvicorn gives requests in flight to finish on shutdown.
    http_graceful_shutdown_seconds: float = 10.0
