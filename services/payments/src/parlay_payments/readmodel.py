"""Postgres adapter for the payments read models.

payments         one row per payment (= `domain.Payment`, version = its stream's version)
payment_refunds  its refunds (requested, succeeded, failed)
payment_actions  what the gateway reported doing for it (operational, not rebuilt)

Rows are written in the same transaction as the events that produced them (and the consumer
offsets), with set-based statements (unnest), so they never disagree with the store. Writers
lock the rows they decide on (`load(..., lock=True)`, in payment_id order, so two writers never
deadlock); the explicit aggregate versions on the appended events are the safety net.
Nothing here decides anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

import asyncpg

from parlay_kit.db import check_identifier
from parlay_payments.domain import Payment, Refund

#: The payments columns, in `Payment`'s field order (rows are read straight into it).
PAYMENT_COLUMNS: tuple[str, ...] = tuple(f for f in Payment._fields if f != "refunds")
_ID = PAYMENT_COLUMNS.index("payment_id")
#: The payments table's columns in the table's own order (migrations.py), which is the order
#: of the fields of its row type `{schema}.payments`: `save` sends the rows as one array of that
#: type. tests/test_readmodel.py checks this against a migrated schema.
ROW_COLUMNS: tuple[str, ...] = (
    "payment_id",
    "tenant_id",
    "order_id",
    "attempt",
    "method",
    "status",
    "amount_minor",
    "currency",
    "customer_id",
    "conversation_id",
    "idempotency_key",
    "channel",
    "channel_account_id",
    "address",
    "description",
    "provider",
    "provider_account_id",
    "provider_session_id",
    "provider_payment_id",
    "checkout_url",
    "expires_at",
    "captured_minor",
    "captured_currency",
    "capture_event_id",
    "refunded_minor",
    "flag_reason",
    "failure_reason",
    "created_at",
    "updated_at",
    "version",
)
#: A payment's row as a tuple in ROW_COLUMNS order (one C call per payment).
_row_of = attrgetter(*ROW_COLUMNS)
REFUND_COLUMNS = (
    "payment_id",
    "refund_id",
    "seq",
    "tenant_id",
    "amount_minor",
    "status",
    "idempotency_key",
    "provider_refund_id",
    "reason",
    "source",
    "created_at",
)

_REFUND_TYPES = {"seq": "integer", "amount_minor": "bigint", "created_at": "timestamptz"}


def _unnest(columns: Sequence[str], types: dict[str, str]) -> str:
    return ", ".join(f"${i}::{types.get(c, 'text')}[]" for i, c in enumerate(columns, start=1))


@dataclass(frozen=True, slots=True)
class Lookup:
    """Which payments a batch needs: by id, by order, by provider session / payment intent."""

    payment_ids: frozenset[str] = frozenset()
    #: (tenant_id, order_id)
    orders: frozenset[tuple[str, str]] = frozenset()
    #: (tenant_id, provider_account_id, provider_session_id)
    sessions: frozenset[tuple[str, str, str]] = frozenset()
    #: (tenant_id, provider_account_id, provider_payment_id)
    intents: frozenset[tuple[str, str, str]] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.payment_ids or self.orders or self.sessions or self.intents)


class PaymentsReadModel:
    def __init__(self, schema: str) -> None:
        self.schema = s = check_identifier(schema)
        cols = ", ".join(PAYMENT_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in PAYMENT_COLUMNS if c != "payment_id")
        # One array of the table's row type, each payment one element (asyncpg's binary
        # record encoding). Measured faster than one array per column (and than one JSON
        # document): asyncpg checks every element of an array parameter against the
        # collections.abc ABCs, so 30 column arrays cost 30 such checks per row in the driver,
        # a row-type array one; Postgres also decodes one array instead of 30.
        rcols = ", ".join(ROW_COLUMNS)
        self._upsert_payments = f"""
            INSERT INTO {s}.payments ({rcols})
            SELECT {rcols} FROM unnest($1::{s}.payments[])
            ON CONFLICT (payment_id) DO UPDATE SET {updates}"""
        rcols = ", ".join(REFUND_COLUMNS)
        rupdates = ", ".join(f"{c} = EXCLUDED.{c}" for c in REFUND_COLUMNS[2:])
        self._upsert_refunds = f"""
            INSERT INTO {s}.payment_refunds ({rcols})
            SELECT * FROM unnest({_unnest(REFUND_COLUMNS, _REFUND_TYPES)})
            ON CONFLICT (payment_id, refund_id) DO UPDATE SET {rupdates}"""
        # One index probe per key, whatever the table's statistics say: each key kind is
        # looked up in a LATERAL subquery that OFFSET 0 keeps from being flattened into a join
        # (so it is a parameterized index scan per key), and the rows are then fetched by
        # primary key through `= ANY(ARRAY(...))`. Planned as joins, a table without
        # statistics (a fresh schema, a rebuild, autovacuum behind) got a sequential scan and
        # a sort or hash of the whole table per batch: ~100 ms for 2,000 keys on 40,000
        # payments, growing with the table. An empty key kind costs nothing.
        parts = {
            "ids": "SELECT unnest($1::text[])",
            "orders": f"""SELECT m.payment_id FROM unnest($2::text[], $3::text[]) AS k(t, o),
                LATERAL (SELECT p.payment_id FROM {s}.payments p
                  WHERE p.tenant_id = k.t AND p.order_id = k.o OFFSET 0) m""",
            "sessions": f"""SELECT m.payment_id
                FROM unnest($4::text[], $5::text[], $6::text[]) AS k(t, a, x),
                LATERAL (SELECT p.payment_id FROM {s}.payments p
                  WHERE p.provider_session_id = k.x AND p.provider_account_id = k.a
                    AND p.tenant_id = k.t AND p.provider_session_id <> '' OFFSET 0) m""",
            "intents": f"""SELECT m.payment_id
                FROM unnest($7::text[], $8::text[], $9::text[]) AS k(t, a, x),
                LATERAL (SELECT p.payment_id FROM {s}.payments p
                  WHERE p.provider_payment_id = k.x AND p.provider_account_id = k.a
                    AND p.tenant_id = k.t AND p.provider_payment_id <> '' OFFSET 0) m""",
        }
        self._cols = cols
        self._select = f"""SELECT {cols} FROM {s}.payments
            WHERE payment_id = ANY(ARRAY({" UNION ".join(parts.values())}))
            ORDER BY payment_id"""
        self._select_locked = self._select + " FOR UPDATE"

    # ------------------------------------------------------------------ reads

    async def load(
        self, conn: asyncpg.Connection, lookup: Lookup, *, lock: bool = False
    ) -> dict[str, Payment]:
        """The payments the lookup names (with their refunds), locked for update on request."""
        if not lookup:
            return {}
        orders = sorted(lookup.orders)
        sessions = sorted(lookup.sessions)
        intents = sorted(lookup.intents)
        sql = self._select_locked if lock else self._select
        rows = await conn.fetch(
            sql,
            sorted(lookup.payment_ids),
            [t for t, _ in orders],
            [o for _, o in orders],
            [t for t, _, _ in sessions],
            [a for _, a, _ in sessions],
            [x for _, _, x in sessions],
            [t for t, _, _ in intents],
            [a for _, a, _ in intents],
            [x for _, _, x in intents],
        )
        return await self._with_refunds(conn, rows)

    async def load_by_ids(
        self, conn: asyncpg.Connection, payment_ids: Iterable[str], *, with_refunds: Iterable[str]
    ) -> dict[str, Payment]:
        """Payments by id (no lock), with the refunds of `with_refunds` only: the rebuild's
        load, where only refund events read a payment's refunds."""
        rows = await conn.fetch(
            f"SELECT {self._cols} FROM {self.schema}.payments WHERE payment_id = ANY($1::text[])",
            list(payment_ids),
        )
        return await self._with_refunds(conn, rows, only=set(with_refunds))

    async def _with_refunds(
        self,
        conn: asyncpg.Connection,
        rows: Sequence[asyncpg.Record],
        *,
        only: set[str] | None = None,
    ) -> dict[str, Payment]:
        if not rows:
            return {}
        refunds: dict[str, list[Refund]] = {}
        wanted = [row[_ID] for row in rows if only is None or row[_ID] in only]
        found = (
            await conn.fetch(
                f"""SELECT * FROM {self.schema}.payment_refunds
                    WHERE payment_id = ANY($1::text[]) ORDER BY payment_id, seq""",
                wanted,
            )
            if wanted
            else ()
        )
        for r in found:
            refunds.setdefault(r["payment_id"], []).append(
                Refund(
                    refund_id=r["refund_id"],
                    amount_minor=r["amount_minor"],
                    status=r["status"],
                    created_at=r["created_at"],
                    idempotency_key=r["idempotency_key"],
                    provider_refund_id=r["provider_refund_id"],
                    reason=r["reason"],
                    source=r["source"],
                )
            )
        # Columns are selected in Payment's field order (PAYMENT_COLUMNS, refunds last):
        # positional is exact.
        return {row[_ID]: Payment._make((*row, tuple(refunds.get(row[_ID], ())))) for row in rows}

    async def get(self, conn: Any, tenant_id: str, payment_id: str) -> Payment | None:
        rows = await conn.fetch(
            f"""SELECT {self._cols} FROM {self.schema}.payments
                WHERE tenant_id = $1 AND payment_id = $2""",
            tenant_id,
            payment_id,
        )
        found = await self._with_refunds(conn, rows)
        return found.get(payment_id)

    async def list_for_order(
        self, conn: Any, tenant_id: str, order_id: str, *, after: tuple[int, str] | None, limit: int
    ) -> list[Payment]:
        """An order's payments by attempt, keyset-paged after (attempt, payment_id)."""
        rows = await conn.fetch(
            f"""SELECT {self._cols} FROM {self.schema}.payments
                WHERE tenant_id = $1 AND order_id = $2
                  AND ($3::integer IS NULL OR (attempt, payment_id) > ($3, $4))
                ORDER BY attempt, payment_id LIMIT $5""",
            tenant_id,
            order_id,
            after[0] if after else None,
            after[1] if after else "",
            limit,
        )
        found = await self._with_refunds(conn, rows)
        return [found[r["payment_id"]] for r in rows]

    # ------------------------------------------------------------------ writes

    async def save(self, conn: asyncpg.Connection, payments: Iterable[Payment]) -> None:
        """Upsert the payments and their refunds (one statement each)."""
        rows = list(payments)
        if not rows:
            return
        refund_columns: list[list[Any]] = [[] for _ in REFUND_COLUMNS]
        for p in rows:
            for seq, r in enumerate(p.refunds):
                values = (
                    p.payment_id,
                    r.refund_id,
                    seq,
                    p.tenant_id,
                    r.amount_minor,
                    r.status,
                    r.idempotency_key,
                    r.provider_refund_id,
                    r.reason,
                    r.source,
                    r.created_at,
                )
                for column, value in zip(refund_columns, values, strict=True):
                    column.append(value)
        await conn.execute(self._upsert_payments, [_row_of(p) for p in rows])
        if refund_columns[0]:
            await conn.execute(self._upsert_refunds, *refund_columns)

    async def record_actions(self, conn: asyncpg.Connection, actions: Sequence[dict]) -> None:
        """payment_actions rows (dicts by column); a reported action is recorded once."""
        if not actions:
            return
        await conn.execute(
            f"""INSERT INTO {self.schema}.payment_actions
                SELECT * FROM json_populate_recordset(NULL::{self.schema}.payment_actions, $1::json)
                ON CONFLICT (payment_id, action, request_event_id) DO NOTHING""",
            _json(list(actions)),
        )

    async def actions(self, conn: Any, payment_id: str) -> list[asyncpg.Record]:
        return list(
            await conn.fetch(
                f"""SELECT * FROM {self.schema}.payment_actions WHERE payment_id = $1
                    ORDER BY completed_at NULLS LAST, action""",
                payment_id,
            )
        )


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_iso, separators=(",", ":"))
