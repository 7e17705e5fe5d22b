"""The payments read model's writes: rows sent as one array of the table's row type come back
as exactly the payments that were saved (inserted, then updated), refunds included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from parlay_kit.db import migrate
from parlay_payments import domain
from parlay_payments.domain import Payment, Refund
from parlay_payments.migrations import MIGRATIONS
from parlay_payments.readmodel import PAYMENT_COLUMNS, ROW_COLUMNS, Lookup, PaymentsReadModel

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def test_row_columns_are_the_tables_own_order(database_url: str, fresh_schema: str) -> None:
    # `save` sends each payment as a value of the table's row type: its field order is the
    # table's column order, which ROW_COLUMNS must follow exactly.
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, fresh_schema, MIGRATIONS)
        table = await conn.fetch(
            """SELECT attname FROM pg_attribute
               WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
               ORDER BY attnum""",
            f"{fresh_schema}.payments",
        )
    finally:
        await conn.close()
    assert tuple(r["attname"] for r in table) == ROW_COLUMNS
    assert sorted(ROW_COLUMNS) == sorted(PAYMENT_COLUMNS)


def _payment(i: int, **changes: object) -> Payment:
    base = Payment(
        tenant_id="t1",
        payment_id=f"pay-{i}",
        order_id=f"ord-{i}",
        method=domain.PAYMENT_LINK,
        amount_minor=1000 + i,
        currency="MXN",
        attempt=1,
        status=domain.REQUESTED,
        created_at=T0,
        updated_at=T0,
        version=1,
        customer_id=f"cus-{i}",
        conversation_id=f"conv-{i}",
        idempotency_key=f"ord-{i}:attempt:1",
        channel="whatsapp",
        channel_account_id="wa-1",
        address="5215550000",
        description="1 x Tacos — ñ",
    )
    return base._replace(**changes)


async def test_saved_payments_load_back_equal(database_url: str, fresh_schema: str) -> None:
    rm = PaymentsReadModel(fresh_schema)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, fresh_schema, MIGRATIONS)
        first = [_payment(i) for i in range(3)]
        async with conn.transaction():
            await rm.save(conn, first)
        # Every column changed, a None expires_at next to a set one, refunds added.
        later = T0 + timedelta(minutes=5, microseconds=7)
        second = [
            _payment(
                0,
                status=domain.PARTIALLY_REFUNDED,
                version=4,
                updated_at=later,
                provider="stripe",
                provider_account_id="acc",
                provider_session_id="cs_0",
                provider_payment_id="pi_0",
                checkout_url="https://checkout.stripe.com/c/pay/cs_0",
                expires_at=T0 + timedelta(days=1),
                captured_minor=1000,
                captured_currency="MXN",
                capture_event_id="evt_0",
                refunded_minor=400,
                refunds=(
                    Refund("r1", 400, domain.REFUND_SUCCEEDED, later, source=domain.SOURCE_API),
                    Refund("r2", 100, domain.REFUND_REQUESTED, later, idempotency_key="k"),
                ),
            ),
            _payment(1, status=domain.FLAGGED, flag_reason="amount_mismatch", version=3),
            _payment(2, status=domain.FAILED, failure_reason="card_declined", version=2),
        ]
        async with conn.transaction():
            await rm.save(conn, second)
        by_id = await rm.load_by_ids(
            conn, [p.payment_id for p in second], with_refunds=[p.payment_id for p in second]
        )
        assert by_id == {p.payment_id: p for p in second}
        locked = await rm.load(conn, Lookup(payment_ids=frozenset({"pay-0"})))
        assert locked == {"pay-0": second[0]}
    finally:
        await conn.close()
