"""Instagram Messaging webhooks (`object: "instagram"`). The shape and rules are in `meta.py`;
Instagram reports reads per message (`read.mid`, the messaging_seen field) and includes echoes in
the `messages` field subscription."""

from __future__ import annotations

from parlay_gateway.channels.meta import MetaMessagingAdapter


class InstagramAdapter(MetaMessagingAdapter):
    channel = "instagram"
    expected_object = "instagram"
