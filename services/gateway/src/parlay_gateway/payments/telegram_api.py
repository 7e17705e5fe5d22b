"""Telegram payment calls over the Bot API: sendInvoice and answerPreCheckoutQuery, through the
gateway's outbound HTTP plumbing (outbound.http: one httpx client, transport failures classified)
at PARLAY_TELEGRAM_API_BASE_URL (or the account's api_base_url setting).

sendInvoice: 429/5xx/transport failures are retried a few times with a short backoff (a
Retry-After within the budget is honoured). The Bot API has no idempotency key; we send
Idempotency-Key anyway (the stand-ins and an idempotent egress proxy honour it). A duplicate
invoice after a lost answer is harmless: payments matches a successful_payment by its payload
and captures a payment once.

answerPreCheckoutQuery: Telegram cancels the checkout unless it is answered within 10 seconds of
the query, so all attempts together stay within `pre_checkout_budget` seconds, with short fixed
pauses — never a long backoff. Answering twice is harmless (Telegram refuses the second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx

from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.outbound.http import TransportFailure, execute
from parlay_gateway.outbound.senders.base import (
    IDEMPOTENCY_HEADER,
    ProviderRequest,
    ProviderResponse,
    parse_retry_after,
)
from parlay_gateway.payments.actions import Result

#: (retryable, Result) of one response.
Classified = tuple[bool, Result]


def classify(response: ProviderResponse, method: str) -> Classified:
    """One Bot API answer -> (retry?, Result). {"ok": true, "result": ...} is success."""
    data = response.json()
    if isinstance(data, dict) and data.get("ok") is True and 200 <= response.status < 300:
        result = data.get("result")
        message_id = ""
        if isinstance(result, dict) and result.get("message_id") is not None:
            message_id = str(result["message_id"])
        return False, Result(ok=True, provider_message_id=message_id)
    if isinstance(data, dict):
        code = str(data.get("error_code") or response.status)
        description = str(data.get("description", "")) or response.text()
    else:
        code, description = str(response.status), response.text()
    retryable = response.status == 429 or response.status >= 500
    return retryable, Result(
        ok=False,
        permanent=not retryable,
        error_code=code,
        error_message=f"{method}: {description}",
    )


def retry_after(response: ProviderResponse) -> float | None:
    data = response.json()
    if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
        value = data["parameters"].get("retry_after")
        if isinstance(value, int | float):
            return float(value)
    return parse_retry_after(response.header("retry-after"))


class TelegramPayments:
    def __init__(
        self,
        *,
        base_url: Callable[[ChannelAccount], str],
        timeout_seconds: float,
        invoice_max_attempts: int,
        pre_checkout_budget_seconds: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = base_url
        self._timeout = timeout_seconds
        self._invoice_attempts = max(1, invoice_max_attempts)
        self._pre_checkout_budget = pre_checkout_budget_seconds
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
            follow_redirects=False,
            headers={"User-Agent": "parlay-gateway/0.1"},
        )

    async def close(self) -> None:
        await self._client.aclose()

    def _request(
        self, account: ChannelAccount, method: str, body: dict[str, Any], key: str
    ) -> ProviderRequest:
        token = account.credential("bot_token")
        return ProviderRequest(
            "POST",
            f"{self._base_url(account)}/bot{token}/{method}",
            headers={IDEMPOTENCY_HEADER: key} if key else {},
            json=body,
        )

    async def send_invoice(
        self, account: ChannelAccount, params: dict[str, Any], idempotency_key: str
    ) -> Result:
        return await self._call(
            account,
            "sendInvoice",
            params,
            idempotency_key,
            max_attempts=self._invoice_attempts,
            budget=self._invoice_attempts * (self._timeout + 2.0),
            pause=lambda attempt: min(2.0, 0.25 * 2 ** (attempt - 1)),
        )

    async def answer_pre_checkout_query(
        self, account: ChannelAccount, params: dict[str, Any], idempotency_key: str
    ) -> Result:
        return await self._call(
            account,
            "answerPreCheckoutQuery",
            params,
            idempotency_key,
            max_attempts=10,
            budget=self._pre_checkout_budget,
            pause=lambda _attempt: 0.2,
        )

    async def _call(
        self,
        account: ChannelAccount,
        method: str,
        params: dict[str, Any],
        key: str,
        *,
        max_attempts: int,
        budget: float,
        pause: Callable[[int], float],
    ) -> Result:
        if not account.credential("bot_token"):
            return Result.refused("missing_credential", "telegram account has no bot_token")
        deadline = time.monotonic() + budget
        request = self._request(account, method, params, key)
        last = Result(ok=False, error_code="not_attempted", error_message=method)
        attempt = 0
        while attempt < max_attempts:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait: float | None = None
            try:
                async with asyncio.timeout(min(remaining, self._timeout)):
                    response = await execute(self._client, request)
            except TransportFailure as exc:
                last = Result(ok=False, error_code=exc.code, error_message=f"{method}: {exc}")
            except TimeoutError:
                last = Result(ok=False, error_code="timeout", error_message=f"{method}: timeout")
            else:
                retryable, result = classify(response, method)
                if not retryable:
                    return _with_attempts(result, attempt)
                last = result
                wait = retry_after(response)
            delay = max(pause(attempt), wait or 0.0)
            if attempt >= max_attempts or time.monotonic() + delay >= deadline:
                break
            await asyncio.sleep(delay)
        return _with_attempts(last, attempt)


def _with_attempts(result: Result, attempts: int) -> Result:
    return replace(result, attempts=attempts)
