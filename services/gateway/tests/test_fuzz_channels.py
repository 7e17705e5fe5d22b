"""Fuzzing every channel parser (bounded: a few seconds each, < 30 s in all).

1. The pure normalizers: whatever body arrives (random JSON, mutated documented payloads, random
   bytes, random forms, random XML), they either return events or raise MalformedPayload (the
   projector then dead-letters with the reason); nothing else escapes.
2. The HTTP app, in process: correctly signed random bodies and random signature headers are
   answered 200 or a clear 4xx, never a 5xx, for every channel.
"""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from channel_kit import (
    CREDENTIALS,
    SETTINGS,
    compact,
    line_headers,
    line_payload,
    line_text,
    meta_delivery,
    meta_echo,
    meta_headers,
    meta_payload,
    meta_read,
    meta_text,
    telegram_headers,
    telegram_message,
    twilio_request,
    twilio_sms,
    viber_headers,
    viber_status,
    viber_text,
    wechat_event,
    wechat_query,
    wechat_text,
)
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels.base import MalformedPayload
from parlay_gateway.channels.registry import default_registry
from parlay_gateway.http_app import create_app
from parlay_kit.envelope import to_timestamp, utcnow

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

REGISTRY = default_registry()

VALID_JSON: dict[str, Any] = {
    "messenger": meta_payload(
        "page",
        "1",
        meta_text("2", "1", "m1", "hi", quick_reply={"payload": "P"}, reply_to={"mid": "m0"}),
        {
            "sender": {"id": "2"},
            "recipient": {"id": "1"},
            "timestamp": 1,
            "message": {
                "mid": "m2",
                "attachments": [
                    {"type": "image", "payload": {"url": "u"}},
                    {"type": "location", "payload": {"coordinates": {"lat": 1, "long": 2}}},
                ],
            },
        },
        {
            "sender": {"id": "2"},
            "recipient": {"id": "1"},
            "timestamp": 1,
            "postback": {"payload": "p"},
        },
        meta_echo("1", "2", "m3", 5),
        meta_delivery("2", "1", 10, mids=["m3"]),
        meta_read("2", "1", 11),
    ),
    "instagram": meta_payload(
        "instagram",
        "1",
        meta_text("2", "1", "m1", "hi"),
        {"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": 3, "read": {"mid": "m1"}},
    ),
    "telegram": telegram_message(
        1,
        contact={"phone_number": "+1", "user_id": 1111111},
        reply_to_message={"message_id": 3, "chat": {"id": 1}},
    ),
    "line": line_payload(
        line_text("1"),
        {
            **line_text("2"),
            "message": {"id": "2", "type": "location", "latitude": 1, "longitude": 2},
        },
    ),
    "viber": viber_text(1),
}
TELEGRAM_MORE = [
    {"update_id": 2, "callback_query": {"id": "q", "from": {"id": 1}, "data": "d"}},
    {
        "update_id": 3,
        "pre_checkout_query": {"id": "p", "from": {"id": 1}, "currency": "EUR", "total_amount": 5},
    },
    {
        "update_id": 4,
        "edited_message": {
            "message_id": 1,
            "chat": {"id": 1},
            "from": {"id": 1},
            "date": 1,
            "edit_date": 2,
            "text": "x",
        },
    },
    telegram_message(5, photo=[{"file_id": "f"}], caption="c"),
]
VIBER_MORE = [
    viber_status("failed", 2),
    {"event": "subscribed", "timestamp": 1, "message_token": 3, "user": {"id": "u"}},
]


def _webhook(channel: str, body: bytes) -> pb.WebhookReceived:
    return pb.WebhookReceived(
        channel=channel, channel_account_id="acc", body=body, received_at=to_timestamp(utcnow())
    )


def _normalize(channel: str, body: bytes) -> None:
    adapter = REGISTRY.get(channel)
    assert adapter is not None
    with contextlib.suppress(MalformedPayload):
        for event in adapter.normalize(_webhook(channel, body), "t", "w"):
            event.payload.SerializeToString()  # what the store will do with it


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple, value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


MUTATIONS = [
    (channel, doc, path)
    for channel, docs in (
        ("messenger", [VALID_JSON["messenger"]]),
        ("instagram", [VALID_JSON["instagram"]]),
        ("telegram", [VALID_JSON["telegram"], *TELEGRAM_MORE]),
        ("line", [VALID_JSON["line"]]),
        ("viber", [VALID_JSON["viber"], *VIBER_MORE]),
    )
    for doc in docs
    for path in _paths(doc)[1:]
]


@FAST
@given(st.sampled_from(MUTATIONS), json_values)
def test_mutated_documented_json_never_crashes(case: tuple, value: Any) -> None:
    channel, doc, path = case
    _normalize(channel, compact(_replace(doc, path, value)))


@FAST
@given(st.sampled_from(["messenger", "instagram", "telegram", "line", "viber"]), json_values)
def test_arbitrary_json_never_crashes(channel: str, value: Any) -> None:
    _normalize(channel, compact(value))
    _normalize(
        channel,
        compact(
            {"object": "page", "entry": value, "events": value, "update_id": 1, "message": value}
        ),
    )


@FAST
@given(st.sampled_from(list(REGISTRY.channels)), st.binary(max_size=80))
def test_arbitrary_bytes_never_crash(channel: str, data: bytes) -> None:
    _normalize(channel, data)
    _normalize(channel, b'{"update_id":1,"message":"\\ud800","object":"page","event":"message"}')


TWILIO_KEYS = [
    "MessageSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "MessageStatus",
    "ErrorCode",
    "Latitude",
    "Longitude",
    "ButtonPayload",
    "WaId",
]


@FAST
@given(
    st.lists(
        st.tuples(st.sampled_from(TWILIO_KEYS) | st.text(max_size=5), st.text(max_size=12)),
        max_size=10,
    )
)
def test_twilio_forms_never_crash(pairs: list[tuple[str, str]]) -> None:
    _normalize("twilio", urlencode(pairs).encode())
    _normalize("twilio", urlencode([*twilio_sms("SM1"), *pairs]).encode())


WECHAT_TAGS = [
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Content",
    "MsgId",
    "Event",
    "PicUrl",
    "MediaId",
    "Location_X",
    "Location_Y",
    "Label",
    "EventKey",
    "Format",
]


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(WECHAT_TAGS),
            st.sampled_from(
                [
                    "text",
                    "image",
                    "voice",
                    "video",
                    "location",
                    "event",
                    "subscribe",
                    "CLICK",
                    "1",
                    "x",
                ]
            )
            | st.text(alphabet=st.characters(codec="utf-8", exclude_characters="<&]"), max_size=10),
        ),
        max_size=8,
    )
)
def test_wechat_xml_never_crashes(fields: list[tuple[str, str]]) -> None:
    inner = "".join(f"<{tag}><![CDATA[{value}]]></{tag}>" for tag, value in fields)
    _normalize("wechat", f"<xml>{inner}</xml>".encode())
    _normalize("wechat", wechat_text("1") + inner.encode())


# --------------------------------------------------------------------------------------------
# Through the HTTP app (in process): never a 5xx
# --------------------------------------------------------------------------------------------


class _Appender:
    async def append(self, events: Any) -> list[Any]:
        return [SimpleNamespace(duplicate=False) for _ in events]


ACCOUNTS = {
    f"acc-{channel}": ChannelAccount(
        f"acc-{channel}", "t", channel, CREDENTIALS[channel], SETTINGS.get(channel, {}), utcnow()
    )
    for channel in CREDENTIALS
}


async def _lookup(account_id: str) -> ChannelAccount | None:
    return ACCOUNTS.get(account_id)


@pytest.fixture(scope="module")
def client() -> Any:
    app = create_app(lookup_account=_lookup, registry=REGISTRY, appender=_Appender())
    with TestClient(app) as test_client:
        yield test_client


def _signed(channel: str, body: bytes) -> tuple[bytes, dict[str, str], dict[str, str]]:
    path = f"/webhooks/{channel}/acc-{channel}"
    if channel in ("messenger", "instagram"):
        return body, meta_headers(body), {}
    if channel == "line":
        return body, line_headers(body), {}
    if channel == "viber":
        return body, viber_headers(body), {}
    if channel == "telegram":
        return body, telegram_headers(), {}
    if channel == "wechat":
        return body, {"Content-Type": "text/xml"}, wechat_query()
    form, headers = twilio_request(path, parse_qsl(body.decode("utf-8", "replace")))
    return form, headers, {}


SAMPLES = {
    **{ch: compact(doc) for ch, doc in VALID_JSON.items()},
    "twilio": urlencode(twilio_sms("SM1")).encode(),
    "wechat": wechat_event("subscribe"),
}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(sorted(CREDENTIALS)),
    st.binary(max_size=64) | json_values.map(compact) | st.just(b""),
    st.booleans(),
)
def test_http_app_answers_4xx_never_5xx(client: Any, channel: str, body: bytes, sign: bool) -> None:
    if sign:
        body, headers, params = _signed(channel, body)
    else:
        headers, params = (
            {
                "X-Hub-Signature-256": "sha256=00",
                "X-Line-Signature": "AA==",
                "X-Viber-Content-Signature": "00",
                "X-Twilio-Signature": "AA==",
                "X-Telegram-Bot-Api-Secret-Token": "nope",
            },
            {"signature": "0", "timestamp": "1", "nonce": "1"},
        )
    response = client.post(
        f"/webhooks/{channel}/acc-{channel}", content=body, headers=headers, params=params
    )
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert 400 <= response.status_code < 500 and response.text


def test_http_app_accepts_the_documented_samples(client: Any) -> None:
    for channel, sample in SAMPLES.items():
        body, headers, params = _signed(channel, sample)
        response = client.post(
            f"/webhooks/{channel}/acc-{channel}", content=body, headers=headers, params=params
        )
        assert response.status_code == 200, (channel, response.text)
