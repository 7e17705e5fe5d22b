"""The sender task (runtime role "projectors"): claims due deliveries, calls the provider,
records the outcome and its event.

Per delivery:
1. claim — in one short transaction: due 'requested' rows `FOR UPDATE SKIP LOCKED` (replicas
   never take the same row), the account's token bucket, then 'sending' + attempts+1 +
   claimed_by=<this instance>; COMMIT. No transaction is open during the HTTP call.
2. send — the channel's pure request builder, one HTTP client, the message id as idempotency key
   (LINE: X-Line-Retry-Key; every request also carries Idempotency-Key).
3. record — in one transaction: the attempt log, the ledger row (sent / failed / rescheduled
   with next_attempt_at) and OutboundMessageSent / OutboundMessageFailed in the event store.
   The update is conditional on the claim still being ours.

Crash recovery: each sender instance holds a Postgres session advisory lock named after its
instance id for as long as it lives. A row in 'sending' whose owner's lock can be taken belongs
to a dead sender (its session ended with the process). Such a row is re-sent with the same
idempotency key when the endpoint de-duplicates by it (LINE; channels configured as
idempotent-resend, e.g. the stand-ins); otherwise it becomes 'unknown' and
OutboundMessageFailed(error_code="outcome_unknown") is recorded: a possible lost message is
reported, a double send is never risked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from prometheus_client import Counter, Histogram

from parlay_gateway.account_store import AccountDirectory
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.outbound import events as ev
from parlay_gateway.outbound.http import TransportFailure, execute, make_client
from parlay_gateway.outbound.ledger import Ledger
from parlay_gateway.outbound.ratelimit import backoff_seconds
from parlay_gateway.outbound.senders import SenderRegistry
from parlay_gateway.outbound.senders.base import (
    ChannelSender,
    Outcome,
    SendContext,
    Unsendable,
)
from parlay_gateway.outbound.settings import OutboundSettings
from parlay_kit.envelope import utcnow
from parlay_kit.eventstore import EventStore

log = logging.getLogger(__name__)

ATTEMPTS = Counter(
    "parlay_gateway_outbound_attempts_total",
    "Provider send attempts by outcome (sent, retry, failed, unknown)",
    ["channel", "outcome"],
)
SEND_SECONDS = Histogram(
    "parlay_gateway_outbound_send_seconds", "Provider send latency", ["channel"]
)
RECOVERED = Counter(
    "parlay_gateway_outbound_recovered_total",
    "Deliveries a dead sender left 'sending' (resent or reported outcome_unknown)",
    ["channel", "action"],
)


def _int4(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


def liveness_lock(schema: str, instance: str) -> tuple[int, int]:
    """The (int4, int4) advisory lock a sender instance holds while alive. A collision only makes
    recovery wait for the colliding (live) instance; it can never make a live owner look dead."""
    return _int4(zlib.crc32(f"parlay:outbound:{schema}".encode())), _int4(
        zlib.crc32(instance.encode())
    )


def truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


class Dispatcher:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        store: EventStore,
        ledger: Ledger,
        senders: SenderRegistry,
        directory: AccountDirectory,
        settings: OutboundSettings,
        public_url: str = "",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.pool = pool
        self.store = store
        self.ledger = ledger
        self.senders = senders
        self.directory = directory
        self.settings = settings
        self.public_url = public_url
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._client = client
        self._own_client = client is None
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self.running = asyncio.Event()

    # ---------------------------------------------------------------- policy

    def resend_safe(self, sender: ChannelSender | None, account: ChannelAccount | None) -> bool:
        """May a request whose answer was lost be sent again with the same key?"""
        if sender is None:
            return False
        if sender.native_idempotency or sender.channel in self.settings.resend_channels:
            return True
        return account is not None and truthy(account.settings.get("idempotent_resend", ""))

    def context(self, channel: str, account: ChannelAccount) -> SendContext:
        return SendContext(
            base_url=self.settings.base_url(channel, account),
            api_version=self.settings.api_version(account),
            public_url=self.public_url,
        )

    # ---------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        if self._client is None:
            self._client = make_client(
                connect_timeout=self.settings.outbound_connect_timeout_seconds,
                timeout=self.settings.outbound_timeout_seconds,
            )
        lock = liveness_lock(self.ledger.schema, self.instance)
        lock_conn: asyncpg.Connection = await self.pool.acquire()
        try:
            await lock_conn.execute("SELECT pg_advisory_lock($1, $2)", *lock)
            await lock_conn.add_listener(self.ledger.notify_channel, self._on_notify)
            log.info("outbound sender %s started", self.instance)
            self.running.set()
            next_recovery = 0.0
            while not stop.is_set():
                self._wake.clear()
                if time.monotonic() >= next_recovery:
                    await self._recover()
                    next_recovery = time.monotonic() + self.settings.outbound_recovery_seconds
                wait = self.settings.outbound_poll_seconds
                free = self.settings.outbound_concurrency - len(self._inflight)
                if free > 0:
                    claimed, rate_wait = await self._claim(free)
                    for row in claimed:
                        task = asyncio.create_task(
                            self._deliver(row), name=f"outbound:{row['message_id']}"
                        )
                        self._inflight.add(task)
                        task.add_done_callback(self._done)
                    due = await self.ledger.seconds_until_due(self.pool)
                    if due is not None and due > 0:
                        wait = min(wait, due)
                    elif due == 0:
                        # Due rows we did not take: a dry token bucket (wait for its next token),
                        # more work than one claim (go on), or rows a replica holds (brief pause).
                        if rate_wait is not None:
                            wait = min(wait, max(rate_wait, 0.005))
                        else:
                            wait = 0.0 if claimed else 0.05
                wait = min(wait, max(0.0, next_recovery - time.monotonic()))
                await self._wait(stop, wait)
        finally:
            self.running.clear()
            try:
                if self._inflight:
                    # Let sends in flight finish (within the runtime's stop budget); a send cut
                    # off here stays 'sending' and is recovered once this process is gone.
                    _, pending = await asyncio.wait(
                        self._inflight,
                        timeout=min(10.0, self.settings.outbound_timeout_seconds + 1),
                    )
                    for task in pending:
                        task.cancel()
            finally:
                with contextlib.suppress(Exception):
                    await lock_conn.remove_listener(self.ledger.notify_channel, self._on_notify)
                with contextlib.suppress(Exception):
                    await lock_conn.execute("SELECT pg_advisory_unlock($1, $2)", *lock)
                with contextlib.suppress(Exception):
                    await self.pool.release(lock_conn)
                if self._own_client and self._client is not None:
                    with contextlib.suppress(Exception):
                        await self._client.aclose()
                    self._client = None

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("outbound delivery task failed", exc_info=task.exception())

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        if seconds <= 0 or self._wake.is_set():
            return
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    # ---------------------------------------------------------------- claim

    async def _claim(self, limit: int) -> tuple[list[asyncpg.Record], float | None]:
        """Claim up to `limit` due deliveries within the accounts' rate limits. Returns the
        claimed rows and, if a bucket ran dry, the seconds until it has a token again."""
        rate_wait: float | None = None
        async with self.pool.acquire() as conn, conn.transaction():
            # More candidates than slots, so one throttled account does not starve the others.
            candidates = await self.ledger.due(conn, limit * 4)
            if not candidates:
                return [], None
            by_account: dict[str, list[str]] = {}
            for row in candidates:
                by_account.setdefault(row["channel_account_id"], []).append(row["message_id"])
            chosen: list[str] = []
            for account_id, ids in by_account.items():
                room = limit - len(chosen)
                if room <= 0:
                    break
                ids = ids[:room]
                account = await self.directory.get(account_id)
                rate, burst = self.settings.rate_limit(account) if account else (0.0, 0.0)
                if rate > 0:
                    granted, wait = await self.ledger.take_tokens(
                        conn, account_id, len(ids), rate, burst
                    )
                    if granted < len(ids):
                        rate_wait = wait if rate_wait is None else min(rate_wait, wait)
                    ids = ids[:granted]
                chosen.extend(ids)
            claimed = await self.ledger.mark_sending(conn, chosen, self.instance) if chosen else []
        return list(claimed), rate_wait

    # ---------------------------------------------------------------- one delivery

    async def _deliver(self, row: asyncpg.Record) -> None:
        started = utcnow()
        channel = row["channel"]
        try:
            outcome, http_status, unknown = await self._attempt(row)
        except Exception as exc:  # a bug or the database: nothing was sent
            log.exception("outbound delivery %s: attempt crashed before sending", row["message_id"])
            outcome, http_status, unknown = Outcome.retry("internal", repr(exc)[:300]), None, False
        label = "unknown" if unknown else outcome.kind
        ATTEMPTS.labels(channel, label).inc()
        await self._record(row, outcome, http_status, started, unknown=unknown)

    async def _attempt(self, row: asyncpg.Record) -> tuple[Outcome, int | None, bool]:
        """(outcome, HTTP status, outcome unknown?)"""
        delivery = ev.delivery_of(row)
        account = await self.directory.get(delivery.channel_account_id)
        if account is None or account.tenant_id != delivery.tenant_id:
            return (
                Outcome.failed(
                    "channel_account_not_found",
                    f"channel account {delivery.channel_account_id!r} not found",
                ),
                None,
                False,
            )
        if account.channel != delivery.channel:
            return (
                Outcome.failed(
                    "channel_mismatch",
                    f"channel account {account.channel_account_id!r} is a {account.channel} account",
                ),
                None,
                False,
            )
        sender = self.senders.get(delivery.channel)
        if sender is None:
            return (
                Outcome.failed(
                    "channel_not_supported", f"no sender for channel {delivery.channel!r}"
                ),
                None,
                False,
            )
        if sender.local:
            try:
                return await sender.deliver(delivery, account), None, False
            except Unsendable as exc:
                return Outcome.failed(exc.code, exc.message), None, False
        ctx = self.context(delivery.channel, account)
        try:
            if sender.token_request(account, ctx) is not None:
                ctx = replace(ctx, access_token=await self._access_token(sender, account, ctx))
            request = sender.build(delivery, account, ctx)
        except Unsendable as exc:
            return Outcome.failed(exc.code, exc.message), None, False
        except TransportFailure as exc:  # the token request failed: nothing was sent
            return Outcome.retry(exc.code, exc.message), None, False
        assert self._client is not None
        began = time.perf_counter()
        try:
            response = await execute(self._client, request)
        except TransportFailure as exc:
            if not exc.maybe_sent or self.resend_safe(sender, account):
                return Outcome.retry(exc.code, exc.message), None, False
            return (
                Outcome.failed(
                    ev.OUTCOME_UNKNOWN,
                    f"{exc.code}: the request may have reached {delivery.channel}; the answer was "
                    f"lost and the provider cannot de-duplicate a re-send ({exc.message})",
                ),
                None,
                True,
            )
        finally:
            SEND_SECONDS.labels(delivery.channel).observe(time.perf_counter() - began)
        outcome = sender.parse(response)
        if outcome.refresh_token:
            self._tokens.pop((ctx.base_url, account.channel_account_id), None)
        return outcome, response.status, False

    async def _access_token(
        self, sender: ChannelSender, account: ChannelAccount, ctx: SendContext
    ) -> str:
        key = (ctx.base_url, account.channel_account_id)
        hit = self._tokens.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        request = sender.token_request(account, ctx)
        assert request is not None and self._client is not None
        response = await execute(self._client, request)
        if response.status == 429 or response.status >= 500:
            raise TransportFailure(
                f"token_http_{response.status}", response.text(), maybe_sent=False
            )
        token, ttl = sender.parse_token(response)
        # refresh five minutes before the provider's expiry
        self._tokens[key] = (token, time.monotonic() + max(30.0, ttl - 300.0))
        return token

    # ---------------------------------------------------------------- outcome

    def _decide(
        self, row: Mapping[str, Any], outcome: Outcome, unknown: bool
    ) -> tuple[str, float, str, str]:
        """(state or 'retry', delay, error_code, error message)."""
        attempts = int(row["attempts"])
        if outcome.kind == "sent":
            return "sent", 0.0, "", ""
        if outcome.kind == "failed":
            return (
                ("unknown" if unknown else "failed"),
                0.0,
                outcome.error_code,
                outcome.error_message,
            )
        s = self.settings
        if (
            outcome.retry_after is not None
            and outcome.retry_after > s.outbound_max_retry_after_seconds
        ):
            return (
                "failed",
                0.0,
                outcome.error_code,
                f"{outcome.error_message} (provider asked to wait {outcome.retry_after:.0f}s)",
            )
        if attempts >= s.outbound_max_attempts:
            return (
                "failed",
                0.0,
                outcome.error_code,
                f"{outcome.error_message} (gave up after {attempts} attempts)",
            )
        delay = (
            0.0
            if outcome.refresh_token
            else backoff_seconds(
                attempts,
                base=s.outbound_backoff_base_seconds,
                cap=s.outbound_backoff_max_seconds,
                retry_after=outcome.retry_after,
            )
        )
        return "retry", delay, outcome.error_code, outcome.error_message

    async def _record(
        self,
        row: asyncpg.Record,
        outcome: Outcome,
        http_status: int | None,
        started: datetime,
        *,
        unknown: bool,
    ) -> None:
        state, delay, code, message = self._decide(row, outcome, unknown)
        delay_s = 1.0
        while True:
            try:
                await self._write_outcome(
                    row, state, delay, code, message, outcome, http_status, started
                )
                return
            except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
                # The provider answered; only recording failed. Keep trying: if this process
                # dies first, recovery treats the row like any other interrupted send.
                log.warning(
                    "outbound %s: recording outcome %s failed (%s); retrying in %.0fs",
                    row["message_id"],
                    state,
                    exc,
                    delay_s,
                )
                await asyncio.sleep(delay_s)
                delay_s = min(30.0, delay_s * 2)

    async def _write_outcome(
        self,
        row: asyncpg.Record,
        state: str,
        delay: float,
        code: str,
        message: str,
        outcome: Outcome,
        http_status: int | None,
        started: datetime,
    ) -> None:
        message_id = row["message_id"]
        attempts = int(row["attempts"])
        async with self.pool.acquire() as conn, conn.transaction():
            await self.ledger.log_attempt(
                conn,
                message_id=message_id,
                attempt=attempts,
                instance=self.instance,
                started_at=started,
                outcome=state,
                http_status=http_status,
                error_code=code,
                error=message,
            )
            if state == "retry":
                ok = await self.ledger.reschedule(
                    conn,
                    message_id=message_id,
                    instance=self.instance,
                    delay_seconds=delay,
                    error_code=code,
                    error=message,
                )
                if ok:
                    log.info(
                        "outbound %s (%s): attempt %d -> retry in %.2fs: %s %s",
                        message_id,
                        row["channel"],
                        attempts,
                        delay,
                        code,
                        message,
                    )
            else:
                finished = await self.ledger.finish(
                    conn,
                    message_id=message_id,
                    instance=self.instance,
                    state=state,
                    provider_message_id=outcome.provider_message_id,
                    error_code=code,
                    error=message,
                )
                ok = finished is not None
                if ok:
                    if state == "sent" and outcome.commit is not None:
                        await outcome.commit(conn)
                    now = utcnow()
                    event = (
                        ev.sent_event(row, outcome.provider_message_id, now, attempts)
                        if state == "sent"
                        else ev.failed_event(row, code, message, now, attempts)
                    )
                    await self.store.append(conn, [event])
                    log.info(
                        "outbound %s (%s): %s after %d attempt(s) %s",
                        message_id,
                        row["channel"],
                        state,
                        attempts,
                        outcome.provider_message_id or f"{code} {message}",
                    )
            if not ok:
                log.warning(
                    "outbound %s: the claim was taken over (recovery) before outcome %s of "
                    "attempt %d could be recorded; outcome dropped",
                    message_id,
                    state,
                    attempts,
                )

    # ---------------------------------------------------------------- recovery

    async def _recover(self) -> int:
        """Resolve deliveries left 'sending' by dead senders. Returns how many."""
        recovered = 0
        for owner in await self.ledger.sending_owners(self.pool, self.instance):
            lock = liveness_lock(self.ledger.schema, owner)
            async with self.pool.acquire() as conn:
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *lock):
                    continue  # the owner is alive (still sending)
                try:
                    async with conn.transaction():
                        for row in await self.ledger.sending_of(conn, owner):
                            await self._recover_row(conn, row, owner)
                            recovered += 1
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", *lock)
        return recovered

    async def _recover_row(self, conn: asyncpg.Connection, row: asyncpg.Record, owner: str) -> None:
        message_id = row["message_id"]
        channel = row["channel"]
        account = await self.directory.get(row["channel_account_id"])
        sender = self.senders.get(channel)
        claimed_at = row["claimed_at"] or utcnow()
        if self.resend_safe(sender, account):
            await self.ledger.log_attempt(
                conn,
                message_id=message_id,
                attempt=int(row["attempts"]),
                instance=owner,
                started_at=claimed_at,
                outcome="lost",
                http_status=None,
                error_code="sender_died",
                error="the sender died mid-request; re-sending with the same idempotency key",
            )
            await self.ledger.reschedule(
                conn,
                message_id=message_id,
                instance=owner,
                delay_seconds=0.0,
                error_code="sender_died",
                error="the sender died mid-request; re-sending with the same idempotency key",
            )
            RECOVERED.labels(channel, "resend").inc()
            log.warning(
                "outbound %s (%s): sender %s died mid-send; re-sending with the same key",
                message_id,
                channel,
                owner,
            )
            return
        error = (
            f"the sender died while the request to {channel} was in flight; {channel} cannot "
            "de-duplicate a re-send, so the message may or may not have been sent"
        )
        await self.ledger.log_attempt(
            conn,
            message_id=message_id,
            attempt=int(row["attempts"]),
            instance=owner,
            started_at=claimed_at,
            outcome="unknown",
            http_status=None,
            error_code=ev.OUTCOME_UNKNOWN,
            error=error,
        )
        finished = await self.ledger.finish(
            conn,
            message_id=message_id,
            instance=owner,
            state="unknown",
            error_code=ev.OUTCOME_UNKNOWN,
            error=error,
        )
        if finished is not None:
            await self.store.append(
                conn,
                [ev.failed_event(row, ev.OUTCOME_UNKNOWN, error, utcnow(), int(row["attempts"]))],
            )
        RECOVERED.labels(channel, "unknown").inc()
        log.warning(
            "outbound %s (%s): sender %s died mid-send; outcome unknown", message_id, channel, owner
        )
