"""What `parlay replay` and `parlay at` can do with the orders service.

Discovered through the `parlay.projections` entry point in services/orders/pyproject.toml.

orders.orders (read model)
    `OrderProjection` folds parlay.orders.v1 into orders and products with the same
    `domain.apply` the live service uses when it writes them. Every column is a function of the
    log (times are event times), so --verify compares every column. (conversations and
    customer_aliases come from other services' topics: the live saga keeps them.)

order (aggregate view for `parlay at order <id>`)
    The order's events from orders.events, folded with `domain.apply`.
"""

from __future__ import annotations

from parlay_kit import topics
from parlay_kit.analytics.registry import AggregateView, Projection, fold_with
from parlay_orders import domain
from parlay_orders.projections import OrderProjection
from parlay_orders.readmodel import MIGRATIONS, OrdersReadModel


def _orders(schema: str) -> OrderProjection:
    return OrderProjection(OrdersReadModel(schema))


#: The order as it stood after the given events (`parlay at <time> order <id>`).
fold_order = fold_with(domain.apply)


PROJECTIONS = [
    Projection(
        name="orders.orders",
        service="orders",
        topics=(topics.ORDERS,),
        handler=_orders,
        migrations=MIGRATIONS,
        tables=("orders", "products"),
        description="orders and the catalog (parlay.orders.v1)",
    )
]

AGGREGATES = [
    AggregateView(
        kind="order",
        service="orders",
        aggregate_type=domain.AGGREGATE_TYPE,
        fold=fold_order,
        description="an order: lines, total, status, payment attempt, refunds",
    )
]
