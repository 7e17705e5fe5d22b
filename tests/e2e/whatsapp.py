"""WhatsApp Cloud API webhook payloads in Meta's documented format, signed as Meta signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

APP_SECRET = "e2e-app-secret"
VERIFY_TOKEN = "e2e-verify-token"
PHONE_NUMBER_ID = "106540352242922"


def account(account_id: str, tenant_id: str) -> dict:
    return {
        "tenant_id": tenant_id,
        "channel_account_id": account_id,
        "channel": "whatsapp",
        "credentials": {
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
            "access_token": "EAAB-e2e",
        },
        "settings": {"phone_number_id": PHONE_NUMBER_ID},
    }


def text_message(wamid: str, wa_id: str, body: str, ts: int | None = None) -> dict:
    return {
        "from": wa_id,
        "id": wamid,
        "timestamp": str(ts or int(time.time())),
        "type": "text",
        "text": {"body": body},
    }


def status(wamid: str, wa_id: str, state: str, ts: int | None = None) -> dict:
    return {
        "id": wamid,
        "status": state,
        "timestamp": str(ts or int(time.time())),
        "recipient_id": wa_id,
    }


def webhook(
    messages: list[dict], contacts: list[tuple[str, str]], statuses: list[dict] | None = None
) -> bytes:
    value: dict = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id} for wa_id, name in contacts],
        "messages": messages,
    }
    if statuses:
        value["statuses"] = statuses
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, **extra: str) -> dict[str, str]:
    return {"content-type": "application/json", "x-hub-signature-256": signature(body), **extra}
