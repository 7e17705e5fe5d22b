"""WeChat Official Account API stand-in.

    GET  /wechat/cgi-bin/token?grant_type=client_credential&appid=...&secret=...
    POST /wechat/cgi-bin/message/custom/send?access_token=...   customer-service message
    GET  /wechat/cgi-bin/media/get?access_token=...&media_id=... temporary media bytes
Errors are HTTP 200 with {"errcode": n, "errmsg": "..."}, as WeChat answers them.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request, Response

from parlay_standins.common import retry_after_headers, serve, state_of
from parlay_standins.state import FailureRule, Reply, RequestRecord

router = APIRouter(prefix="/wechat")
FAMILY = "wechat"
MSG_TYPES = (
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
)


def wx_error(
    errcode: int, errmsg: str, status: int = 200, headers: dict[str, str] | None = None
) -> Reply:
    rid = secrets.token_hex(4) + "-" + secrets.token_hex(6)
    return Reply(status, {"errcode": errcode, "errmsg": f"{errmsg} rid: {rid}"}, headers or {})


def error_reply(rule: FailureRule) -> Reply:
    if rule.status and rule.body is not None:
        return Reply(rule.status, rule.body, retry_after_headers(rule))
    kind = rule.error
    if kind == "rate_limited" or rule.status == 429:
        return wx_error(
            45009, "reach max api daily quota limit", rule.status or 200, retry_after_headers(rule)
        )
    if kind == "bad_request" or (rule.status and 400 <= rule.status < 500):
        return wx_error(40003, "invalid openid")
    if kind == "unauthorized":
        return wx_error(40001, "invalid credential, access_token is invalid or not latest")
    return wx_error(-1, "system error", rule.status or 200, retry_after_headers(rule))


@router.get("/cgi-bin/token")
async def token(request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        q = record.query
        if q.get("grant_type") != "client_credential":
            return wx_error(40002, "invalid grant_type")
        appid, secret = str(q.get("appid", "")), str(q.get("secret", ""))
        if not appid:
            return wx_error(41002, "appid missing")
        if not secret:
            return wx_error(41004, "appsecret missing")
        if state.has_accounts(FAMILY):
            if state.account_by(FAMILY, app_id=appid) is None:
                return wx_error(40013, "invalid appid")
            if state.account_by(FAMILY, app_id=appid, app_secret=secret) is None:
                return wx_error(40125, "invalid appsecret")
        access_token = secrets.token_urlsafe(96)
        state.wechat_tokens[access_token] = appid
        return Reply(200, {"access_token": access_token, "expires_in": 7200})

    return await serve(request, FAMILY, handle, error_reply)


def _validate(body: Any) -> Reply | None:
    if not isinstance(body, dict):
        return wx_error(47001, "data format error")
    if not body.get("touser"):
        return wx_error(40003, "invalid openid")
    msgtype = body.get("msgtype")
    if msgtype not in MSG_TYPES:
        return wx_error(40008, "invalid message type")
    part = body.get(msgtype)
    if not isinstance(part, dict):
        return wx_error(44002, "empty post data")
    if msgtype == "text" and not part.get("content"):
        return wx_error(44003, "empty content")
    if msgtype in ("image", "voice", "video") and not part.get("media_id"):
        return wx_error(40007, "invalid media_id")
    if msgtype == "news":
        articles = part.get("articles") or []
        if len(articles) != 1 or not articles[0].get("title") or not articles[0].get("url"):
            return wx_error(45008, "article size out of limit")
    if msgtype == "msgmenu":
        items = part.get("list") or []
        if not items or not all(i.get("id") and i.get("content") for i in items):
            return wx_error(47001, "data format error")
    return None


@router.post("/cgi-bin/message/custom/send")
async def custom_send(request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        access_token = str(record.query.get("access_token", ""))
        if not access_token:
            return wx_error(41001, "access_token missing")
        if access_token not in state.wechat_tokens:
            return wx_error(40001, "invalid credential, access_token is invalid or not latest")
        record.credential = state.wechat_tokens[access_token]
        problem = _validate(record.body)
        if problem is not None:
            return problem
        record.channel = "wechat"
        record.recipient = str(record.body["touser"])
        record.accepted = True
        return Reply(200, {"errcode": 0, "errmsg": "ok"})

    return await serve(request, FAMILY, handle, error_reply)


@router.get("/cgi-bin/media/get")
async def media_get(request: Request) -> Response:
    state = state_of(request)

    async def handle(record: RequestRecord) -> Reply:
        if str(record.query.get("access_token", "")) not in state.wechat_tokens:
            return wx_error(40001, "invalid credential, access_token is invalid or not latest")
        media = state.media.get(str(record.query.get("media_id", "")))
        if media is None:
            return wx_error(40007, "invalid media_id")
        filename = media.filename or f"{media.media_id}.{media.mime_type.rsplit('/', 1)[-1]}"
        return Reply(
            200,
            media.data,
            {"Content-disposition": f'attachment; filename="{filename}"'},
            media_type=media.mime_type,
        )

    return await serve(request, FAMILY, handle, error_reply)
