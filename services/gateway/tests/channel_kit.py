"""Test helpers for the channel adapters: each provider's documented payloads, signed with its
documented algorithm, and small helpers to post them to the running gateway and read back what
the normalizer made of them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from gateway_testkit import unique, wait_for

from parlay_kit import envelope

TENANT = "acme"
META_CREDENTIALS = {
    "app_secret": "meta-app-secret-4f2c",
    "verify_token": "meta-verify-token",
    "access_token": "meta-access-token",
}
TELEGRAM_CREDENTIALS = {"bot_token": "123456:ABC-DEF1234ghIkl", "secret_token": "tg-secret_TOKEN-1"}
TWILIO_CREDENTIALS = {"account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "auth_token": "12345"}
TWILIO_PUBLIC_URL = "https://chat.example.com"
WECHAT_CREDENTIALS = {"token": "wechat-token", "app_id": "wx1234567890", "app_secret": "wx-secret"}
LINE_CREDENTIALS = {"channel_secret": "line-channel-secret", "access_token": "line-access"}
VIBER_CREDENTIALS = {"auth_token": "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"}

CREDENTIALS = {
    "messenger": META_CREDENTIALS,
    "instagram": META_CREDENTIALS,
    "telegram": TELEGRAM_CREDENTIALS,
    "twilio": TWILIO_CREDENTIALS,
    "wechat": WECHAT_CREDENTIALS,
    "line": LINE_CREDENTIALS,
    "viber": VIBER_CREDENTIALS,
}
SETTINGS = {"twilio": {"public_url": TWILIO_PUBLIC_URL}}

WEBHOOK = "parlay.gateway.v1.WebhookReceived"
RECEIVED = "parlay.gateway.v1.MessageReceived"
STATUS = "parlay.gateway.v1.MessageStatusUpdated"
EDITED = "parlay.gateway.v1.MessageEdited"
EVIDENCE = "parlay.gateway.v1.IdentityEvidenceObserved"
SUBSCRIPTION = "parlay.gateway.v1.ContactSubscriptionChanged"
PAYMENT = "parlay.gateway.v1.ChannelPaymentEventReceived"


def compact(data: Any) -> bytes:
    """JSON as the providers send it (compact, UTF-8)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------------------------
# Signing, per provider's documentation
# --------------------------------------------------------------------------------------------


def meta_headers(body: bytes, secret: str = META_CREDENTIALS["app_secret"]) -> dict[str, str]:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"}


def telegram_headers(token: str = TELEGRAM_CREDENTIALS["secret_token"]) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": token}


def twilio_signature(url: str, params: list[tuple[str, str]], token: str = "12345") -> str:
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_request(
    path: str, params: list[tuple[str, str]], token: str = "12345"
) -> tuple[bytes, dict[str, str]]:
    body = urlencode(params).encode()
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TWILIO_PUBLIC_URL + path, params, token),
        "User-Agent": "TwilioProxy/1.1",
    }


def wechat_query(
    token: str = WECHAT_CREDENTIALS["token"],
    timestamp: int | None = None,
    nonce: str = "1320562132",
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = hashlib.sha1("".join(sorted([token, ts, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": ts, "nonce": nonce, "openid": "oUser"}


def line_headers(body: bytes, secret: str = LINE_CREDENTIALS["channel_secret"]) -> dict[str, str]:
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": sig}


def viber_headers(body: bytes, token: str = VIBER_CREDENTIALS["auth_token"]) -> dict[str, str]:
    sig = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Viber-Content-Signature": sig}


# --------------------------------------------------------------------------------------------
# Documented payloads
# --------------------------------------------------------------------------------------------


def meta_payload(obj: str, page_id: str, *items: dict[str, Any], standby: bool = False) -> dict:
    return {
        "object": obj,
        "entry": [
            {
                "id": page_id,
                "time": 1458692752478,
                ("standby" if standby else "messaging"): list(items),
            }
        ],
    }


def meta_text(
    psid: str, page_id: str, mid: str, text: str, ts: int = 1458692752478, **extra: Any
) -> dict:
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": ts,
        "message": {"mid": mid, "text": text, **extra},
    }


def meta_echo(page_id: str, psid: str, mid: str, ts: int) -> dict:
    return {
        "sender": {"id": page_id},
        "recipient": {"id": psid},
        "timestamp": ts,
        "message": {"is_echo": True, "app_id": 1517776481860111, "mid": mid, "text": "Thanks!"},
    }


def meta_delivery(psid: str, page_id: str, watermark: int, mids: list[str] | None = None) -> dict:
    delivery: dict[str, Any] = {"watermark": watermark}
    if mids is not None:
        delivery["mids"] = mids
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "delivery": delivery}


def meta_read(psid: str, page_id: str, watermark: int, ts: int | None = None) -> dict:
    return {
        "sender": {"id": psid},
        "recipient": {"id": page_id},
        "timestamp": ts or watermark + 210,
        "read": {"watermark": watermark},
    }


def telegram_message(
    update_id: int, message_id: int = 1365, user_id: int = 1111111, **content: Any
) -> dict:
    """The Bot API's documented example update (a private chat message)."""
    user = {
        "last_name": "Test Lastname",
        "id": user_id,
        "first_name": "Test Firstname",
        "username": "Testusername",
    }
    return {
        "update_id": update_id,
        "message": {
            "date": 1441645532,
            "chat": {**user, "type": "private"},
            "message_id": message_id,
            "from": user,
            **(content or {"text": "/start"}),
        },
    }


def twilio_sms(
    sid: str, sender: str = "+14155550100", body: str = "Hello", to: str = "+15005550006"
) -> list[tuple[str, str]]:
    """An inbound SMS as Twilio posts it (the documented parameter set)."""
    return [
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ToCity", "SAN FRANCISCO"),
        ("FromZip", "94105"),
        ("SmsSid", sid),
        ("FromState", "CA"),
        ("SmsStatus", "received"),
        ("FromCity", "SAN FRANCISCO"),
        ("Body", body),
        ("FromCountry", "US"),
        ("To", to),
        ("ToZip", "94105"),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", TWILIO_CREDENTIALS["account_sid"]),
        ("From", sender),
        ("ApiVersion", "2010-04-01"),
    ]


def twilio_status(
    sid: str, status: str, to: str = "+14155550100", error: str = ""
) -> list[tuple[str, str]]:
    params = [
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", to),
        ("MessageSid", sid),
        ("AccountSid", TWILIO_CREDENTIALS["account_sid"]),
        ("From", "+15005550006"),
        ("ApiVersion", "2010-04-01"),
    ]
    if error:
        params.append(("ErrorCode", error))
    return params


def wechat_text(
    msg_id: str, user: str = "oUser1", content: str = "this is a test", create: int = 1348831860
) -> bytes:
    return (
        "<xml><ToUserName><![CDATA[gh_toUser]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{create}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def wechat_event(event: str, user: str = "oUser1", create: int = 123456789) -> bytes:
    return (
        "<xml><ToUserName><![CDATA[gh_toUser]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{create}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event></xml>"
    ).encode()


def line_payload(*events: dict[str, Any]) -> dict:
    return {"destination": "Ub0b0f0c0d0e0f0a0b0c0d0e0f0a0b0c0", "events": list(events)}


def line_text(
    message_id: str,
    user: str = "U4af4980629",
    text: str = "Hello, world! (love)",
    event_id: str = "01FZ74A0TDDPYRVKNK77XKC3ZR",
) -> dict:
    return {
        "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
        "type": "message",
        "mode": "active",
        "timestamp": 1462629479859,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False},
        "message": {"id": message_id, "type": "text", "quoteToken": "q3Plxr4AgKd", "text": text},
    }


def line_follow(
    kind: str, user: str = "U4af4980629", event_id: str = "01FZ74ASS536FW97EX38NKCZQK"
) -> dict:
    event = {
        "type": kind,
        "mode": "active",
        "timestamp": 1462629479859,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False},
    }
    if kind == "follow":
        event["replyToken"] = "85cbe770fa8b4f45bbe077b1d4be4a36"
        event["follow"] = {"isUnblocked": False}
    return event


def viber_text(
    token: int, user: str = "01234567890A=", text: str = "a message to the service"
) -> dict:
    return {
        "event": "message",
        "timestamp": 1457764197627,
        "message_token": token,
        "sender": {
            "id": user,
            "name": "John McClane",
            "avatar": "http://avatar.example.com",
            "country": "UK",
            "language": "en",
            "api_version": 1,
        },
        "message": {"type": "text", "text": text, "tracking_data": "tracking data"},
    }


def viber_status(
    event: str, token: int, user: str = "01234567890A=", ts: int = 1457764197627
) -> dict:
    data: dict[str, Any] = {
        "event": event,
        "timestamp": ts,
        "message_token": token,
        "user_id": user,
    }
    if event == "failed":
        data["desc"] = "failure description"
    return data


# --------------------------------------------------------------------------------------------
# The running gateway
# --------------------------------------------------------------------------------------------


async def create_account(gateway: Any, channel: str, tenant: str = TENANT, **settings: str) -> str:
    account_id = unique(channel[:4])
    await gateway.gateway.accounts.create(
        tenant, account_id, channel, CREDENTIALS[channel], {**SETTINGS.get(channel, {}), **settings}
    )
    return account_id


async def post(
    gateway: Any,
    channel: str,
    account_id: str,
    body: bytes,
    headers: dict[str, str],
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return await gateway.http.post(
        f"/webhooks/{channel}/{account_id}", content=body, headers=headers, params=params
    )


async def processed_webhooks(gateway: Any, account_id: str) -> int:
    return int(
        await gateway.pool.fetchval(
            f"""SELECT count(*) FROM {gateway.schema}.events e
                JOIN {gateway.schema}.processed_events p ON p.event_id = e.event_id
                WHERE e.event_type = $1 AND e.aggregate_id = $2""",
            WEBHOOK,
            account_id,
        )
    )


async def wait_normalized(gateway: Any, account_id: str, count: int, timeout: float = 30) -> None:
    """Wait until `count` raw webhooks of the account went through the normalizer."""

    async def done() -> bool:
        return await processed_webhooks(gateway, account_id) >= count

    await wait_for(done, timeout, f"{count} webhooks of {account_id} normalized")


@dataclass
class Stored:
    event_id: str
    aggregate_id: str
    event: Any
    envelope: Any = field(repr=False)


async def stored(gateway: Any, event_type: str, account_id: str) -> list[Stored]:
    rows = await gateway.events(event_type, account_id + ":")
    out = []
    for row in rows:
        env = envelope.decode(bytes(row["envelope"]))
        out.append(Stored(row["event_id"], row["aggregate_id"], envelope.unpack(env), env))
    return out


def by(items: list[Stored], key: Callable[[Any], Any]) -> dict[Any, Stored]:
    return {key(s.event): s for s in items}
