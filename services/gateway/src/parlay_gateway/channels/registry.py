"""Which adapter serves which channel. Adding a channel = one module + one line here."""

from __future__ import annotations

from collections.abc import Iterable

from parlay_gateway.channels.base import ChannelAdapter
from parlay_gateway.channels.instagram import InstagramAdapter
from parlay_gateway.channels.line import LineAdapter
from parlay_gateway.channels.messenger import MessengerAdapter
from parlay_gateway.channels.specs import CHANNEL_SPECS
from parlay_gateway.channels.stripe import StripeAdapter
from parlay_gateway.channels.telegram import TelegramAdapter
from parlay_gateway.channels.twilio import TwilioAdapter
from parlay_gateway.channels.viber import ViberAdapter
from parlay_gateway.channels.webchat import WebchatAdapter
from parlay_gateway.channels.wechat import WeChatAdapter
from parlay_gateway.channels.whatsapp import WhatsAppAdapter


class AdapterRegistry:
    def __init__(self, adapters: Iterable[ChannelAdapter] = ()) -> None:
        self._adapters: dict[str, ChannelAdapter] = {}
        for adapter in adapters:
            self.register(adapter)

    def register(self, adapter: ChannelAdapter) -> None:
        if adapter.channel not in CHANNEL_SPECS:
            raise ValueError(f"adapter for unknown channel {adapter.channel!r}")
        if adapter.channel in self._adapters:
            raise ValueError(f"channel {adapter.channel!r} already has an adapter")
        self._adapters[adapter.channel] = adapter

    def get(self, channel: str) -> ChannelAdapter | None:
        return self._adapters.get(channel)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._adapters)


def default_registry() -> AdapterRegistry:
    return AdapterRegistry(
        [
            WhatsAppAdapter(),
            MessengerAdapter(),
            InstagramAdapter(),
            TelegramAdapter(),
            TwilioAdapter(),
            WeChatAdapter(),
            LineAdapter(),
            ViberAdapter(),
            WebchatAdapter(),
            StripeAdapter(),
        ]
    )
