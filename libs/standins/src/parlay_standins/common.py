"""Shared plumbing of the provider families: one request -> StandinState.exchange -> Response."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response

from parlay_standins.state import FailureRule, Reply, RequestRecord, StandinState

Handler = Callable[[RequestRecord], Awaitable[Reply]]


def state_of(request: Request) -> StandinState:
    state: StandinState = request.app.state.standin
    return state


def to_response(reply: Reply) -> Response:
    headers = dict(reply.headers)
    if isinstance(reply.body, bytes):
        return Response(
            reply.body,
            status_code=reply.status,
            headers=headers,
            media_type=reply.media_type or "application/octet-stream",
        )
    if isinstance(reply.body, str):
        return Response(
            reply.body,
            status_code=reply.status,
            headers=headers,
            media_type=reply.media_type or "text/plain",
        )
    return Response(
        json.dumps(reply.body, separators=(",", ":")),
        status_code=reply.status,
        headers=headers,
        media_type=reply.media_type or "application/json",
    )


async def serve(
    request: Request,
    family: str,
    handler: Handler,
    error_reply: Callable[[FailureRule], Reply],
    replay: Callable[[RequestRecord, Reply], Reply] | None = None,
    idempotency: bool = True,
) -> Response:
    raw = await request.body()
    reply = await state_of(request).exchange(
        family=family,
        method=request.method,
        path=request.url.path,
        query=dict(request.query_params),
        headers=dict(request.headers),
        raw=raw,
        handler=handler,
        error_reply=error_reply,
        replay=replay,
        idempotency=idempotency,
    )
    return to_response(reply)


def retry_after_headers(rule: FailureRule) -> dict[str, str]:
    if rule.retry_after is None:
        return {}
    value = rule.retry_after
    return {"Retry-After": str(int(value)) if float(value).is_integer() else str(value)}


def bearer(record: RequestRecord) -> str:
    auth = record.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return ""


def basic_auth(record: RequestRecord) -> tuple[str, str]:
    auth = record.headers.get("authorization", "")
    if not auth.lower().startswith("basic "):
        return "", ""
    try:
        user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    return user, password


def params(record: RequestRecord) -> dict[str, Any]:
    """Query parameters overlaid with a JSON-object or form body (Telegram accepts any)."""
    merged: dict[str, Any] = dict(record.query)
    if isinstance(record.body, dict):
        merged.update(record.body)
    return merged


def digits(n: int) -> str:
    """A random decimal id of n digits (no leading zero)."""
    return str(10 ** (n - 1) + secrets.randbelow(9 * 10 ** (n - 1)))


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
