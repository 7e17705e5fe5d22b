"""Web chat, pure parts: visitor identity (signed / anonymous), frame validation, the stored
frame -> normalized events, the outbound message body. Plus a bounded fuzz of the parsers."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels import webchat as wc
from parlay_gateway.channels.base import MalformedPayload, WebhookRejected
from parlay_gateway.channels.registry import default_registry
from parlay_gateway.ingest import build_webhook_event
from parlay_gateway.outbound.senders.base import Delivery, Unsendable
from parlay_gateway.outbound.senders.webchat import message_body
from parlay_kit.envelope import deterministic_event_id, to_timestamp

SECRET = "wc-identity-secret-1"
NOW = datetime(2024, 6, 3, 16, 0, tzinfo=UTC)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def account(secret: str | None = SECRET, **settings_: str) -> ChannelAccount:
    return ChannelAccount(
        channel_account_id="web-1",
        tenant_id="acme",
        channel="webchat",
        credentials={"identity_secret": secret} if secret else {},
        settings=settings_,
        created_at=NOW,
    )


def hello(**fields: Any) -> str:
    return json.dumps({"type": "hello", "visitor_id": "v0123456789abcdef", **fields})


def stored(visitor: wc.Visitor, frame: dict[str, Any], acc: ChannelAccount | None = None):
    acc = acc or account()
    request = wc.frame_request(visitor, frame, channel_account_id="web-1", headers={})
    event = build_webhook_event(wc.WebchatAdapter(), request, acc, received_at=NOW)
    return event


def normalize(event) -> list:
    return wc.WebchatAdapter().normalize(event.payload, "acme", event.event_id)


# ------------------------------------------------------------------------------ identity


def test_anonymous_visitor() -> None:
    v = wc.verify_hello(hello(name="Ann"), account())
    assert v.address == "visitor:v0123456789abcdef" and not v.verified and v.name == "Ann"


def test_signed_identity_with_email() -> None:
    sig = wc.identity_signature(SECRET, "u-42", "ann@example.com")
    assert (
        sig
        == __import__("hmac").new(SECRET.encode(), b"u-42:ann@example.com", "sha256").hexdigest()
    )
    v = wc.verify_hello(hello(user_id="u-42", email="ann@example.com", signature=sig), account())
    assert v.address == "user:u-42" and v.verified and v.email == "ann@example.com"
    # upper-case hex is the same signature
    assert wc.verify_hello(
        hello(user_id="u-42", email="ann@example.com", signature=sig.upper()), account()
    ).verified


def test_signed_identity_without_email() -> None:
    sig = wc.identity_signature(SECRET, "u-42")
    v = wc.verify_hello(hello(user_id="u-42", signature=sig), account())
    assert v.verified and v.email == ""


@pytest.mark.parametrize(
    "fields",
    [
        {"user_id": "u-42", "email": "ann@example.com", "signature": "0" * 64},  # wrong
        {"user_id": "u-42", "email": "ann@example.com"},  # missing
        # signed for another email
        {
            "user_id": "u-42",
            "email": "eve@example.com",
            "signature": wc.identity_signature(SECRET, "u-42", "ann@example.com"),
        },
        # signed with another secret
        {"user_id": "u-42", "signature": wc.identity_signature("other", "u-42")},
        {"email": "ann@example.com", "signature": "ab"},  # email without user id
    ],
)
def test_bad_identity_is_refused(fields: dict[str, str]) -> None:
    with pytest.raises(wc.FrameRejected) as exc:
        wc.verify_hello(hello(**fields), account())
    assert exc.value.code == wc.CLOSE_UNAUTHENTICATED


def test_identity_on_account_without_secret_is_refused() -> None:
    sig = wc.identity_signature("", "u-42")
    with pytest.raises(wc.FrameRejected) as exc:
        wc.verify_hello(hello(user_id="u-42", signature=sig), account(secret=None))
    assert exc.value.code == wc.CLOSE_UNAUTHENTICATED


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1,2]",
        '{"type": "message", "id": "a", "text": "hi"}',  # not a hello
        '{"type": "hello"}',
        '{"type": "hello", "visitor_id": "short"}',
        '{"type": "hello", "visitor_id": "has spaces in it"}',
        '{"type": "hello", "visitor_id": 12345678901}',
        json.dumps({"type": "hello", "visitor_id": "v" * 8, "name": "x" * 500}),
        json.dumps({"type": "hello", "visitor_id": "v" * 8, "padding": "x" * 20000}),
    ],
)
def test_malformed_hello(raw: str) -> None:
    with pytest.raises(wc.FrameRejected) as exc:
        wc.verify_hello(raw, account())
    assert exc.value.code == wc.CLOSE_BAD_FRAME


# ------------------------------------------------------------------------------ frames


def test_frames() -> None:
    assert wc.parse_frame('{"type":"message","id":"c1","text":"hi","x":1}') == {
        "type": "message",
        "id": "c1",
        "text": "hi",
    }
    assert wc.parse_frame('{"type":"delivered","id":"m-1"}') == {"type": "delivered", "id": "m-1"}
    assert wc.parse_frame('{"type":"typing"}') == {"type": "typing", "state": True}
    assert wc.parse_frame('{"type":"ping"}') == {"type": "ping"}


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "id": "c1"},
        {"type": "message", "id": "c1", "text": "   "},
        {"type": "message", "id": "bad id!", "text": "hi"},
        {"type": "message", "id": "c1", "text": 5},
        {"type": "message", "id": "c1", "text": "x" * 5000},
        {"type": "message", "id": "c1", "text": "bell\x07"},
        {"type": "typing", "state": "yes"},
        {"type": "delivered"},
        {"type": "hello", "visitor_id": "v0123456789"},
        {"type": "nope"},
        {"kind": "message"},
    ],
)
def test_malformed_frames(frame: dict[str, Any]) -> None:
    with pytest.raises(wc.FrameRejected):
        wc.parse_frame(json.dumps(frame))


# ------------------------------------------------------------------------------ normalize


def test_message_normalizes_with_deterministic_ids() -> None:
    visitor = wc.Visitor(address="visitor:v0123456789abcdef", visitor_id="v0123456789abcdef")
    event = stored(visitor, {"type": "message", "id": "c1", "text": "Hello"})
    again = stored(visitor, {"type": "message", "id": "c1", "text": "Hello"})
    assert event.event_id == again.event_id  # a client retry is stored once
    other = stored(visitor, {"type": "message", "id": "c2", "text": "Hello"})
    assert other.event_id != event.event_id
    [received] = normalize(event)
    msg = received.payload
    assert isinstance(msg, pb.MessageReceived)
    assert received.event_id == deterministic_event_id(
        "webchat", "web-1", "visitor:v0123456789abcdef", "c1", "received"
    )
    assert received.aggregate_id == "web-1:visitor:v0123456789abcdef"
    assert msg.content.text.body == "Hello" and msg.sender.address == "visitor:v0123456789abcdef"
    assert msg.provider_message_id == "visitor:v0123456789abcdef/c1"
    assert msg.sent_at == to_timestamp(NOW) and msg.webhook_event_id == event.event_id
    assert normalize(event)[0].event_id == received.event_id  # replay: same ids


def test_verified_email_yields_identity_evidence() -> None:
    visitor = wc.Visitor(
        address="user:u-42", visitor_id="v" * 10, user_id="u-42", email="a@b.co", verified=True
    )
    events = normalize(stored(visitor, {"type": "hello"}))
    [evidence] = events
    assert isinstance(evidence.payload, pb.IdentityEvidenceObserved)
    assert evidence.payload.evidence_kind == "verified_email"
    assert evidence.payload.email == "a@b.co" and evidence.payload.subject.address == "user:u-42"
    message_events = normalize(stored(visitor, {"type": "message", "id": "c1", "text": "x"}))
    assert [type(e.payload) for e in message_events] == [
        pb.MessageReceived,
        pb.IdentityEvidenceObserved,
    ]
    assert message_events[1].event_id == evidence.event_id  # one evidence per (visitor, email)
    # an unverified email claim is no evidence
    anon = wc.Visitor(address="visitor:" + "v" * 10, visitor_id="v" * 10, email="a@b.co")
    assert len(normalize(stored(anon, {"type": "message", "id": "c1", "text": "x"}))) == 1


def test_delivered_normalizes_to_status() -> None:
    visitor = wc.Visitor(address="visitor:" + "v" * 10, visitor_id="v" * 10)
    [status] = normalize(stored(visitor, {"type": "delivered", "id": "msg-9"}))
    assert isinstance(status.payload, pb.MessageStatusUpdated)
    assert status.payload.status == pb.DELIVERY_STATUS_DELIVERED
    assert status.payload.provider_message_id == "msg-9"
    assert status.payload.recipient.address == visitor.address


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"v": 2, "visitor": {}, "frame": {}}',
        b'{"v": 1, "visitor": [], "frame": {}}',
        b'{"v": 1, "visitor": {"address": "visitor:x"}, "frame": {"type": "teleport"}}',
        b'{"v": 1, "visitor": {"address": "x"}, "frame": {"type": "message"}}',
        b'{"v": 1, "visitor": {"address": "visitor:x"}, "frame": {"type": "message", "id": "a"}}',
    ],
)
def test_malformed_stored_frame(body: bytes) -> None:
    webhook = pb.WebhookReceived(
        channel="webchat", channel_account_id="web-1", body=body, received_at=to_timestamp(NOW)
    )
    with pytest.raises(MalformedPayload):
        wc.WebchatAdapter().normalize(webhook, "acme", "e1")


def test_webhook_route_is_refused() -> None:
    adapter = default_registry().get("webchat")
    assert adapter is not None
    with pytest.raises(WebhookRejected) as exc:
        adapter.verify(
            __import__("parlay_gateway.channels.base", fromlist=["x"]).InboundRequest(
                "POST", "/webhooks/webchat/web-1", {}, b"{}"
            ),
            account(),
        )
    assert exc.value.status == 405


# ------------------------------------------------------------------------------ outbound body


def _delivery(content: pb.OutboundContent) -> Delivery:
    return Delivery("m1", "e1", "acme", "c1", "webchat", "web-1", "visitor:x", content)


def test_outbound_body() -> None:
    assert message_body(_delivery(pb.OutboundContent(text=pb.TextContent(body="Hi")))) == {
        "text": "Hi"
    }
    media = pb.OutboundContent(media=pb.MediaContent(kind="image", url="https://x/y.png"))
    assert message_body(_delivery(media))["media_url"] == "https://x/y.png"
    with pytest.raises(Unsendable):
        message_body(_delivery(pb.OutboundContent(template=pb.TemplateContent(name="t"))))


# ------------------------------------------------------------------------------ fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
frame_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["hello", "message", "delivered", "typing", "ping", "x"])
        | st.text(max_size=8),
        "id": st.text(max_size=70) | json_values,
        "text": st.text(max_size=50) | json_values,
        "visitor_id": st.text(max_size=70) | json_values,
        "user_id": st.text(max_size=20) | json_values,
        "email": st.text(max_size=20) | json_values,
        "signature": st.text(max_size=70) | json_values,
        "state": json_values,
    },
)


@FAST
@given(st.one_of(frame_like.map(json.dumps), json_values.map(json.dumps), st.text(max_size=200)))
def test_fuzz_client_frames(raw: str) -> None:
    """Any frame text: a validated frame / visitor, or FrameRejected — nothing else escapes."""
    for parse in (wc.parse_frame, lambda r: wc.verify_hello(r, account())):
        try:
            parse(raw)
        except wc.FrameRejected as exc:
            assert exc.code in (wc.CLOSE_BAD_FRAME, wc.CLOSE_UNAUTHENTICATED)


@FAST
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_fuzz_stored_bodies(body: bytes) -> None:
    webhook = pb.WebhookReceived(
        channel="webchat", channel_account_id="web-1", body=body, received_at=to_timestamp(NOW)
    )
    with contextlib.suppress(MalformedPayload):
        wc.WebchatAdapter().normalize(webhook, "acme", "e1")


@FAST
@given(frame_like)
def test_fuzz_accepted_frames_normalize(frame: dict[str, Any]) -> None:
    """Whatever parse_frame accepts (and is stored) normalizes without error."""
    try:
        parsed = wc.parse_frame(json.dumps(frame))
    except wc.FrameRejected:
        return
    if parsed["type"] not in ("message", "delivered"):
        return
    visitor = wc.Visitor(address="visitor:" + "v" * 10, visitor_id="v" * 10)
    assert normalize(stored(visitor, parsed))
