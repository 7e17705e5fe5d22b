"""Signed status webhooks, in each provider's documented format, for messages a stand-in sent.

WhatsApp and Messenger/Instagram: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, body)>`;
Twilio status callback: form-encoded, `X-Twilio-Signature: base64(HMAC-SHA1(auth_token, url +
sorted key+value pairs))`; Viber: `X-Viber-Content-Signature: hex HMAC-SHA256(auth_token, body)`.
Telegram, LINE and WeChat send no delivery statuses for these messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from parlay_standins.state import Account, RequestRecord

STATUS_CHANNELS = ("whatsapp", "messenger", "instagram", "twilio", "viber")


@dataclass
class Webhook:
    body: bytes
    headers: dict[str, str]


class WebhookError(ValueError):
    pass


def hub_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    data = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def status_webhook(
    record: RequestRecord,
    status: str,
    *,
    account: Account | None,
    secret: str,
    webhook_url: str,
    error_code: str = "",
    error_title: str = "",
    timestamp: int | None = None,
) -> Webhook:
    """The provider's status webhook for the message of `record`, signed with `secret`."""
    ts = int(timestamp if timestamp is not None else time.time())
    channel = record.channel
    settings = account.settings if account else {}
    if channel == "whatsapp":
        # /meta/{version}/{phone_number_id}/messages
        phone_number_id = record.path.rstrip("/").split("/")[-2]
        item: dict[str, Any] = {
            "id": record.provider_message_id,
            "status": status,
            "timestamp": str(ts),
            "recipient_id": "".join(c for c in record.recipient if c.isdigit()),
        }
        if status in ("sent", "delivered", "read"):
            item["conversation"] = {
                "id": hashlib.sha1(record.recipient.encode()).hexdigest()[:32],
                "origin": {"type": "service"},
            }
            item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
        if status == "failed":
            code = int(error_code or 131026)
            title = error_title or "Message undeliverable"
            item["errors"] = [
                {
                    "code": code,
                    "title": title,
                    "message": title,
                    "error_data": {"details": title},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }
            ]
        data = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": settings.get("waba_id", "102290129340398"),
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": settings.get(
                                        "display_phone_number", "15550783881"
                                    ),
                                    "phone_number_id": phone_number_id,
                                },
                                "statuses": [item],
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }
        body = _compact(data)
        return Webhook(
            body,
            {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": hub_signature(secret, body),
            },
        )
    if channel in ("messenger", "instagram"):
        page_id = settings.get("page_id") or settings.get("instagram_account_id") or "PAGE_ID"
        ms = ts * 1000
        event: dict[str, Any] = {
            "sender": {"id": record.recipient},
            "recipient": {"id": page_id},
            "timestamp": ms,
        }
        if status == "delivered":
            event["delivery"] = {"mids": [record.provider_message_id], "watermark": ms}
        elif status == "read":
            event["read"] = (
                {"mid": record.provider_message_id} if channel == "instagram" else {"watermark": ms}
            )
        else:
            raise WebhookError(f"{channel} reports only delivered and read")
        data = {
            "object": "instagram" if channel == "instagram" else "page",
            "entry": [{"id": page_id, "time": ms, "messaging": [event]}],
        }
        body = _compact(data)
        return Webhook(
            body,
            {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": hub_signature(secret, body),
            },
        )
    if channel == "twilio":
        form = record.body if isinstance(record.body, dict) else {}
        account_sid = record.path.split("/Accounts/", 1)[1].split("/", 1)[0]
        params = {
            "MessageSid": record.provider_message_id,
            "SmsSid": record.provider_message_id,
            "SmsStatus": status,
            "MessageStatus": status,
            "AccountSid": account_sid,
            "From": str(form.get("From", "")),
            "To": str(form.get("To", "")),
            "ApiVersion": "2010-04-01",
        }
        if form.get("MessagingServiceSid"):
            params["MessagingServiceSid"] = str(form["MessagingServiceSid"])
        if status in ("failed", "undelivered"):
            params["ErrorCode"] = error_code or "30003"
        body = urlencode(params).encode()
        return Webhook(
            body,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(secret, webhook_url, params),
                "I-Twilio-Idempotency-Token": hashlib.sha1(body).hexdigest(),
            },
        )
    if channel == "viber":
        event_name = {"read": "seen"}.get(status, status)
        if event_name not in ("delivered", "seen", "failed"):
            raise WebhookError("viber reports delivered, seen and failed")
        viber: dict[str, Any] = {
            "event": event_name,
            "timestamp": ts * 1000,
            "chat_hostname": "SN-CHAT-STANDIN_",
            "message_token": int(record.provider_message_id),
            "user_id": record.recipient,
        }
        if event_name == "failed":
            viber["desc"] = error_title or "failed to deliver"
        body = _compact(viber)
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return Webhook(
            body, {"Content-Type": "application/json", "X-Viber-Content-Signature": signature}
        )
    raise WebhookError(f"{channel or record.family} sends no status webhooks")


def signing_secret(channel: str, account: Account | None) -> str:
    if account is None:
        return ""
    name = {
        "whatsapp": "app_secret",
        "messenger": "app_secret",
        "instagram": "app_secret",
        "twilio": "auth_token",
        "viber": "auth_token",
    }.get(channel, "")
    return account.credentials.get(name, "")
