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

    # ---- payment actions (payments/): the provider calls the payments service asks for ----
    #: Stripe's API root; `parlay dev` points it at the stand-in ("<stand-ins>/stripe").
    stripe_api_base_url: str = "https://api.stripe.com"
    #: Where Stripe Checkout sends the customer after paying / giving up. Stripe requires both;
    #: the defaults are a harmless page. {CHECKOUT_SESSION_ID} is filled in by Stripe.
    stripe_success_url: str = (
        "https://example.com/parlay/checkout/success?session_id={CHECKOUT_SESSION_ID}"
    )
    stripe_cancel_url: str = "https://example.com/parlay/checkout/cancelled"
    #: Seconds to wait for Stripe's answer to one attempt (then retried with the same key).
    stripe_timeout_seconds: float = 20.0
    stripe_connect_timeout_seconds: float = 5.0
    #: Attempts per Stripe call: timeouts, connection errors, 409, 429 and 5xx are retried with
    #: exponential backoff (base * 2^(n-1), capped), always with the same idempotency key.
    stripe_max_attempts: int = 5
    stripe_backoff_base_seconds: float = 0.5
    stripe_backoff_max_seconds: float = 8.0
    #: Payment actions carried out at once per projector batch.
    payment_actions_concurrency: int = 16
    #: Telegram payment calls (sendInvoice, answerPreCheckoutQuery) through the Bot API at
    #: PARLAY_TELEGRAM_API_BASE_URL: per-attempt timeout and attempts for sendInvoice.
    telegram_payments_timeout_seconds: float = 5.0
    telegram_invoice_max_attempts: int = 3
    #: answerPreCheckoutQuery must reach Telegram within 10 s of the query: every attempt
    #: together stays within this budget (short fixed pauses, no long backoff).
    telegram_pre_checkout_budget_seconds: float = 7.0
