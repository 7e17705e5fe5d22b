"""The profile service end to end against a real broker and Postgres: gateway events go onto a
real inbound topic, the real projector resolves identities, the kit's gRPC server (API-key
auth, status mapping) serves ProfileService, the relay publishes the profile topic, and the
profile topic alone rebuilds identical read models. One running service for the whole module
(each test has its own tenant); waits are on stored offsets and relay positions, never sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay.profile.v1 import profile_service_pb2 as ps
from parlay.profile.v1 import profile_service_pb2_grpc as ps_grpc
from parlay_kit import tenancy
from parlay_kit.envelope import NewEvent, decode, deterministic_event_id, unpack, utcnow
from parlay_kit.grpc_server import FIELD_TRAILER, build_server, create_channel
from parlay_kit.projector import Projector
from parlay_kit.runtime import ServiceRuntime
from parlay_kit.testing import unique_name
from parlay_profile.commands import ProfileCommands
from parlay_profile.projections import CustomerProjection, IdentityResolution
from parlay_profile.readmodel import CustomerReadModel
from parlay_profile.servicer import SERVICE_NAME, ProfileServicer

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
READ_MODEL_TABLES = (
    "customers",
    "customer_identities",
    "customer_channels",
    "customer_consents",
    "customer_merges",
)


@dataclass
class Service:
    bus: object
    runtime: ServiceRuntime
    projector: Projector
    schema: str
    address: str
    channels: list[grpc.aio.Channel]

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.runtime.pool is not None
        return self.runtime.pool

    async def tenant(self) -> tuple[str, ps_grpc.ProfileServiceStub]:
        """A new tenant and a stub authenticated with its API key."""
        async with self.pool.acquire() as conn:
            tenant = (
                await tenancy.create_tenant(conn, "Shop", unique_name("shop"), schema=self.schema)
            ).tenant_id
            key = (await tenancy.create_api_key(conn, tenant, schema=self.schema)).key
        channel = create_channel(self.address, api_key=key, telemetry_enabled=False)
        self.channels.append(channel)
        return tenant, ps_grpc.ProfileServiceStub(channel)

    async def send(self, *events: NewEvent) -> None:
        """Produce gateway events and wait until the projector has applied them."""
        for event in events:
            await self.bus.produce(self.bus.inbound, event)
        await self.bus.wait_caught_up(self.projector)


def message(
    tenant: str,
    address: str,
    *,
    channel: str = "whatsapp",
    text: str = "hello",
    name: str = "",
    at: datetime = T0,
) -> NewEvent:
    provider_id = unique_name("msg")
    msg = ge.MessageReceived(
        channel=channel,
        channel_account_id="acc-1",
        provider_message_id=provider_id,
        sender=ge.ChannelAddress(channel=channel, address=address),
        sender_display_name=name,
        content=ge.MessageContent(text=ge.TextContent(body=text)),
        sender_phone=address if channel == "whatsapp" else "",
    )
    msg.sent_at.FromDatetime(at.astimezone(UTC).replace(tzinfo=None))
    return NewEvent(
        event_id=deterministic_event_id(channel, "acc-1", provider_id, "received"),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id=f"acc-1:{address}",
        payload=msg,
        occurred_at=at,
        topic="",
    )


@pytest.fixture(scope="module")
async def svc(bus, module_runtimes, module_schema) -> AsyncIterator[Service]:
    runtime = await module_runtimes.open(module_schema)
    rm = CustomerReadModel(module_schema)
    projector = runtime.add_projector(
        unique_name("identity"), [bus.inbound], IdentityResolution(rm, topic=bus.profile)
    )
    await module_runtimes.start(runtime)
    pool = runtime.pool
    assert pool is not None
    await tenancy.migrate(pool, module_schema)
    servicer = ProfileServicer(
        pool, rm, ProfileCommands(pool, runtime.store, rm, topic=bus.profile)
    )
    server = build_server(
        [(ps_grpc.add_ProfileServiceServicer_to_server, servicer)],
        resolver=tenancy.ApiKeyResolver(pool, schema=module_schema),
        service_names=[SERVICE_NAME],
        port=0,
        telemetry_enabled=False,
    )
    await server.start()
    service = Service(bus, runtime, projector, module_schema, server.address, [])
    try:
        yield service
    finally:
        for channel in service.channels:
            await channel.close()
        await server.stop(0)


def without_version(customer: ps.Customer) -> ps.Customer:
    copy = ps.Customer()
    copy.CopyFrom(customer)
    copy.version = 0
    return copy


async def get(stub, customer_id: str) -> ps.GetCustomerResponse:
    return await stub.GetCustomer(ps.GetCustomerRequest(customer_id=customer_id))


async def find(stub, channel: str, address: str) -> ps.Customer:
    reply = await stub.FindCustomerByIdentity(
        ps.FindCustomerByIdentityRequest(channel=channel, address=address)
    )
    return reply.customer


async def status_of(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


# ------------------------------------------------------------------------------- identity graph


async def test_whatsapp_and_sms_from_one_number_are_one_customer(svc: Service) -> None:
    tenant, stub = await svc.tenant()
    await svc.send(
        message(tenant, "16505551234", name="Ana"),
        message(tenant, "+16505551234", channel="twilio", at=T0 + timedelta(minutes=3)),
    )
    by_whatsapp = await find(stub, "whatsapp", "16505551234")
    by_sms = await find(stub, "twilio", "+16505551234")
    assert by_whatsapp == by_sms
    assert by_whatsapp.display_name == "Ana"
    links = {
        (link.identity.channel, link.identity.address): link for link in by_whatsapp.identity_links
    }
    assert set(links) == {("whatsapp", "16505551234"), ("twilio", "+16505551234")}
    assert links[("whatsapp", "16505551234")].evidence.rule == "first_contact"
    sms_link = links[("twilio", "+16505551234")]
    assert sms_link.evidence.rule == "same_phone"
    assert sms_link.evidence.actor == "system"
    assert sms_link.evidence.source_event_id  # the SMS's MessageReceived
    assert {c.channel for c in by_whatsapp.channels} == {"whatsapp", "twilio"}
    # "phone" searches the normalized number across channels.
    assert (await find(stub, "phone", "+1 (650) 555-1234")).customer_id == by_sms.customer_id
    found = await stub.SearchCustomers(ps.SearchCustomersRequest(phone="16505551234"))
    assert [c.customer_id for c in found.customers] == [by_sms.customer_id]


async def test_differently_formatted_numbers_are_one_customer(svc: Service) -> None:
    tenant, stub = await svc.tenant()
    await svc.send(
        message(tenant, "+1 (650) 555-0101", channel="sms", name=""),
        message(tenant, "16505550101", channel="whatsapp", at=T0 + timedelta(minutes=1)),
    )
    a = await find(stub, "sms", "+1 (650) 555-0101")
    b = await find(stub, "whatsapp", "16505550101")
    assert a.customer_id == b.customer_id
    assert {i.normalized_phone for i in a.identities} == {"+16505550101"}


async def test_same_name_different_numbers_are_two_customers(svc: Service) -> None:
    tenant, stub = await svc.tenant()
    await svc.send(
        message(tenant, "16505550201", name="Maria Garcia"),
        message(tenant, "16505550202", name="Maria Garcia"),
    )
    a = await find(stub, "whatsapp", "16505550201")
    b = await find(stub, "whatsapp", "16505550202")
    assert a.customer_id != b.customer_id
    found = await stub.SearchCustomers(ps.SearchCustomersRequest(name_prefix="maria g"))
    assert sorted(c.customer_id for c in found.customers) == sorted([a.customer_id, b.customer_id])
    # Paged.
    first = await stub.SearchCustomers(ps.SearchCustomersRequest(name_prefix="Maria", page_size=1))
    second = await stub.SearchCustomers(
        ps.SearchCustomersRequest(
            name_prefix="Maria", page_size=1, page_token=first.next_page_token
        )
    )
    assert first.next_page_token and not second.next_page_token
    assert {first.customers[0].customer_id, second.customers[0].customer_id} == {
        a.customer_id,
        b.customer_id,
    }


async def test_a_phone_shared_on_telegram_joins_the_whatsapp_customer(svc: Service) -> None:
    """The gateway's IdentityEvidenceObserved through the broker, as the Telegram adapter emits
    it for the "share my phone number" button."""
    tenant, stub = await svc.tenant()
    await svc.send(
        message(tenant, "16505550151", name="Ana"),
        message(tenant, "90151", channel="telegram", name="ana_tg", at=T0 + timedelta(hours=1)),
    )
    telegram = await find(stub, "telegram", "90151")
    assert telegram.customer_id != (await find(stub, "whatsapp", "16505550151")).customer_id
    evidence = NewEvent(
        event_id=deterministic_event_id("telegram", "acc-tg", "update-1", "shared_phone"),
        tenant_id=tenant,
        aggregate_type="contact",
        aggregate_id="acc-tg:90151",
        payload=ge.IdentityEvidenceObserved(
            channel="telegram",
            channel_account_id="acc-tg",
            subject=ge.ChannelAddress(channel="telegram", address="90151"),
            evidence_kind="shared_phone",
            phone="16505550151",
            provider_event_id="update-1",
        ),
        occurred_at=T0 + timedelta(hours=2),
        topic="",
    )
    await svc.send(evidence)
    joined = await find(stub, "telegram", "90151")
    ana = await find(stub, "whatsapp", "16505550151")
    assert joined == ana
    assert [m.customer_id for m in ana.merged_customers] == [telegram.customer_id]
    phone = next(link for link in ana.identity_links if link.identity.channel == "phone")
    assert (phone.identity.address, phone.evidence.rule, phone.evidence.source_event_id) == (
        "+16505550151",
        "shared_phone",
        evidence.event_id,
    )
    by_old_id = await get(stub, telegram.customer_id)
    assert by_old_id.merged and by_old_id.customer.customer_id == ana.customer_id


# ------------------------------------------------------------------------------- merges


async def test_merge_then_unmerge_round_trips_exactly(svc: Service) -> None:
    tenant, stub = await svc.tenant()
    await svc.send(
        message(tenant, "16505550301", name="Ana"),
        message(tenant, "444001", channel="telegram", name="ana_tg"),
        message(
            tenant, "+16505550301", channel="twilio", text="STOP", at=T0 + timedelta(minutes=1)
        ),
    )
    ana = await find(stub, "whatsapp", "16505550301")
    tg = await find(stub, "telegram", "444001")
    await stub.UpdateCustomer(
        ps.UpdateCustomerRequest(
            customer_id=ana.customer_id,
            expected_version=ana.version,
            locale="es",
            set_attributes={"tier": "gold", "city": "SF"},
            add_tags=["vip"],
        )
    )
    await stub.UpdateCustomer(
        ps.UpdateCustomerRequest(
            customer_id=tg.customer_id,
            set_attributes={"tier": "bronze", "shoe": "38"},
            add_tags=["telegram-lead"],
        )
    )
    await stub.SetConsent(
        ps.SetConsentRequest(
            customer_id=tg.customer_id,
            channel="telegram",
            purpose="marketing",
            granted=True,
            proof="checkbox on https://shop.example/signup",
            actor="crm",
        )
    )
    before_ana = (await get(stub, ana.customer_id)).customer
    before_tg = (await get(stub, tg.customer_id)).customer

    merged = await stub.MergeCustomers(
        ps.MergeCustomersRequest(
            survivor_customer_id=ana.customer_id,
            merged_customer_id=tg.customer_id,
            reason="same person, confirmed by phone",
            actor="agent-7",
        )
    )
    assert merged.merge_id
    survivor = merged.customer
    assert survivor.customer_id == ana.customer_id
    assert {(i.channel, i.address) for i in survivor.identities} == {
        ("whatsapp", "16505550301"),
        ("twilio", "+16505550301"),
        ("telegram", "444001"),
    }
    assert dict(survivor.attributes) == {"tier": "gold", "city": "SF", "shoe": "38"}
    assert list(survivor.tags) == ["telegram-lead", "vip"]
    assert [(m.customer_id, m.merge_id) for m in survivor.merged_customers] == [
        (tg.customer_id, merged.merge_id)
    ]
    # Read by the merged id: the survivor, saying so.
    by_merged = await get(stub, tg.customer_id)
    assert by_merged.merged and by_merged.requested_customer_id == tg.customer_id
    assert by_merged.merge_id == merged.merge_id
    assert by_merged.customer == survivor
    assert (await find(stub, "telegram", "444001")).customer_id == ana.customer_id
    assert not (await get(stub, ana.customer_id)).merged

    unmerged = await stub.UnmergeCustomers(
        ps.UnmergeCustomersRequest(merge_id=merged.merge_id, reason="wrong", actor="agent-8")
    )
    after_ana = (await get(stub, ana.customer_id)).customer
    after_tg_reply = await get(stub, tg.customer_id)
    assert not after_tg_reply.merged
    assert without_version(after_ana) == without_version(before_ana)
    assert without_version(after_tg_reply.customer) == without_version(before_tg)
    assert unmerged.survivor == after_ana and unmerged.restored == after_tg_reply.customer
    assert (after_ana.version, after_tg_reply.customer.version) == (
        before_ana.version + 2,
        before_tg.version + 2,
    )
    # A second unmerge of the same merge: FAILED_PRECONDITION.
    err = await status_of(
        stub.UnmergeCustomers(ps.UnmergeCustomersRequest(merge_id=merged.merge_id))
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION

    # The timeline tells the story; the profile topic carries it for other services.
    history = await stub.GetCustomerHistory(
        ps.GetCustomerHistoryRequest(customer_id=tg.customer_id)
    )
    types = [e.event.event_type.rsplit(".", 1)[1] for e in history.entries]
    assert types[-2:] == ["CustomerMergedInto", "CustomerUnmergedFrom"]
    assert [e.event.aggregate_version for e in history.entries] == list(
        range(1, len(history.entries) + 1)
    )
    await svc.bus.wait_published(svc.runtime)
    published = [decode(r.value) for r in await svc.bus.read_all(svc.bus.profile)]
    ours = [e for e in published if e.tenant_id == tenant]
    merge_events = [unpack(e) for e in ours if e.event_type.endswith("ProfilesMerged")]
    assert [(m.survivor_customer_id, m.merged_customer_id, m.merge_id) for m in merge_events] == [
        (ana.customer_id, tg.customer_id, merged.merge_id)
    ]
    assert merge_events[0].evidence.actor == "agent-7"
    unmerge_events = [unpack(e) for e in ours if e.event_type.endswith("ProfilesUnmerged")]
    assert [(u.survivor_customer_id, u.merged_customer_id) for u in unmerge_events] == [
        (ana.customer_id, tg.customer_id)
    ]


async def test_a_merge_across_tenants_is_refused_and_changes_nothing(svc: Service) -> None:
    tenant, stub = await svc.tenant()
    other, other_stub = await svc.tenant()
    await svc.send(message(tenant, "16505550401"), message(other, "16505550402"))
    mine = await find(stub, "whatsapp", "16505550401")
    theirs = await find(other_stub, "whatsapp", "16505550402")
    count = f"SELECT count(*) FROM {svc.schema}.events WHERE aggregate_id = ANY($1::text[])"
    events_before = await svc.pool.fetchval(count, [mine.customer_id, theirs.customer_id])
    for survivor, merged in (
        (mine.customer_id, theirs.customer_id),
        (theirs.customer_id, mine.customer_id),
    ):
        err = await status_of(
            stub.MergeCustomers(
                ps.MergeCustomersRequest(survivor_customer_id=survivor, merged_customer_id=merged)
            )
        )
        assert err.code() == grpc.StatusCode.NOT_FOUND
    assert await svc.pool.fetchval(count, [mine.customer_id, theirs.customer_id]) == events_before
    assert (await get(stub, mine.customer_id)).customer == mine
    assert (await get(other_stub, theirs.customer_id)).customer == theirs
    # Another tenant's customer does not exist for the caller, by any door.
    for call in (
        stub.GetCustomer(ps.GetCustomerRequest(customer_id=theirs.customer_id)),
        stub.GetCustomerHistory(ps.GetCustomerHistoryRequest(customer_id=theirs.customer_id)),
        stub.CanContact(
            ps.CanContactRequest(
                customer_id=theirs.customer_id, channel="whatsapp", purpose="marketing"
            )
        ),
        stub.UpdateCustomer(ps.UpdateCustomerRequest(customer_id=theirs.customer_id, locale="en")),
    ):
        assert (await status_of(call)).code() == grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------------------------- consent


async def test_stop_then_start_on_sms_flips_marketing_consent_with_evidence(
    svc: Service,
) -> None:
    tenant, stub = await svc.tenant()
    first = message(tenant, "+16505550501", channel="twilio", text="Hi, my order?")
    await svc.send(first)
    customer = await find(stub, "twilio", "+16505550501")

    async def can(purpose: str = "marketing") -> ps.CanContactResponse:
        return await stub.CanContact(
            ps.CanContactRequest(customer_id=customer.customer_id, channel="sms", purpose=purpose)
        )

    opted_in = await stub.SetConsent(
        ps.SetConsentRequest(
            customer_id=customer.customer_id,
            channel="sms",
            purpose="marketing",
            granted=True,
            proof="keyword JOIN on short code 12345",
            actor="crm",
        )
    )
    assert opted_in.consent.granted and opted_in.consent.source == "business"
    assert (await can()).allowed

    stop = message(
        tenant, "+16505550501", channel="twilio", text="STOP", at=utcnow() + timedelta(seconds=5)
    )
    await svc.send(stop)
    answer = await can()
    assert not answer.allowed
    assert "opted out" in answer.reason and "STOP" in answer.reason
    assert answer.consent.source == "keyword"
    assert answer.consent.evidence.rule == "keyword"
    assert answer.consent.evidence.source_event_id == stop.event_id
    assert answer.consent.identity.channel == "twilio"
    assert not (await can("transactional")).allowed  # SMS carriers block everything

    start = message(
        tenant, "+16505550501", channel="twilio", text="Start", at=utcnow() + timedelta(seconds=10)
    )
    await svc.send(start)
    answer = await can()
    assert answer.allowed and answer.consent.evidence.source_event_id == start.event_id
    assert (await can("transactional")).allowed
    # The ledger is the customer's timeline.
    history = await stub.GetCustomerHistory(
        ps.GetCustomerHistoryRequest(customer_id=customer.customer_id)
    )
    consent_lines = [e.summary for e in history.entries if "ConsentChanged" in e.event.event_type]
    assert len(consent_lines) == 5  # business opt-in, STOP x2 purposes, START x2 purposes
    assert any("withdrawn" in line and "STOP" in line for line in consent_lines)


# ------------------------------------------------------------------------------- time travel


async def test_get_customer_as_of_before_and_after_a_merge(svc: Service) -> None:
    tenant, stub = await svc.tenant()
    await svc.send(message(tenant, "16505550601", name="Ana"))
    born = utcnow()
    await svc.send(message(tenant, "16505550602", name="Ana B"))
    a = await find(stub, "whatsapp", "16505550601")
    b = await find(stub, "whatsapp", "16505550602")
    before_merge = utcnow()
    merged = await stub.MergeCustomers(
        ps.MergeCustomersRequest(
            survivor_customer_id=a.customer_id, merged_customer_id=b.customer_id
        )
    )
    after_merge = utcnow()

    async def as_of(customer_id: str, at: datetime) -> ps.GetCustomerAsOfResponse:
        ts = Timestamp()
        ts.FromDatetime(at.astimezone(UTC).replace(tzinfo=None))
        return await stub.GetCustomerAsOf(
            ps.GetCustomerAsOfRequest(customer_id=customer_id, as_of=ts)
        )

    then = await as_of(b.customer_id, before_merge)
    assert not then.merged
    assert then.customer == b  # exactly what GetCustomer said before the merge
    now = await as_of(b.customer_id, after_merge)
    assert now.merged and now.merge_id == merged.merge_id
    assert now.customer.customer_id == a.customer_id
    assert {i.address for i in now.customer.identities} == {"16505550601", "16505550602"}
    assert now.customer == (await get(stub, b.customer_id)).customer
    assert (await as_of(a.customer_id, before_merge)).customer == a
    # Before b existed: NOT_FOUND; a existed already.
    err = await status_of(as_of(b.customer_id, born))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert (await as_of(a.customer_id, born)).customer.customer_id == a.customer_id


# ------------------------------------------------------------------------------- errors


async def test_update_customer_conflicts_and_invalid_arguments(svc: Service) -> None:
    tenant, stub = await svc.tenant()
    await svc.send(message(tenant, "16505550701", name="Bo"))
    bo = await find(stub, "whatsapp", "16505550701")
    updated = await stub.UpdateCustomer(
        ps.UpdateCustomerRequest(
            customer_id=bo.customer_id, expected_version=bo.version, display_name="Bo Li"
        )
    )
    assert updated.customer.display_name == "Bo Li"
    assert updated.customer.version == bo.version + 1
    err = await status_of(
        stub.UpdateCustomer(
            ps.UpdateCustomerRequest(
                customer_id=bo.customer_id, expected_version=bo.version, locale="en"
            )
        )
    )
    assert err.code() == grpc.StatusCode.ABORTED
    cases = [
        (stub.UpdateCustomer(ps.UpdateCustomerRequest(locale="en")), "customer_id"),
        (
            stub.UpdateCustomer(
                ps.UpdateCustomerRequest(customer_id=bo.customer_id, locale="english please")
            ),
            "locale",
        ),
        (
            stub.MergeCustomers(ps.MergeCustomersRequest(merged_customer_id="x")),
            "survivor_customer_id",
        ),
        (
            stub.MergeCustomers(
                ps.MergeCustomersRequest(
                    survivor_customer_id=bo.customer_id, merged_customer_id=bo.customer_id
                )
            ),
            "merged_customer_id",
        ),
        (stub.UnmergeCustomers(ps.UnmergeCustomersRequest()), "merge_id"),
        (
            stub.SetConsent(
                ps.SetConsentRequest(
                    customer_id=bo.customer_id,
                    channel="whatsapp",
                    purpose="marketing",
                    granted=True,
                )
            ),
            "proof",
        ),
        (
            stub.CanContact(
                ps.CanContactRequest(customer_id=bo.customer_id, channel="sms", purpose="spam")
            ),
            "purpose",
        ),
        (
            stub.LinkIdentity(
                ps.LinkIdentityRequest(customer_id=bo.customer_id, channel="phone", address="x")
            ),
            "address",
        ),
        (stub.GetCustomerAsOf(ps.GetCustomerAsOfRequest(customer_id=bo.customer_id)), "as_of"),
        (stub.SearchCustomers(ps.SearchCustomersRequest(phone="call me")), "phone"),
    ]
    for call, field in cases:
        err = await status_of(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.details())
        assert (FIELD_TRAILER, field) in tuple(err.trailing_metadata() or ()), field
    assert (
        await status_of(stub.UnmergeCustomers(ps.UnmergeCustomersRequest(merge_id="no-such-merge")))
    ).code() == grpc.StatusCode.NOT_FOUND


async def test_link_and_unlink_identity(svc: Service) -> None:
    tenant, stub = await svc.tenant()
    await svc.send(
        message(tenant, "16505550801", name="Cy"),
        message(tenant, "u-55", channel="webchat", at=T0 + timedelta(minutes=1)),
    )
    cy = await find(stub, "whatsapp", "16505550801")
    visitor = await find(stub, "webchat", "u-55")
    # Linking an identity another customer holds: FAILED_PRECONDITION.
    err = await status_of(
        stub.LinkIdentity(
            ps.LinkIdentityRequest(customer_id=cy.customer_id, channel="webchat", address="u-55")
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Someone links the phone number the visitor gave: the phone rule joins the two.
    reply = await stub.LinkIdentity(
        ps.LinkIdentityRequest(
            customer_id=visitor.customer_id,
            channel="phone",
            address="+1 650-555-0801",
            note="typed at checkout",
            actor="agent-2",
        )
    )
    assert reply.customer.customer_id == cy.customer_id  # the older customer survives
    assert [m.customer_id for m in reply.customer.merged_customers] == [visitor.customer_id]
    phone_link = next(
        link for link in reply.customer.identity_links if link.identity.channel == "phone"
    )
    assert (phone_link.identity.address, phone_link.evidence.rule) == ("+16505550801", "manual")
    assert (phone_link.evidence.actor, phone_link.evidence.note) == ("agent-2", "typed at checkout")
    assert phone_link.customer_id == visitor.customer_id
    assert (await find(stub, "webchat", "u-55")).customer_id == cy.customer_id
    # Linking what the group already holds is a no-op, not an error.
    again = await stub.LinkIdentity(
        ps.LinkIdentityRequest(customer_id=cy.customer_id, channel="webchat", address="u-55")
    )
    assert again.customer == (await get(stub, cy.customer_id)).customer


async def test_unlink_identity_then_a_new_message_is_a_new_customer(svc: Service) -> None:
    tenant, stub = await svc.tenant()
    await svc.send(
        message(tenant, "16505550901", name="Shared phone"),
        message(tenant, "+16505550901", channel="twilio", at=T0 + timedelta(minutes=1)),
    )
    owner = await find(stub, "whatsapp", "16505550901")
    reply = await stub.UnlinkIdentity(
        ps.UnlinkIdentityRequest(
            customer_id=owner.customer_id,
            channel="twilio",
            address="+16505550901",
            note="the SMS number is her husband's",
            actor="agent-3",
        )
    )
    assert {i.channel for i in reply.customer.identities} == {"whatsapp"}
    err = await status_of(find(stub, "twilio", "+16505550901"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await svc.send(
        message(tenant, "+16505550901", channel="twilio", at=utcnow() + timedelta(seconds=1))
    )
    husband = await find(stub, "twilio", "+16505550901")
    assert husband.customer_id != owner.customer_id
    # Both hold the number; "phone" answers the older one, SearchCustomers lists both.
    found = await stub.SearchCustomers(ps.SearchCustomersRequest(phone="+16505550901"))
    assert {c.customer_id for c in found.customers} == {owner.customer_id, husband.customer_id}
    history = await stub.GetCustomerHistory(
        ps.GetCustomerHistoryRequest(customer_id=owner.customer_id, page_size=2)
    )
    assert len(history.entries) == 2 and history.next_page_token
    rest = await stub.GetCustomerHistory(
        ps.GetCustomerHistoryRequest(
            customer_id=owner.customer_id, page_token=history.next_page_token
        )
    )
    assert rest.entries[-1].event.event_type == "parlay.profile.v1.IdentityUnlinked"
    assert "agent-3" in rest.entries[-1].summary


# ------------------------------------------------------------------------------- rebuild


async def checksums(pool: asyncpg.Pool, schema: str) -> dict[str, tuple[int, str]]:
    out = {}
    for table in READ_MODEL_TABLES:
        row = await pool.fetchrow(
            f"""SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))
                FROM {schema}.{table} t"""
        )
        out[table] = (row[0], row[1])
    return out


async def test_replaying_the_profile_topic_into_an_empty_schema_rebuilds_identical_read_models(
    svc: Service, module_runtimes, second_schema
) -> None:
    """Runs last in the module: every tenant above, merges and unmerges included."""
    await svc.bus.wait_caught_up(svc.projector)
    await svc.bus.wait_published(svc.runtime)
    live = await checksums(svc.pool, svc.schema)
    assert live["customer_merges"][0] >= 2 and live["customer_consents"][0] >= 4

    rebuild = await module_runtimes.open(second_schema)
    projector = rebuild.add_projector(
        unique_name("rebuild"),
        [svc.bus.profile],
        CustomerProjection(CustomerReadModel(second_schema)),
    )
    await module_runtimes.start(rebuild)
    await svc.bus.wait_caught_up(projector)
    assert projector.stats.dead_lettered == 0
    assert await checksums(rebuild.pool, second_schema) == live
    await module_runtimes.stop(rebuild)
