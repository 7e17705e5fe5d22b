"""The channels a channel account may be created for, and the credentials each one needs.

One table for every channel Parlay knows, whether or not its webhook adapter exists yet: an
account can be created ahead of its adapter; webhooks for it are answered 404 until the adapter is
registered (see `channels/__init__.py`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    name: str
    #: Credentials an account of this channel must have (values are secrets, never in events).
    required_credentials: tuple[str, ...]


CHANNEL_SPECS: dict[str, ChannelSpec] = {
    spec.name: spec
    for spec in (
        # Meta (WhatsApp Cloud API, Messenger, Instagram): X-Hub-Signature-256 with the app secret,
        # the GET handshake with the verify token, Graph API sends with the access token.
        ChannelSpec("whatsapp", ("app_secret", "verify_token", "access_token")),
        ChannelSpec("messenger", ("app_secret", "verify_token", "access_token")),
        ChannelSpec("instagram", ("app_secret", "verify_token", "access_token")),
        ChannelSpec("telegram", ("bot_token", "secret_token")),
        ChannelSpec("twilio", ("account_sid", "auth_token")),
        ChannelSpec("wechat", ("token", "app_id", "app_secret")),
        ChannelSpec("line", ("channel_secret", "access_token")),
        ChannelSpec("viber", ("auth_token",)),
        # Anonymous visitors need nothing; identity_secret is optional (signed visitor identity).
        ChannelSpec("webchat", ()),
        ChannelSpec("stripe", ("webhook_secret", "api_key")),
    )
}

KNOWN_CHANNELS: tuple[str, ...] = tuple(CHANNEL_SPECS)
