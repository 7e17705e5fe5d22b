"""Telegram: documented Update objects with the secret-token header, through the running gateway."""

from __future__ import annotations

import pytest
from channel_kit import (
    EDITED,
    EVIDENCE,
    PAYMENT,
    RECEIVED,
    WEBHOOK,
    compact,
    create_account,
    post,
    stored,
    telegram_headers,
    telegram_message,
    wait_normalized,
)

from parlay_gateway.channels.base import MalformedPayload
from parlay_gateway.channels.telegram import normalize_update
from parlay_kit.envelope import deterministic_event_id, from_timestamp, utcnow

USER = 1111111


async def _send(gateway, account_id: str, update: dict) -> None:
    response = await post(gateway, "telegram", account_id, compact(update), telegram_headers())
    assert response.status_code == 200, response.text


async def test_updates_of_every_kind(gateway) -> None:
    account_id = await create_account(gateway, "telegram")
    chat = {"id": USER, "type": "private", "first_name": "Test Firstname"}
    user = {
        "id": USER,
        "is_bot": False,
        "first_name": "Test Firstname",
        "last_name": "Test Lastname",
    }
    updates = [
        telegram_message(10000, 1365),
        telegram_message(
            10001,
            1366,
            photo=[
                {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
                {
                    "file_id": "AgACAgQAAxkBAAIBlarge",
                    "file_unique_id": "l",
                    "width": 1280,
                    "height": 960,
                },
            ],
            caption="my receipt",
        ),
        telegram_message(10002, 1367, location={"latitude": 48.8584, "longitude": 2.2945}),
        telegram_message(
            10003,
            1368,
            contact={"phone_number": "+4915112345678", "first_name": "Test", "user_id": USER},
        ),
        telegram_message(
            10004, 1369, contact={"phone_number": "+3312345678", "first_name": "A friend"}
        ),
        {
            "update_id": 10005,
            "edited_message": {
                "message_id": 1365,
                "from": user,
                "chat": chat,
                "date": 1441645532,
                "edit_date": 1441645600,
                "text": "/start again",
            },
        },
        {
            "update_id": 10006,
            "callback_query": {
                "id": "4382bfdwdsb323b2d9",
                "from": user,
                "message": {"message_id": 1370, "chat": chat, "date": 1441645532, "text": "Pick"},
                "chat_instance": "-1234",
                "data": "size:M",
            },
        },
        {
            "update_id": 10007,
            "pre_checkout_query": {
                "id": "pcq-77",
                "from": user,
                "currency": "EUR",
                "total_amount": 1999,
                "invoice_payload": "order-42",
            },
        },
        telegram_message(
            10008,
            1371,
            successful_payment={
                "currency": "EUR",
                "total_amount": 1999,
                "invoice_payload": "order-42",
                "telegram_payment_charge_id": "tg-charge-1",
                "provider_payment_charge_id": "ch_3Pstripe",
            },
        ),
        {"update_id": 10009, "my_chat_member": {"chat": chat}},  # not normalized
    ]
    for update in updates:
        await _send(gateway, account_id, update)
    await _send(gateway, account_id, updates[0])  # Telegram retries: stored once
    assert len(await gateway.events(WEBHOOK, account_id)) == len(updates)
    await wait_normalized(gateway, account_id, len(updates))

    received = await stored(gateway, RECEIVED, account_id)
    assert [s.event.content.WhichOneof("kind") for s in received] == [
        "text",
        "media",
        "location",
        "contacts",
        "contacts",
        "interactive_reply",
    ]
    text, photo, loc, own, friend, callback = (s.event for s in received)
    assert received[0].event_id == deterministic_event_id(
        "telegram", account_id, "update", "10000", "received"
    )
    assert received[0].aggregate_id == f"{account_id}:{USER}"
    assert text.provider_message_id == f"{USER}:1365"
    assert text.sender_display_name == "Test Firstname Test Lastname"
    assert text.content.text.body == "/start"
    assert from_timestamp(text.sent_at).timestamp() == 1441645532
    assert photo.content.media.provider_media_id == "AgACAgQAAxkBAAIBlarge"
    assert photo.content.media.caption == "my receipt"
    assert loc.content.location.latitude == 48.8584
    assert own.content.contacts.contacts[0].phones == ["+4915112345678"]
    assert callback.content.interactive_reply.reply_id == "size:M"
    assert callback.context_provider_message_id == f"{USER}:1370"

    [evidence] = await stored(gateway, EVIDENCE, account_id)
    assert evidence.event.evidence_kind == "shared_phone"
    assert evidence.event.phone == "+4915112345678"
    assert evidence.event.subject.address == str(USER)

    [edited] = await stored(gateway, EDITED, account_id)
    assert edited.event.provider_message_id == f"{USER}:1365"
    assert edited.event.content.text.body == "/start again"
    assert from_timestamp(edited.event.edited_at).timestamp() == 1441645600

    pre, paid = (s.event for s in await stored(gateway, PAYMENT, account_id))
    assert (pre.kind, pre.provider_event_id, pre.total_minor, pre.currency) == (
        "pre_checkout_query",
        "pcq-77",
        1999,
        "EUR",
    )
    assert (paid.kind, paid.provider_charge_id, paid.invoice_payload) == (
        "successful_payment",
        "tg-charge-1",
        "order-42",
    )
    assert paid.payer.address == str(USER)


def test_update_ids_make_event_ids_per_account() -> None:
    body = compact(telegram_message(5, 1))
    now = utcnow()
    a = normalize_update(body, account_id="a", tenant_id="t", webhook_event_id="w", received_at=now)
    b = normalize_update(body, account_id="b", tenant_id="t", webhook_event_id="w", received_at=now)
    assert a[0].event_id != b[0].event_id


@pytest.mark.parametrize(
    "update, where",
    [
        ({"update_id": "x"}, "update_id"),
        ({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}}}, "date"),
        (
            {
                "update_id": 1,
                "message": {"message_id": 1, "chat": {"id": 1}, "date": 1, "photo": []},
            },
            "photo",
        ),
        ({"update_id": 1, "callback_query": {"from": {"id": 1}}}, "callback_query.id"),
    ],
)
def test_malformed_updates(update: dict, where: str) -> None:
    with pytest.raises(MalformedPayload, match=where):
        normalize_update(
            compact(update),
            account_id="a",
            tenant_id="t",
            webhook_event_id="w",
            received_at=utcnow(),
        )
