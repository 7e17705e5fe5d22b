"""The pure payment rules: status machine, amount checks, refund arithmetic, and (hypothesis)
that the order and repetition of a payment's provider events never change where it ends."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from parlay.payments.v1 import payments_events_pb2 as pe
from parlay_payments import domain
from parlay_payments.domain import Payment

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def due(method: str = domain.PAYMENT_LINK, amount: int = 24950, currency: str = "MXN"):
    return domain.PaymentDue(
        payment_id="pay-1",
        order_id="ord-1",
        customer_id="cus-1",
        conversation_id="conv-1",
        amount_minor=amount,
        currency=currency,
        method=method,
        attempt=1,
        channel="telegram" if method == domain.TELEGRAM else "whatsapp",
        channel_account_id="acc-tg",
        address="chat-42",
        summary="2 x Tacos",
    )


def fold(state: Payment | None, events: list[Message], at: datetime = T0) -> Payment:
    for event in events:
        state = domain.apply(
            state,
            event,
            tenant_id="t1",
            version=(state.version if state else 0) + 1,
            at=at,
        )
    assert state is not None
    return state


def requested(method: str = domain.PAYMENT_LINK, **kw) -> Payment:
    return fold(None, domain.request_payment(None, due(method, **kw)))


def linked() -> Payment:
    s = requested()
    return fold(
        s,
        domain.link_created(
            s,
            provider_session_id="cs_1",
            checkout_url="https://checkout.stripe.com/c/cs_1",
            expires_at=T0 + timedelta(hours=24),
            provider_account_id="acct-stripe",
        ),
    )


def captured(amount: int = 24950) -> Payment:
    s = linked()
    return fold(
        s,
        domain.money_received(
            s,
            amount_minor=amount,
            currency="MXN",
            method=s.method,
            provider_event_id="evt_1",
            provider_payment_id="pi_1",
        ),
    )


# ------------------------------------------------------------------ status machine


def test_every_allowed_transition_moves_forward() -> None:
    assert set(domain.ALLOWED) == set(domain.RANK)
    for source, targets in domain.ALLOWED.items():
        for target in targets:
            assert domain.RANK[target] > domain.RANK[source], (source, target)


def test_terminal_and_backward_moves_are_refused() -> None:
    assert domain.ALLOWED[domain.REFUNDED] == frozenset()
    for a, b in itertools.product(domain.RANK, repeat=2):
        if domain.RANK[b] <= domain.RANK[a] and a != b:
            assert not domain.can_move(a, b), (a, b)


def test_apply_refuses_a_transition_the_machine_does_not_allow() -> None:
    s = captured()
    with pytest.raises(domain.InvalidTransition):
        fold(s, [pe.PaymentExpired(payment_id=s.payment_id)])


def test_payment_requested_for_each_method() -> None:
    link = domain.request_payment(None, due())
    assert [type(e) for e in link] == [pe.PaymentRequested]
    assert link[0].idempotency_key == "ord-1:attempt:1"
    assert requested().status == domain.REQUESTED
    assert requested(domain.CASH_ON_DELIVERY).status == domain.AWAITING_COLLECTION
    assert requested(domain.CARD_ON_DELIVERY).status == domain.AWAITING_COLLECTION
    tg = domain.request_payment(None, due(domain.TELEGRAM))
    assert [type(e) for e in tg] == [pe.PaymentRequested, pe.TelegramInvoiceRequested]
    invoice = tg[1]
    assert isinstance(invoice, pe.TelegramInvoiceRequested)
    assert (invoice.chat_id, invoice.channel_account_id, invoice.payload) == (
        "chat-42",
        "acc-tg",
        "pay-1",
    )
    assert invoice.title == "Order ord-1" and invoice.description == "2 x Tacos"
    # Requested once: the same attempt again asks for nothing.
    assert domain.request_payment(requested(), due()) == []


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"method": "bitcoin"}, "method"),
        ({"amount": 0}, "positive"),
        ({"currency": "mxn"}, "ISO"),
    ],
)
def test_order_events_payments_cannot_act_on_raise(kw, why) -> None:
    with pytest.raises(domain.InvalidOrderEvent, match=why):
        domain.request_payment(None, due(**kw))


def test_a_telegram_invoice_needs_the_chat() -> None:
    no_chat = dataclasses.replace(due(domain.TELEGRAM), address="")
    with pytest.raises(domain.InvalidOrderEvent, match="chat"):
        domain.request_payment(None, no_chat)


def test_link_created_failed_expired_cancelled() -> None:
    s = linked()
    assert s.status == domain.LINK_CREATED
    assert (s.provider_session_id, s.provider_account_id) == ("cs_1", "acct-stripe")
    assert s.expires_at == T0 + timedelta(hours=24)
    # A second report of the same session changes nothing.
    assert (
        domain.link_created(
            s, provider_session_id="cs_1", checkout_url="", expires_at=None, provider_account_id="x"
        )
        == []
    )
    failed = fold(requested(), domain.link_failed(requested(), reason="card_declined", attempts=3))
    assert (failed.status, failed.failure_reason) == (domain.FAILED, "card_declined")
    expired = fold(s, domain.expire(s, provider_event_id="evt_x"))
    assert expired.status == domain.EXPIRED
    cancelled_events = domain.cancel(s, "customer_request")
    cancel = cancelled_events[0]
    assert isinstance(cancel, pe.PaymentCancelled)
    assert (cancel.provider_session_id, cancel.provider_account_id) == ("cs_1", "acct-stripe")
    assert fold(s, cancelled_events).status == domain.CANCELLED
    # Not open any more: nothing to cancel, nothing to expire.
    assert domain.cancel(expired, "x") == [] and domain.expire(expired, provider_event_id="e") == []


def test_session_created_after_the_cancel_is_expired_too() -> None:
    s = requested()
    cancelled = fold(s, domain.cancel(s, "customer_request"))
    assert domain.cancel(s, "customer_request")[0].provider_session_id == ""
    events = domain.link_created(
        cancelled,
        provider_session_id="cs_late",
        checkout_url="u",
        expires_at=None,
        provider_account_id="acct",
    )
    assert [type(e) for e in events] == [pe.PaymentCancelled]
    assert events[0].provider_session_id == "cs_late"
    after = fold(cancelled, events)
    assert after.status == domain.CANCELLED and after.provider_session_id == "cs_late"


# ------------------------------------------------------------------ money checks


def test_capture_exact_amount_and_currency() -> None:
    s = captured()
    assert s.status == domain.CAPTURED
    assert (s.captured_minor, s.provider_payment_id, s.capture_event_id) == (24950, "pi_1", "evt_1")
    # Recorded once: the second report of the same money (payment_intent.succeeded) is nothing.
    assert (
        domain.money_received(
            s, amount_minor=24950, currency="MXN", method="", provider_event_id="evt_2"
        )
        == []
    )


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [(24949, "MXN", domain.AMOUNT_MISMATCH), (24950, "USD", domain.CURRENCY_MISMATCH)],
)
def test_mismatched_money_is_flagged_not_captured(amount, currency, reason) -> None:
    s = linked()
    events = domain.money_received(
        s, amount_minor=amount, currency=currency, method="", provider_event_id="evt_1"
    )
    assert [type(e) for e in events] == [pe.PaymentFlagged]
    flagged = fold(s, events)
    assert (flagged.status, flagged.flag_reason) == (domain.FLAGGED, reason)
    assert flagged.captured_minor == amount
    # A flag stands: a later report of the right amount does not make it paid.
    assert (
        domain.money_received(
            flagged, amount_minor=24950, currency="MXN", method="", provider_event_id="evt_9"
        )
        == []
    )


def test_money_on_a_cancelled_or_expired_payment_is_flagged() -> None:
    s = linked()
    for events, reason in (
        (domain.cancel(s, "x"), domain.PAYMENT_CANCELLED),
        (domain.expire(s, provider_event_id="e"), domain.PAYMENT_EXPIRED),
    ):
        closed = fold(s, events)
        money = domain.money_received(
            closed, amount_minor=24950, currency="MXN", method="", provider_event_id="evt_1"
        )
        assert fold(closed, money).flag_reason == reason


def test_expired_after_capture_and_completed_after_refund_change_nothing() -> None:
    s = captured()
    assert domain.expire(s, provider_event_id="late") == []
    refunded = fold(
        s,
        domain.request_refund(
            s, refund_id="r1", amount_minor=0, idempotency_key="k", reason="", requested_by="a"
        )[1],
    )
    refunded = fold(refunded, domain.refund_completed(refunded, "r1", provider_refund_id="re_1"))
    assert refunded.status == domain.REFUNDED
    late = domain.StripeEvent(domain.SESSION_COMPLETED, "evt_late", 24950, "MXN", "paid", "pi_1")
    assert domain.stripe_event(refunded, late, new_refund_id="x") == []


# ------------------------------------------------------------------ refunds


def refund(s: Payment, amount: int, key: str) -> tuple[Payment, list[Message]]:
    earlier, events = domain.request_refund(
        s,
        refund_id=f"r-{key}",
        amount_minor=amount,
        idempotency_key=key,
        reason="",
        requested_by="agent",
    )
    return fold(s, events), events


def test_refund_arithmetic_counts_pending_refunds() -> None:
    s = captured()
    s, events = refund(s, 5000, "a")
    assert [type(e) for e in events] == [pe.RefundRequested]  # Stripe: the gateway does it
    assert (s.status, s.refunded_minor, s.refundable_minor) == (domain.CAPTURED, 0, 19950)
    with pytest.raises(domain.RefundRejected) as over:
        refund(s, 19951, "b")
    assert over.value.field == "amount_minor"
    s = fold(s, domain.refund_completed(s, "r-a", provider_refund_id="re_a"))
    assert (s.status, s.refunded_minor) == (domain.PARTIALLY_REFUNDED, 5000)
    s, events = refund(s, 0, "c")  # 0 = all that remains
    assert events[0].amount_minor == 19950
    with pytest.raises(domain.RefundRejected, match="nothing left"):
        refund(s, 0, "d")
    s = fold(s, domain.refund_completed(s, "r-c", provider_refund_id="re_c"))
    assert (s.status, s.refunded_minor) == (domain.REFUNDED, 24950)
    with pytest.raises(domain.RefundRejected) as done:
        refund(s, 1, "e")
    assert done.value.field == ""  # the payment's state, not the request


def test_refund_idempotency_by_key() -> None:
    s, _ = refund(captured(), 3000, "k")
    earlier, events = domain.request_refund(
        s, refund_id="r-k", amount_minor=3000, idempotency_key="k", reason="", requested_by=""
    )
    assert events == [] and earlier is not None and earlier.amount_minor == 3000
    assert (
        domain.request_refund(
            s, refund_id="r-k", amount_minor=0, idempotency_key="k", reason="", requested_by=""
        )[1]
        == []
    )
    with pytest.raises(domain.RefundRejected) as used:
        domain.request_refund(
            s, refund_id="r-k", amount_minor=10, idempotency_key="k", reason="", requested_by=""
        )
    assert used.value.field == "idempotency_key"


def test_refund_failed_keeps_the_status_and_frees_the_amount() -> None:
    s, _ = refund(captured(), 24950, "k")
    assert s.refundable_minor == 0
    s = fold(s, domain.refund_failed(s, "r-k", reason="insufficient_funds"))
    assert s.status == domain.CAPTURED and s.refundable_minor == 24950
    assert s.refunds[0].status == domain.REFUND_FAILED
    # A late success report for a failed refund, or a second failure, changes nothing.
    assert domain.refund_completed(s, "r-k", provider_refund_id="re") == []
    assert domain.refund_failed(s, "r-k", reason="again") == []


def test_cash_refund_is_recorded_at_once() -> None:
    s = requested(domain.CASH_ON_DELIVERY)
    s = fold(
        s,
        domain.record_cash(
            s,
            amount_minor=24950,
            currency="MXN",
            method=domain.CASH_ON_DELIVERY,
            idempotency_key="cash-1",
            collected_by="driver-7",
            at=T0,
        ),
    )
    assert s.status == domain.CAPTURED
    s, events = refund(s, 1000, "k")
    assert [type(e) for e in events] == [pe.RefundRequested, pe.PaymentRefunded]
    assert (s.status, s.refunded_minor) == (domain.PARTIALLY_REFUNDED, 1000)


def test_record_cash_rules() -> None:
    s = requested(domain.CASH_ON_DELIVERY)
    with pytest.raises(domain.CashRejected):
        domain.record_cash(
            s,
            amount_minor=24950,
            currency="MXN",
            method=domain.CARD_ON_DELIVERY,
            idempotency_key="k",
            collected_by="",
            at=T0,
        )
    short = domain.record_cash(
        s,
        amount_minor=20000,
        currency="MXN",
        method=domain.CASH_ON_DELIVERY,
        idempotency_key="k",
        collected_by="",
        at=T0,
    )
    flagged = fold(s, short)
    assert (flagged.status, flagged.flag_reason) == (domain.FLAGGED, domain.AMOUNT_MISMATCH)
    # The same key again: nothing; another key: not awaiting collection any more.
    assert (
        domain.record_cash(
            flagged,
            amount_minor=20000,
            currency="MXN",
            method=domain.CASH_ON_DELIVERY,
            idempotency_key="k",
            collected_by="",
            at=T0,
        )
        == []
    )
    with pytest.raises(domain.CashRejected):
        domain.record_cash(
            flagged,
            amount_minor=24950,
            currency="MXN",
            method=domain.CASH_ON_DELIVERY,
            idempotency_key="k2",
            collected_by="",
            at=T0,
        )
    with pytest.raises(domain.CashRejected):
        domain.record_cash(
            linked(),
            amount_minor=24950,
            currency="MXN",
            method=domain.CASH_ON_DELIVERY,
            idempotency_key="k3",
            collected_by="",
            at=T0,
        )


def test_charge_refunded_reconciles_without_counting_twice() -> None:
    s = captured()
    # A refund we asked for; the webhook beats the gateway's report of the call.
    s, _ = refund(s, 5000, "a")
    charge = domain.StripeEvent(
        domain.CHARGE_REFUNDED, "evt_r1", 24950, "MXN", "succeeded", "pi_1", 5000
    )
    events = domain.stripe_event(s, charge, new_refund_id="dash-1")
    assert [(e.refund_id, e.amount_minor, e.source) for e in events] == [("r-a", 5000, "webhook")]
    s = fold(s, events)
    assert domain.refund_completed(s, "r-a", provider_refund_id="re_a") == []
    # A dashboard refund of 2000 more: cumulative 7000.
    dash = domain.StripeEvent(
        domain.CHARGE_REFUNDED, "evt_r2", 24950, "MXN", "succeeded", "pi_1", 7000
    )
    events = domain.stripe_event(s, dash, new_refund_id="dash-2")
    assert [(e.refund_id, e.amount_minor) for e in events] == [("dash-2", 2000)]
    s = fold(s, events)
    assert (s.refunded_minor, s.status) == (7000, domain.PARTIALLY_REFUNDED)
    # An older cumulative figure arriving late: nothing.
    assert domain.stripe_event(s, charge, new_refund_id="dash-3") == []


def test_pre_checkout_answers() -> None:
    tg = requested(domain.TELEGRAM)
    ok = domain.answer_pre_checkout(
        tg, channel_account_id="acc-tg", total_minor=24950, currency="MXN"
    )
    assert ok.ok
    for state, acc, total in ((tg, "acc-tg", 1), (tg, "other", 24950), (None, "acc-tg", 24950)):
        answer = domain.answer_pre_checkout(
            state, channel_account_id=acc, total_minor=total, currency="MXN"
        )
        assert not answer.ok and answer.error_message
    closed = fold(tg, domain.cancel(tg, "x"))
    assert not domain.answer_pre_checkout(
        closed, channel_account_id="acc-tg", total_minor=24950, currency="MXN"
    ).ok


# ------------------------------------------------------------------ properties

AMOUNT = 24950


def _stripe_events(refund_steps: list[int], mismatch: bool) -> list[domain.StripeEvent]:
    paid = AMOUNT + (1 if mismatch else 0)
    events = [
        domain.StripeEvent(domain.SESSION_COMPLETED, "evt_c", paid, "MXN", "paid", "pi_1"),
        domain.StripeEvent(domain.INTENT_SUCCEEDED, "evt_pi", paid, "mxn", "succeeded", "pi_1"),
        domain.StripeEvent(domain.SESSION_COMPLETED, "evt_u", paid, "MXN", "unpaid", "pi_1"),
        domain.StripeEvent("payment_intent.created", "evt_x", paid, "MXN", "", "pi_1"),
    ]
    total = 0
    for i, step in enumerate(refund_steps):
        total = min(paid, total + step)
        events.append(
            domain.StripeEvent(
                domain.CHARGE_REFUNDED, f"evt_r{i}", paid, "MXN", "succeeded", "pi_1", total
            )
        )
    return events


def _run(events: list[domain.StripeEvent]) -> Payment:
    s = linked()
    for e in events:
        s = fold(s, domain.stripe_event(s, e, new_refund_id=f"dash-{e.provider_event_id}"))
    return s


@settings(max_examples=150, deadline=None)
@given(
    refund_steps=st.lists(st.integers(min_value=1, max_value=AMOUNT), max_size=3),
    mismatch=st.booleans(),
    data=st.data(),
)
def test_any_order_of_the_same_provider_events_gives_the_same_final_state(
    refund_steps: list[int], mismatch: bool, data: st.DataObject
) -> None:
    events = _stripe_events(refund_steps, mismatch)
    in_order = _run(events)
    # Any order, any event delivered up to three times.
    shuffled = data.draw(st.permutations(events))
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=6))
    other = _run([*shuffled, *repeats])
    key = lambda s: (  # noqa: E731
        s.status,
        s.captured_minor,
        s.refunded_minor,
        s.flag_reason,
        s.provider_payment_id,
    )
    assert key(other) == key(in_order)
    assert in_order.status in (
        domain.CAPTURED,
        domain.FLAGGED,
        domain.PARTIALLY_REFUNDED,
        domain.REFUNDED,
    )
    expected_refunded = min(sum(refund_steps), AMOUNT + (1 if mismatch else 0))
    assert in_order.refunded_minor == expected_refunded
    assert other.refunded_minor <= other.captured_minor


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["refund", "complete", "fail", "webhook"]), st.integers(0, AMOUNT)
        ),
        max_size=12,
    )
)
def test_refunds_never_exceed_what_was_captured(steps: list[tuple[str, int]]) -> None:
    s = captured()
    for n, (op, amount) in enumerate(steps):
        pending = [r for r in s.refunds if r.status == domain.REFUND_REQUESTED]
        if op == "refund":
            try:
                s, _ = refund(s, amount, f"k{n}")
            except domain.RefundRejected:
                pass
            else:  # an accepted request never asks for more than remains
                assert s.refunded_minor + s.pending_refunds_minor <= s.captured_minor
        elif op in ("complete", "fail") and pending:
            r = pending[0]
            events = (
                domain.refund_completed(s, r.refund_id, provider_refund_id="re")
                if op == "complete"
                else domain.refund_failed(s, r.refund_id, reason="no")
            )
            s = fold(s, events)
        elif op == "webhook":
            e = domain.StripeEvent(
                domain.CHARGE_REFUNDED,
                f"evt{n}",
                AMOUNT,
                "MXN",
                "",
                "pi_1",
                s.refunded_minor + amount,
            )
            s = fold(s, domain.stripe_event(s, e, new_refund_id=f"d{n}"))
        assert 0 <= s.refunded_minor <= s.captured_minor
        assert s.refunded_minor == sum(
            r.amount_minor for r in s.refunds if r.status == domain.REFUND_SUCCEEDED
        )


# ------------------------------------------------------------------------------ fast paths


def test_evolved_is_replace() -> None:
    # apply builds each new state with domain._evolved instead of Payment._replace: the same
    # payment for every field changed alone, and for all of them at once.
    state = fold(None, domain.request_payment(None, due()))
    values: dict[str, object] = {}
    for name in Payment._fields:
        value: object = getattr(state, name)
        if isinstance(value, bool) or not isinstance(value, str | int | datetime | tuple):
            value = T0 + timedelta(days=2)  # expires_at (None)
        elif isinstance(value, str):
            value = value + "-changed"
        elif isinstance(value, int):
            value = value + 7
        elif isinstance(value, datetime):
            value = value + timedelta(seconds=1)
        else:
            value = (domain.Refund("r1", 5, domain.REFUND_REQUESTED, T0),)
        values[name] = value
        alone = domain._evolved(state, {name: value})
        assert alone == state._replace(**{name: value})
        assert type(alone) is Payment
    assert domain._evolved(state, values) == state._replace(**values)
    assert domain._evolved(state, {}) == state


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (1_714_564_800, 0),
        (1_714_564_800, 123_456_789),
        (1_714_564_800, 999_999_999),
        (0, 1),
        (-1, 999_999_000),
        (-62_135_596_800, 0),
        (253_402_300_799, 999_999_999),
    ],
)
def test_projection_time_is_timestamp_to_datetime(seconds: int, nanos: int) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from parlay_payments.projections import _time

    ts = Timestamp(seconds=seconds, nanos=nanos)
    got = _time(ts)
    assert got == ts.ToDatetime(tzinfo=UTC)
    assert got is not None and got.tzinfo is UTC
    assert _time(Timestamp()) is None


def test_projection_time_refuses_what_to_datetime_refuses() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from parlay_payments.projections import _time

    for bad in (Timestamp(seconds=1, nanos=-1), Timestamp(seconds=253_402_300_800)):
        with pytest.raises(ValueError):
            bad.ToDatetime(tzinfo=UTC)
        with pytest.raises(ValueError):
            _time(bad)
