"""Meta Graph API stand-in: WhatsApp Cloud API and the Messenger/Instagram Send API.

POST /meta/{version}/{phone_number_id}/messages       WhatsApp (Bearer access token)
POST /meta/{version}/me/messages?access_token=...     Messenger / Instagram
GET  /meta/{version}/{media_id}                       WhatsApp media URL (Bearer)
GET  /meta/whatsapp_business/attachments/?mid=...     the media bytes (Bearer)
GET  /meta/_media/{id}                                attachment CDN URL (Messenger, no auth)
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from fastapi import APIRouter, Request, Response

from parlay_standins.common import base_url, bearer, retry_after_headers, serve, state_of
from parlay_standins.state import FailureRule, Reply, RequestRecord

router = APIRouter(prefix="/meta")
FAMILY = "meta"
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")


def graph_error(
    status: int,
    code: int,
    message: str,
    *,
    type_: str = "OAuthException",
    details: str = "",
    subcode: int | None = None,
    transient: bool | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    error: dict[str, Any] = {
        "message": message,
        "type": type_,
        "code": code,
        "fbtrace_id": "A" + secrets.token_urlsafe(16),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return Reply(status, {"error": error}, headers or {})


def invalid(details: str) -> Reply:
    return graph_error(400, 100, "(#100) Invalid parameter", details=details)


def error_reply(rule: FailureRule) -> Reply:
    if rule.status and rule.body is not None:
        return Reply(rule.status, rule.body, retry_after_headers(rule))
    kind = rule.error or ("rate_limited" if rule.status == 429 else "")
    if kind == "rate_limited":
        return graph_error(
            rule.status or 429,
            130429,
            "(#130429) Rate limit hit",
            details="Cloud API message throughput has been reached.",
            headers=retry_after_headers(rule),
        )
    if kind == "bad_request" or (rule.status and 400 <= rule.status < 500 and not kind):
        return graph_error(
            rule.status or 400,
            131009,
            "(#131009) Parameter value is not valid",
            details="One or more parameter values are invalid.",
        )
    if kind == "unauthorized":
        return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    return graph_error(
        rule.status or 500,
        2,
        "Service temporarily unavailable",
        transient=True,
        headers=retry_after_headers(rule),
    )


def _token(record: RequestRecord) -> str:
    return bearer(record) or str(record.query.get("access_token", ""))


def _auth_error(record: RequestRecord, request: Request) -> Reply | None:
    token = _token(record)
    if not token:
        return graph_error(
            400,
            2500,
            "An active access token must be used to query information about the current user.",
        )
    if not state_of(request).credential_ok(FAMILY, access_token=token):
        return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
    record.credential = token
    return None


def _wamid() -> str:
    return "wamid." + base64.b64encode(b"\x15\x02" + secrets.token_bytes(28)).decode().rstrip("=")


def validate_whatsapp(body: Any) -> str:
    """'' when valid, else the error detail Meta would give."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required and must be 'whatsapp'."
    if not body.get("to"):
        return "The parameter to is required."
    kind = body.get("type", "text")
    part = body.get(kind)
    if not isinstance(part, dict):
        return f"The parameter {kind} is required."
    if kind == "text":
        text = part.get("body")
        if not isinstance(text, str) or not text:
            return "The parameter text['body'] is required."
        if len(text) > 4096:
            return "text['body'] is too long (max 4096)."
    elif kind == "template":
        if not part.get("name"):
            return "The parameter template['name'] is required."
        language = part.get("language")
        if not isinstance(language, dict) or not language.get("code"):
            return "The parameter template['language']['code'] is required."
        for i, component in enumerate(part.get("components") or []):
            if component.get("type") not in ("header", "body", "button"):
                return f"template['components'][{i}]['type'] is invalid."
            for j, parameter in enumerate(component.get("parameters") or []):
                if parameter.get("type") == "text" and not parameter.get("text"):
                    return f"template['components'][{i}]['parameters'][{j}]['text'] is required."
    elif kind == "interactive":
        itype = part.get("type")
        body_text = (part.get("body") or {}).get("text")
        if not body_text:
            return "The parameter interactive['body']['text'] is required."
        action = part.get("action") or {}
        if itype == "button":
            buttons = action.get("buttons") or []
            if not 1 <= len(buttons) <= 3:
                return "interactive['action']['buttons'] must have 1 to 3 buttons."
            for i, button in enumerate(buttons):
                reply = button.get("reply") or {}
                if button.get("type") != "reply" or not reply.get("id") or not reply.get("title"):
                    return f"interactive['action']['buttons'][{i}] needs type reply, id, title."
                if len(reply["title"]) > 20:
                    return f"interactive['action']['buttons'][{i}]['reply']['title'] too long (max 20)."
        elif itype == "list":
            if not action.get("button"):
                return "The parameter interactive['action']['button'] is required."
            sections = action.get("sections") or []
            rows = [row for s in sections for row in (s.get("rows") or [])]
            if not sections or not 1 <= len(rows) <= 10:
                return "interactive['action']['sections'] must hold 1 to 10 rows."
            for row in rows:
                if not row.get("id") or not row.get("title"):
                    return "Every list row needs an id and a title."
                if len(row["title"]) > 24:
                    return "A list row title is too long (max 24)."
        else:
            return f"interactive['type'] {itype!r} is not supported."
    elif kind in MEDIA_TYPES:
        if not part.get("link") and not part.get("id"):
            return f"The parameter {kind}['link'] or {kind}['id'] is required."
    elif kind not in ("location", "contacts", "reaction"):
        return f"The parameter type {kind!r} is invalid."
    return ""


@router.post("/{version}/{node}/messages")
async def send(version: str, node: str, request: Request) -> Response:
    if node == "me":
        return await _messenger_send(request)

    async def handle(record: RequestRecord) -> Reply:
        auth = _auth_error(record, request)
        if auth is not None:
            return auth
        problem = validate_whatsapp(record.body)
        if problem:
            return invalid(problem)
        account = state_of(request).account_by(FAMILY, access_token=record.credential)
        phone_number_id = (account.settings.get("phone_number_id") if account else "") or ""
        if phone_number_id and phone_number_id != node:
            return graph_error(
                400,
                100,
                f"Unsupported post request. Object with ID '{node}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                type_="GraphMethodException",
                subcode=33,
            )
        body = record.body
        to = str(body["to"])
        record.channel = "whatsapp"
        record.recipient = to
        record.provider_message_id = _wamid()
        record.accepted = True
        message: dict[str, Any] = {"id": record.provider_message_id}
        if body.get("type") == "template":
            message["message_status"] = "accepted"
        return Reply(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": "".join(c for c in to if c.isdigit())}],
                "messages": [message],
            },
        )

    return await serve(request, FAMILY, handle, error_reply)


def validate_messenger(body: Any) -> str:
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not recipient.get("id"):
        return "(#100) The parameter recipient is required"
    messaging_type = body.get("messaging_type", "RESPONSE")
    if messaging_type not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        return "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}"
    if messaging_type == "MESSAGE_TAG" and not body.get("tag"):
        return "(#100) Param tag is required with messaging_type MESSAGE_TAG"
    message = body.get("message")
    if not isinstance(message, dict):
        return "(#100) The parameter message is required"
    text = message.get("text")
    attachment = message.get("attachment")
    if not text and not attachment:
        return "(#100) Must send either message text or attachment"
    if text and len(text) > 2000:
        return "(#100) Param message[text] must be at most 2000 characters long."
    if attachment:
        if attachment.get("type") not in ("image", "audio", "video", "file", "template"):
            return "(#100) Param message[attachment][type] must be one of {image, audio, video, file, template}"
        if (
            attachment.get("type") != "template"
            and not (attachment.get("payload") or {}).get("url")
            and not (attachment.get("payload") or {}).get("attachment_id")
        ):
            return "(#100) message[attachment][payload][url] is required"
    quick_replies = message.get("quick_replies") or []
    if len(quick_replies) > 13:
        return "(#100) Param message[quick_replies] must have at most 13 items"
    for qr in quick_replies:
        if qr.get("content_type", "text") == "text" and (
            not qr.get("title") or not qr.get("payload")
        ):
            return "(#100) A text quick reply needs title and payload"
        if len(qr.get("title", "")) > 20:
            return "(#100) Quick reply title must be at most 20 characters"
    return ""


async def _messenger_send(request: Request) -> Response:
    async def handle(record: RequestRecord) -> Reply:
        auth = _auth_error(record, request)
        if auth is not None:
            return auth
        problem = validate_messenger(record.body)
        if problem:
            return graph_error(400, 100, problem)
        account = state_of(request).account_by(FAMILY, access_token=record.credential)
        record.channel = account.channel if account else "messenger"
        record.recipient = str(record.body["recipient"]["id"])
        record.provider_message_id = "m_" + secrets.token_urlsafe(48)
        record.accepted = True
        return Reply(
            200, {"recipient_id": record.recipient, "message_id": record.provider_message_id}
        )

    return await serve(request, FAMILY, handle, error_reply)


@router.get("/whatsapp_business/attachments/")
async def download(request: Request) -> Response:
    async def handle(record: RequestRecord) -> Reply:
        if not bearer(record):
            return graph_error(401, 190, "Invalid OAuth access token")
        media = state_of(request).media.get(str(record.query.get("mid", "")))
        if media is None:
            return Reply(404, "Not Found")
        return Reply(200, media.data, media_type=media.mime_type)

    return await serve(request, FAMILY, handle, error_reply)


@router.get("/_media/{media_id}")
async def cdn(media_id: str, request: Request) -> Response:
    async def handle(record: RequestRecord) -> Reply:
        media = state_of(request).media.get(media_id)
        if media is None:
            return Reply(404, "Not Found")
        return Reply(200, media.data, media_type=media.mime_type)

    return await serve(request, FAMILY, handle, error_reply)


@router.get("/{version}/{media_id}")
async def media_url(version: str, media_id: str, request: Request) -> Response:
    async def handle(record: RequestRecord) -> Reply:
        auth = _auth_error(record, request)
        if auth is not None:
            return auth
        media = state_of(request).media.get(media_id)
        if media is None:
            return graph_error(
                400,
                100,
                f"Unsupported get request. Object with ID '{media_id}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                type_="GraphMethodException",
                subcode=33,
            )
        ext = media.mime_type.rsplit("/", 1)[-1]
        return Reply(
            200,
            {
                "messaging_product": "whatsapp",
                "url": f"{base_url(request)}/meta/whatsapp_business/attachments/"
                f"?mid={media.media_id}&ext={ext}&hash={media.sha256[:16]}",
                "mime_type": media.mime_type,
                "sha256": media.sha256,
                "file_size": len(media.data),
                "id": media.media_id,
            },
        )

    return await serve(request, FAMILY, handle, error_reply)
