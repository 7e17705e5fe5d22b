"""ProfileService over a real gRPC server (the kit's server: API-key auth, status mapping) on
read models written by the real adapter; tenants and keys in a real tenancy schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from parlay.profile.v1 import profile_service_pb2 as ps
from parlay.profile.v1 import profile_service_pb2_grpc as ps_grpc
from parlay_kit import tenancy
from parlay_kit.auth import tenant_scope
from parlay_kit.db import create_pool, migrate
from parlay_kit.errors import InvalidArgument, NotFound, Unauthenticated
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS, EventStore
from parlay_kit.grpc_server import FIELD_TRAILER, build_server, create_channel
from parlay_kit.testbus import two_tenants
from parlay_kit.testing import unique_name
from parlay_profile import domain, rules
from parlay_profile.commands import ProfileCommands
from parlay_profile.memory import InMemoryProfiles
from parlay_profile.readmodel import MIGRATIONS, CustomerReadModel
from parlay_profile.servicer import SERVICE_NAME, ProfileServicer

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Env:
    servicer: ProfileServicer
    stub: ps_grpc.ProfileServiceStub
    other: ps_grpc.ProfileServiceStub
    anonymous: ps_grpc.ProfileServiceStub
    tenant: str
    other_tenant: str
    ana: domain.CustomerState


def _observe(tenant: str, channel: str, address: str, name: str, at: datetime, src: str):
    return rules.observation(
        tenant_id=tenant,
        channel=channel,
        address=address,
        channel_account_id="acc",
        display_name=name,
        occurred_at=at,
        source_event_id=src,
    )


@pytest.fixture(scope="module")
async def env(database_url: str) -> AsyncIterator[Env]:
    schema = unique_name("t")
    pool = await create_pool(database_url, schema)
    channels: list[grpc.aio.Channel] = []
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *MIGRATIONS])
            tenants = await two_tenants(conn, schema)
        tenant, key, other, other_key = (
            tenants.tenant,
            tenants.key,
            tenants.other,
            tenants.other_key,
        )

        # Ana wrote on WhatsApp; an agent linked her Telegram account by hand.
        rm = CustomerReadModel(schema)
        world = InMemoryProfiles()
        world.observe(_observe(tenant, "whatsapp", "16505551234", "Ana", T0, "e1"))
        ana_id = world.owner(tenant, "whatsapp", "16505551234")
        assert ana_id is not None
        world.command(
            "link_identity",
            tenant,
            ana_id,
            "telegram",
            "777",
            actor="agent-1",
            note="",
            at=T0 + timedelta(minutes=1),
            command_id="c1",
        )
        # The same WhatsApp number in another tenant is another customer.
        world.observe(_observe(other, "whatsapp", "16505551234", "Zed", T0, "e2"))
        ana = world.state(ana_id)
        async with pool.acquire() as conn, conn.transaction():
            await rm.save(conn, {}, world.profiles.states)

        servicer = ProfileServicer(
            pool, rm, ProfileCommands(pool, EventStore(schema, "profile"), rm)
        )
        server = build_server(
            [(ps_grpc.add_ProfileServiceServicer_to_server, servicer)],
            resolver=tenancy.ApiKeyResolver(pool, schema=schema),
            service_names=[SERVICE_NAME],
            port=0,
            telemetry_enabled=False,
        )
        await server.start()
        channels = [
            create_channel(server.address, api_key=key, telemetry_enabled=False),
            create_channel(server.address, api_key=other_key, telemetry_enabled=False),
            create_channel(server.address, telemetry_enabled=False),
        ]
        yield Env(
            servicer,
            *(ps_grpc.ProfileServiceStub(c) for c in channels),
            tenant=tenant,
            other_tenant=other,
            ana=ana,
        )
        for channel in channels:
            await channel.close()
        await server.stop(0)
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()


async def test_find_customer_by_identity_returns_customer_with_identities(env: Env) -> None:
    reply = await env.stub.FindCustomerByIdentity(
        ps.FindCustomerByIdentityRequest(channel="whatsapp", address="16505551234")
    )
    c = reply.customer
    assert c.customer_id == env.ana.customer_id
    assert c.tenant_id == env.tenant
    assert c.display_name == "Ana"
    assert c.version == env.ana.version == 4
    assert [(i.channel, i.address, i.normalized_phone) for i in c.identities] == [
        ("whatsapp", "16505551234", "+16505551234"),
        ("telegram", "777", ""),
    ]
    assert c.created_at.ToDatetime(tzinfo=UTC) == T0
    assert c.updated_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=1)
    # Channel names are case-insensitive, addresses trimmed; any identity finds the customer.
    again = await env.stub.FindCustomerByIdentity(
        ps.FindCustomerByIdentityRequest(channel="Telegram", address=" 777 ")
    )
    assert again.customer == c


async def test_get_customer(env: Env) -> None:
    reply = await env.stub.GetCustomer(ps.GetCustomerRequest(customer_id=env.ana.customer_id))
    assert reply.customer.display_name == "Ana"
    assert len(reply.customer.identities) == 2


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (ps.FindCustomerByIdentityRequest(address="16505551234"), "channel"),
        (ps.FindCustomerByIdentityRequest(channel="whatsapp", address="  "), "address"),
        (ps.GetCustomerRequest(), "customer_id"),
    ],
)
async def test_missing_fields_are_invalid_argument_naming_the_field(
    env: Env, request_, field: str
) -> None:
    method = (
        env.stub.GetCustomer
        if isinstance(request_, ps.GetCustomerRequest)
        else env.stub.FindCustomerByIdentity
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await method(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()
    assert (FIELD_TRAILER, field) in tuple(err.value.trailing_metadata() or ())


async def test_unknown_identity_and_customer_are_not_found(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.FindCustomerByIdentity(
            ps.FindCustomerByIdentityRequest(channel="whatsapp", address="19999999999")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetCustomer(ps.GetCustomerRequest(customer_id="no-such-customer"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_other_tenant_sees_only_its_own_customers(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.other.GetCustomer(ps.GetCustomerRequest(customer_id=env.ana.customer_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.other.FindCustomerByIdentity(
            ps.FindCustomerByIdentityRequest(channel="telegram", address="777")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # Same identity, other tenant: its own customer, never Ana.
    reply = await env.other.FindCustomerByIdentity(
        ps.FindCustomerByIdentityRequest(channel="whatsapp", address="16505551234")
    )
    assert reply.customer.tenant_id == env.other_tenant
    assert reply.customer.display_name == "Zed"
    assert reply.customer.customer_id != env.ana.customer_id


async def test_no_credentials_is_unauthenticated(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.anonymous.GetCustomer(ps.GetCustomerRequest(customer_id=env.ana.customer_id))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_servicer_methods_directly_with_tenant_context(env: Env) -> None:
    """The servicer raises domain errors; outside a request it needs a tenant in context."""
    with pytest.raises(Unauthenticated):
        await env.servicer.GetCustomer(ps.GetCustomerRequest(customer_id="x"))
    with tenant_scope(env.tenant):
        reply = await env.servicer.GetCustomer(
            ps.GetCustomerRequest(customer_id=env.ana.customer_id)
        )
        assert reply.customer.customer_id == env.ana.customer_id
        with pytest.raises(InvalidArgument) as invalid:
            await env.servicer.FindCustomerByIdentity(ps.FindCustomerByIdentityRequest())
        assert invalid.value.field == "channel"
    with tenant_scope(env.other_tenant), pytest.raises(NotFound):
        await env.servicer.GetCustomer(ps.GetCustomerRequest(customer_id=env.ana.customer_id))
