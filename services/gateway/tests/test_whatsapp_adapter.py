"""Pure tests of the WhatsApp adapter: signature, handshake, normalization of Meta's payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from gateway_testkit import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    TS,
    VERIFY_TOKEN,
    WHATSAPP_CREDENTIALS,
    body_of,
    change,
    contact,
    payload,
    sign,
    single_text,
    status,
    text_message,
)

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels.base import InboundRequest, MalformedPayload, WebhookRejected
from parlay_gateway.channels.whatsapp import WhatsAppAdapter, minor_units, normalize_payload
from parlay_kit import topics
from parlay_kit.envelope import deterministic_event_id

ACCOUNT = ChannelAccount(
    channel_account_id="acme-wa",
    tenant_id="acme",
    channel="whatsapp",
    credentials=WHATSAPP_CREDENTIALS,
    settings={},
    created_at=datetime(2024, 1, 1, tzinfo=UTC),
)
adapter = WhatsAppAdapter()


def request(body: bytes, **headers: str) -> InboundRequest:
    return InboundRequest(
        method="POST",
        path="/webhooks/whatsapp/acme-wa",
        headers={k.lower().replace("_", "-"): v for k, v in headers.items()},
        body=body,
    )


def normalize(data: dict | bytes) -> list:
    body = data if isinstance(data, bytes) else body_of(data)
    webhook = pb.WebhookReceived(channel="whatsapp", channel_account_id="acme-wa", body=body)
    return adapter.normalize(webhook, "acme", "webhook-1")


# ---------------------------------------------------------------- verification


def test_valid_signature_passes() -> None:
    body = body_of(single_text("wamid.1"))
    adapter.verify(request(body, x_hub_signature_256=sign(body)), ACCOUNT)


def test_missing_signature_is_401() -> None:
    with pytest.raises(WebhookRejected) as exc:
        adapter.verify(request(b"{}"), ACCOUNT)
    assert exc.value.status == 401


@pytest.mark.parametrize(
    "header",
    [
        sign(b"{}", "another-secret"),
        "sha256=" + "0" * 64,
        "sha1=abc",
        "garbage",
        sign(b"{} "),  # signature of other bytes
    ],
)
def test_wrong_signature_is_403(header: str) -> None:
    with pytest.raises(WebhookRejected) as exc:
        adapter.verify(request(b"{}", x_hub_signature_256=header), ACCOUNT)
    assert exc.value.status == 403
    assert APP_SECRET not in exc.value.reason


def test_reserialized_body_fails_verification() -> None:
    body = body_of(single_text("wamid.1", text="Grüße"))
    reserialized = json.dumps(json.loads(body)).encode()
    assert reserialized != body
    with pytest.raises(WebhookRejected) as exc:
        adapter.verify(request(reserialized, x_hub_signature_256=sign(body)), ACCOUNT)
    assert exc.value.status == 403


def test_check_body_refuses_non_json_and_non_objects() -> None:
    for body in (b"not json", b"[1,2]", b"\xff\xfe", b""):
        with pytest.raises(WebhookRejected) as exc:
            adapter.check_body(request(body))
        assert exc.value.status == 400
    adapter.check_body(request(b'{"object":"whatsapp_business_account"}'))


def test_handshake_echoes_challenge() -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    reply = adapter.handshake(query, ACCOUNT)
    assert (reply.status, reply.body, reply.media_type) == (200, b"1158201444", "text/plain")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_handshake_refuses_wrong_token_or_mode(query: dict) -> None:
    with pytest.raises(WebhookRejected) as exc:
        adapter.handshake(query, ACCOUNT)
    assert exc.value.status == 403


# ---------------------------------------------------------------- normalization


def test_single_text_message() -> None:
    [event] = normalize(single_text("wamid.ABC", sender="16315551181", text="Hi there"))
    msg = event.payload
    assert isinstance(msg, pb.MessageReceived)
    assert event.event_id == deterministic_event_id("whatsapp", "acme-wa", "wamid.ABC", "received")
    assert event.aggregate_type == "contact"
    assert event.aggregate_id == "acme-wa:16315551181"
    assert event.aggregate_version is None
    assert event.tenant_id == "acme"
    assert event.topic == topics.INBOUND
    assert event.occurred_at == datetime.fromtimestamp(int(TS), UTC)
    assert msg.channel == "whatsapp"
    assert msg.channel_account_id == "acme-wa"
    assert msg.provider_message_id == "wamid.ABC"
    assert (msg.sender.channel, msg.sender.address) == ("whatsapp", "16315551181")
    assert msg.sender_phone == "16315551181"
    assert msg.sender_display_name == "Kerry Fisher"
    assert msg.business_address == PHONE_NUMBER_ID
    assert msg.content.WhichOneof("kind") == "text"
    assert msg.content.text.body == "Hi there"
    assert msg.sent_at.seconds == int(TS)
    assert msg.webhook_event_id == "webhook-1"


def test_batched_entries_changes_messages_and_statuses() -> None:
    data = payload(
        [
            change(
                contacts=[contact("111", "Ann"), contact("222", "Bob")],
                messages=[
                    text_message("wamid.m1", "111", "one"),
                    text_message("wamid.m2", "222", "two"),
                ],
            ),
            change(
                statuses=[
                    status("wamid.out1", "sent", "111"),
                    status("wamid.out1", "delivered", "111", ts="1717430405"),
                ]
            ),
        ],
        [
            change(
                contacts=[contact("333", "Cy")],
                messages=[text_message("wamid.m3", "333", "three")],
                statuses=[
                    status("wamid.out2", "read", "333"),
                    status(
                        "wamid.out3",
                        "failed",
                        "333",
                        errors=[{"code": 131047, "title": "Re-engagement message", "message": "x"}],
                    ),
                ],
                phone_number_id="999",
            )
        ],
    )
    events = normalize(data)
    kinds = [type(e.payload).__name__ for e in events]
    assert kinds == [
        "MessageReceived",
        "MessageReceived",
        "MessageStatusUpdated",
        "MessageStatusUpdated",
        "MessageReceived",
        "MessageStatusUpdated",
        "MessageStatusUpdated",
    ]
    assert len({e.event_id for e in events}) == len(events)
    names = {
        e.payload.provider_message_id: e.payload.sender_display_name
        for e in events
        if isinstance(e.payload, pb.MessageReceived)
    }
    assert names == {"wamid.m1": "Ann", "wamid.m2": "Bob", "wamid.m3": "Cy"}
    m3 = events[4].payload
    assert m3.business_address == "999"
    statuses = [e for e in events if isinstance(e.payload, pb.MessageStatusUpdated)]
    assert [s.payload.status for s in statuses] == [
        pb.DELIVERY_STATUS_SENT,
        pb.DELIVERY_STATUS_DELIVERED,
        pb.DELIVERY_STATUS_READ,
        pb.DELIVERY_STATUS_FAILED,
    ]
    assert statuses[0].event_id == deterministic_event_id(
        "whatsapp", "acme-wa", "wamid.out1", "status", "sent"
    )
    assert statuses[1].event_id == deterministic_event_id(
        "whatsapp", "acme-wa", "wamid.out1", "status", "delivered"
    )
    assert statuses[1].aggregate_id == "acme-wa:111"
    assert statuses[1].occurred_at == datetime.fromtimestamp(1717430405, UTC)
    failed = statuses[3].payload
    assert (failed.error_code, failed.error_title) == ("131047", "Re-engagement message")
    assert failed.recipient.address == "333"


def test_normalization_is_deterministic() -> None:
    data = single_text("wamid.same")
    first, second = normalize(data), normalize(data)
    assert [e.event_id for e in first] == [e.event_id for e in second]
    assert [e.payload for e in first] == [e.payload for e in second]


def _one(message: dict) -> pb.MessageReceived:
    [event] = normalize(payload([change(contacts=[contact("111", "Ann")], messages=[message])]))
    return event.payload


def _msg(kind: str, **content: object) -> dict:
    return {"from": "111", "id": "wamid.X", "timestamp": TS, "type": kind, **content}


def test_media_messages() -> None:
    image = _one(
        _msg(
            "image",
            image={"caption": "look", "mime_type": "image/jpeg", "sha256": "abc=", "id": "media-1"},
        )
    )
    assert image.content.WhichOneof("kind") == "media"
    m = image.content.media
    assert (m.kind, m.provider_media_id, m.mime_type, m.caption, m.sha256) == (
        "image",
        "media-1",
        "image/jpeg",
        "look",
        "abc=",
    )
    doc = _one(
        _msg(
            "document",
            document={
                "filename": "invoice.pdf",
                "mime_type": "application/pdf",
                "sha256": "s",
                "id": "media-2",
            },
        )
    ).content.media
    assert (doc.kind, doc.filename) == ("document", "invoice.pdf")
    for kind in ("audio", "video", "sticker"):
        content = _one(_msg(kind, **{kind: {"mime_type": "x/y", "sha256": "s", "id": "m"}})).content
        assert content.media.kind == kind


def test_location_message() -> None:
    loc = _one(
        _msg(
            "location",
            location={
                "address": "1 Hacker Way",
                "latitude": 37.483307,
                "longitude": -122.148981,
                "name": "HQ",
            },
        )
    ).content.location
    assert (loc.latitude, loc.longitude, loc.name, loc.address) == (
        37.483307,
        -122.148981,
        "HQ",
        "1 Hacker Way",
    )


def test_contacts_message() -> None:
    shared = _one(
        _msg(
            "contacts",
            contacts=[
                {
                    "name": {"formatted_name": "Jane Doe", "first_name": "Jane"},
                    "phones": [{"phone": "+1 555 0100", "type": "CELL", "wa_id": "15550100"}],
                    "emails": [{"email": "jane@example.com", "type": "WORK"}],
                }
            ],
        )
    ).content.contacts.contacts
    assert shared[0].name == "Jane Doe"
    assert list(shared[0].phones) == ["+1 555 0100"]
    assert list(shared[0].emails) == ["jane@example.com"]


def test_interactive_button_and_list_replies_and_template_button() -> None:
    button = _one(
        _msg(
            "interactive",
            interactive={"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}},
        )
    ).content.interactive_reply
    assert (button.reply_id, button.title) == ("yes", "Yes")
    row = _one(
        _msg(
            "interactive",
            interactive={
                "type": "list_reply",
                "list_reply": {"id": "row-2", "title": "Blue", "description": "d"},
            },
        )
    ).content.interactive_reply
    assert (row.reply_id, row.title) == ("row-2", "Blue")
    template = _one(_msg("button", button={"text": "Track order", "payload": "TRACK"})).content
    assert template.interactive_reply.payload == "TRACK"
    assert template.interactive_reply.title == "Track order"


def test_reaction_and_context() -> None:
    msg = _one(
        _msg(
            "reaction",
            reaction={"message_id": "wamid.original", "emoji": "\U0001f44d"},
            context={"from": PHONE_NUMBER_ID, "id": "wamid.original"},
        )
    )
    assert msg.content.reaction.target_provider_message_id == "wamid.original"
    assert msg.content.reaction.emoji == "\U0001f44d"
    assert msg.context_provider_message_id == "wamid.original"


def test_order_message_prices_in_minor_units() -> None:
    order = _one(
        _msg(
            "order",
            order={
                "catalog_id": "cat-1",
                "text": "please deliver",
                "product_items": [
                    {
                        "product_retailer_id": "sku-1",
                        "quantity": 2,
                        "item_price": 12.5,
                        "currency": "USD",
                    },
                    {
                        "product_retailer_id": "sku-2",
                        "quantity": "1",
                        "item_price": 1500,
                        "currency": "JPY",
                    },
                ],
            },
        )
    ).content.order
    assert (order.catalog_id, order.text) == ("cat-1", "please deliver")
    assert [(i.sku, i.quantity, i.unit_price_minor, i.currency) for i in order.items] == [
        ("sku-1", 2, 1250, "USD"),
        ("sku-2", 1, 1500, "JPY"),
    ]
    assert minor_units("0.1", "BHD", "p") == 100
    assert minor_units(19.99, "EUR", "p") == 1999


@pytest.mark.parametrize("kind", ["system", "unsupported", "unknown", "request_welcome"])
def test_other_types_are_kept_as_unsupported(kind: str) -> None:
    events = normalize(
        payload(
            [
                change(
                    contacts=[contact("111", "Ann")],
                    messages=[
                        _msg(
                            kind,
                            system={
                                "body": "changed",
                                "wa_id": "222",
                                "type": "user_changed_number",
                            },
                        )
                    ],
                )
            ]
        )
    )
    # (a "system" number change also yields IdentityEvidenceObserved: test_channel_whatsapp_system)
    msg = events[0].payload
    assert msg.content.unsupported.provider_type == kind


def test_changes_without_messages_yield_nothing() -> None:
    data = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {"event": "APPROVED", "message_template_id": 1},
                    }
                ],
            }
        ],
    }
    assert normalize(data) == []


def test_unknown_status_is_skipped_not_guessed() -> None:
    events = normalize(
        payload(
            [
                change(
                    statuses=[status("wamid.o", "deleted", "111"), status("wamid.o", "read", "111")]
                )
            ]
        )
    )
    assert [e.payload.status for e in events] == [pb.DELIVERY_STATUS_READ]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"not json", "not JSON"),
        (b"[]", "expected an object"),
        (body_of({"object": "page", "entry": []}), "body.object"),
        (body_of({"object": "whatsapp_business_account"}), "entry: missing"),
        (body_of({"object": "whatsapp_business_account", "entry": {"id": 1}}), "expected a list"),
        (
            body_of(
                payload(
                    [
                        change(
                            messages=[
                                {"id": "w", "timestamp": TS, "type": "text", "text": {"body": "x"}}
                            ]
                        )
                    ]
                )
            ),
            "from: missing",
        ),
        (
            body_of(payload([change(messages=[text_message("w", "1", "x", ts="yesterday")])])),
            "timestamp",
        ),
        (
            body_of(payload([change(messages=[_msg("text", text="not an object")])])),
            "messages[0].text",
        ),
        (
            body_of(payload([change(statuses=[{"id": "w", "status": "read", "timestamp": TS}])])),
            "recipient_id",
        ),
        (
            body_of(payload([change(messages=[_msg("location", location={"latitude": "north"})])])),
            "latitude",
        ),
    ],
)
def test_unexpected_shapes_raise(body: bytes, where: str) -> None:
    with pytest.raises(MalformedPayload) as exc:
        normalize_payload(body, account_id="a", tenant_id="t", webhook_event_id="w")
    assert where in str(exc.value)


def test_account_repr_hides_secrets() -> None:
    assert APP_SECRET not in repr(ACCOUNT)
    proto = ACCOUNT.to_proto()
    assert APP_SECRET not in str(proto)
    assert list(proto.credential_names) == ["access_token", "app_secret", "verify_token"]
    assert proto.webhook_path == "/webhooks/whatsapp/acme-wa"
