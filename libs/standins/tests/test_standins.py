"""The provider stand-ins over real HTTP: documented formats, auth, failure injection,
idempotency keys, the request log, media, and signed status webhooks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import subprocess
import sys
import time
from urllib.parse import parse_qsl

import httpx
import pytest

from parlay_kit.broker import free_port
from parlay_standins import StandinServer, env_for
from parlay_standins.webhooks import twilio_signature

WA = {"messaging_product": "whatsapp", "to": "16315551181", "type": "text", "text": {"body": "hi"}}


@pytest.fixture
async def standin():
    async with StandinServer() as server:
        yield server


@pytest.fixture
async def http(standin):
    async with httpx.AsyncClient(base_url=standin.url, timeout=20) as client:
        yield client


async def test_whatsapp_send_validates_like_the_cloud_api(http) -> None:
    ok = await http.post("/meta/v21.0/123/messages", json=WA, headers={"Authorization": "Bearer t"})
    assert ok.status_code == 200
    body = ok.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "16315551181", "wa_id": "16315551181"}]
    assert body["messages"][0]["id"].startswith("wamid.")

    no_token = await http.post("/meta/v21.0/123/messages", json=WA)
    assert no_token.status_code == 400 and no_token.json()["error"]["code"] == 2500
    bad = await http.post(
        "/meta/v21.0/123/messages",
        json={**WA, "text": {"body": ""}},
        headers={"Authorization": "Bearer t"},
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == 100 and "text['body']" in error["error_data"]["details"]
    assert error["fbtrace_id"]
    buttons = {
        **WA,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": str(i), "title": "x"}} for i in range(4)
                ]
            },
        },
    }
    too_many = await http.post(
        "/meta/v21.0/123/messages", json=buttons, headers={"Authorization": "Bearer t"}
    )
    assert too_many.status_code == 400 and "1 to 3 buttons" in too_many.text


async def test_registered_accounts_make_auth_strict(http) -> None:
    await http.post(
        "/_standin/accounts",
        json={"channel": "telegram", "credentials": {"bot_token": "1:good", "secret_token": "s"}},
    )
    good = await http.post("/telegram/bot1:good/sendMessage", json={"chat_id": 42, "text": "hi"})
    assert good.status_code == 200 and good.json()["result"]["message_id"] == 1
    again = await http.post("/telegram/bot1:good/sendMessage", data={"chat_id": "42", "text": "hi"})
    assert again.json()["result"]["message_id"] == 2  # per chat, like Telegram
    bad = await http.post("/telegram/bot1:bad/sendMessage", json={"chat_id": 42, "text": "hi"})
    assert bad.status_code == 401
    assert bad.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    empty = await http.post("/telegram/bot1:good/sendMessage", json={"chat_id": 42})
    assert empty.json()["description"] == "Bad Request: message text is empty"


async def test_twilio_form_basic_auth_and_errors(http) -> None:
    sid = "AC" + "1" * 32
    ok = await http.post(
        f"/twilio/2010-04-01/Accounts/{sid}/Messages.json",
        data={"To": "+14155552671", "From": "+15005550006", "Body": "hi"},
        auth=(sid, "token"),
    )
    assert (
        ok.status_code == 201
        and ok.json()["sid"].startswith("SM")
        and ok.json()["status"] == "queued"
    )
    wrong_user = await http.post(
        f"/twilio/2010-04-01/Accounts/{sid}/Messages.json",
        data={"To": "+14155552671", "From": "+15005550006", "Body": "hi"},
        auth=("AC" + "2" * 32, "token"),
    )
    assert wrong_user.status_code == 401 and wrong_user.json()["code"] == 20003
    bad_to = await http.post(
        f"/twilio/2010-04-01/Accounts/{sid}/Messages.json",
        data={"To": "12", "From": "+15005550006", "Body": "hi"},
        auth=(sid, "token"),
    )
    assert bad_to.status_code == 400 and bad_to.json()["code"] == 21211


async def test_wechat_token_then_custom_send(http) -> None:
    token = (
        await http.get(
            "/wechat/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": "wx1", "secret": "s"},
        )
    ).json()
    assert token["expires_in"] == 7200
    refused = await http.post(
        "/wechat/cgi-bin/message/custom/send", params={"access_token": "nope"}, json={}
    )
    assert refused.status_code == 200 and refused.json()["errcode"] == 40001
    sent = await http.post(
        "/wechat/cgi-bin/message/custom/send",
        params={"access_token": token["access_token"]},
        json={"touser": "oABC", "msgtype": "text", "text": {"content": "hi"}},
    )
    assert sent.json() == {"errcode": 0, "errmsg": "ok"}


async def test_viber_answers_with_status_codes(http) -> None:
    body = {"receiver": "01234567890A=", "sender": {"name": "Shop"}, "type": "text", "text": "hi"}
    ok = await http.post("/viber/pa/send_message", json=body, headers={"X-Viber-Auth-Token": "t"})
    assert ok.json()["status"] == 0 and isinstance(ok.json()["message_token"], int)
    no_auth = await http.post("/viber/pa/send_message", json=body)
    assert no_auth.status_code == 200 and no_auth.json()["status"] == 2
    no_sender = await http.post(
        "/viber/pa/send_message", json={**body, "sender": {}}, headers={"X-Viber-Auth-Token": "t"}
    )
    assert no_sender.json()["status"] == 3


async def test_failure_rules_and_request_log(http) -> None:
    rule = await http.post(
        "/_standin/fail",
        json={
            "family": "line",
            "match": "Ufail",
            "error": "rate_limited",
            "retry_after": 7,
            "times": 1,
        },
    )
    assert rule.status_code == 200
    headers = {"Authorization": "Bearer t"}
    push = {"to": "Ufail", "messages": [{"type": "text", "text": "x"}]}
    limited = await http.post("/line/v2/bot/message/push", json=push, headers=headers)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    ok = await http.post("/line/v2/bot/message/push", json=push, headers=headers)
    assert ok.status_code == 200
    log = (
        await http.get("/_standin/requests", params={"family": "line", "contains": "Ufail"})
    ).json()
    assert [r["status"] for r in log["requests"]] == [429, 200]
    assert [r["accepted"] for r in log["requests"]] == [False, True]
    assert log["requests"][0]["injected"]
    accepted = (
        await http.get("/_standin/requests", params={"accepted": "true", "family": "line"})
    ).json()
    assert accepted["count"] == 1
    await http.delete("/_standin/fail")


async def test_long_poll_waits_for_requests(http, standin) -> None:
    async def later() -> None:
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=standin.url) as other:
            await other.post(
                "/viber/pa/send_message",
                json={"receiver": "late", "sender": {"name": "S"}, "type": "text", "text": "x"},
                headers={"X-Viber-Auth-Token": "t"},
            )

    task = asyncio.create_task(later())
    started = time.monotonic()
    found = (
        await http.get(
            "/_standin/requests", params={"contains": "late", "min_count": 1, "timeout": 10}
        )
    ).json()
    assert found["count"] == 1 and time.monotonic() - started < 5
    await task


async def test_idempotency_key_replays_the_original_even_while_it_is_delayed(http, standin) -> None:
    await http.post("/_standin/fail", json={"family": "meta", "match": "19990001", "delay": 1.0})
    headers = {"Authorization": "Bearer t", "Idempotency-Key": "key-1"}
    body = {**WA, "to": "19990001"}
    first, second = await asyncio.gather(
        http.post("/meta/v21.0/1/messages", json=body, headers=headers),
        http.post("/meta/v21.0/1/messages", json=body, headers=headers),
    )
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    records = standin.state.query(contains="19990001")
    assert sorted(r.accepted for r in records) == [False, True]
    assert sorted(r.replayed for r in records) == [False, True]


async def test_server_errors_do_not_burn_the_idempotency_key(http) -> None:
    await http.post(
        "/_standin/fail", json={"family": "telegram", "match": "777", "error": "server_error"}
    )
    headers = {"X-Idempotency-Key": "k-500"}
    failed = await http.post(
        "/telegram/bot1:x/sendMessage", json={"chat_id": 777, "text": "a"}, headers=headers
    )
    assert failed.status_code == 500
    ok = await http.post(
        "/telegram/bot1:x/sendMessage", json={"chat_id": 777, "text": "a"}, headers=headers
    )
    assert ok.status_code == 200 and ok.json()["ok"]


async def test_media_endpoints(http) -> None:
    data = b"%PDF-1.4 standin"
    wa = (
        await http.post(
            "/_standin/media",
            json={
                "channel": "whatsapp",
                "data_base64": base64.b64encode(data).decode(),
                "mime_type": "application/pdf",
            },
        )
    ).json()
    info = await http.get(f"/meta/v21.0/{wa['media_id']}", headers={"Authorization": "Bearer t"})
    assert info.status_code == 200 and info.json()["mime_type"] == "application/pdf"
    assert info.json()["sha256"] == hashlib.sha256(data).hexdigest()
    no_auth = await http.get(info.json()["url"])
    assert no_auth.status_code == 401
    got = await http.get(info.json()["url"], headers={"Authorization": "Bearer t"})
    assert got.content == data and got.headers["content-type"] == "application/pdf"
    tg = (
        await http.post(
            "/_standin/media",
            json={"channel": "telegram", "data_base64": base64.b64encode(data).decode()},
        )
    ).json()
    file = (await http.get("/telegram/bot1:x/getFile", params={"file_id": tg["media_id"]})).json()
    assert (await http.get(f"/telegram/file/bot1:x/{file['result']['file_path']}")).content == data


async def test_signed_status_webhooks(http, standin) -> None:
    secret = "app-secret"
    await http.post(
        "/_standin/accounts",
        json={
            "channel": "whatsapp",
            "credentials": {"app_secret": secret, "access_token": "wa-tok"},
            "settings": {"phone_number_id": "555"},
            "webhook_url": f"{standin.url}/_standin/sink/wa",
        },
    )
    sent = await http.post(
        "/meta/v21.0/555/messages", json=WA, headers={"Authorization": "Bearer wa-tok"}
    )
    wamid = sent.json()["messages"][0]["id"]
    hook = await http.post(
        "/_standin/status", json={"provider_message_id": wamid, "status": "read"}
    )
    assert hook.status_code == 200 and hook.json()["status_code"] == 200
    [received] = standin.state.query(family="sink", path_contains="/wa")
    raw = received.raw_body.encode()
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    assert received.headers["x-hub-signature-256"] == expected
    status = received.body["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status == {**status, "id": wamid, "status": "read", "recipient_id": "16315551181"}
    assert received.body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == "555"

    # Twilio: form-encoded, X-Twilio-Signature over the URL and the sorted parameters.
    sid = "AC" + "3" * 32
    url = f"{standin.url}/_standin/sink/twilio"
    await http.post(
        "/_standin/accounts",
        json={
            "channel": "twilio",
            "credentials": {"account_sid": sid, "auth_token": "tw-tok"},
            "webhook_url": url,
        },
    )
    message = await http.post(
        f"/twilio/2010-04-01/Accounts/{sid}/Messages.json",
        data={"To": "+14155552671", "From": "+15005550006", "Body": "hi"},
        auth=(sid, "tw-tok"),
    )
    hook = await http.post(
        "/_standin/status",
        json={"provider_message_id": message.json()["sid"], "status": "delivered"},
    )
    assert hook.status_code == 200, hook.text
    [received] = standin.state.query(family="sink", path_contains="/twilio")
    params = dict(parse_qsl(received.raw_body))
    assert params["MessageStatus"] == "delivered" and params["MessageSid"] == message.json()["sid"]
    assert received.headers["x-twilio-signature"] == twilio_signature("tw-tok", url, params)

    # Viber: hex HMAC-SHA256 of the body with the auth token.
    await http.post(
        "/_standin/accounts",
        json={
            "channel": "viber",
            "credentials": {"auth_token": "vb-tok"},
            "webhook_url": f"{standin.url}/_standin/sink/viber",
        },
    )
    vb = await http.post(
        "/viber/pa/send_message",
        json={"receiver": "u1", "sender": {"name": "S"}, "type": "text", "text": "x"},
        headers={"X-Viber-Auth-Token": "vb-tok"},
    )
    await http.post(
        "/_standin/status",
        json={"provider_message_id": str(vb.json()["message_token"]), "status": "delivered"},
    )
    [received] = standin.state.query(family="sink", path_contains="/viber")
    assert (
        received.headers["x-viber-content-signature"]
        == hmac.new(b"vb-tok", received.raw_body.encode(), hashlib.sha256).hexdigest()
    )
    assert received.body["event"] == "delivered"

    # Telegram sends no delivery statuses.
    tg = await http.post("/telegram/bot1:x/sendMessage", json={"chat_id": 1, "text": "x"})
    nope = await http.post(
        "/_standin/status",
        json={
            "provider_message_id": str(tg.json()["result"]["message_id"]),
            "status": "delivered",
            "webhook_url": url,
            "secret": "s",
        },
    )
    assert nope.status_code in (400, 404)


async def test_process_serves_every_family() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parlay_standins",
        "--port",
        str(port),
        "--log-level",
        "warning",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and proc.returncode is None
                await asyncio.sleep(0.05)
            index = (await client.get("/")).json()
            assert set(index["families"]) == {
                "meta",
                "telegram",
                "twilio",
                "wechat",
                "line",
                "viber",
            }
        assert env_for(f"http://127.0.0.1:{port}")["PARLAY_LINE_API_BASE_URL"].endswith("/line")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
