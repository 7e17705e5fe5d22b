"""The pure orders domain: pricing and issues, confirmation words, summaries, transitions and
the payment side of the saga."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.message import Message

from parlay.orders.v1 import orders_events_pb2 as oe
from parlay_kit.errors import FailedPrecondition, InvalidArgument
from parlay_orders import domain
from parlay_orders.domain import CartItem, Placement, Product

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CATALOG = {
    "TACO-1": Product("TACO-1", "Tacos al pastor", 12475, "MXN"),
    "AGUA-1": Product("AGUA-1", "Agua de jamaica", 3500, "MXN"),
    "OUT-1": Product("OUT-1", "Pozole", 9000, "MXN", available=False),
    "USD-1": Product("USD-1", "Hat", 2000, "USD"),
}


def fold(events: list[Message], state: domain.OrderState | None = None) -> domain.OrderState:
    version = state.version if state else 0
    for e in events:
        version += 1
        state = domain.apply(state, e, tenant_id="t", version=version, at=T0)
    assert state is not None
    return state


def placed(
    items: list[CartItem] | None = None, method: str = domain.PAYMENT_LINK
) -> domain.OrderState:
    priced = domain.price_cart(items or [CartItem("TACO-1", 2, 12475, "MXN")], CATALOG)
    events = domain.decide_place(
        None,
        Placement("o1", "c1", "conv1", domain.SOURCE_CART, method, "customer"),
        priced,
        request_confirmation=True,
    )
    return fold(events)


def awaiting(method: str = domain.PAYMENT_LINK) -> domain.OrderState:
    state = placed(method=method)
    return fold(domain.decide_confirm(state, confirmed_by="customer", evidence="m1"), state)


def paid() -> domain.OrderState:
    state = awaiting()
    return fold(
        domain.decide_captured(
            state, payment_id="p1", amount_minor=24950, currency="MXN", method="payment_link"
        ),
        state,
    )


# ------------------------------------------------------------------------ pricing and issues


def test_a_clean_cart_is_charged_as_seen_and_summarised_with_format_money() -> None:
    priced = domain.price_cart(
        [CartItem("TACO-1", 2, 12475, "MXN"), CartItem("AGUA-1", 1, 3500, "mxn")], CATALOG
    )
    assert priced.issues == ()
    assert priced.total_minor == 2 * 12475 + 3500
    assert priced.currency == "MXN"
    assert priced.summary == (
        "2 x Tacos al pastor (TACO-1) MX$249.50\n1 x Agua de jamaica (AGUA-1) MX$35.00"
    )


def test_a_price_the_customer_saw_that_differs_is_charged_but_flagged() -> None:
    priced = domain.price_cart([CartItem("TACO-1", 1, 10000, "MXN")], CATALOG)
    (line,) = priced.lines
    assert (line.unit_price_minor, line.catalog_price_minor, line.issue) == (
        10000,
        12475,
        domain.PRICE_MISMATCH,
    )
    assert priced.total_minor == 10000
    assert priced.issues == (domain.PRICE_MISMATCH,)


@pytest.mark.parametrize(
    ("item", "issue"),
    [
        (CartItem("NOPE", 1, 100, "MXN"), domain.UNKNOWN_SKU),
        (CartItem("OUT-1", 1, 9000, "MXN"), domain.UNAVAILABLE),
        (CartItem("TACO-1", 1, 12475, "USD"), domain.CURRENCY_MISMATCH),
    ],
)
def test_line_issues(item: CartItem, issue: str) -> None:
    priced = domain.price_cart([item], CATALOG)
    assert priced.lines[0].issue == issue
    assert priced.issues == (issue,)


def test_mixed_currencies_are_an_order_level_issue_and_stay_out_of_the_total() -> None:
    priced = domain.price_cart(
        [CartItem("TACO-1", 1, 12475, "MXN"), CartItem("USD-1", 1, 2000, "USD")], CATALOG
    )
    assert domain.MIXED_CURRENCY in priced.issues
    assert priced.currency == "MXN"
    assert priced.total_minor == 12475


def test_api_items_are_charged_at_the_catalog_price() -> None:
    priced = domain.price_cart([CartItem("TACO-1", 3)], CATALOG)
    assert priced.total_minor == 3 * 12475
    assert priced.issues == ()


def test_an_order_with_issues_is_not_offered_for_confirmation() -> None:
    state = placed([CartItem("TACO-1", 1, 1, "MXN")])
    assert state.status == domain.PLACED
    assert not state.confirmation_requested
    assert not domain.customer_may_confirm(state)


def test_placing_an_existing_order_again_changes_nothing() -> None:
    state = placed()
    priced = domain.price_cart([CartItem("TACO-1", 2, 12475, "MXN")], CATALOG)
    again = domain.decide_place(
        state,
        Placement("o1", "c1", "conv1", domain.SOURCE_CART, "payment_link", "customer"),
        priced,
        request_confirmation=True,
    )
    assert again == []


# ------------------------------------------------------------------------- confirmation words


@pytest.mark.parametrize(
    "text",
    ["OK", "ok", " Okay! ", "yes", "Y", "Sí", "si", "SÍ.", "¡Sí!", "oui", "Ja", "confirm",
     "Confirmar", "👍", "👍🏽", "ok."],
)  # fmt: skip
def test_confirmations(text: str) -> None:
    assert domain.is_confirmation(text)


@pytest.mark.parametrize(
    "text", ["ok but change the address", "no", "yes please send it tomorrow", "", "okk", "👎"]
)
def test_not_confirmations(text: str) -> None:
    assert not domain.is_confirmation(text)


def test_confirm_button() -> None:
    assert domain.confirm_button_order("confirm:o-9", "") == "o-9"
    assert domain.confirm_button_order("btn-1", "confirm:o-9") == "o-9"
    assert domain.confirm_button_order("cancel:o-9", "") == ""
    assert domain.confirm_button_order("confirm:", "") == ""


# ------------------------------------------------------------------------------ transitions


def test_confirm_makes_payment_due_at_attempt_one() -> None:
    state = awaiting()
    assert state.status == domain.AWAITING_PAYMENT
    assert state.payment_attempt == 1
    assert state.confirmed_by == "customer"


def test_confirm_only_while_placed_naming_the_status() -> None:
    with pytest.raises(FailedPrecondition, match="awaiting_payment"):
        domain.decide_confirm(awaiting(), confirmed_by="api")


def test_confirm_may_change_the_payment_method_and_rejects_unknown_ones() -> None:
    state = placed()
    events = domain.decide_confirm(state, confirmed_by="api", payment_method="cash_on_delivery")
    assert fold(events, state).payment_method == "cash_on_delivery"
    with pytest.raises(InvalidArgument) as err:
        domain.decide_confirm(state, confirmed_by="api", payment_method="barter")
    assert err.value.field == "payment_method"


def test_cancel_before_paid_but_refund_after() -> None:
    state = awaiting()
    cancelled = fold(domain.decide_cancel(state, reason="changed mind", actor="api"), state)
    assert (cancelled.status, cancelled.cancel_reason) == (domain.CANCELLED, "changed mind")
    with pytest.raises(FailedPrecondition, match="cancelled"):
        domain.decide_cancel(cancelled, reason="again", actor="api")
    with pytest.raises(FailedPrecondition, match="refund"):
        domain.decide_cancel(paid(), reason="late", actor="api")


def test_delivery_requires_paid() -> None:
    with pytest.raises(FailedPrecondition, match="awaiting_payment"):
        domain.decide_delivered(awaiting(), note="")
    with pytest.raises(FailedPrecondition, match="awaiting_payment"):
        domain.decide_out_for_delivery(awaiting(), carrier="", tracking_code="", note="")
    state = paid()
    state = fold(
        domain.decide_out_for_delivery(state, carrier="DHL", tracking_code="X1", note=""), state
    )
    assert (state.status, state.carrier, state.tracking_code) == (
        domain.OUT_FOR_DELIVERY,
        "DHL",
        "X1",
    )
    state = fold(domain.decide_delivered(state, note="at the door"), state)
    assert state.status == domain.DELIVERED


def test_cash_on_delivery_leaves_unpaid_and_is_paid_at_the_door() -> None:
    state = awaiting(domain.CASH_ON_DELIVERY)
    state = fold(
        domain.decide_out_for_delivery(state, carrier="", tracking_code="", note=""), state
    )
    assert state.status == domain.OUT_FOR_DELIVERY
    with pytest.raises(FailedPrecondition, match="not paid"):
        domain.decide_delivered(state, note="")
    state = fold(
        domain.decide_captured(
            state, payment_id="p1", amount_minor=24950, currency="MXN", method="cash_on_delivery"
        ),
        state,
    )
    assert state.status == domain.PAID
    assert fold(domain.decide_delivered(state, note=""), state).status == domain.DELIVERED


# ------------------------------------------------------------------------------- payments


def test_capture_of_exactly_the_total_pays() -> None:
    state = paid()
    assert (state.status, state.payment_id, state.paid_minor) == (domain.PAID, "p1", 24950)
    again = domain.decide_captured(
        state, payment_id="p1", amount_minor=24950, currency="MXN", method=""
    )
    assert again == []


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [(100, "MXN", domain.AMOUNT_MISMATCH), (24950, "USD", domain.CURRENCY_MISMATCH)],
)
def test_capture_mismatch_is_flagged_not_paid(amount: int, currency: str, reason: str) -> None:
    state = awaiting()
    events = domain.decide_captured(
        state, payment_id="p1", amount_minor=amount, currency=currency, method=""
    )
    (flag,) = events
    assert isinstance(flag, oe.OrderPaymentFlagged) and flag.reason == reason
    after = fold(events, state)
    assert (after.status, after.payment_flag) == (domain.AWAITING_PAYMENT, reason)


def test_late_capture_after_cancel_is_flagged() -> None:
    state = awaiting()
    state = fold(domain.decide_expired(state, attempt=1, max_attempts=1), state)
    assert (state.status, state.cancel_reason) == (domain.CANCELLED, domain.PAYMENT_EXPIRED)
    (flag,) = domain.decide_captured(
        state, payment_id="p1", amount_minor=24950, currency="MXN", method=""
    )
    assert isinstance(flag, oe.OrderPaymentFlagged)
    assert flag.reason == domain.NOT_AWAITING_PAYMENT


def test_expiry_brings_a_new_attempt_then_cancels_and_ignores_stale_attempts() -> None:
    state = awaiting()
    state = fold(domain.decide_expired(state, attempt=1, max_attempts=2), state)
    assert (state.status, state.payment_attempt) == (domain.AWAITING_PAYMENT, 2)
    assert domain.decide_expired(state, attempt=1, max_attempts=2) == []  # stale
    state = fold(domain.decide_expired(state, attempt=2, max_attempts=2), state)
    assert state.status == domain.CANCELLED
    assert domain.decide_expired(state, attempt=2, max_attempts=2) == []


def test_refunds_accumulate_and_a_full_refund_refunds_the_order() -> None:
    state = paid()
    state = fold(
        domain.decide_refunded(state, payment_id="p1", amount_minor=4950, currency="MXN"), state
    )
    assert (state.status, state.refunded_minor) == (domain.PAID, 4950)
    events = domain.decide_refunded(state, payment_id="p1", amount_minor=20000, currency="MXN")
    assert isinstance(events[0], oe.OrderRefunded) and events[0].fully_refunded
    state = fold(events, state)
    assert (state.status, state.refunded_minor) == (domain.REFUNDED, 24950)


def test_link_failure_flags_the_order_awaiting_payment_until_it_is_paid() -> None:
    state = awaiting()
    state = fold(domain.decide_link_failed(state, payment_id="p1", reason="card_declined"), state)
    assert state.status == domain.AWAITING_PAYMENT
    assert state.payment_flag.startswith(domain.LINK_FAILED)
    state = fold(
        domain.decide_captured(
            state, payment_id="p2", amount_minor=24950, currency="MXN", method="payment_link"
        ),
        state,
    )
    assert (state.status, state.payment_flag) == (domain.PAID, "")


def test_apply_ignores_events_at_or_below_the_version() -> None:
    state = awaiting()
    again = domain.apply(
        state, oe.OrderCancelled(order_id="o1"), tenant_id="t", version=state.version, at=T0
    )
    assert again is state


# ------------------------------------------------------------------------------- settings


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from parlay_orders.settings import OrdersSettings

    defaults = OrdersSettings()
    assert (defaults.service_name, defaults.grpc_port) == ("orders", 50054)
    assert (defaults.orders_default_payment_method, defaults.orders_max_payment_attempts) == (
        "payment_link",
        2,
    )
    monkeypatch.setenv("PARLAY_ORDERS_MAX_PAYMENT_ATTEMPTS", "3")
    monkeypatch.setenv("PARLAY_ORDERS_DEFAULT_PAYMENT_METHOD", "cash_on_delivery")
    s = OrdersSettings()
    assert (s.orders_default_payment_method, s.orders_max_payment_attempts) == (
        "cash_on_delivery",
        3,
    )
    monkeypatch.setenv("PARLAY_ORDERS_DEFAULT_PAYMENT_METHOD", "barter")
    with pytest.raises(ValidationError):
        OrdersSettings()
