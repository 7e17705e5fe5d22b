"""Identity evidence, subscription changes and purchases through the real IdentityResolution
handler and Postgres (no broker needed: what the projector does for one batch).

Every payload is a generated contract type: the gateway's IdentityEvidenceObserved /
ContactSubscriptionChanged, orders' OrderPlaced and payments' PaymentCaptured.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.orders.v1 import orders_events_pb2 as oe
from parlay.payments.v1 import payments_events_pb2 as pe
from parlay_kit.envelope import NewEvent, deterministic_event_id, utcnow
from parlay_kit.projector import ConsumedEvent, UnitOfWork
from parlay_kit.testing import unique_name
from parlay_profile import domain, view
from parlay_profile.commands import ProfileCommands
from parlay_profile.projections import IdentityResolution
from parlay_profile.readmodel import CustomerReadModel

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TYPES: dict[str, type] = {
    "order": oe.OrderPlaced,
    "payment": pe.PaymentCaptured,
    "evidence": ge.IdentityEvidenceObserved,
    "subscription": ge.ContactSubscriptionChanged,
    "address": ge.ChannelAddress,
}


def consumed(tenant: str, payload, at: datetime, event_id: str | None = None) -> ConsumedEvent:
    event = NewEvent(
        event_id=event_id or deterministic_event_id(unique_name("ev")),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id="x",
        payload=payload,
        occurred_at=at,
        topic="",
    )
    return ConsumedEvent(event.to_envelope("gateway", 1, utcnow()), payload, "inbound", 0, 0, "")


def message(tenant: str, channel: str, address: str, at: datetime, name: str = "", text: str = ""):
    return consumed(
        tenant,
        ge.MessageReceived(
            channel=channel,
            channel_account_id="acc",
            provider_message_id=unique_name("m"),
            sender=ge.ChannelAddress(channel=channel, address=address),
            sender_display_name=name,
            content=ge.MessageContent(text=ge.TextContent(body=text)),
        ),
        at,
    )


def subject(channel: str, address: str):
    return TYPES["address"](channel=channel, address=address)


@pytest.fixture
async def env(runtimes, fresh_schema):
    runtime = await runtimes.open(fresh_schema)
    rm = CustomerReadModel(fresh_schema)
    handler = IdentityResolution(rm)
    commands = ProfileCommands(runtime.pool, runtime.store, rm)

    async def batch(*events: ConsumedEvent) -> list[NewEvent]:
        async with runtime.pool.acquire() as conn, conn.transaction():
            uow = UnitOfWork(conn)
            await handler.handle_batch(uow, list(events))
            stored = await runtime.store.append(conn, uow.emitted)
        assert all(not s.duplicate for s in stored)  # never a decided event twice
        return uow.emitted

    async def owner(tenant: str, channel: str, address: str) -> str:
        """The customer whose own stream holds the identity."""
        async with runtime.pool.acquire() as conn:
            state = await rm.find_by_identity(conn, tenant, channel, address)
        assert state is not None, (channel, address)
        return state.customer_id

    async def resolve(tenant: str, channel: str, address: str) -> view.CustomerView:
        customer_id = await owner(tenant, channel, address)
        async with runtime.pool.acquire() as conn:
            resolved = await commands.resolve(conn, tenant, customer_id)
        assert resolved is not None
        return resolved.view

    resolve.owner = owner  # type: ignore[attr-defined]
    return batch, resolve


async def test_identity_evidence_links_and_merges(env) -> None:
    batch, resolve = env
    tenant = unique_name("tenant")
    await batch(
        message(tenant, "whatsapp", "16505551111", T0, name="Ana"),
        message(tenant, "telegram", "9001", T0 + timedelta(minutes=1), name="ana_tg"),
        message(tenant, "webchat", "visitor-9", T0 + timedelta(minutes=2)),
    )
    shared = consumed(
        tenant,
        TYPES["evidence"](
            channel="telegram",
            channel_account_id="tg-bot",
            subject=subject("telegram", "9001"),
            evidence_kind="shared_phone",
            phone="+1 650 555 1111",
            provider_event_id="u1",
        ),
        T0 + timedelta(minutes=3),
    )
    verified = consumed(
        tenant,
        TYPES["evidence"](
            channel="webchat",
            subject=subject("webchat", "visitor-9"),
            evidence_kind="verified_email",
            email="ANA@example.com",
        ),
        T0 + timedelta(minutes=4),
    )
    unrelated_email = consumed(
        tenant,
        TYPES["evidence"](
            channel="webchat",
            subject=subject("webchat", "visitor-10"),
            evidence_kind="verified_email",
            email="someone.else@example.com",
        ),
        T0 + timedelta(minutes=4),
    )
    emitted = await batch(shared, verified, unrelated_email)
    kinds = [e.event_type.rsplit(".", 1)[1] for e in emitted]
    assert kinds.count("ProfilesMerged") == 1
    ana = await resolve(tenant, "whatsapp", "16505551111")
    assert (await resolve(tenant, "telegram", "9001")).customer_id == ana.customer_id
    assert {(i.link.channel, i.link.address) for i in ana.identities} == {
        ("whatsapp", "16505551111"),
        ("telegram", "9001"),
        ("phone", "+16505551111"),
    }
    phone = next(i for i in ana.identities if i.link.channel == "phone")
    assert phone.link.rule == domain.RULE_SHARED_PHONE
    assert phone.link.source_event_id == shared.event_id
    # The email makes no one else the same person (nobody else holds it) ...
    visitor = await resolve(tenant, "webchat", "visitor-9")
    assert visitor.customer_id != ana.customer_id
    assert ("email", "ana@example.com") in {
        (i.link.channel, i.link.address) for i in visitor.identities
    }
    # ... until a second identity verifies the same address: then they are joined.
    await batch(
        consumed(
            tenant,
            TYPES["evidence"](
                channel="whatsapp",
                subject=subject("whatsapp", "16505551111"),
                evidence_kind="verified_email",
                email="ana@example.com",
            ),
            T0 + timedelta(minutes=5),
        )
    )
    everyone = await resolve(tenant, "webchat", "visitor-9")
    assert everyone.customer_id == ana.customer_id
    assert {c for c, _ in everyone.merged} == {
        await resolve.owner(tenant, "telegram", "9001"),
        await resolve.owner(tenant, "webchat", "visitor-9"),
    }
    # Redelivered evidence decides nothing new.
    assert await batch(shared, verified) == []


async def test_changed_whatsapp_number_names_the_new_wa_id(env) -> None:
    """As the gateway reports it: about the old wa_id, `new_address` = the new wa_id."""
    batch, resolve = env
    tenant = unique_name("tenant")
    await batch(message(tenant, "whatsapp", "16505552222", T0, name="Cy"))
    changed = consumed(
        tenant,
        TYPES["evidence"](
            channel="whatsapp",
            channel_account_id="acc",
            subject=subject("whatsapp", "16505552222"),
            evidence_kind="changed_number",
            phone="447911002222",
            new_address="447911002222",
            provider_event_id="wamid.sys",
        ),
        T0 + timedelta(days=1),
    )
    await batch(changed)
    cy = await resolve(tenant, "whatsapp", "447911002222")
    assert cy.customer_id == (await resolve(tenant, "whatsapp", "16505552222")).customer_id
    link = next(i.link for i in cy.identities if i.link.address == "447911002222")
    assert (link.rule, link.normalized_phone, link.source_event_id) == (
        domain.RULE_CHANGED_NUMBER,
        "+447911002222",
        changed.event_id,
    )
    # The first message from the new number lands on Cy, not on a new customer.
    await batch(message(tenant, "whatsapp", "447911002222", T0 + timedelta(days=2), name="Cy"))
    assert (await resolve(tenant, "whatsapp", "447911002222")).customer_id == cy.customer_id


async def test_subscription_changes_and_purchases(env) -> None:
    batch, resolve = env
    tenant = unique_name("tenant")
    await batch(message(tenant, "line", "U77", T0))
    unfollow = consumed(
        tenant,
        TYPES["subscription"](
            channel="line", subject=subject("line", "U77"), subscribed=False, reason="unfollow"
        ),
        T0 + timedelta(minutes=1),
    )
    await batch(unfollow)
    line = await resolve(tenant, "line", "U77")
    answer = view.can_contact(line, "line", "transactional")
    assert not answer.allowed and answer.consent is not None
    assert answer.consent.record.source == "channel_event"
    assert answer.consent.record.source_event_id == unfollow.event_id
    assert answer.consent.record.note == "unfollow"
    await batch(
        consumed(
            tenant,
            TYPES["subscription"](channel="line", subject=subject("line", "U77"), subscribed=True),
            T0 + timedelta(minutes=2),
        )
    )
    assert view.can_contact(await resolve(tenant, "line", "U77"), "line", "marketing").allowed
    # Viber's conversation_started observes the state; it is no opt-in or opt-out.
    await batch(message(tenant, "viber", "vb-1", T0))
    await batch(
        consumed(
            tenant,
            TYPES["subscription"](
                channel="viber",
                subject=subject("viber", "vb-1"),
                subscribed=False,
                reason="conversation_started",
            ),
            T0 + timedelta(minutes=2),
        )
    )
    assert (await resolve(tenant, "viber", "vb-1")).consents == ()

    order = consumed(
        tenant,
        TYPES["order"](
            order_id="o-1", customer_id=line.customer_id, total_minor=2500, currency="usd"
        ),
        T0 + timedelta(minutes=3),
    )
    paid = consumed(
        tenant,
        TYPES["payment"](
            payment_id="p-1",
            order_id="o-1",
            customer_id=line.customer_id,
            amount_minor=2500,
            currency="usd",
        ),
        T0 + timedelta(minutes=4),
    )
    foreign = consumed(
        unique_name("other"),
        TYPES["order"](order_id="o-2", customer_id=line.customer_id),
        T0 + timedelta(minutes=5),
    )
    await batch(order, paid, foreign)
    assert await batch(order, paid) == []  # redelivered: counted once
    summary = await resolve(tenant, "line", "U77")
    assert summary.order_count == 1
    assert summary.lifetime_value == (("USD", 2500),)
