"""The payment-actions projector handler: parlay.payments.v1 requests -> provider calls ->
ChannelPaymentActionCompleted in the gateway's own store.

    PaymentRequested (method payment_link)  Stripe checkout.sessions.create   create_checkout_session
    RefundRequested                         Stripe refunds.create             create_refund
    PaymentCancelled (with a session)       Stripe checkout.sessions.expire   expire_checkout_session
    TelegramInvoiceRequested                Bot API sendInvoice               send_invoice
    PreCheckoutQueryAnswered                Bot API answerPreCheckoutQuery    answer_pre_checkout_query

Exactly one recorded outcome per request: the outcome is emitted in the projector's batch
transaction, together with the consumed offsets and the processed event ids, and its id derives
from the request event id and the action (a request redelivered after a crash records nothing
new). The provider call itself may be repeated by such a redelivery; that is what the
idempotency keys are for (Stripe returns the original session/refund for a repeated key).

The calls of one batch run concurrently (bounded), outside any database use: accounts are
looked up first on the batch's connection, then the HTTP calls run, then the outcomes are
emitted. The batch's transaction is open meanwhile but holds no locks (the store's append lock
is taken only when the batch commits).

Two projectors use this handler (see `wire`): "payment-actions" for everything but the
pre-checkout answers, and "pre-checkout-answers" for those alone, so a Stripe call being retried
never delays an answer Telegram needs within 10 seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg
from google.protobuf.message import Message

from parlay.payments.v1 import payments_events_pb2 as pay
from parlay_gateway.account_store import AccountRepository
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.payments import actions as a
from parlay_gateway.payments.stripe_api import StripeApi
from parlay_gateway.payments.telegram_api import TelegramPayments
from parlay_kit.envelope import NewEvent, utcnow
from parlay_kit.projector import ConsumedEvent, UnitOfWork

log = logging.getLogger(__name__)

STRIPE_AND_INVOICES: frozenset[type[Message]] = frozenset(
    {
        pay.PaymentRequested,
        pay.RefundRequested,
        pay.PaymentCancelled,
        pay.TelegramInvoiceRequested,
    }
)
PRE_CHECKOUT: frozenset[type[Message]] = frozenset({pay.PreCheckoutQueryAnswered})


@dataclass(frozen=True, slots=True)
class Job:
    """One provider call to make, and how to record its outcome."""

    event: ConsumedEvent
    channel: str
    action: str
    account: ChannelAccount | None
    #: Makes the call; holds the `limit` slot only while a request is in flight (not while a
    #: retry waits), so a provider that is slow for some calls does not stall the others.
    call: Callable[[asyncio.Semaphore], Awaitable[a.Result]] | None
    #: Set instead of `call` when the request is refused before any provider call.
    refused: a.Result | None = None
    account_id: str = ""
    payment_id: str = ""
    idempotency_key: str = ""
    refund_id: str = ""
    amount_minor: int = 0
    currency: str = ""


class AccountLookup:
    """Channel accounts for one batch (a small cache over the batch's connection)."""

    def __init__(self, conn: asyncpg.Connection, repository: AccountRepository) -> None:
        self.conn = conn
        self.repository = repository
        self._by_id: dict[str, ChannelAccount | None] = {}
        self._default: dict[str, ChannelAccount | None] = {}

    async def by_id(self, account_id: str) -> ChannelAccount | None:
        if not account_id:
            return None
        if account_id not in self._by_id:
            self._by_id[account_id] = await self.repository.get(self.conn, account_id)
        return self._by_id[account_id]

    async def default_stripe(self, tenant_id: str) -> ChannelAccount | None:
        if tenant_id not in self._default:
            accounts = await self.repository.list_for_tenant(
                self.conn, tenant_id, channel=a.STRIPE, after="", limit=1000
            )
            self._default[tenant_id] = a.choose_stripe_account(accounts)
        return self._default[tenant_id]


class PaymentActions:
    def __init__(
        self,
        *,
        repository: AccountRepository,
        stripe_api: StripeApi,
        telegram: TelegramPayments,
        success_url: str,
        cancel_url: str,
        concurrency: int,
        handles: frozenset[type[Message]],
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repository = repository
        self.stripe = stripe_api
        self.telegram = telegram
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.concurrency = max(1, concurrency)
        self.handles = handles
        self.now = now

    async def handle(self, uow: UnitOfWork, event: ConsumedEvent) -> None:
        await self.handle_batch(uow, [event])

    async def handle_batch(self, uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
        seen: set[str] = set()
        mine: list[ConsumedEvent] = []
        for event in events:
            # The same request twice in one batch (a republish) is one call and one outcome.
            if type(event.payload) in self.handles and event.event_id not in seen:
                seen.add(event.event_id)
                mine.append(event)
        if not mine:
            return
        lookup = AccountLookup(uow.conn, self.repository)
        jobs = [job for e in mine if (job := await self._plan(lookup, e)) is not None]
        semaphore = asyncio.Semaphore(self.concurrency)

        async def run(job: Job) -> a.Result:
            if job.refused is not None or job.call is None:
                return job.refused or a.Result.refused("internal_error", "nothing to call")
            return await job.call(semaphore)

        results = await asyncio.gather(*(run(job) for job in jobs), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            # A bug, not a provider answer: the batch is retried (same idempotency keys) and
            # the poison request dead-lettered by the kit.
            raise errors[0]
        for job, result in zip(jobs, results, strict=True):
            assert isinstance(result, a.Result)
            uow.emit(self._outcome(job, result))

    def _outcome(self, job: Job, result: a.Result) -> NewEvent:
        if not result.ok:
            log.warning(
                "payment action %s for %s failed (%s, permanent=%s, attempts=%d): %s",
                job.action,
                job.event.event_id,
                result.error_code,
                result.permanent,
                result.attempts,
                result.error_message,
            )
        event = a.outcome_event(
            tenant_id=job.event.tenant_id,
            channel=job.channel,
            channel_account_id=job.account.channel_account_id if job.account else job.account_id,
            action=job.action,
            request_event_id=job.event.event_id,
            payment_id=job.payment_id,
            result=result,
            completed_at=self.now(),
            idempotency_key=job.idempotency_key,
            refund_id=job.refund_id,
            amount_minor=job.amount_minor,
            currency=job.currency,
        )
        cause = job.event.envelope
        # emit() outside a per-event handler cannot know the cause: name it here.
        return replace(
            event,
            causation_id=cause.event_id,
            correlation_id=cause.correlation_id or cause.event_id,
            traceparent=job.event.traceparent,
        )

    # ------------------------------------------------------------------ planning

    async def _plan(self, lookup: AccountLookup, event: ConsumedEvent) -> Job | None:
        p = event.payload
        tenant = event.tenant_id
        if isinstance(p, pay.PaymentRequested):
            return await self._plan_checkout(lookup, event, p, tenant)
        if isinstance(p, pay.RefundRequested):
            a.require_fields(p, "payment_id", "refund_id")
            account = await lookup.by_id(p.provider_account_id)
            refused = a.check_account(
                account, channel=a.STRIPE, tenant_id=tenant, account_id=p.provider_account_id
            )
            if refused is None and not p.provider_payment_id:
                refused = a.Result.refused("no_payment_intent", "no provider_payment_id to refund")
            if refused is None:
                refused = a.amount_problem(p.amount_minor, p.currency)
            key = a.refund_idempotency_key(p)
            return Job(
                event=event,
                channel=a.STRIPE,
                action=a.CREATE_REFUND,
                account=account if refused is None else None,
                call=self._stripe_call(account, "refund", a.refund_params(p), key),
                refused=refused,
                account_id=p.provider_account_id,
                payment_id=p.payment_id,
                idempotency_key=key,
                refund_id=p.refund_id,
                amount_minor=p.amount_minor,
                currency=p.currency,
            )
        if isinstance(p, pay.PaymentCancelled):
            if not p.provider_session_id:
                return None  # nothing open at the provider: nothing to do
            a.require_fields(p, "payment_id")
            account = await lookup.by_id(p.provider_account_id)
            refused = a.check_account(
                account, channel=a.STRIPE, tenant_id=tenant, account_id=p.provider_account_id
            )
            key = a.expire_idempotency_key(p)
            session_id = p.provider_session_id
            return Job(
                event=event,
                channel=a.STRIPE,
                action=a.EXPIRE_CHECKOUT_SESSION,
                account=account if refused is None else None,
                call=self._expire_call(account, session_id, key),
                refused=refused,
                account_id=p.provider_account_id,
                payment_id=p.payment_id,
                idempotency_key=key,
            )
        if isinstance(p, pay.TelegramInvoiceRequested):
            a.require_fields(p, "payment_id", "chat_id", "payload")
            account = await lookup.by_id(p.channel_account_id)
            refused = a.check_account(
                account, channel=a.TELEGRAM, tenant_id=tenant, account_id=p.channel_account_id
            )
            if refused is None:
                refused = a.amount_problem(p.amount_minor, p.currency)
            key = f"invoice:{event.event_id}"
            call = None
            if refused is None and account is not None:
                params = a.invoice_params(p, a.provider_token(account, p.currency))
                call = _telegram_call(self.telegram.send_invoice, account, params, key)
            return Job(
                event=event,
                channel=a.TELEGRAM,
                action=a.SEND_INVOICE,
                account=account if refused is None else None,
                call=call,
                refused=refused,
                account_id=p.channel_account_id,
                payment_id=p.payment_id,
                idempotency_key=key,
                amount_minor=p.amount_minor,
                currency=p.currency,
            )
        if isinstance(p, pay.PreCheckoutQueryAnswered):
            a.require_fields(p, "pre_checkout_query_id")
            account = await lookup.by_id(p.channel_account_id)
            refused = a.check_account(
                account, channel=a.TELEGRAM, tenant_id=tenant, account_id=p.channel_account_id
            )
            key = f"pre-checkout:{p.pre_checkout_query_id}"
            call = None
            if refused is None and account is not None:
                call = _telegram_call(
                    self.telegram.answer_pre_checkout_query, account, a.pre_checkout_params(p), key
                )
            return Job(
                event=event,
                channel=a.TELEGRAM,
                action=a.ANSWER_PRE_CHECKOUT_QUERY,
                account=account if refused is None else None,
                call=call,
                refused=refused,
                account_id=p.channel_account_id,
                payment_id=p.payment_id,
                idempotency_key=key,
            )
        return None

    async def _plan_checkout(
        self, lookup: AccountLookup, event: ConsumedEvent, p: pay.PaymentRequested, tenant: str
    ) -> Job | None:
        if p.method != "payment_link":
            return None  # cash/card on delivery need no provider; telegram has its own event
        a.require_fields(p, "payment_id", "order_id", "idempotency_key")
        account = await lookup.default_stripe(tenant)
        refused: a.Result | None = None
        if account is None:
            refused = a.Result.refused(
                "no_stripe_account", f"tenant {tenant} has no stripe account"
            )
        else:
            refused = a.amount_problem(p.amount_minor, p.currency)
        params = a.checkout_session_params(
            p, tenant_id=tenant, success_url=self.success_url, cancel_url=self.cancel_url
        )
        return Job(
            event=event,
            channel=a.STRIPE,
            action=a.CREATE_CHECKOUT_SESSION,
            account=account,
            call=self._stripe_call(account, "checkout", params, p.idempotency_key),
            refused=refused,
            payment_id=p.payment_id,
            idempotency_key=p.idempotency_key,
            amount_minor=p.amount_minor,
            currency=p.currency,
        )

    def _stripe_call(
        self, account: ChannelAccount | None, kind: str, params: dict, key: str
    ) -> Callable[[asyncio.Semaphore], Awaitable[a.Result]] | None:
        if account is None:
            return None
        api_key = account.credential("api_key")
        stripe_api = self.stripe

        async def call(limit: asyncio.Semaphore) -> a.Result:
            if not api_key:
                return a.Result.refused("missing_credential", "stripe account has no api_key")
            if kind == "checkout":
                return await stripe_api.create_checkout_session(api_key, params, key, limit=limit)
            return await stripe_api.create_refund(api_key, params, key, limit=limit)

        return call

    def _expire_call(
        self, account: ChannelAccount | None, session_id: str, key: str
    ) -> Callable[[asyncio.Semaphore], Awaitable[a.Result]] | None:
        if account is None:
            return None
        api_key = account.credential("api_key")
        stripe_api = self.stripe

        async def call(limit: asyncio.Semaphore) -> a.Result:
            if not api_key:
                return a.Result.refused("missing_credential", "stripe account has no api_key")
            return await stripe_api.expire_checkout_session(api_key, session_id, key, limit=limit)

        return call


def _telegram_call(
    method: Callable[[ChannelAccount, dict, str], Awaitable[a.Result]],
    account: ChannelAccount,
    params: dict,
    key: str,
) -> Callable[[asyncio.Semaphore], Awaitable[a.Result]]:
    """A Bot API call for the job runner, made within its concurrency limit."""

    async def call(limit: asyncio.Semaphore) -> a.Result:
        async with limit:
            return await method(account, params, key)

    return call
