"""The payments projectors against a real broker and Postgres: orders and gateway events are
published as those services publish them, the real projectors decide, and the tests read the
payments event store (what the relay publishes for the gateway) and the read model. Each test
has its own tenant; waits are on stored offsets, never sleeps."""

from __future__ import annotations

import pytest

from parlay.payments.v1 import payments_events_pb2 as pe
from parlay_kit.testing import unique_name
from parlay_kit.topics import dead_letter_topic

CS = "create_checkout_session"


async def linked_payment(svc, tenant: str, order_id: str | None = None, **kw) -> tuple[str, str]:
    """An order awaiting a payment link, and the gateway's report that it made the session."""
    order_id = order_id or unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, order_id, **kw))
    pid = svc.payment_id_of(tenant, order_id, kw.get("attempt", 1))
    session = unique_name("cs")
    await svc.gateway(svc.action_completed(tenant, pid, CS, object_id=session))
    return pid, session


async def test_request_link_created_captured(svc) -> None:
    tenant = unique_name("tenant")
    order_id = unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, order_id))
    pid = svc.payment_id_of(tenant, order_id, 1)
    [requested] = await svc.events(pid)
    assert isinstance(requested, pe.PaymentRequested)
    assert (requested.order_id, requested.method, requested.amount_minor, requested.currency) == (
        order_id,
        "payment_link",
        24950,
        "MXN",
    )
    assert requested.idempotency_key == f"{order_id}:attempt:1"
    assert (await svc.payment(tenant, pid)).status == "requested"

    session = unique_name("cs")
    await svc.gateway(svc.action_completed(tenant, pid, CS, object_id=session))
    payment = await svc.payment(tenant, pid)
    assert payment.status == "link_created"
    assert (payment.provider_session_id, payment.provider_account_id) == (
        session,
        svc.STRIPE_ACCOUNT,
    )
    assert payment.checkout_url.endswith(session) and payment.expires_at is not None
    link = (await svc.events(pid))[1]
    assert isinstance(link, pe.PaymentLinkCreated)
    assert (link.provider, link.provider_session_id, link.attempt) == ("stripe", session, 1)

    await svc.gateway(
        svc.stripe_event(
            tenant,
            unique_name("evt"),
            "checkout.session.completed",
            session=session,
            intent="pi_" + session,
        )
    )
    payment = await svc.payment(tenant, pid)
    assert (payment.status, payment.captured_minor, payment.provider_payment_id) == (
        "captured",
        24950,
        "pi_" + session,
    )
    assert await svc.event_types(pid) == [
        "PaymentRequested",
        "PaymentLinkCreated",
        "PaymentCaptured",
    ]
    captured = (await svc.events(pid))[2]
    assert (captured.method, captured.amount_minor, captured.currency) == (
        "payment_link",
        24950,
        "MXN",
    )


async def test_same_event_three_times_and_reverse_order_change_nothing_more(svc) -> None:
    tenant = unique_name("tenant")
    pid, session = await linked_payment(svc, tenant)
    completed = svc.stripe_event(
        tenant, unique_name("evt"), "checkout.session.completed", session=session, intent="pi_a"
    )
    succeeded = svc.stripe_event(
        tenant,
        unique_name("evt"),
        "payment_intent.succeeded",
        intent="pi_a",
        metadata={"payment_id": pid},
        status="succeeded",
    )
    await svc.gateway(completed, completed, completed, succeeded, succeeded)
    assert await svc.event_types(pid) == [
        "PaymentRequested",
        "PaymentLinkCreated",
        "PaymentCaptured",
    ]
    first = await svc.payment(tenant, pid)

    # Reverse order on another payment: the payment intent (matched by the metadata the gateway
    # set, the session being ours on this account) before the session.
    pid2, session2 = await linked_payment(svc, tenant)
    succeeded2 = svc.stripe_event(
        tenant,
        unique_name("evt"),
        "payment_intent.succeeded",
        intent="pi_b",
        metadata={"payment_id": pid2},
        status="succeeded",
    )
    completed2 = svc.stripe_event(
        tenant, unique_name("evt"), "checkout.session.completed", session=session2, intent="pi_b"
    )
    await svc.gateway(succeeded2, completed2, succeeded2, completed2)
    assert await svc.event_types(pid2) == [
        "PaymentRequested",
        "PaymentLinkCreated",
        "PaymentCaptured",
    ]
    second = await svc.payment(tenant, pid2)
    assert (second.status, second.captured_minor, second.version) == (
        first.status,
        first.captured_minor,
        first.version,
    )
    assert second.provider_payment_id == "pi_b"


async def test_mismatched_amount_is_flagged_not_captured(svc) -> None:
    tenant = unique_name("tenant")
    pid, session = await linked_payment(svc, tenant)
    await svc.gateway(
        svc.stripe_event(
            tenant, unique_name("evt"), "checkout.session.completed", session=session, amount=100
        )
    )
    types = await svc.event_types(pid)
    assert types == ["PaymentRequested", "PaymentLinkCreated", "PaymentFlagged"]
    flagged = (await svc.events(pid))[2]
    assert (flagged.reason, flagged.expected_amount_minor, flagged.amount_minor) == (
        "amount_mismatch",
        24950,
        100,
    )
    payment = await svc.payment(tenant, pid)
    assert (payment.status, payment.flag_reason) == ("flagged", "amount_mismatch")

    pid2, session2 = await linked_payment(svc, tenant)
    await svc.gateway(
        svc.stripe_event(
            tenant,
            unique_name("evt"),
            "checkout.session.completed",
            session=session2,
            currency="USD",
        )
    )
    assert (await svc.payment(tenant, pid2)).flag_reason == "currency_mismatch"


async def test_unknown_session_is_rejected_and_nothing_else_changes(svc) -> None:
    tenant = unique_name("tenant")
    pid, session = await linked_payment(svc, tenant)
    before_rows = await svc.payment(tenant, pid)
    before = await svc.tenant_events(tenant)
    other_tenant = unique_name("tenant")
    evt = unique_name("evt")
    await svc.gateway(
        # A session payments never created.
        svc.stripe_event(tenant, evt, "checkout.session.completed", session="cs_not_ours"),
        # Our session id, but reported on another Stripe account.
        svc.stripe_event(
            tenant,
            unique_name("evt"),
            "checkout.session.completed",
            session=session,
            account="acc-other",
        ),
        # Our session, but another tenant's webhook.
        svc.stripe_event(
            other_tenant, unique_name("evt"), "checkout.session.completed", session=session
        ),
        # A payment intent naming our payment in its metadata, on another account.
        svc.stripe_event(
            tenant,
            unique_name("evt"),
            "payment_intent.succeeded",
            intent="pi_x",
            metadata={"payment_id": pid},
            account="acc-other",
        ),
    )
    after = await svc.tenant_events(tenant)
    new = after[len(before) :]
    assert after[: len(before)] == before
    assert [type(m).__name__ for _, m in new] == ["ProviderEventRejected"] * 3
    assert {agg for agg, _ in new} == {f"rejected:{svc.STRIPE_ACCOUNT}", "rejected:acc-other"}
    first = new[0][1]
    assert (first.provider_event_id, first.reason, first.provider_object_id) == (
        evt,
        "unknown_checkout_session",
        "cs_not_ours",
    )
    assert [m.reason for _, m in new[1:]] == ["unknown_checkout_session", "unknown_payment"]
    assert [type(m).__name__ for _, m in await svc.tenant_events(other_tenant)] == [
        "ProviderEventRejected"
    ]
    assert await svc.payment(tenant, pid) == before_rows


async def test_expired_and_late_events(svc) -> None:
    tenant = unique_name("tenant")
    pid, session = await linked_payment(svc, tenant, attempt=2)
    await svc.gateway(
        svc.stripe_event(
            tenant,
            unique_name("evt"),
            "checkout.session.expired",
            session=session,
            status="expired",
        )
    )
    [*_, expired] = await svc.events(pid)
    assert isinstance(expired, pe.PaymentExpired) and expired.attempt == 2
    assert (await svc.payment(tenant, pid)).status == "expired"

    # Captured first: a late expiry changes nothing.
    pid2, session2 = await linked_payment(svc, tenant)
    await svc.gateway(
        svc.stripe_event(
            tenant, unique_name("evt"), "checkout.session.completed", session=session2
        ),
        svc.stripe_event(tenant, unique_name("evt"), "checkout.session.expired", session=session2),
    )
    assert (await svc.payment(tenant, pid2)).status == "captured"
    assert "PaymentExpired" not in await svc.event_types(pid2)


async def test_charge_refunded_reconciliation(svc) -> None:
    tenant = unique_name("tenant")
    pid, session = await linked_payment(svc, tenant)
    intent = "pi_" + session
    await svc.gateway(
        svc.stripe_event(
            tenant, unique_name("evt"), "checkout.session.completed", session=session, intent=intent
        )
    )
    dashboard = svc.stripe_event(
        tenant,
        unique_name("evt"),
        "charge.refunded",
        intent=intent,
        refunded=5000,
        status="succeeded",
    )
    await svc.gateway(dashboard, dashboard)
    payment = await svc.payment(tenant, pid)
    assert (payment.status, payment.refunded_minor) == ("partially_refunded", 5000)
    [refunded] = [e for e in await svc.events(pid) if isinstance(e, pe.PaymentRefunded)]
    assert (refunded.source, refunded.amount_minor, refunded.refunded_total_minor) == (
        "webhook",
        5000,
        5000,
    )
    assert not refunded.fully_refunded
    # The rest, and an older cumulative figure delivered late.
    await svc.gateway(
        svc.stripe_event(
            tenant, unique_name("evt"), "charge.refunded", intent=intent, refunded=24950
        ),
        svc.stripe_event(
            tenant, unique_name("evt"), "charge.refunded", intent=intent, refunded=5000
        ),
    )
    payment = await svc.payment(tenant, pid)
    assert (payment.status, payment.refunded_minor) == ("refunded", 24950)
    assert [r.amount_minor for r in payment.refunds] == [5000, 19950]
    # A late completed after the refund: nothing.
    await svc.gateway(
        svc.stripe_event(
            tenant, unique_name("evt"), "checkout.session.completed", session=session, intent=intent
        )
    )
    assert (await svc.payment(tenant, pid)).status == "refunded"
    assert (await svc.event_types(pid)).count("PaymentCaptured") == 1


async def test_order_cancelled_cancels_the_open_payment_and_money_after_is_flagged(svc) -> None:
    tenant = unique_name("tenant")
    order_id = unique_name("ord")
    pid, session = await linked_payment(svc, tenant, order_id)
    await svc.orders(svc.order_cancelled(tenant, order_id))
    [*_, cancelled] = await svc.events(pid)
    assert isinstance(cancelled, pe.PaymentCancelled)
    assert (cancelled.provider_session_id, cancelled.provider_account_id, cancelled.reason) == (
        session,
        svc.STRIPE_ACCOUNT,
        "customer_request",
    )
    assert (await svc.payment(tenant, pid)).status == "cancelled"
    await svc.gateway(
        svc.stripe_event(tenant, unique_name("evt"), "checkout.session.completed", session=session)
    )
    payment = await svc.payment(tenant, pid)
    assert (payment.status, payment.flag_reason) == ("flagged", "payment_cancelled")


async def test_cancelled_before_the_session_existed_expires_it_too(svc) -> None:
    tenant = unique_name("tenant")
    order_id = unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, order_id), svc.order_cancelled(tenant, order_id))
    pid = svc.payment_id_of(tenant, order_id, 1)
    await svc.gateway(svc.action_completed(tenant, pid, CS, object_id="cs_late_" + order_id))
    assert await svc.event_types(pid) == [
        "PaymentRequested",
        "PaymentCancelled",
        "PaymentCancelled",
    ]
    assert (await svc.events(pid))[2].provider_session_id == "cs_late_" + order_id


async def test_link_failed_and_other_actions(svc) -> None:
    tenant = unique_name("tenant")
    order_id = unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, order_id))
    pid = svc.payment_id_of(tenant, order_id, 1)
    await svc.gateway(
        svc.action_completed(tenant, pid, CS, ok=False, error_code="account_invalid"),
        # Not a payment of this tenant: ignored.
        svc.action_completed(unique_name("tenant"), pid, CS, object_id="cs_other"),
    )
    [*_, failed] = await svc.events(pid)
    assert isinstance(failed, pe.PaymentLinkFailed)
    assert failed.reason == "account_invalid: declined"
    assert (await svc.payment(tenant, pid)).status == "failed"


async def test_telegram_invoice_pre_checkout_and_successful_payment(svc) -> None:
    tenant = unique_name("tenant")
    order_id = unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, order_id, method="telegram"))
    pid = svc.payment_id_of(tenant, order_id, 1)
    requested, invoice = await svc.events(pid)
    assert isinstance(invoice, pe.TelegramInvoiceRequested)
    assert (invoice.chat_id, invoice.channel_account_id, invoice.payload, invoice.title) == (
        "chat-42",
        svc.TELEGRAM_ACCOUNT,
        pid,
        f"Order {order_id}",
    )
    assert invoice.description == requested.description != ""
    assert (invoice.amount_minor, invoice.currency) == (24950, "MXN")
    # The gateway sent it: recorded for operators, nothing decided.
    await svc.gateway(
        svc.action_completed(
            tenant, pid, "send_invoice", channel="telegram", account=svc.TELEGRAM_ACCOUNT
        )
    )
    [sent] = await svc.read_model.actions(svc.pool, pid)
    assert (sent["action"], sent["ok"], sent["channel_account_id"]) == (
        "send_invoice",
        True,
        svc.TELEGRAM_ACCOUNT,
    )
    assert await svc.event_types(pid) == ["PaymentRequested", "TelegramInvoiceRequested"]

    await svc.gateway(
        svc.telegram_payment(tenant, "pre_checkout_query", pid, query_id=unique_name("q")),
        svc.telegram_payment(tenant, "pre_checkout_query", pid, total=1, query_id=unique_name("q")),
        svc.telegram_payment(tenant, "pre_checkout_query", "no-such", query_id=unique_name("q")),
    )
    answers = [e for e in await svc.events(pid) if isinstance(e, pe.PreCheckoutQueryAnswered)]
    assert [a.ok for a in answers] == [True, False]
    assert answers[1].error_message
    [(agg, unknown)] = [
        (a, m) for a, m in await svc.tenant_events(tenant) if a.startswith("rejected:")
    ]
    assert isinstance(unknown, pe.PreCheckoutQueryAnswered) and not unknown.ok
    assert agg == f"rejected:{svc.TELEGRAM_ACCOUNT}"

    charge = unique_name("tgcharge")
    await svc.gateway(svc.telegram_payment(tenant, "successful_payment", pid, charge_id=charge))
    [*_, captured] = await svc.events(pid)
    assert isinstance(captured, pe.PaymentCaptured)
    assert (captured.method, captured.provider_payment_id, captured.amount_minor) == (
        "telegram",
        charge,
        24950,
    )
    assert (await svc.payment(tenant, pid)).status == "captured"
    # Paid: the invoice is no longer open.
    await svc.gateway(
        svc.telegram_payment(tenant, "pre_checkout_query", pid, query_id=unique_name("q"))
    )
    assert not [e for e in await svc.events(pid) if isinstance(e, pe.PreCheckoutQueryAnswered)][
        -1
    ].ok


async def test_telegram_successful_payment_with_another_amount_is_flagged(svc) -> None:
    tenant = unique_name("tenant")
    order_id = unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, order_id, method="telegram"))
    pid = svc.payment_id_of(tenant, order_id, 1)
    await svc.gateway(
        svc.telegram_payment(
            tenant, "successful_payment", pid, total=999, charge_id=unique_name("c")
        ),
        svc.telegram_payment(
            tenant, "successful_payment", "unknown-invoice", charge_id=unique_name("c")
        ),
    )
    assert (await svc.payment(tenant, pid)).flag_reason == "amount_mismatch"
    rejected = [m for a, m in await svc.tenant_events(tenant) if a.startswith("rejected:")]
    assert [(type(m).__name__, m.reason) for m in rejected] == [
        ("ProviderEventRejected", "unknown_invoice")
    ]


async def test_cash_on_delivery_awaits_collection(svc) -> None:
    tenant = unique_name("tenant")
    order_id = unique_name("ord")
    await svc.orders(svc.awaiting_payment(tenant, order_id, method="cash_on_delivery"))
    payment = await svc.payment(tenant, svc.payment_id_of(tenant, order_id, 1))
    assert (payment.status, payment.method) == ("awaiting_collection", "cash_on_delivery")


@pytest.mark.parametrize("method", ["bitcoin"])
async def test_an_order_event_payments_cannot_act_on_is_dead_lettered(svc, method) -> None:
    tenant = unique_name("tenant")
    order_id = unique_name("ord")
    bad = svc.awaiting_payment(tenant, order_id, method=method)
    good = svc.awaiting_payment(tenant, unique_name("ord"))
    before = svc.orders_projector.stats.dead_lettered
    await svc.orders(bad, good)
    assert svc.orders_projector.stats.dead_lettered == before + 1
    assert await svc.events(svc.payment_id_of(tenant, order_id, 1)) == []
    # The rest of the batch went through.
    assert [t for _, t in [(a, type(m).__name__) for a, m in await svc.tenant_events(tenant)]] == [
        "PaymentRequested"
    ]
    assert dead_letter_topic("payments") == "parlay.payments.dlq.v1"
