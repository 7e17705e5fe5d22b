"""Twilio (SMS/MMS and WhatsApp via Twilio): form-encoded webhooks signed with X-Twilio-Signature,
end to end through the broker to parlay.gateway.inbound.v1; status callbacks out of order."""

from __future__ import annotations

import uuid
from collections import Counter

from channel_kit import (
    RECEIVED,
    STATUS,
    TWILIO_PUBLIC_URL,
    create_account,
    post,
    stored,
    twilio_request,
    twilio_sms,
    twilio_status,
    wait_normalized,
)
from gateway_testkit import read_topic

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels.base import InboundRequest, WebhookRejected
from parlay_gateway.channels.twilio import TwilioAdapter, compute_signature, parse_form
from parlay_kit import envelope, topics
from parlay_kit.envelope import deterministic_event_id, utcnow


def sid() -> str:
    return "SM" + uuid.uuid4().hex


def test_documented_signature_example() -> None:
    """Twilio's own worked example (auth token 12345)."""
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert compute_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_url_from_gateway_setting_and_port_variants() -> None:
    account = ChannelAccount("tw1", "t", "twilio", {"auth_token": "12345"}, {}, utcnow())
    params = twilio_sms(sid())
    body, headers = twilio_request("/webhooks/twilio/tw1", params)
    request = InboundRequest(
        "POST",
        "/webhooks/twilio/tw1",
        {k.lower(): v for k, v in headers.items()},
        body,
        public_url=TWILIO_PUBLIC_URL,
    )
    TwilioAdapter().verify(request, account)  # gateway-wide PARLAY_PUBLIC_URL
    with_port = InboundRequest(
        "POST", request.path, request.headers, body, public_url=TWILIO_PUBLIC_URL + ":443"
    )
    TwilioAdapter().verify(with_port, account)  # Twilio's helpers accept both
    try:
        TwilioAdapter().verify(InboundRequest("POST", request.path, request.headers, body), account)
    except WebhookRejected as exc:
        assert exc.status == 403 and "public_url" in exc.reason
    else:
        raise AssertionError("no public URL configured must be refused")


async def test_sms_mms_and_whatsapp_end_to_end(gateway, gw_kafka) -> None:
    account_id = await create_account(gateway, "twilio")
    path = f"/webhooks/twilio/{account_id}"
    sms, mms, wa, wa_loc = sid(), sid(), sid(), sid()
    requests = [
        twilio_sms(sms, body="Is my order ready?"),
        [
            *(p for p in twilio_sms(mms, body="see photos") if p[0] != "NumMedia"),
            ("NumMedia", "2"),
            ("MediaContentType0", "image/jpeg"),
            (
                "MediaUrl0",
                f"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/{mms}/Media/ME0a",
            ),
            ("MediaContentType1", "application/pdf"),
            (
                "MediaUrl1",
                f"https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/{mms}/Media/ME1b",
            ),
        ],
        [
            ("SmsMessageSid", wa),
            ("NumMedia", "0"),
            ("ProfileName", "Ana Silva"),
            ("MessageType", "text"),
            ("SmsSid", wa),
            ("WaId", "5511999998888"),
            ("SmsStatus", "received"),
            ("Body", "Olá! ¿qué tal? & más"),
            ("To", "whatsapp:+14155238886"),
            ("NumSegments", "1"),
            ("ReferralNumMedia", "0"),
            ("MessageSid", wa),
            ("AccountSid", "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
            ("From", "whatsapp:+5511999998888"),
            ("ApiVersion", "2010-04-01"),
        ],
        [
            ("MessageSid", wa_loc),
            ("From", "whatsapp:+5511999998888"),
            ("To", "whatsapp:+14155238886"),
            ("Latitude", "-23.5505"),
            ("Longitude", "-46.6333"),
            ("Address", "Av. Paulista"),
            ("Label", "Shop"),
            ("NumMedia", "0"),
            ("MessageType", "location"),
        ],
    ]
    for params in requests:
        body, headers = twilio_request(path, params)
        response = await post(gateway, "twilio", account_id, body, headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/xml")
        assert response.text.endswith("<Response/>")
    # The same parameters in another order/encoding: a retry, stored once.
    body, headers = twilio_request(path, list(reversed(requests[0])))
    assert (await post(gateway, "twilio", account_id, body, headers)).status_code == 200
    assert len(await gateway.events("parlay.gateway.v1.WebhookReceived", account_id)) == 4

    wanted = {
        deterministic_event_id("twilio", account_id, sms, "received"),
        deterministic_event_id("twilio", account_id, mms, "received"),
        deterministic_event_id("twilio", account_id, mms, "received", "1"),
        deterministic_event_id("twilio", account_id, wa, "received"),
        deterministic_event_id("twilio", account_id, wa_loc, "received"),
    }
    records = await read_topic(gw_kafka, topics.INBOUND, wanted, timeout=60)
    assert Counter(dict(r.headers)["ce_id"].decode() for r in records) == Counter(wanted)
    events = {}
    for record in records:
        env = envelope.decode(record.value)
        event = envelope.unpack(env)
        assert isinstance(event, pb.MessageReceived)
        assert env.tenant_id == "acme" and env.aggregate_type == "contact"
        assert record.key.decode() == env.aggregate_id == f"{account_id}:{event.sender.address}"
        events[
            (
                event.provider_message_id,
                event.content.WhichOneof("kind"),
                event.content.media.mime_type,
            )
        ] = event
    assert events[(sms, "text", "")].content.text.body == "Is my order ready?"
    assert events[(sms, "text", "")].sender_phone == "14155550100"
    image = events[(mms, "media", "image/jpeg")]
    assert (image.content.media.kind, image.content.media.caption) == ("image", "see photos")
    assert image.content.media.provider_media_id == "ME0a"
    assert events[(mms, "media", "application/pdf")].content.media.kind == "document"
    whatsapp = events[(wa, "text", "")]
    assert whatsapp.sender.address == "whatsapp:+5511999998888"
    assert whatsapp.sender_display_name == "Ana Silva"
    assert whatsapp.sender_phone == "5511999998888"
    assert whatsapp.business_address == "whatsapp:+14155238886"
    assert whatsapp.content.text.body == "Olá! ¿qué tal? & más"
    location = events[(wa_loc, "location", "")].content.location
    assert (location.latitude, location.longitude, location.name) == (-23.5505, -46.6333, "Shop")


async def test_status_callbacks_out_of_order_are_monotone(gateway) -> None:
    account_id = await create_account(gateway, "twilio")
    path = f"/webhooks/twilio/{account_id}"
    ok, failed = sid(), sid()
    callbacks = [
        twilio_status(ok, "delivered"),
        twilio_status(ok, "queued"),  # not a DeliveryStatus: skipped
        twilio_status(ok, "sent"),  # late: not emitted
        twilio_status(ok, "read"),
        twilio_status(ok, "delivered"),  # duplicate content: stored once, nothing new
        twilio_status(failed, "undelivered", error="30003"),
        twilio_status(failed, "sent"),  # after the failure: not emitted
        twilio_status(failed, "failed", error="30003"),  # a second failure: not emitted
    ]
    for params in callbacks:
        body, headers = twilio_request(path, params)
        assert (await post(gateway, "twilio", account_id, body, headers)).status_code == 200
    await wait_normalized(gateway, account_id, 7)
    statuses = await stored(gateway, STATUS, account_id)
    seen = [
        (s.event.provider_message_id, s.event.status, s.event.provider_status) for s in statuses
    ]
    assert seen == [
        (ok, pb.DELIVERY_STATUS_DELIVERED, "delivered"),
        (ok, pb.DELIVERY_STATUS_READ, "read"),
        (failed, pb.DELIVERY_STATUS_FAILED, "undelivered"),
    ]
    assert statuses[2].event.error_code == "30003"
    assert statuses[2].event_id == deterministic_event_id(
        "twilio", account_id, failed, "status", "failed"
    )
    assert await stored(gateway, RECEIVED, account_id) == []
    rows = await gateway.pool.fetch(
        f"SELECT provider_message_id, rank, failed, error_code FROM {gateway.schema}.message_status "
        "WHERE channel_account_id = $1 ORDER BY rank",
        account_id,
    )
    assert [tuple(r) for r in rows] == [(failed, 1, True, "30003"), (ok, 3, False, "")]


def test_form_parsing_is_strict() -> None:
    assert parse_form(b"") == []
    assert parse_form(b"A=1&B=&C=%26") == [("A", "1"), ("B", ""), ("C", "&")]
