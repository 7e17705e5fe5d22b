"""Viber REST bot API stand-in.

POST /viber/pa/send_message     X-Viber-Auth-Token; answers HTTP 200 with a `status` code
GET  /viber/_media/{id}         media URL Viber puts in inbound messages
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from parlay_standins.common import digits, retry_after_headers, serve, state_of
from parlay_standins.state import FailureRule, Reply, RequestRecord

router = APIRouter(prefix="/viber")
FAMILY = "viber"
TYPES = ("text", "picture", "video", "file", "location", "contact", "sticker", "url", "rich_media")
STATUS_MESSAGES = {
    0: "ok",
    1: "invalidUrl",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "receiverNotRegistered",
    6: "receiverNotSubscribed",
    7: "publicAccountBlocked",
    8: "publicAccountNotFound",
    9: "publicAccountSuspended",
    10: "webhookNotSet",
    11: "receiverNoSuitableDevice",
    12: "tooManyRequests",
}
CHAT_HOSTNAME = "SN-CHAT-STANDIN_"


def viber_status(
    code: int, detail: str = "", http_status: int = 200, headers: dict[str, str] | None = None
) -> Reply:
    message = STATUS_MESSAGES.get(code, "generalError")
    if detail:
        message = f"{message}: {detail}"
    return Reply(
        http_status,
        {"status": code, "status_message": message, "chat_hostname": CHAT_HOSTNAME},
        headers or {},
    )


def error_reply(rule: FailureRule) -> Reply:
    if rule.status and rule.body is not None:
        return Reply(rule.status, rule.body, retry_after_headers(rule))
    kind = rule.error
    if kind == "rate_limited" or rule.status == 429:
        return viber_status(12, http_status=rule.status or 200, headers=retry_after_headers(rule))
    if kind == "bad_request" or (rule.status and 400 <= rule.status < 500):
        return viber_status(6)
    if kind == "unauthorized":
        return viber_status(2)
    return Reply(
        rule.status or 500,
        {"status": 13, "status_message": "generalError"},
        retry_after_headers(rule),
    )


def _problem(body: Any) -> str:
    if not isinstance(body, dict):
        return "request body is not a JSON object"
    if not body.get("receiver"):
        return "[#: required key [receiver] not found]"
    sender = body.get("sender")
    if not isinstance(sender, dict) or not sender.get("name"):
        return "[#: required key [sender.name] not found]"
    if len(sender["name"]) > 28:
        return "[#/sender/name: expected maxLength: 28]"
    mtype = body.get("type")
    if mtype not in TYPES:
        return f"[#/type: {mtype} is not a valid enum value]"
    if mtype == "text" and not body.get("text"):
        return "[#: required key [text] not found]"
    if mtype in ("picture", "video", "file") and not body.get("media"):
        return "[#: required key [media] not found]"
    if mtype in ("video", "file") and not body.get("size"):
        return "[#: required key [size] not found]"
    if mtype == "file" and not body.get("file_name"):
        return "[#: required key [file_name] not found]"
    keyboard = body.get("keyboard")
    if keyboard is not None:
        buttons = keyboard.get("Buttons") if isinstance(keyboard, dict) else None
        if keyboard.get("Type") != "keyboard" or not isinstance(buttons, list) or not buttons:
            return "[#/keyboard: invalid keyboard]"
        for button in buttons:
            if not button.get("ActionBody"):
                return "[#/keyboard/Buttons: required key [ActionBody] not found]"
    return ""


@router.post("/pa/send_message")
async def send_message(request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        token = record.headers.get("x-viber-auth-token", "")
        if not token or not state.credential_ok(FAMILY, auth_token=token):
            return viber_status(2)
        record.credential = token
        problem = _problem(record.body)
        if problem:
            return viber_status(3, problem)
        token_value = int(digits(19)) // 2  # a signed 64-bit number, as Viber sends it
        record.channel = "viber"
        record.recipient = str(record.body["receiver"])
        record.provider_message_id = str(token_value)
        record.accepted = True
        return Reply(
            200,
            {
                "status": 0,
                "status_message": "ok",
                "message_token": token_value,
                "chat_hostname": CHAT_HOSTNAME,
                "billing_status": 1,
            },
        )

    return await serve(request, FAMILY, handle, error_reply)


@router.get("/_media/{media_id}")
async def media(media_id: str, request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        found = state.media.get(media_id)
        if found is None:
            return Reply(404, "Not Found")
        return Reply(200, found.data, media_type=found.mime_type)

    return await serve(request, FAMILY, handle, error_reply)
