"""Messenger and Instagram: documented payloads signed like Meta signs them, through the running
gateway (HTTP -> Postgres -> broker -> normalizer), plus the pure parser on edge cases."""

from __future__ import annotations

import pytest
from channel_kit import (
    META_CREDENTIALS,
    RECEIVED,
    STATUS,
    compact,
    create_account,
    meta_delivery,
    meta_echo,
    meta_headers,
    meta_payload,
    meta_read,
    meta_text,
    post,
    stored,
    wait_normalized,
)

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.channels.base import MalformedPayload
from parlay_gateway.channels.meta import normalize_payload
from parlay_kit.envelope import deterministic_event_id, from_timestamp

PAGE = "106540352242922"
PSID = "1254477777772919"


async def _send(gateway, channel: str, account_id: str, data: dict) -> None:
    body = compact(data)
    response = await post(gateway, channel, account_id, body, meta_headers(body))
    assert response.status_code == 200, response.text


async def test_messenger_batched_messages(gateway) -> None:
    account_id = await create_account(gateway, "messenger")
    items = [
        meta_text(PSID, PAGE, "m_text", "hello, world!"),
        meta_text(
            PSID,
            PAGE,
            "m_quick",
            "Red",
            quick_reply={"payload": "<DEVELOPER_DEFINED_PAYLOAD>"},
            reply_to={"mid": "m_text"},
        ),
        {
            "sender": {"id": PSID},
            "recipient": {"id": PAGE},
            "timestamp": 1518479195308,
            "message": {
                "mid": "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c",
                "attachments": [
                    {"type": "image", "payload": {"url": "https://cdn.example/img.jpg"}},
                    {
                        "type": "location",
                        "payload": {"coordinates": {"lat": 52.52, "long": 13.405}, "title": "Pin"},
                    },
                ],
            },
        },
        {
            "sender": {"id": PSID},
            "recipient": {"id": PAGE},
            "timestamp": 1527459824000,
            "postback": {"mid": "m_postback", "title": "Get Started", "payload": "GET_STARTED"},
        },
        meta_echo(PAGE, PSID, "m_echo", 1458692752999),
    ]
    data = meta_payload("page", PAGE, *items[:3])
    data["entry"].append({"id": PAGE, "time": 1, "messaging": items[3:]})
    await _send(gateway, "messenger", account_id, data)
    await _send(gateway, "messenger", account_id, data)  # a retry changes nothing
    await wait_normalized(gateway, account_id, 1)

    received = await stored(gateway, RECEIVED, account_id)
    kinds = [(s.event.provider_message_id, s.event.content.WhichOneof("kind")) for s in received]
    assert kinds == [
        ("m_text", "text"),
        ("m_quick", "interactive_reply"),
        ("mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c", "media"),
        ("mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c", "location"),
        ("m_postback", "interactive_reply"),
    ], "the echo is not an inbound message"
    text, quick, image, loc, postback = (s.event for s in received)
    assert text.content.text.body == "hello, world!"
    assert text.sender.address == PSID and text.business_address == PAGE
    assert from_timestamp(text.sent_at).timestamp() == 1458692752.478
    assert received[0].envelope.occurred_at == text.sent_at
    assert received[0].aggregate_id == f"{account_id}:{PSID}"
    assert received[0].event_id == deterministic_event_id(
        "messenger", account_id, "m_text", "received"
    )
    assert quick.content.interactive_reply.payload == "<DEVELOPER_DEFINED_PAYLOAD>"
    assert quick.content.interactive_reply.title == "Red"
    assert quick.context_provider_message_id == "m_text"
    assert image.content.media.kind == "image"
    assert image.content.media.url == "https://cdn.example/img.jpg"
    assert (loc.content.location.latitude, loc.content.location.longitude) == (52.52, 13.405)
    assert postback.content.interactive_reply.reply_id == "GET_STARTED"
    assert postback.content.interactive_reply.title == "Get Started"
    [echo] = await stored(gateway, STATUS, account_id)
    assert echo.event.provider_message_id == "m_echo"
    assert echo.event.status == pb.DELIVERY_STATUS_SENT
    assert echo.event.provider_status == "echo"
    assert echo.event.recipient.address == PSID


async def test_messenger_watermarks_in_any_order(gateway) -> None:
    """Echoes (sent) and delivery/read watermarks arriving out of order still give each message
    a monotone status sequence; a read watermark that overtook its echo applies when the echo
    arrives."""
    account_id = await create_account(gateway, "messenger")
    t0 = 1_700_000_000_000
    deliveries = [
        # read receipt first: covers m1 and m2 (sent at t0, t0+10), not m3 (t0+500)
        meta_payload("page", PAGE, meta_read(PSID, PAGE, t0 + 100)),
        meta_payload("page", PAGE, meta_echo(PAGE, PSID, "m1", t0)),
        meta_payload("page", PAGE, meta_echo(PAGE, PSID, "m3", t0 + 500)),
        # delivery with mids (per message) and a watermark
        meta_payload("page", PAGE, meta_delivery(PSID, PAGE, t0 + 600, mids=["m3"])),
        meta_payload("page", PAGE, meta_echo(PAGE, PSID, "m2", t0 + 10)),
        # stale delivery watermark for m1/m2 (already read): nothing
        meta_payload("page", PAGE, meta_delivery(PSID, PAGE, t0 + 50)),
        meta_payload("page", PAGE, meta_read(PSID, PAGE, t0 + 700)),
    ]
    for n, data in enumerate(deliveries, 1):
        await _send(gateway, "messenger", account_id, data)
        await wait_normalized(gateway, account_id, n)
    statuses = await stored(gateway, STATUS, account_id)
    seq: dict[str, list[int]] = {}
    for s in statuses:
        seq.setdefault(s.event.provider_message_id, []).append(s.event.status)
    S, D, R = pb.DELIVERY_STATUS_SENT, pb.DELIVERY_STATUS_DELIVERED, pb.DELIVERY_STATUS_READ
    assert seq == {"m1": [S, R], "m3": [S, D, R], "m2": [S, R]}
    ids = [s.event_id for s in statuses]
    assert len(ids) == len(set(ids))
    read_m1 = next(
        s for s in statuses if s.event.provider_message_id == "m1" and s.event.status == R
    )
    assert read_m1.event_id == deterministic_event_id(
        "messenger", account_id, "m1", "status", "read"
    )
    assert from_timestamp(read_m1.event.status_at).timestamp() == (t0 + 100) / 1000


async def test_instagram_message_echo_and_seen(gateway) -> None:
    account_id = await create_account(gateway, "instagram")
    ig = "17841400000000000"
    igsid = "6543210987654321"
    data = meta_payload(
        "instagram",
        ig,
        meta_text(igsid, ig, "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAx", "hi from IG"),
        meta_echo(ig, igsid, "aWdfZAG1_echo", 1458692753000),
        {
            "sender": {"id": igsid},
            "recipient": {"id": ig},
            "timestamp": 1458692754000,
            "read": {"mid": "aWdfZAG1_echo"},
        },
    )
    await _send(gateway, "instagram", account_id, data)
    await wait_normalized(gateway, account_id, 1)
    [msg] = await stored(gateway, RECEIVED, account_id)
    assert msg.event.channel == "instagram"
    assert msg.event.content.text.body == "hi from IG"
    statuses = [
        (s.event.provider_message_id, s.event.status)
        for s in await stored(gateway, STATUS, account_id)
    ]
    assert statuses == [
        ("aWdfZAG1_echo", pb.DELIVERY_STATUS_SENT),
        ("aWdfZAG1_echo", pb.DELIVERY_STATUS_READ),
    ]


async def test_handshake(gateway) -> None:
    for channel in ("messenger", "instagram"):
        account_id = await create_account(gateway, channel)
        ok = await gateway.http.get(
            f"/webhooks/{channel}/{account_id}",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": META_CREDENTIALS["verify_token"],
                "hub.challenge": "1158201444",
            },
        )
        assert (ok.status_code, ok.text) == (200, "1158201444")
        bad = await gateway.http.get(
            f"/webhooks/{channel}/{account_id}",
            params={"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"},
        )
        assert bad.status_code == 403


@pytest.mark.parametrize(
    "data, where",
    [
        ({"object": "instagram", "entry": []}, "body.object"),
        ({"object": "page", "entry": [{"messaging": [{"sender": {"id": "1"}}]}]}, None),
        (
            {
                "object": "page",
                "entry": [{"messaging": [{"sender": {"id": "1"}, "message": {"mid": "m"}}]}],
            },
            "timestamp",
        ),
        (
            {
                "object": "page",
                "entry": [
                    {
                        "messaging": [
                            {"sender": {"id": "1"}, "recipient": {"id": "2"}, "delivery": {}}
                        ]
                    }
                ],
            },
            "delivery",
        ),
    ],
)
def test_parser_edge_cases(data: dict, where: str | None) -> None:
    kwargs = {
        "channel": "messenger",
        "expected_object": "page",
        "account_id": "a",
        "tenant_id": "t",
        "webhook_event_id": "w",
    }
    if where is None:
        assert normalize_payload(compact(data), **kwargs) == []
        return
    with pytest.raises(MalformedPayload, match=where):
        normalize_payload(compact(data), **kwargs)
