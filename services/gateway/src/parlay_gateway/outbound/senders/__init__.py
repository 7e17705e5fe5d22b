"""Per-channel senders and the registry the dispatcher looks them up in.

Adding a channel's outbound side = a `ChannelSender` subclass (pure `build` + `parse`) and one
entry in `default_senders()`. Web chat delivers over the gateway's own socket: its contributor
registers a sender for "webchat" (or handles OutboundMessageRequested itself and leaves the
channel in `DELIVERED_ELSEWHERE`, which this consumer then skips).
"""

from __future__ import annotations

from collections.abc import Iterable

from parlay_gateway.outbound.senders.base import (
    ChannelSender,
    Delivery,
    Outcome,
    ProviderRequest,
    ProviderResponse,
    SendContext,
    Unsendable,
)
from parlay_gateway.outbound.senders.line import LineSender
from parlay_gateway.outbound.senders.meta import InstagramSender, MessengerSender, WhatsAppSender
from parlay_gateway.outbound.senders.telegram import TelegramSender
from parlay_gateway.outbound.senders.twilio import TwilioSender
from parlay_gateway.outbound.senders.viber import ViberSender
from parlay_gateway.outbound.senders.wechat import WeChatSender

#: Channels whose outbound messages another part of the gateway delivers (not over a provider
#: HTTP API): the outbound consumer records nothing for them.
DELIVERED_ELSEWHERE: frozenset[str] = frozenset({"webchat"})


class SenderRegistry:
    def __init__(
        self,
        senders: Iterable[ChannelSender] = (),
        *,
        delivered_elsewhere: Iterable[str] = DELIVERED_ELSEWHERE,
    ) -> None:
        self._senders: dict[str, ChannelSender] = {}
        self.delivered_elsewhere = set(delivered_elsewhere)
        for sender in senders:
            self.register(sender)

    def register(self, sender: ChannelSender) -> None:
        if sender.channel in self._senders:
            raise ValueError(f"channel {sender.channel!r} already has a sender")
        self._senders[sender.channel] = sender
        self.delivered_elsewhere.discard(sender.channel)

    def get(self, channel: str) -> ChannelSender | None:
        return self._senders.get(channel)

    def handles(self, channel: str) -> bool:
        """False for channels another component delivers (the consumer skips their requests)."""
        return channel not in self.delivered_elsewhere

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._senders)


def default_senders() -> SenderRegistry:
    return SenderRegistry(
        [
            WhatsAppSender(),
            MessengerSender(),
            InstagramSender(),
            TelegramSender(),
            TwilioSender(),
            WeChatSender(),
            LineSender(),
            ViberSender(),
        ]
    )


__all__ = [
    "DELIVERED_ELSEWHERE",
    "ChannelSender",
    "Delivery",
    "Outcome",
    "ProviderRequest",
    "ProviderResponse",
    "SendContext",
    "SenderRegistry",
    "Unsendable",
    "default_senders",
]
