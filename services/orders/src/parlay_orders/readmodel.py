"""Read models of the orders service (Postgres, schema settings.store_schema).

orders             one row per order: the folded `domain.OrderState` (every column a function
                   of the log: times are event times). Written in the transaction that appends
                   the order's events (commands, saga) and by `OrderProjection` on a rebuild;
                   a row only moves to a higher aggregate version.
products           the catalog (ProductUpserted), per tenant and sku.
conversations      conversation -> customer, channel, account and the customer's last address
                   (parlay.conversation.v1), for orders placed in a conversation.
customer_aliases   merged customer -> survivor (parlay.profile.v1 merges); ListOrders(survivor)
                   includes the orders of every customer merged into it, an unmerge gives them
                   back. Orders keep the customer they were placed by.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import asyncpg
import orjson

from parlay_kit.customer_aliases import CustomerAliases
from parlay_kit.db import Migration, check_identifier
from parlay_orders import domain

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
    ),
    # The first table was a stub nothing ever wrote: replaced by the full read models.
    Migration(
        "orders_0002_order_to_cash",
        """
        DROP TABLE IF EXISTS {schema}.orders;
        CREATE TABLE {schema}.orders (
            tenant_id              text        NOT NULL,
            order_id               text        NOT NULL,
            customer_id            text        NOT NULL,
            conversation_id        text        NOT NULL,
            status                 text        NOT NULL,
            items                  jsonb       NOT NULL,
            total_minor            bigint      NOT NULL,
            currency               text        NOT NULL,
            payment_method         text        NOT NULL,
            source                 text        NOT NULL,
            issues                 jsonb       NOT NULL,
            channel                text        NOT NULL,
            channel_account_id     text        NOT NULL,
            address                text        NOT NULL,
            summary                text        NOT NULL,
            source_event_id        text        NOT NULL,
            idempotency_key        text        NOT NULL,
            placed_by              text        NOT NULL,
            confirmation_requested boolean     NOT NULL,
            confirmed_by           text        NOT NULL,
            payment_attempt        integer     NOT NULL,
            payment_id             text        NOT NULL,
            paid_minor             bigint      NOT NULL,
            refunded_minor         bigint      NOT NULL,
            payment_flag           text        NOT NULL,
            carrier                text        NOT NULL,
            tracking_code          text        NOT NULL,
            cancel_reason          text        NOT NULL,
            version                bigint      NOT NULL,
            created_at             timestamptz NOT NULL,
            updated_at             timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, order_id)
        );
        CREATE INDEX orders_by_customer
            ON {schema}.orders (tenant_id, customer_id, created_at DESC, order_id DESC);
        CREATE INDEX orders_by_conversation
            ON {schema}.orders (tenant_id, conversation_id, created_at DESC)
            WHERE status = 'placed';

        CREATE TABLE {schema}.products (
            tenant_id   text        NOT NULL,
            sku         text        NOT NULL,
            name        text        NOT NULL,
            price_minor bigint      NOT NULL,
            currency    text        NOT NULL,
            available   boolean     NOT NULL,
            description text        NOT NULL,
            image_url   text        NOT NULL,
            version     bigint      NOT NULL,
            updated_at  timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, sku)
        );

        CREATE TABLE {schema}.conversations (
            tenant_id          text NOT NULL,
            conversation_id    text NOT NULL,
            customer_id        text NOT NULL,
            channel            text NOT NULL,
            channel_account_id text NOT NULL,
            address            text NOT NULL DEFAULT '',
            PRIMARY KEY (tenant_id, conversation_id)
        );

        CREATE TABLE {schema}.customer_aliases (
            tenant_id            text NOT NULL,
            customer_id          text NOT NULL,
            survivor_customer_id text NOT NULL,
            merge_id             text NOT NULL,
            PRIMARY KEY (tenant_id, customer_id)
        );
        CREATE INDEX customer_aliases_survivor
            ON {schema}.customer_aliases (tenant_id, survivor_customer_id);
        """,
    ),
]

#: (column, SQL type of its unnest array) in the order `_order_values` produces them.
_ORDER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tenant_id", "text"),
    ("order_id", "text"),
    ("customer_id", "text"),
    ("conversation_id", "text"),
    ("status", "text"),
    ("items", "jsonb"),
    ("total_minor", "bigint"),
    ("currency", "text"),
    ("payment_method", "text"),
    ("source", "text"),
    ("issues", "jsonb"),
    ("channel", "text"),
    ("channel_account_id", "text"),
    ("address", "text"),
    ("summary", "text"),
    ("source_event_id", "text"),
    ("idempotency_key", "text"),
    ("placed_by", "text"),
    ("confirmation_requested", "boolean"),
    ("confirmed_by", "text"),
    ("payment_attempt", "integer"),
    ("payment_id", "text"),
    ("paid_minor", "bigint"),
    ("refunded_minor", "bigint"),
    ("payment_flag", "text"),
    ("carrier", "text"),
    ("tracking_code", "text"),
    ("cancel_reason", "text"),
    ("version", "bigint"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
ORDER_TABLES = ("orders", "products", "conversations", "customer_aliases")


def _lines_json(lines: Sequence[domain.Line]) -> str:
    return orjson.dumps(
        [
            [
                ln.sku,
                ln.name,
                ln.quantity,
                ln.unit_price_minor,
                ln.catalog_price_minor,
                ln.line_total_minor,
                ln.issue,
            ]
            for ln in lines
        ]
    ).decode()


def _order_values(s: domain.OrderState) -> tuple:
    return (
        s.tenant_id,
        s.order_id,
        s.customer_id,
        s.conversation_id,
        s.status,
        _lines_json(s.lines),
        s.total_minor,
        s.currency,
        s.payment_method,
        s.source,
        orjson.dumps(list(s.issues)).decode(),
        s.channel,
        s.channel_account_id,
        s.address,
        s.summary,
        s.source_event_id,
        s.idempotency_key,
        s.placed_by,
        s.confirmation_requested,
        s.confirmed_by,
        s.payment_attempt,
        s.payment_id,
        s.paid_minor,
        s.refunded_minor,
        s.payment_flag,
        s.carrier,
        s.tracking_code,
        s.cancel_reason,
        s.version,
        s.created_at,
        s.updated_at,
    )


def order_from_row(row: asyncpg.Record) -> domain.OrderState:
    return domain.OrderState(
        tenant_id=row["tenant_id"],
        order_id=row["order_id"],
        customer_id=row["customer_id"],
        conversation_id=row["conversation_id"],
        status=row["status"],
        lines=tuple(domain.Line(*item) for item in orjson.loads(row["items"])),
        total_minor=row["total_minor"],
        currency=row["currency"],
        payment_method=row["payment_method"],
        source=row["source"],
        issues=tuple(orjson.loads(row["issues"])),
        channel=row["channel"],
        channel_account_id=row["channel_account_id"],
        address=row["address"],
        summary=row["summary"],
        source_event_id=row["source_event_id"],
        idempotency_key=row["idempotency_key"],
        placed_by=row["placed_by"],
        confirmation_requested=row["confirmation_requested"],
        confirmed_by=row["confirmed_by"],
        payment_attempt=row["payment_attempt"],
        payment_id=row["payment_id"],
        paid_minor=row["paid_minor"],
        refunded_minor=row["refunded_minor"],
        payment_flag=row["payment_flag"],
        carrier=row["carrier"],
        tracking_code=row["tracking_code"],
        cancel_reason=row["cancel_reason"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def product_from_row(row: asyncpg.Record) -> domain.Product:
    return domain.Product(
        sku=row["sku"],
        name=row["name"],
        price_minor=row["price_minor"],
        currency=row["currency"],
        available=row["available"],
        description=row["description"],
        image_url=row["image_url"],
    )


def encode_token(*parts: str) -> str:
    return base64.urlsafe_b64encode("\x1f".join(parts).encode()).decode()


def decode_token(token: str, n: int) -> list[str] | None:
    try:
        parts = base64.urlsafe_b64decode(token.encode()).decode().split("\x1f")
    except (ValueError, UnicodeDecodeError):
        return None
    return parts if len(parts) == n else None


class OrdersReadModel(CustomerAliases):
    def __init__(self, schema: str) -> None:
        self.schema = check_identifier(schema)
        s = self.schema
        names = ", ".join(c for c, _ in _ORDER_COLUMNS)
        updates = ", ".join(
            f"{c} = EXCLUDED.{c}" for c, _ in _ORDER_COLUMNS if c not in ("tenant_id", "order_id")
        )
        # jsonb arrays would need a codec: the JSON travels as text and is cast here.
        selects = ", ".join(
            f"u.{c}::jsonb" if t == "jsonb" else f"u.{c}" for c, t in _ORDER_COLUMNS
        )
        arrays = ", ".join(
            f"${i}::{'text' if t == 'jsonb' else t}[]"
            for i, (_, t) in enumerate(_ORDER_COLUMNS, start=1)
        )
        self._upsert_orders = f"""
            INSERT INTO {s}.orders ({names})
            SELECT {selects} FROM unnest({arrays}) AS u({names})
            ON CONFLICT (tenant_id, order_id) DO UPDATE SET {updates}
            WHERE {s}.orders.version < EXCLUDED.version"""
        # asyncpg returns json/jsonb as text without a codec: order_from_row parses it.
        self._select_orders = f"""
            SELECT o.*
            FROM {s}.orders o
            JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, order_id)
              ON o.tenant_id = k.tenant_id AND o.order_id = k.order_id"""

    # ------------------------------------------------------------------ orders

    async def load_orders(
        self, conn: asyncpg.Connection, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], domain.OrderState]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        rows = await conn.fetch(self._select_orders, [k[0] for k in keys], [k[1] for k in keys])
        return {(r["tenant_id"], r["order_id"]): order_from_row(r) for r in rows}

    async def load_order(
        self, conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, order_id: str
    ) -> domain.OrderState | None:
        row = await conn.fetchrow(
            f"""SELECT o.*
                FROM {self.schema}.orders o WHERE tenant_id = $1 AND order_id = $2""",
            tenant_id,
            order_id,
        )
        return order_from_row(row) if row is not None else None

    async def save_orders(
        self, conn: asyncpg.Connection, states: Iterable[domain.OrderState]
    ) -> None:
        rows = [_order_values(s) for s in states]
        if not rows:
            return
        columns = [list(col) for col in zip(*rows, strict=True)]
        await conn.execute(self._upsert_orders, *columns)

    async def list_orders(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        tenant_id: str,
        customer_ids: Sequence[str],
        *,
        status: str,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[domain.OrderState]:
        rows = await conn.fetch(
            f"""SELECT o.*
                FROM {self.schema}.orders o
                WHERE tenant_id = $1 AND customer_id = ANY($2::text[])
                  AND ($3 = '' OR status = $3)
                  AND ($4::timestamptz IS NULL OR (created_at, order_id) < ($4, $5))
                ORDER BY created_at DESC, order_id DESC
                LIMIT $6""",
            tenant_id,
            list(customer_ids),
            status,
            after[0] if after else None,
            after[1] if after else "",
            limit,
        )
        return [order_from_row(r) for r in rows]

    async def newest_confirmable(
        self, conn: asyncpg.Connection, tenant_id: str, conversation_id: str
    ) -> str | None:
        """The newest order of the conversation still placed and offered for confirmation."""
        return await conn.fetchval(
            f"""SELECT order_id FROM {self.schema}.orders
                WHERE tenant_id = $1 AND conversation_id = $2 AND status = 'placed'
                  AND confirmation_requested
                ORDER BY created_at DESC, version DESC, order_id DESC LIMIT 1""",
            tenant_id,
            conversation_id,
        )

    # ------------------------------------------------------------------ products

    async def save_products(
        self,
        conn: asyncpg.Connection,
        rows: Sequence[tuple[str, domain.Product, int, datetime]],
    ) -> None:
        """(tenant, product, aggregate version, event time); an older version never wins."""
        if not rows:
            return
        await conn.execute(
            f"""INSERT INTO {self.schema}.products (tenant_id, sku, name, price_minor, currency,
                    available, description, image_url, version, updated_at)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                    $5::text[], $6::boolean[], $7::text[], $8::text[], $9::bigint[],
                    $10::timestamptz[])
                ON CONFLICT (tenant_id, sku) DO UPDATE SET name = EXCLUDED.name,
                    price_minor = EXCLUDED.price_minor, currency = EXCLUDED.currency,
                    available = EXCLUDED.available, description = EXCLUDED.description,
                    image_url = EXCLUDED.image_url, version = EXCLUDED.version,
                    updated_at = EXCLUDED.updated_at
                WHERE {self.schema}.products.version < EXCLUDED.version""",
            [t for t, _, _, _ in rows],
            [p.sku for _, p, _, _ in rows],
            [p.name for _, p, _, _ in rows],
            [p.price_minor for _, p, _, _ in rows],
            [p.currency for _, p, _, _ in rows],
            [p.available for _, p, _, _ in rows],
            [p.description for _, p, _, _ in rows],
            [p.image_url for _, p, _, _ in rows],
            [v for _, _, v, _ in rows],
            [at for _, _, _, at in rows],
        )

    async def products(
        self, conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, skus: Iterable[str]
    ) -> dict[str, domain.Product]:
        rows = await conn.fetch(
            f"""SELECT * FROM {self.schema}.products
                WHERE tenant_id = $1 AND sku = ANY($2::text[])""",
            tenant_id,
            list(set(skus)),
        )
        return {r["sku"]: product_from_row(r) for r in rows}

    async def product_rows(
        self,
        conn: asyncpg.Connection | asyncpg.Pool,
        tenant_id: str,
        *,
        after_sku: str,
        available_only: bool,
        limit: int,
    ) -> list[asyncpg.Record]:
        return await conn.fetch(
            f"""SELECT * FROM {self.schema}.products
                WHERE tenant_id = $1 AND sku > $2 AND (NOT $3 OR available)
                ORDER BY sku LIMIT $4""",
            tenant_id,
            after_sku,
            available_only,
            limit,
        )

    async def product_row(
        self, conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, sku: str
    ) -> asyncpg.Record | None:
        return await conn.fetchrow(
            f"SELECT * FROM {self.schema}.products WHERE tenant_id = $1 AND sku = $2",
            tenant_id,
            sku,
        )

    # ------------------------------------------------------------------ conversations

    async def open_conversation(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        conversation_id: str,
        customer_id: str,
        channel: str,
        channel_account_id: str,
    ) -> None:
        await conn.execute(
            f"""INSERT INTO {self.schema}.conversations
                    (tenant_id, conversation_id, customer_id, channel, channel_account_id)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET
                    customer_id = EXCLUDED.customer_id, channel = EXCLUDED.channel,
                    channel_account_id = EXCLUDED.channel_account_id""",
            tenant_id,
            conversation_id,
            customer_id,
            channel,
            channel_account_id,
        )

    async def set_conversation_owner(
        self, conn: asyncpg.Connection, tenant_id: str, conversation_id: str, customer_id: str
    ) -> None:
        await conn.execute(
            f"""UPDATE {self.schema}.conversations SET customer_id = $3
                WHERE tenant_id = $1 AND conversation_id = $2""",
            tenant_id,
            conversation_id,
            customer_id,
        )

    async def set_conversation_addresses(
        self, conn: asyncpg.Connection, addresses: Mapping[tuple[str, str], str]
    ) -> None:
        """The customer's latest address per conversation (one statement for a batch)."""
        if not addresses:
            return
        keys = list(addresses)
        await conn.execute(
            f"""UPDATE {self.schema}.conversations c SET address = u.address
                FROM unnest($1::text[], $2::text[], $3::text[])
                  AS u(tenant_id, conversation_id, address)
                WHERE c.tenant_id = u.tenant_id AND c.conversation_id = u.conversation_id
                  AND c.address <> u.address""",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [addresses[k] for k in keys],
        )

    async def conversation(
        self, conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, conversation_id: str
    ) -> asyncpg.Record | None:
        return await conn.fetchrow(
            f"""SELECT * FROM {self.schema}.conversations
                WHERE tenant_id = $1 AND conversation_id = $2""",
            tenant_id,
            conversation_id,
        )
