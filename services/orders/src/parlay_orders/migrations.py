"""Read models of the orders service. The order-to-cash work fills them from events."""

from __future__ import annotations

from parlay_kit.db import Migration

MIGRATIONS = [
    Migration(
        "orders_0001_read_model",
        """
        CREATE TABLE {schema}.orders (
            tenant_id   text NOT NULL,
            order_id text NOT NULL,
            customer_id text NOT NULL,
            status      text NOT NULL,
            version     bigint NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, order_id)
        );
        """,
    )
]
