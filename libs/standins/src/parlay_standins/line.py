"""LINE Messaging API stand-in.

    POST /line/v2/bot/message/push           Bearer channel access token; X-Line-Retry-Key
    POST /line/v2/bot/message/reply          reply token
    GET  /line/v2/bot/message/{id}/content   content of a user's media message (api-data host)

X-Line-Retry-Key is LINE's real idempotency key (a UUID): a repeated key for a request LINE
already accepted answers 409 with `x-line-accepted-request-id` and the original sentMessages.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from parlay_standins.common import bearer, digits, retry_after_headers, serve, state_of
from parlay_standins.state import FailureRule, Reply, RequestRecord

router = APIRouter(prefix="/line")
FAMILY = "line"
TYPES = ("text", "image", "video", "audio", "location", "sticker", "imagemap", "template", "flex")


def line_error(
    status: int,
    message: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = details
    return Reply(status, body, headers or {})


def error_reply(rule: FailureRule) -> Reply:
    if rule.status and rule.body is not None:
        return Reply(rule.status, rule.body, retry_after_headers(rule))
    kind = rule.error or ("rate_limited" if rule.status == 429 else "")
    if kind == "rate_limited":
        return line_error(429, "Too Many Requests", headers=retry_after_headers(rule))
    if kind == "bad_request" or (rule.status and 400 <= rule.status < 500 and not kind):
        return line_error(
            rule.status or 400,
            "The property, 'to', in the request body is invalid (line: -, column: -)",
        )
    if kind == "unauthorized":
        return line_error(
            401,
            "Authentication failed. Confirm that the access token in the authorization header is valid.",
        )
    return line_error(
        rule.status or 500, "Internal Server Error", headers=retry_after_headers(rule)
    )


def _problems(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
        return [{"message": "Size must be between 1 and 5", "property": "messages"}]
    out = []
    for i, m in enumerate(messages):
        prop = f"messages[{i}]"
        mtype = m.get("type") if isinstance(m, dict) else None
        if mtype not in TYPES:
            out.append({"message": "Invalid message type", "property": f"{prop}.type"})
            continue
        if mtype == "text":
            if not m.get("text"):
                out.append({"message": "Must not be empty", "property": f"{prop}.text"})
            elif len(m["text"]) > 5000:
                out.append(
                    {"message": "Length must be between 0 and 5000", "property": f"{prop}.text"}
                )
        if mtype in ("image", "video"):
            for key in ("originalContentUrl", "previewImageUrl"):
                if not m.get(key):
                    out.append({"message": "Must be specified", "property": f"{prop}.{key}"})
        if mtype == "audio":
            for key in ("originalContentUrl", "duration"):
                if not m.get(key):
                    out.append({"message": "Must be specified", "property": f"{prop}.{key}"})
        items = ((m.get("quickReply") or {}).get("items")) or []
        if len(items) > 13:
            out.append(
                {"message": "Size must be between 0 and 13", "property": f"{prop}.quickReply.items"}
            )
        for j, item in enumerate(items):
            action = item.get("action") or {}
            if item.get("type") != "action" or action.get("type") not in (
                "postback",
                "message",
                "uri",
                "datetimepicker",
                "camera",
                "cameraRoll",
                "location",
            ):
                out.append(
                    {"message": "Invalid action", "property": f"{prop}.quickReply.items[{j}]"}
                )
            elif len(action.get("label", "")) > 20:
                out.append(
                    {
                        "message": "Length must be between 0 and 20",
                        "property": f"{prop}.quickReply.items[{j}].action.label",
                    }
                )
    return out


def _replay(record: RequestRecord, original: Reply) -> Reply:
    if original.status != 200:
        return original
    body = original.body if isinstance(original.body, dict) else {}
    return (
        line_error(
            409,
            "The retry key is already accepted",
            headers={"x-line-accepted-request-id": original.headers.get("x-line-request-id", "")},
        )
        if not body.get("sentMessages")
        else Reply(
            409,
            {"message": "The retry key is already accepted", "sentMessages": body["sentMessages"]},
            {"x-line-accepted-request-id": original.headers.get("x-line-request-id", "")},
        )
    )


async def _send(request: Request, *, push: bool) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        token = bearer(record)
        if not token or not state.credential_ok(FAMILY, access_token=token):
            return line_error(
                401,
                "Authentication failed. Confirm that the access token in the authorization header is valid.",
            )
        record.credential = token
        if record.idempotency_key and record.headers.get("x-line-retry-key"):
            try:
                uuid.UUID(record.headers["x-line-retry-key"])
            except ValueError:
                return line_error(400, "The value for the 'X-Line-Retry-Key' header is invalid")
        body = record.body if isinstance(record.body, dict) else {}
        target_key = "to" if push else "replyToken"
        if not body.get(target_key):
            return line_error(
                400,
                "The request body has 1 error(s)",
                [{"message": "Must be specified", "property": target_key}],
            )
        problems = _problems(body.get("messages"))
        if problems:
            return line_error(400, f"The request body has {len(problems)} error(s)", problems)
        sent = [
            {"id": digits(18), "quoteToken": secrets.token_urlsafe(48)} for _ in body["messages"]
        ]
        record.channel = "line"
        record.recipient = str(body.get("to", ""))
        record.provider_message_id = sent[0]["id"]
        record.accepted = True
        return Reply(200, {"sentMessages": sent}, {"x-line-request-id": str(uuid.uuid4())})

    return await serve(request, FAMILY, handle, error_reply, _replay)


@router.post("/v2/bot/message/push")
async def push(request: Request) -> Response:
    return await _send(request, push=True)


@router.post("/v2/bot/message/reply")
async def reply(request: Request) -> Response:
    return await _send(request, push=False)


@router.get("/v2/bot/message/{message_id}/content")
async def content(message_id: str, request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        token = bearer(record)
        if not token or not state.credential_ok(FAMILY, access_token=token):
            return line_error(
                401,
                "Authentication failed. Confirm that the access token in the authorization header is valid.",
            )
        media = state.media.get(message_id)
        if media is None:
            return line_error(404, "Not found")
        return Reply(200, media.data, media_type=media.mime_type)

    return await serve(request, FAMILY, handle, error_reply)
