"""Messenger Platform webhooks (`object: "page"`). The shape and rules are in `meta.py`."""

from __future__ import annotations

from parlay_gateway.channels.meta import MetaMessagingAdapter


class MessengerAdapter(MetaMessagingAdapter):
    channel = "messenger"
    expected_object = "page"
