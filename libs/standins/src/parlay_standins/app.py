"""The stand-in server: every provider family under its path prefix, plus the control API.

/meta/...  /telegram/...  /twilio/...  /wechat/...  /line/...  /viber/...   provider APIs
/stripe/v1/...                   Stripe (checkout sessions, payment intents, charges, refunds,
                                 events; see stripe.py); /stripe/pay/{session} checkout page
GET    /_standin/requests        recorded requests (filters: family, channel, contains,
                                 path_contains, accepted, after_seq; min_count + timeout
                                 long-poll until that many match)
POST   /_standin/fail            inject failures: {family, match, error | status+body,
                                 retry_after, delay, times}; family "sink" makes the sink fail
DELETE /_standin/fail            drop every failure rule
POST   /_standin/accounts        register an account: {channel, credentials, settings,
                                 webhook_url}; a family with registered accounts checks
                                 credentials strictly, and status webhooks go to webhook_url
POST   /_standin/media           add media: {channel, data_base64, mime_type, filename,
                                 media_id?, account_sid?} -> {media_id, url}
POST   /_standin/status          send a signed status webhook for a sent message:
                                 {provider_message_id, status, error_code?, error_title?,
                                 webhook_url?, secret?}
POST   /_standin/sink/{name}     records what is posted (a webhook receiver to try things)
POST   /_standin/stripe/sessions/{id}/pay     the customer pays: {amount_minor?, currency?,
                                 deliver?: true, wait?: false}; the session completes, a
                                 payment intent and charge succeed; events
                                 checkout.session.completed, payment_intent.succeeded,
                                 charge.succeeded (an amount/currency override makes them all
                                 carry that amount). From the checkout page's form: 303 to
                                 success_url
POST   /_standin/stripe/sessions/{id}/expire  {deliver?: true}; checkout.session.expired
GET    /_standin/stripe/events   events (filters: type, session) with the exact body, headers
                                 signed now (to redeliver) and every delivery attempt (url,
                                 status_code, error, the exact headers it carried)
POST   /_standin/stripe/events/{evt}/resend   the same event again, freshly signed, one attempt
                                 per endpoint (or to {webhook_url, secret})
       Stripe accounts: {channel: "stripe", credentials: {api_key, webhook_secret},
                                 settings: {api_version?, public_base_url?}, webhook_url}
POST   /_standin/reset           forget everything
GET    /healthz
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field

from parlay_standins import line, meta, stripe, telegram, twilio, viber, wechat
from parlay_standins.common import base_url, serve, state_of
from parlay_standins.state import (
    ALL_FAMILIES,
    FAMILIES,
    FAMILY_OF_CHANNEL,
    PAYMENT_FAMILIES,
    Account,
    FailureRule,
    Reply,
    RequestRecord,
    StandinState,
)
from parlay_standins.webhooks import WebhookError, signing_secret, status_webhook

#: The credential a family authenticates requests with (what RequestRecord.credential holds).
CREDENTIAL_KEY = {
    "meta": "access_token",
    "telegram": "bot_token",
    "twilio": "account_sid",
    "wechat": "app_id",
    "line": "access_token",
    "viber": "auth_token",
}


class FailIn(BaseModel):
    family: str = ""
    match: str = ""
    error: str = ""
    status: int = 0
    body: Any = None
    retry_after: float | None = None
    delay: float = 0.0
    times: int = 1


class AccountIn(BaseModel):
    channel: str
    credentials: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, str] = Field(default_factory=dict)
    webhook_url: str = ""


class MediaIn(BaseModel):
    channel: str
    data_base64: str
    mime_type: str = "application/octet-stream"
    filename: str = ""
    media_id: str = ""
    account_sid: str = "AC00000000000000000000000000000000"


class StatusIn(BaseModel):
    provider_message_id: str
    status: str
    error_code: str = ""
    error_title: str = ""
    webhook_url: str = ""
    secret: str = ""
    timestamp: int | None = None


def create_app(state: StandinState | None = None) -> FastAPI:
    app = FastAPI(title="Parlay provider stand-ins", docs_url=None, redoc_url=None)
    app.state.standin = state or StandinState()
    for module in (meta, telegram, twilio, wechat, line, viber, stripe):
        app.include_router(module.router)
    app.include_router(stripe.control)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/")
    async def index(request: Request) -> dict[str, Any]:
        root = base_url(request)
        return {
            "families": {f: f"{root}/{f}" for f in FAMILIES},
            "payment_providers": {f: f"{root}/{f}" for f in PAYMENT_FAMILIES},
            "control": f"{root}/_standin",
        }

    @app.get("/_standin/requests")
    async def requests(
        request: Request,
        family: str = "",
        channel: str = "",
        contains: str = "",
        path_contains: str = "",
        accepted: bool | None = None,
        after_seq: int = 0,
        min_count: int = 0,
        timeout: float = 0.0,
    ) -> dict[str, Any]:
        st = state_of(request)

        def find() -> list[Any]:
            return st.query(
                family=family,
                channel=channel,
                contains=contains,
                path_contains=path_contains,
                accepted=accepted,
                after_seq=after_seq,
            )

        found = await st.wait_for(find, min_count, min(timeout, 60.0)) if min_count else find()
        return {"requests": [r.to_json() for r in found], "count": len(found)}

    @app.post("/_standin/fail")
    async def fail(rule: FailIn, request: Request) -> dict[str, str]:
        st = state_of(request)
        # "sink" too: a failing webhook receiver (e.g. to see Stripe's delivery retries).
        known = (*ALL_FAMILIES, "sink")
        if rule.family and rule.family not in known:
            raise HTTPException(400, f"unknown family {rule.family!r}; one of {known}")
        created = FailureRule(id=f"rule-{len(st.rules) + 1}", **rule.model_dump())
        st.rules.append(created)
        return {"id": created.id}

    @app.delete("/_standin/fail")
    async def clear_failures(request: Request) -> dict[str, int]:
        st = state_of(request)
        n = len(st.rules)
        st.rules.clear()
        return {"removed": n}

    @app.post("/_standin/accounts")
    async def accounts(account: AccountIn, request: Request) -> dict[str, str]:
        if account.channel not in FAMILY_OF_CHANNEL:
            raise HTTPException(400, f"unknown channel {account.channel!r}")
        st = state_of(request)
        st.accounts.append(Account(**account.model_dump()))
        return {"family": FAMILY_OF_CHANNEL[account.channel]}

    @app.post("/_standin/media")
    async def media(body: MediaIn, request: Request) -> dict[str, str]:
        try:
            data = base64.b64decode(body.data_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HTTPException(400, "data_base64 is not base64") from exc
        st = state_of(request)
        item = st.add_media(body.channel, data, body.mime_type, body.filename, body.media_id)
        root = base_url(request)
        url = {
            "messenger": f"{root}/meta/_media/{item.media_id}",
            "instagram": f"{root}/meta/_media/{item.media_id}",
            "viber": f"{root}/viber/_media/{item.media_id}",
            "twilio": f"{root}/twilio/2010-04-01/Accounts/{body.account_sid}/Messages/"
            f"MM{item.media_id[2:]}/Media/{item.media_id}",
        }.get(body.channel, "")
        return {"media_id": item.media_id, "url": url, "sha256": item.sha256}

    @app.post("/_standin/status")
    async def status(body: StatusIn, request: Request) -> dict[str, Any]:
        st = state_of(request)
        record = next(
            (
                r
                for r in st.records
                if r.accepted and r.provider_message_id == body.provider_message_id
            ),
            None,
        )
        if record is None:
            raise HTTPException(404, f"no message {body.provider_message_id!r} was sent")
        account = st.account_by(record.family, **{CREDENTIAL_KEY[record.family]: record.credential})
        webhook_url = body.webhook_url or (account.webhook_url if account else "")
        secret = body.secret or signing_secret(record.channel, account)
        if not webhook_url or not secret:
            raise HTTPException(
                400, "no webhook_url/secret: register the account or pass them in the request"
            )
        try:
            hook = status_webhook(
                record,
                body.status,
                account=account,
                secret=secret,
                webhook_url=webhook_url,
                error_code=body.error_code,
                error_title=body.error_title,
                timestamp=body.timestamp,
            )
        except WebhookError as exc:
            raise HTTPException(400, str(exc)) from exc
        async with httpx.AsyncClient(timeout=10.0) as client:
            try:
                response = await client.post(webhook_url, content=hook.body, headers=hook.headers)
            except httpx.HTTPError as exc:
                raise HTTPException(502, f"webhook to {webhook_url} failed: {exc}") from exc
        return {
            "webhook_url": webhook_url,
            "status_code": response.status_code,
            "body": hook.body.decode(),
            "headers": hook.headers,
        }

    @app.post("/_standin/sink/{name:path}")
    async def sink(name: str, request: Request) -> Response:
        """Records whatever is posted (family "sink"): a webhook receiver for trying things."""

        async def handle(record: RequestRecord) -> Reply:
            return Reply(200, {"received": name})

        def error(rule: FailureRule) -> Reply:
            return Reply(rule.status or 500, rule.body or {"error": rule.error or "injected"})

        return await serve(request, "sink", handle, error)

    @app.post("/_standin/reset")
    async def reset(request: Request) -> dict[str, str]:
        state_of(request).reset()
        return {"status": "reset"}

    return app
