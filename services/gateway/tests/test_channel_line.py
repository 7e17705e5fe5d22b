"""LINE Messaging API: documented webhook bodies signed with X-Line-Signature."""

from __future__ import annotations

from channel_kit import (
    RECEIVED,
    SUBSCRIPTION,
    compact,
    create_account,
    line_follow,
    line_headers,
    line_payload,
    line_text,
    post,
    stored,
    wait_normalized,
)

from parlay_kit.envelope import deterministic_event_id, from_timestamp

USER = "U4af4980629"


async def test_events_batch_and_redelivery(gateway) -> None:
    account_id = await create_account(gateway, "line")
    events = [
        line_text("444573844083572737", text="Hello, world! (love)"),
        {
            **line_text("325708", event_id="01FZ74A0TDDPYRVKNK77XKC3ZS"),
            "message": {
                "id": "325708",
                "type": "sticker",
                "packageId": "446",
                "stickerId": "1988",
                "stickerResourceType": "ANIMATION",
            },
        },
        {
            **line_text("325709", event_id="01FZ74A0TDDPYRVKNK77XKC3ZT"),
            "message": {
                "id": "325709",
                "type": "location",
                "title": "my location",
                "address": "1-3 Kioicho, Chiyoda-ku, Tokyo",
                "latitude": 35.67966,
                "longitude": 139.73669,
            },
        },
        {
            **line_follow("follow", event_id="01FZ74A0TDDPYRVKNK77XKC3ZU"),
            "type": "postback",
            "postback": {"data": "action=buy&itemid=111"},
        },
        line_follow("follow"),
        line_follow("unfollow", event_id="01FZ74A0TDDPYRVKNK77XKC3ZV"),
        {"type": "join", "timestamp": 1462629479859, "source": {"type": "group", "groupId": "C1"}},
    ]
    first = line_payload(*events)
    body = compact(first)
    assert (await post(gateway, "line", account_id, body, line_headers(body))).status_code == 200
    # LINE redelivers with isRedelivery=true (other bytes): same normalized ids, nothing doubles.
    redelivered = line_payload(
        *[{**e, "deliveryContext": {"isRedelivery": True}} for e in events[:1]]
    )
    body2 = compact(redelivered)
    assert (await post(gateway, "line", account_id, body2, line_headers(body2))).status_code == 200
    # The console's "Verify" button: an empty events list.
    empty = compact(line_payload())
    assert (await post(gateway, "line", account_id, empty, line_headers(empty))).status_code == 200
    await wait_normalized(gateway, account_id, 3)

    received = await stored(gateway, RECEIVED, account_id)
    kinds = [s.event.content.WhichOneof("kind") for s in received]
    assert kinds == ["text", "media", "location", "interactive_reply"]
    text, sticker, loc, postback = (s.event for s in received)
    assert received[0].event_id == deterministic_event_id(
        "line", account_id, "444573844083572737", "received"
    )
    assert text.content.text.body == "Hello, world! (love)"
    assert text.sender.address == USER
    assert from_timestamp(text.sent_at).timestamp() == 1462629479.859
    assert (sticker.content.media.kind, sticker.content.media.provider_media_id) == (
        "sticker",
        "446/1988",
    )
    assert loc.content.location.address == "1-3 Kioicho, Chiyoda-ku, Tokyo"
    assert postback.content.interactive_reply.reply_id == "action=buy&itemid=111"
    subs = [
        (s.event.subscribed, s.event.reason)
        for s in await stored(gateway, SUBSCRIPTION, account_id)
    ]
    assert subs == [(True, "follow"), (False, "unfollow")]
