"""Stripe calls with the official library: checkout sessions, refunds, expiring a session.

One `stripe.StripeClient` per API key (cached), all sharing one HTTPX connection pool, with the
library's own retries off (`max_network_retries=0`): retries are ours (tenacity), so we count
them, bound them and — what makes a retry safe — send the SAME idempotency key every time.
Stripe keeps the outcome of a request under its key for 24 h: a create that ran but whose
answer was lost (timeout, dropped connection) returns the same session when retried, so a
payment is never asked for twice.

Retried: timeouts and connection errors (APIConnectionError), 409 (a concurrent request with
the same key), 429 and 5xx. Anything else (400 invalid request, 401/403 bad key, 402, 404) is a
permanent failure that retrying cannot fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import stripe
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from parlay_gateway.payments.actions import Result

log = logging.getLogger(__name__)

T = TypeVar("T")
#: What bounds the calls in flight (the handler's per-batch semaphore).
Limit = asyncio.Semaphore


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, stripe.APIConnectionError):
        return True
    if isinstance(exc, stripe.StripeError):
        status = exc.http_status
        return status is None or status in (409, 429) or status >= 500
    return False


def failure(exc: BaseException, attempts: int) -> Result:
    """The Result of a call that ended in `exc` after `attempts` attempts."""
    if isinstance(exc, stripe.StripeError):
        error = exc.error
        code = (
            (error.code if error is not None and error.code else "")
            or (error.type if error is not None and error.type else "")
            or (f"http_{exc.http_status}" if exc.http_status else "connection_error")
        )
        message = exc.user_message or str(exc)
        retryable = is_retryable(exc)
        return Result(
            ok=False,
            attempts=attempts,
            permanent=not retryable,
            error_code=str(code),
            error_message=" ".join(str(message).split()),
        )
    return Result(
        ok=False,
        attempts=attempts,
        permanent=False,
        error_code="internal_error",
        error_message=f"{type(exc).__name__}: {exc}",
    )


def _epoch(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


class StripeApi:
    def __init__(
        self,
        *,
        base_url: str,
        timeout_seconds: float,
        connect_timeout_seconds: float,
        max_attempts: int,
        backoff_base_seconds: float,
        backoff_max_seconds: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base_seconds
        self.backoff_max = backoff_max_seconds
        self._http = stripe.HTTPXClient(
            timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds)
        )
        self._clients: dict[str, stripe.StripeClient] = {}

    def client(self, api_key: str) -> stripe.StripeClient:
        client = self._clients.get(api_key)
        if client is None:
            if len(self._clients) > 1000:  # keys rotate; never grow without bound
                self._clients.clear()
            client = stripe.StripeClient(
                api_key,
                base_addresses={"api": self.base_url},
                max_network_retries=0,
                http_client=self._http,
            )
            self._clients[api_key] = client
        return client

    async def close(self) -> None:
        await self._http.close_async()

    async def _call(
        self, what: str, call: Callable[[], Awaitable[T]], limit: Limit | None
    ) -> tuple[T, int]:
        """Run `call` with bounded exponential backoff; returns (result, attempts) or raises
        _Failed with the last error and the attempt count. `limit` is held during each attempt
        only, not while waiting to retry."""
        attempts = 0
        slot = limit if limit is not None else contextlib.nullcontext()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential(multiplier=self.backoff_base, max=self.backoff_max),
            retry=retry_if_exception(is_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if attempts > 1:
                        log.info("stripe %s: attempt %d", what, attempts)
                    async with slot:
                        result = await call()
                    return result, attempts
        except RetryError as exc:  # pragma: no cover - reraise=True raises the cause instead
            raise _Failed(exc, attempts) from exc
        except Exception as exc:
            raise _Failed(exc, attempts) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_checkout_session(
        self,
        api_key: str,
        params: dict[str, Any],
        idempotency_key: str,
        *,
        limit: Limit | None = None,
    ) -> Result:
        client = self.client(api_key)
        try:
            session, attempts = await self._call(
                "checkout.sessions.create",
                lambda: client.v1.checkout.sessions.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key},
                ),
                limit,
            )
        except _Failed as failed:
            return failure(failed.cause, failed.attempts)
        return Result(
            ok=True,
            attempts=attempts,
            provider_object_id=session.id,
            checkout_url=session.url or "",
            expires_at=_epoch(session.expires_at),
            amount_minor=session.amount_total or 0,
            currency=(session.currency or "").upper(),
        )

    async def create_refund(
        self,
        api_key: str,
        params: dict[str, Any],
        idempotency_key: str,
        *,
        limit: Limit | None = None,
    ) -> Result:
        client = self.client(api_key)
        try:
            refund, attempts = await self._call(
                "refunds.create",
                lambda: client.v1.refunds.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key},
                ),
                limit,
            )
        except _Failed as failed:
            return failure(failed.cause, failed.attempts)
        status = refund.status or ""
        ok = status not in ("failed", "canceled")
        return Result(
            ok=ok,
            attempts=attempts,
            permanent=not ok,
            error_code="" if ok else f"refund_{status}",
            error_message="" if ok else (getattr(refund, "failure_reason", "") or status),
            provider_object_id=refund.id,
            amount_minor=refund.amount or 0,
            currency=(refund.currency or "").upper(),
        )

    async def expire_checkout_session(
        self, api_key: str, session_id: str, idempotency_key: str, *, limit: Limit | None = None
    ) -> Result:
        client = self.client(api_key)
        try:
            session, attempts = await self._call(
                "checkout.sessions.expire",
                lambda: client.v1.checkout.sessions.expire_async(
                    session_id, options={"idempotency_key": idempotency_key}
                ),
                limit,
            )
        except _Failed as failed:
            return failure(failed.cause, failed.attempts)
        return Result(
            ok=True,
            attempts=attempts,
            provider_object_id=session.id,
            amount_minor=session.amount_total or 0,
            currency=(session.currency or "").upper(),
        )


class _Failed(Exception):
    def __init__(self, cause: BaseException, attempts: int) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts
