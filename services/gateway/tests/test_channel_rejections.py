"""Negative cases for every new channel, through the real HTTP server and Postgres: missing and
wrong signatures, a re-serialized (or tampered) body, the wrong account, a malformed body. Each
is refused with a 4xx before anything is stored (so nothing can be published either)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from channel_kit import (
    CREDENTIALS,
    META_CREDENTIALS,
    WEBHOOK,
    compact,
    create_account,
    line_headers,
    line_payload,
    line_text,
    meta_headers,
    meta_payload,
    meta_text,
    post,
    telegram_headers,
    telegram_message,
    twilio_request,
    twilio_sms,
    viber_headers,
    viber_text,
    wechat_query,
    wechat_text,
)


@dataclass
class Req:
    body: bytes
    headers: dict[str, str]
    params: dict[str, str] | None = None


def _json_cases(channel: str, body: bytes, sign) -> dict[str, tuple[Req, int]]:
    reserialized = json.dumps(json.loads(body), indent=1).encode()
    assert reserialized != body
    headers = sign(body)
    no_sig = {k: v for k, v in headers.items() if k.lower() == "content-type"}
    return {
        "valid": (Req(body, headers), 200),
        "missing signature": (Req(body, no_sig), 401),
        "bad signature": (Req(body, sign(body, "not-the-secret")), 403),
        "re-serialized body": (Req(reserialized, headers), 403),
        "tampered body": (Req(body.replace(b"Hello", b"Hullo"), headers), 403),
        "malformed body": (Req(b"{not json", sign(b"{not json")), 400),
        "not an object": (Req(b"[1,2]", sign(b"[1,2]")), 400),
    }


def cases(channel: str, account_id: str) -> dict[str, tuple[Req, int]]:
    path = f"/webhooks/{channel}/{account_id}"
    if channel in ("messenger", "instagram"):
        obj = "page" if channel == "messenger" else "instagram"
        body = compact(meta_payload(obj, "1234", meta_text("5678", "1234", "m_abc", "Hello")))
        return _json_cases(
            channel, body, lambda b, s=META_CREDENTIALS["app_secret"]: meta_headers(b, s)
        )
    if channel == "line":
        body = compact(line_payload(line_text("444573844083572737", text="Hello")))
        return _json_cases(channel, body, lambda b, s="line-channel-secret": line_headers(b, s))
    if channel == "viber":
        body = compact(viber_text(4912661846655238145, text="Hello"))
        return _json_cases(
            channel,
            body,
            lambda b, s="445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9": viber_headers(b, s),
        )
    if channel == "telegram":
        body = compact(telegram_message(9001, text="Hello"))
        return {
            "valid": (Req(body, telegram_headers()), 200),
            "missing token": (Req(body, {"Content-Type": "application/json"}), 401),
            "wrong token": (Req(body, telegram_headers("guess")), 403),
            "malformed body": (Req(b"{not json", telegram_headers()), 400),
            "no update_id": (Req(b'{"message":{}}', telegram_headers()), 400),
        }
    if channel == "twilio":
        params = twilio_sms("SM" + "a" * 32, body="Hello")
        body, headers = twilio_request(path, params)
        tampered = body.replace(b"Body=Hello", b"Body=Hullo")
        assert tampered != body
        other_url_body, other_url_headers = twilio_request(
            f"/webhooks/twilio/x{account_id}", params
        )
        bad_form = b"Body=%ZZ&&=&MessageSid"
        _, bad_form_headers = twilio_request(path, [("Body", "x")])
        no_sid, no_sid_headers = twilio_request(path, [("Body", "hi"), ("From", "+1415")])
        return {
            "valid": (Req(body, headers), 200),
            "missing signature": (
                Req(body, {"Content-Type": "application/x-www-form-urlencoded"}),
                401,
            ),
            "bad signature": (Req(body, twilio_request(path, params, token="other")[1]), 403),
            "tampered parameter": (Req(tampered, headers), 403),
            "signed for another URL": (Req(other_url_body, other_url_headers), 403),
            "malformed form": (Req(bad_form, bad_form_headers), 400),
            "not a messaging webhook": (Req(no_sid, no_sid_headers), 400),
        }
    if channel == "wechat":
        body = wechat_text("1234567890123456", content="Hello")
        ok = wechat_query()
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><xml><Content>&lol2;</Content></xml>'
        )
        return {
            "valid": (Req(body, {"Content-Type": "text/xml"}, ok), 200),
            "missing signature": (
                Req(body, {"Content-Type": "text/xml"}, {"timestamp": ok["timestamp"]}),
                401,
            ),
            "bad signature": (Req(body, {}, wechat_query(token="guess")), 403),
            "signature of another nonce": (Req(body, {}, {**ok, "nonce": "999"}), 403),
            "stale timestamp": (Req(body, {}, wechat_query(timestamp=1348831860)), 403),
            "malformed xml": (Req(b"<xml><MsgType>text</xml", {}, ok), 400),
            "entity expansion": (Req(bomb, {}, ok), 400),
            "not a message": (Req(b"<xml><Foo>1</Foo></xml>", {}, ok), 400),
            "safe mode": (Req(b"<xml><Encrypt>abc</Encrypt></xml>", {}, ok), 400),
        }
    raise AssertionError(channel)


CHANNELS = ["messenger", "instagram", "telegram", "twilio", "wechat", "line", "viber"]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_rejections_store_nothing(gateway, channel: str) -> None:
    account_id = await create_account(gateway, channel)
    results = {}
    for name, (req, expected) in cases(channel, account_id).items():
        if name == "valid":
            continue
        response = await post(gateway, channel, account_id, req.body, req.headers, req.params)
        results[name] = (response.status_code, expected)
        for secret in CREDENTIALS[channel].values():
            assert secret not in response.text
    assert {k: v[0] for k, v in results.items()} == {k: v[1] for k, v in results.items()}
    assert await gateway.events(WEBHOOK, account_id) == [], "a refused webhook was stored"

    # The valid request is accepted on the right account only.
    valid, _ = cases(channel, account_id)["valid"]
    other = await create_account(gateway, "viber" if channel != "viber" else "line")
    assert (
        await post(gateway, channel, other, valid.body, valid.headers, valid.params)
    ).status_code == 404
    assert (
        await post(gateway, channel, "no-such-account", valid.body, valid.headers, valid.params)
    ).status_code == 404
    assert await gateway.events(WEBHOOK, other) == []
    response = await post(gateway, channel, account_id, valid.body, valid.headers, valid.params)
    assert response.status_code == 200, response.text
    assert len(await gateway.events(WEBHOOK, account_id)) == 1
