"""Outbound delivery settings (environment variables with the PARLAY_ prefix).

Provider base URLs default to the real providers; `parlay dev` points them at the local
stand-ins (PARLAY_<CHANNEL>_API_BASE_URL). A channel account's setting `api_base_url` wins over
both (e.g. one account on a provider's sandbox).
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from parlay_gateway.accounts import ChannelAccount


class OutboundSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLAY_", extra="ignore")

    #: Run the outbound consumer and the sender (on processes whose roles include projectors).
    outbound_enabled: bool = True

    whatsapp_api_base_url: str = "https://graph.facebook.com"
    messenger_api_base_url: str = "https://graph.facebook.com"
    instagram_api_base_url: str = "https://graph.facebook.com"
    telegram_api_base_url: str = "https://api.telegram.org"
    twilio_api_base_url: str = "https://api.twilio.com"
    wechat_api_base_url: str = "https://api.weixin.qq.com"
    line_api_base_url: str = "https://api.line.me"
    #: LINE serves message content (media) from a separate host.
    line_api_data_base_url: str = "https://api-data.line.me"
    viber_api_base_url: str = "https://chatapi.viber.com"
    #: Graph API version for WhatsApp / Messenger / Instagram (account setting api_version wins).
    graph_api_version: str = "v21.0"

    #: HTTP attempts per message before it fails (429/5xx/connection errors are retried).
    outbound_max_attempts: int = 6
    #: Exponential backoff: base * 2^(attempt-1), capped; a provider's Retry-After is honoured
    #: when longer.
    outbound_backoff_base_seconds: float = 1.0
    outbound_backoff_max_seconds: float = 300.0
    #: A Retry-After beyond this fails the message instead of parking it for longer.
    outbound_max_retry_after_seconds: float = 3600.0
    outbound_connect_timeout_seconds: float = 5.0
    #: How long to wait for a provider's answer; longer counts as an ambiguous outcome.
    outbound_timeout_seconds: float = 15.0
    #: Deliveries in flight at once per gateway process.
    outbound_concurrency: int = 32
    #: Safety poll of the ledger (deliveries are also woken by LISTEN/NOTIFY and due times).
    outbound_poll_seconds: float = 2.0
    #: How often to look for deliveries left 'sending' by a dead sender.
    outbound_recovery_seconds: float = 2.0
    #: Channels whose endpoint honours our Idempotency-Key header (the stand-ins do; so would an
    #: idempotent egress proxy): after a crash mid-request they are re-sent with the same key
    #: instead of reported as outcome_unknown. LINE is always re-sent (X-Line-Retry-Key).
    #: Comma-separated, e.g. "whatsapp,telegram"; the account setting idempotent_resend=true
    #: does the same for one account.
    outbound_idempotent_resend_channels: str = ""
    #: Default sends per second per channel account when the account sets no
    #: rate_limit_per_second (0 = unlimited). Comma-separated channel=rate pairs.
    outbound_default_rate_limits: str = "whatsapp=80,telegram=30"

    def base_url(self, channel: str, account: ChannelAccount | None = None) -> str:
        if account is not None and account.settings.get("api_base_url"):
            return account.settings["api_base_url"].rstrip("/")
        return str(getattr(self, f"{channel}_api_base_url", "")).rstrip("/")

    def line_data_base_url(self, account: ChannelAccount | None = None) -> str:
        if account is not None and account.settings.get("api_data_base_url"):
            return account.settings["api_data_base_url"].rstrip("/")
        if account is not None and account.settings.get("api_base_url"):
            return account.settings["api_base_url"].rstrip("/")
        return self.line_api_data_base_url.rstrip("/")

    def api_version(self, account: ChannelAccount | None = None) -> str:
        if account is not None and account.settings.get("api_version"):
            return account.settings["api_version"]
        return self.graph_api_version

    @property
    def resend_channels(self) -> frozenset[str]:
        return frozenset(
            c.strip() for c in self.outbound_idempotent_resend_channels.split(",") if c.strip()
        )

    def rate_limit(self, account: ChannelAccount) -> tuple[float, float]:
        """(sends per second, burst) for the account; (0, 0) means unlimited."""
        defaults: dict[str, float] = {}
        for pair in self.outbound_default_rate_limits.split(","):
            name, _, value = pair.partition("=")
            if name.strip() and value.strip():
                defaults[name.strip()] = float(value)
        raw = account.settings.get("rate_limit_per_second", "")
        try:
            rate = float(raw) if raw else defaults.get(account.channel, 0.0)
        except ValueError:
            rate = defaults.get(account.channel, 0.0)
        if rate <= 0:
            return 0.0, 0.0
        raw_burst = account.settings.get("rate_limit_burst", "")
        try:
            burst = float(raw_burst) if raw_burst else max(1.0, rate)
        except ValueError:
            burst = max(1.0, rate)
        return rate, max(1.0, burst)
