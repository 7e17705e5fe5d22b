"""Channel accounts: the pure rules (validation, the event, the read view). No I/O here.

A channel account is one provider-side account a tenant connects (a WhatsApp Business app, a
Telegram bot, ...). Its id appears in the webhook URL, so ids are globally unique, not per tenant.
Its credentials are secrets: they live only in the gateway's `channel_accounts` table; events
carry only their names, and reads never return them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from parlay.gateway.v1 import gateway_events_pb2, gateway_service_pb2
from parlay_gateway.channels.specs import CHANNEL_SPECS, KNOWN_CHANNELS
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, to_timestamp
from parlay_kit.errors import InvalidArgument

AGGREGATE_TYPE = "channel_account"
#: URL-safe without escaping, no ':' (contact aggregate ids are "<account>:<address>").
ACCOUNT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_ENTRIES = 32
MAX_VALUE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class ChannelAccount:
    channel_account_id: str
    tenant_id: str
    channel: str
    #: Secrets. Excluded from repr so they never reach a log line by accident.
    credentials: Mapping[str, str] = field(repr=False)
    settings: Mapping[str, str]
    created_at: datetime

    @property
    def webhook_path(self) -> str:
        return webhook_path(self.channel, self.channel_account_id)

    def credential(self, name: str) -> str:
        return self.credentials.get(name, "")

    def to_proto(self) -> gateway_service_pb2.ChannelAccount:
        """The read view: credential names only, never their values."""
        return gateway_service_pb2.ChannelAccount(
            channel_account_id=self.channel_account_id,
            tenant_id=self.tenant_id,
            channel=self.channel,
            settings=dict(self.settings),
            credential_names=sorted(self.credentials),
            created_at=to_timestamp(self.created_at),
            webhook_path=self.webhook_path,
        )


def webhook_path(channel: str, channel_account_id: str) -> str:
    return f"/webhooks/{channel}/{channel_account_id}"


def validate_account_id(channel_account_id: str, field_name: str = "channel_account_id") -> None:
    if not channel_account_id:
        raise InvalidArgument(field_name, "is required")
    if not ACCOUNT_ID_PATTERN.match(channel_account_id):
        raise InvalidArgument(
            field_name,
            "must be 1-64 characters of letters, digits, '-' or '_', starting with a letter or digit",
        )


def validate_channel(channel: str, field_name: str = "channel") -> None:
    if not channel:
        raise InvalidArgument(field_name, "is required")
    if channel not in CHANNEL_SPECS:
        raise InvalidArgument(
            field_name, f"unknown channel {channel!r}; one of: {', '.join(KNOWN_CHANNELS)}"
        )


def _validate_map(values: Mapping[str, str], field_name: str) -> None:
    if len(values) > MAX_ENTRIES:
        raise InvalidArgument(field_name, f"at most {MAX_ENTRIES} entries")
    for key, value in values.items():
        if not isinstance(key, str) or not _KEY_PATTERN.match(key):
            raise InvalidArgument(
                field_name, f"invalid key {key!r}: 1-64 letters, digits, '.', '-' or '_'"
            )
        if not isinstance(value, str):
            raise InvalidArgument(f"{field_name}.{key}", "must be a string")
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidArgument(f"{field_name}.{key}", f"at most {MAX_VALUE_CHARS} characters")


def validate_new_account(
    channel_account_id: str,
    channel: str,
    credentials: Mapping[str, str],
    settings: Mapping[str, str],
) -> None:
    """Raise InvalidArgument naming the first offending field."""
    validate_account_id(channel_account_id)
    validate_channel(channel)
    _validate_map(credentials, "credentials")
    _validate_map(settings, "settings")
    for name in CHANNEL_SPECS[channel].required_credentials:
        if not credentials.get(name):
            raise InvalidArgument(f"credentials.{name}", f"is required for channel {channel}")


def account_created_event(account: ChannelAccount, *, traceparent: str = "") -> NewEvent:
    """ChannelAccountCreated: version 1 of the channel_account aggregate. Names, not secrets."""
    return NewEvent(
        event_id=deterministic_event_id("channel_account", account.channel_account_id, "created"),
        tenant_id=account.tenant_id,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=account.channel_account_id,
        payload=gateway_events_pb2.ChannelAccountCreated(
            channel_account_id=account.channel_account_id,
            channel=account.channel,
            credential_names=sorted(account.credentials),
            settings=dict(account.settings),
        ),
        occurred_at=account.created_at,
        # Same topic (and key) as the account's raw webhooks: one aggregate, one ordered stream.
        topic=topics.WEBHOOKS,
        aggregate_version=1,
        traceparent=traceparent,
    )
