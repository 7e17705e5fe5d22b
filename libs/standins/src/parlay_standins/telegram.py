"""Telegram Bot API stand-in.

    POST|GET /telegram/bot{token}/{method}        sendMessage, sendPhoto, sendDocument, sendVideo,
                                                  sendAudio, sendSticker, getFile, getMe,
                                                  sendInvoice, answerPreCheckoutQuery (payments)
    GET      /telegram/file/bot{token}/{path}     file download
Parameters as JSON, form or query string, like the real API. Answers {"ok": ..., ...}.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from parlay_standins.common import params, retry_after_headers, serve, state_of
from parlay_standins.state import FailureRule, Reply, RequestRecord

router = APIRouter(prefix="/telegram")
FAMILY = "telegram"
#: method -> (file parameter, its result key)
MEDIA_METHODS = {
    "sendPhoto": "photo",
    "sendDocument": "document",
    "sendVideo": "video",
    "sendAudio": "audio",
    "sendSticker": "sticker",
    "sendAnimation": "animation",
    "sendVoice": "voice",
}
BOT = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Parlay Stand-in",
    "username": "parlay_standin_bot",
}


def tg_error(
    status: int, description: str, headers: dict[str, str] | None = None, **extra: Any
) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    body.update(extra)
    return Reply(status, body, headers or {})


def error_reply(rule: FailureRule) -> Reply:
    if rule.status and rule.body is not None:
        return Reply(rule.status, rule.body, retry_after_headers(rule))
    kind = rule.error or ("rate_limited" if rule.status == 429 else "")
    if kind == "rate_limited":
        after = int(rule.retry_after or 1)
        return tg_error(
            429,
            f"Too Many Requests: retry after {after}",
            retry_after_headers(rule),
            parameters={"retry_after": after},
        )
    if kind == "bad_request" or (rule.status and 400 <= rule.status < 500 and not kind):
        return tg_error(rule.status or 400, "Bad Request: chat not found")
    if kind == "unauthorized":
        return tg_error(401, "Unauthorized")
    return tg_error(rule.status or 500, "Internal Server Error", retry_after_headers(rule))


def _markup_problem(markup: Any) -> str:
    if markup in (None, ""):
        return ""
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            return "Bad Request: can't parse reply keyboard markup JSON object"
    if not isinstance(markup, dict):
        return "Bad Request: can't parse reply keyboard markup JSON object"
    rows = markup.get("inline_keyboard")
    if rows is None:
        return ""
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return 'Bad Request: field "inline_keyboard" must be an Array of Arrays'
    for row in rows:
        for button in row:
            if not button.get("text"):
                return "Bad Request: text buttons are unallowed in the inline keyboard"
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                return "Bad Request: BUTTON_DATA_INVALID"
    return ""


@router.api_route("/bot{token}/{method}", methods=["GET", "POST"])
async def bot_method(token: str, method: str, request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        if not state.credential_ok(FAMILY, bot_token=token):
            return tg_error(401, "Unauthorized")
        record.credential = token
        p = params(record)
        if method == "getMe":
            return Reply(200, {"ok": True, "result": BOT})
        if method == "getFile":
            media = state.media.get(str(p.get("file_id", "")))
            if media is None:
                return tg_error(400, "Bad Request: invalid file_id")
            ext = media.mime_type.rsplit("/", 1)[-1]
            return Reply(
                200,
                {
                    "ok": True,
                    "result": {
                        "file_id": media.media_id,
                        "file_unique_id": media.media_id[-16:],
                        "file_size": len(media.data),
                        "file_path": f"files/{media.media_id}.{ext}",
                    },
                },
            )
        if method == "answerPreCheckoutQuery":
            return _answer_pre_checkout_query(record, p)
        if method not in ("sendMessage", "sendInvoice") and method not in MEDIA_METHODS:
            return tg_error(404, "Not Found")
        chat_id = p.get("chat_id")
        if chat_id in (None, ""):
            return tg_error(400, "Bad Request: chat_id is empty")
        problem = _markup_problem(p.get("reply_markup"))
        if problem:
            return tg_error(400, problem)
        result: dict[str, Any] = {
            "from": BOT,
            "chat": {"id": _int_or_str(chat_id), "type": "private"},
            "date": int(time.time()),
        }
        if method == "sendMessage":
            text = p.get("text")
            if not text:
                return tg_error(400, "Bad Request: message text is empty")
            if len(str(text)) > 4096:
                return tg_error(400, "Bad Request: message is too long")
            result["text"] = text
        elif method == "sendInvoice":
            invoice = _invoice(p)
            if isinstance(invoice, Reply):
                return invoice
            result["invoice"] = invoice
        else:
            field = MEDIA_METHODS[method]
            if not p.get(field):
                return tg_error(400, f"Bad Request: there is no {field} in the request")
            caption = p.get("caption")
            if caption and len(str(caption)) > 1024:
                return tg_error(400, "Bad Request: message caption is too long")
            result[field] = {"file_id": f"standin-{field}", "file_unique_id": "standin"}
            if caption:
                result["caption"] = caption
        message_id = state.counter(f"telegram:{token}:{chat_id}")
        result = {"message_id": message_id, **result}
        record.channel = "telegram"
        record.recipient = str(chat_id)
        record.provider_message_id = str(message_id)
        record.accepted = True
        return Reply(200, {"ok": True, "result": result})

    return await serve(request, FAMILY, handle, error_reply)


@router.get("/file/bot{token}/{file_path:path}")
async def file_download(token: str, file_path: str, request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        if not state.credential_ok(FAMILY, bot_token=token):
            return tg_error(401, "Unauthorized")
        media_id = file_path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        media = state.media.get(media_id)
        if media is None:
            return tg_error(404, "Not Found")
        return Reply(200, media.data, media_type=media.mime_type)

    return await serve(request, FAMILY, handle, error_reply)


# ---------------------------------------------------------------------------------- payments


def _json_param(value: Any) -> Any:
    """A JSON-serialized parameter (prices in a form) or the value itself (a JSON body)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _bool_param(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _invoice(p: dict[str, Any]) -> dict[str, Any] | Reply:
    """sendInvoice as the Bot API documents it: title 1-32 characters, description 1-255,
    payload 1-128 bytes, a 3-letter currency, prices a non-empty array of LabeledPrice
    {label, amount} with integer amounts in the smallest units; provider_token required except
    for Telegram Stars (XTR, one price only). -> the Message's `invoice`."""
    title = str(p.get("title") or "")
    if not 1 <= len(title) <= 32:
        return tg_error(
            400, "Bad Request: INVOICE_TITLE_INVALID" if title else "Bad Request: title is empty"
        )
    description = str(p.get("description") or "")
    if not 1 <= len(description) <= 255:
        return tg_error(400, "Bad Request: INVOICE_DESCRIPTION_INVALID")
    payload = str(p.get("payload") or "")
    if not 1 <= len(payload.encode()) <= 128:
        return tg_error(400, "Bad Request: INVOICE_PAYLOAD_INVALID")
    currency = str(p.get("currency") or "")
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        return tg_error(400, "Bad Request: CURRENCY_INVALID")
    prices = _json_param(p.get("prices"))
    if not isinstance(prices, list) or not prices:
        return tg_error(400, "Bad Request: can't parse prices JSON object")
    total = 0
    for price in prices:
        if not isinstance(price, dict) or not price.get("label"):
            return tg_error(400, "Bad Request: can't parse prices JSON object")
        amount = price.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int):
            return tg_error(400, "Bad Request: can't parse prices JSON object")
        total += amount
    if total <= 0:
        return tg_error(400, "Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID")
    token = str(p.get("provider_token") or "")
    if currency == "XTR":
        if token or len(prices) != 1:
            return tg_error(400, "Bad Request: STARS_INVOICE_INVALID")
    elif not token:
        return tg_error(400, "Bad Request: PAYMENT_PROVIDER_INVALID")
    return {
        "title": title,
        "description": description,
        "start_parameter": str(p.get("start_parameter") or ""),
        "currency": currency,
        "total_amount": total,
    }


def _answer_pre_checkout_query(record: RequestRecord, p: dict[str, Any]) -> Reply:
    """answerPreCheckoutQuery: pre_checkout_query_id, ok, and error_message when ok is false.
    -> {"ok": true, "result": true}."""
    query_id = str(p.get("pre_checkout_query_id") or "")
    if not query_id:
        return tg_error(400, "Bad Request: QUERY_ID_INVALID")
    ok = _bool_param(p.get("ok"))
    if ok is None:
        return tg_error(400, 'Bad Request: parameter "ok" is required')
    if not ok and not p.get("error_message"):
        return tg_error(400, "Bad Request: ERROR_MESSAGE_EMPTY")
    record.channel = "telegram"
    record.provider_message_id = f"pre_checkout:{query_id}"
    record.accepted = True
    return Reply(200, {"ok": True, "result": True})


def _int_or_str(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value
