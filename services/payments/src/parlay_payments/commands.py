"""Payments command handlers: RefundPayment and RecordCashPayment.

A command runs in one transaction: lock the payment's read-model row (the projectors lock the
same rows, so they take turns instead of conflicting), decide with the pure rules of `domain`,
append the events with explicit aggregate versions (the store's unique (aggregate_id, version)
is the optimistic-concurrency check) and upsert the read model with the same `domain.apply`
the projectors use, so a GetPayment right after sees the result. A version that is taken is
retried a few times, then ABORTED.

Event ids derive from the command's idempotency key, so a retried request appends nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import asyncpg
from google.protobuf.message import Message

from parlay_kit import topics
from parlay_kit.envelope import NewEvent, deterministic_event_id, utcnow
from parlay_kit.errors import (
    AlreadyExists,
    ConcurrencyError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from parlay_kit.eventstore import EventStore
from parlay_payments import domain
from parlay_payments.domain import Payment, Refund
from parlay_payments.readmodel import Lookup, PaymentsReadModel

T = TypeVar("T")


def refund_id_for(payment_id: str, idempotency_key: str) -> str:
    return deterministic_event_id("refund", payment_id, idempotency_key)


@dataclass(frozen=True, slots=True)
class RefundResult:
    payment: Payment
    refund: Refund


class PaymentsCommands:
    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        read_model: PaymentsReadModel,
        *,
        topic: str = topics.PAYMENTS,
        clock: Callable[[], datetime] = utcnow,
        attempts: int = 3,
    ) -> None:
        self.pool = pool
        self.store = store
        self.read_model = read_model
        self.topic = topic
        self.clock = clock
        self.attempts = attempts

    async def _run(
        self,
        lookup: Lookup,
        pick: Callable[[dict[str, Payment]], Payment],
        decide: Callable[[Payment], tuple[T, Sequence[Message]]],
        event_key: Callable[[Payment, Message], str],
    ) -> tuple[T, Payment]:
        for attempt in range(1, self.attempts + 1):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    state = pick(await self.read_model.load(conn, lookup, lock=True))
                    result, events = decide(state)
                    if not events:
                        return result, state
                    at = self.clock()
                    new: list[NewEvent] = []
                    after = state
                    for payload in events:
                        version = after.version + 1
                        new.append(
                            NewEvent(
                                event_id=event_key(state, payload),
                                tenant_id=state.tenant_id,
                                aggregate_type=domain.AGGREGATE_TYPE,
                                aggregate_id=state.payment_id,
                                payload=payload,
                                occurred_at=at,
                                topic=self.topic,
                                aggregate_version=version,
                            )
                        )
                        folded = domain.apply(
                            after, payload, tenant_id=state.tenant_id, version=version, at=at
                        )
                        assert folded is not None
                        after = folded
                    stored = await self.store.append(conn, new)
                    if all(s.duplicate for s in stored):
                        # The same request raced itself and the other one won: its outcome.
                        return result, state
                    await self.read_model.save(conn, [after])
                    return result, after
            except ConcurrencyError:
                if attempt == self.attempts:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ RefundPayment

    async def refund(
        self,
        tenant_id: str,
        payment_id: str,
        *,
        amount_minor: int,
        idempotency_key: str,
        reason: str,
        requested_by: str,
    ) -> RefundResult:
        refund_id = refund_id_for(payment_id, idempotency_key)

        def pick(found: dict[str, Payment]) -> Payment:
            state = found.get(payment_id)
            if state is None or state.tenant_id != tenant_id:
                raise NotFound(f"payment {payment_id} not found")
            return state

        def decide(state: Payment) -> tuple[Refund | None, Sequence[Message]]:
            try:
                return domain.request_refund(
                    state,
                    refund_id=refund_id,
                    amount_minor=amount_minor,
                    idempotency_key=idempotency_key,
                    reason=reason,
                    requested_by=requested_by,
                )
            except domain.RefundRejected as exc:
                if exc.field == "idempotency_key":
                    # The key names a refund of another amount: that refund exists already.
                    raise AlreadyExists(f"idempotency_key: {exc}") from exc
                if exc.field:
                    raise InvalidArgument(exc.field, str(exc)) from exc
                raise FailedPrecondition(str(exc)) from exc

        _, after = await self._run(
            Lookup(payment_ids=frozenset({payment_id})),
            pick,
            decide,
            lambda _s, p: deterministic_event_id(
                "payments", "refund", refund_id, p.DESCRIPTOR.full_name
            ),
        )
        refund = after.refund(refund_id)
        assert refund is not None
        return RefundResult(after, refund)

    # ------------------------------------------------------------------ RecordCashPayment

    async def record_cash(
        self,
        tenant_id: str,
        order_id: str,
        *,
        amount_minor: int,
        currency: str,
        method: str,
        idempotency_key: str,
        collected_by: str,
    ) -> Payment:
        def pick(found: dict[str, Payment]) -> Payment:
            mine = [
                p for p in found.values() if p.tenant_id == tenant_id and p.order_id == order_id
            ]
            # A repeated request finds the payment it recorded; else the one awaiting collection.
            for p in mine:
                if p.capture_event_id == idempotency_key and p.method == method:
                    return p
            waiting = [
                p for p in mine if p.status == domain.AWAITING_COLLECTION and p.method == method
            ]
            if not waiting:
                raise FailedPrecondition(
                    f"order {order_id} has no {method} payment awaiting collection"
                )
            return max(waiting, key=lambda p: p.attempt)

        def decide(state: Payment) -> tuple[None, Sequence[Message]]:
            try:
                return None, domain.record_cash(
                    state,
                    amount_minor=amount_minor,
                    currency=currency,
                    method=method,
                    idempotency_key=idempotency_key,
                    collected_by=collected_by,
                    at=self.clock(),
                )
            except domain.CashRejected as exc:
                raise FailedPrecondition(str(exc)) from exc

        _, after = await self._run(
            Lookup(orders=frozenset({(tenant_id, order_id)})),
            pick,
            decide,
            lambda s, p: deterministic_event_id(
                "payments", "cash", s.payment_id, idempotency_key, p.DESCRIPTOR.full_name
            ),
        )
        return after
