"""What `parlay replay` and `parlay at` can do with the payments service (analysts' tools).

Discovered through the `parlay.projections` entry point in services/payments/pyproject.toml.

payments.payments (read model)
    PaymentsProjection folds parlay.payments.v1 into payments and payment_refunds with the same
    `domain.apply` the live service writes them with. Every column is a function of the log
    (times are event times), so --verify compares every column. payment_actions (what the
    gateway reported doing) is operational and not part of it.

payment (aggregate view for `parlay at`)
    The payment's events from payments.events, folded with `domain.apply`.
"""

from __future__ import annotations

from parlay_kit import topics
from parlay_kit.analytics.registry import AggregateView, Projection, fold_with
from parlay_payments import domain
from parlay_payments.migrations import MIGRATIONS
from parlay_payments.projections import PaymentsProjection
from parlay_payments.readmodel import PaymentsReadModel


def _payments(schema: str) -> PaymentsProjection:
    return PaymentsProjection(PaymentsReadModel(schema))


#: The payment as it stood after the given events (`parlay at <time> payment <id>`).
fold_payment = fold_with(domain.apply)


PROJECTIONS = [
    Projection(
        name="payments.payments",
        service="payments",
        topics=(topics.PAYMENTS,),
        handler=_payments,
        migrations=MIGRATIONS,
        tables=("payments", "payment_refunds"),
        description="payments and their refunds (parlay.payments.v1)",
    )
]

AGGREGATES = [
    AggregateView(
        kind="payment",
        service="payments",
        aggregate_type=domain.AGGREGATE_TYPE,
        fold=fold_payment,
        description="a payment: status, provider session, captured and refunded amounts",
    )
]
