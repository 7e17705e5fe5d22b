"""Viber REST bot API: documented callbacks signed with X-Viber-Content-Signature."""

from __future__ import annotations

from channel_kit import (
    RECEIVED,
    STATUS,
    SUBSCRIPTION,
    compact,
    create_account,
    post,
    stored,
    viber_headers,
    viber_status,
    viber_text,
    wait_normalized,
)

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_kit.envelope import deterministic_event_id

USER = "01234567890A="


async def _send(gateway, account_id: str, data: dict) -> None:
    body = compact(data)
    response = await post(gateway, "viber", account_id, body, viber_headers(body))
    assert response.status_code == 200, response.text


async def test_callbacks(gateway) -> None:
    account_id = await create_account(gateway, "viber")
    callbacks = [
        {
            "event": "webhook",
            "timestamp": 1457764197627,
            "chat_hostname": "SN-376_",
            "message_token": 241256543215,
        },
        {
            "event": "conversation_started",
            "timestamp": 1457764197627,
            "message_token": 4912661846655238145,
            "type": "open",
            "context": "context information",
            "user": {"id": USER, "name": "John McClane", "api_version": 1},
            "subscribed": False,
        },
        {
            "event": "subscribed",
            "timestamp": 1457764197628,
            "user": {"id": USER, "name": "John McClane", "api_version": 1},
            "message_token": 4912661846655238146,
        },
        viber_text(4912661846655238147),
        {
            **viber_text(4912661846655238148),
            "message": {"type": "location", "location": {"lat": 50.76891, "lon": 6.11499}},
        },
        {
            **viber_text(4912661846655238149),
            "message": {
                "type": "contact",
                "contact": {"name": "Itamar", "phone_number": "+972511123123"},
            },
        },
        # statuses of a message the bot sent, out of order
        viber_status("seen", 5000000000000000001, ts=1457764198000),
        viber_status("delivered", 5000000000000000001, ts=1457764197900),
        viber_status("failed", 5000000000000000002),
        {
            "event": "unsubscribed",
            "timestamp": 1457764199000,
            "user_id": USER,
            "message_token": 4912661846655238150,
        },
    ]
    for data in callbacks:
        await _send(gateway, account_id, data)
    await wait_normalized(gateway, account_id, len(callbacks))

    received = await stored(gateway, RECEIVED, account_id)
    assert [s.event.content.WhichOneof("kind") for s in received] == [
        "text",
        "location",
        "contacts",
    ]
    assert received[0].event.sender_display_name == "John McClane"
    assert received[0].event.provider_message_id == "4912661846655238147"
    assert received[0].event_id == deterministic_event_id(
        "viber", account_id, "4912661846655238147", "received"
    )
    assert received[2].event.content.contacts.contacts[0].phones == ["+972511123123"]
    subs = [
        (s.event.subscribed, s.event.reason)
        for s in await stored(gateway, SUBSCRIPTION, account_id)
    ]
    assert subs == [(False, "conversation_started"), (True, "subscribed"), (False, "unsubscribed")]
    statuses = [
        (s.event.provider_message_id, s.event.status, s.event.error_title)
        for s in await stored(gateway, STATUS, account_id)
    ]
    assert statuses == [
        ("5000000000000000001", pb.DELIVERY_STATUS_READ, ""),
        ("5000000000000000002", pb.DELIVERY_STATUS_FAILED, "failure description"),
    ], "a delivered arriving after seen is not emitted"
