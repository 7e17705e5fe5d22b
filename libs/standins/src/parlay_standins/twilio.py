"""Twilio Programmable Messaging stand-in (SMS/MMS and WhatsApp through Twilio).

POST /twilio/2010-04-01/Accounts/{AccountSid}/Messages.json        form-encoded, basic auth
GET  /twilio/2010-04-01/Accounts/{AccountSid}/Messages/{MM}/Media/{ME}   media bytes
"""

from __future__ import annotations

import re
import secrets
from email.utils import formatdate
from typing import Any

from fastapi import APIRouter, Request, Response

from parlay_standins.common import basic_auth, retry_after_headers, serve, state_of
from parlay_standins.state import FailureRule, Reply, RequestRecord

router = APIRouter(prefix="/twilio")
FAMILY = "twilio"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def twilio_error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> Reply:
    return Reply(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        headers or {},
    )


def error_reply(rule: FailureRule) -> Reply:
    if rule.status and rule.body is not None:
        return Reply(rule.status, rule.body, retry_after_headers(rule))
    kind = rule.error or ("rate_limited" if rule.status == 429 else "")
    if kind == "rate_limited":
        return twilio_error(429, 20429, "Too Many Requests", retry_after_headers(rule))
    if kind == "bad_request" or (rule.status and 400 <= rule.status < 500 and not kind):
        return twilio_error(
            rule.status or 400, 21211, "The 'To' number is not a valid phone number."
        )
    if kind == "unauthorized":
        return twilio_error(401, 20003, "Authenticate")
    return twilio_error(
        rule.status or 500, 20500, "Internal Server Error", retry_after_headers(rule)
    )


def _address_ok(value: str) -> bool:
    return bool(E164.match(value.removeprefix("whatsapp:")))


def _form_list(value: Any) -> list[str]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@router.post("/2010-04-01/Accounts/{account_sid}/Messages.json")
async def create_message(account_sid: str, request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        user, password = basic_auth(record)
        if (
            not user
            or user != account_sid
            or not state.credential_ok(FAMILY, account_sid=user, auth_token=password)
        ):
            return twilio_error(401, 20003, "Authenticate")
        record.credential = user
        form = record.body if isinstance(record.body, dict) else {}
        to = str(form.get("To", ""))
        sender = str(form.get("From", ""))
        service = str(form.get("MessagingServiceSid", ""))
        body = str(form.get("Body", ""))
        media = _form_list(form.get("MediaUrl"))
        content_sid = str(form.get("ContentSid", ""))
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not media and not content_sid:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if not _address_ok(to):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if sender and not _address_ok(sender):
            return twilio_error(400, 21212, f"Invalid From Number (caller ID): {sender}")
        if sender and to.startswith("whatsapp:") != sender.startswith("whatsapp:"):
            return twilio_error(
                400, 63007, "Twilio could not find a Channel with the specified From address"
            )
        sid = "SM" + secrets.token_hex(16)
        record.channel = "twilio"
        record.recipient = to
        record.provider_message_id = sid
        record.accepted = True
        now = formatdate(usegmt=True)
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}"
        return Reply(
            201,
            {
                "account_sid": account_sid,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": sender or None,
                "messaging_service_sid": service or None,
                "num_media": str(len(media)),
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "accepted" if service and not sender else "queued",
                "subresource_uris": {"media": f"{uri}/Media.json"},
                "to": to,
                "uri": f"{uri}.json",
            },
        )

    return await serve(request, FAMILY, handle, error_reply)


@router.get("/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}")
async def media(account_sid: str, message_sid: str, media_sid: str, request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        user, password = basic_auth(record)
        if not user or not state.credential_ok(FAMILY, account_sid=user, auth_token=password):
            return twilio_error(401, 20003, "Authenticate")
        found = state.media.get(media_sid.removesuffix(".json"))
        if found is None:
            return twilio_error(404, 20404, "The requested resource was not found")
        return Reply(200, found.data, media_type=found.mime_type)

    return await serve(request, FAMILY, handle, error_reply)
