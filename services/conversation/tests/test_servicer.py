"""ConversationService over a real gRPC server (the kit's server: API-key auth, status mapping)
on read models written by the real adapter; tenants and keys in a real tenancy schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.conversation.v1 import conversation_service_pb2 as cs
from parlay.conversation.v1 import conversation_service_pb2_grpc as cs_grpc
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import domain
from parlay_conversation.readmodel import MIGRATIONS, ConversationReadModel
from parlay_conversation.servicer import SERVICE_NAME, ConversationServicer
from parlay_kit import tenancy
from parlay_kit.auth import tenant_scope
from parlay_kit.db import create_pool, migrate
from parlay_kit.errors import InvalidArgument, NotFound
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS
from parlay_kit.grpc_server import FIELD_TRAILER, build_server, create_channel
from parlay_kit.testing import unique_name

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Env:
    servicer: ConversationServicer
    stub: cs_grpc.ConversationServiceStub
    other: cs_grpc.ConversationServiceStub
    tenant: str
    other_tenant: str
    ana: str  # conversation ids
    bo: str
    zed: str


def _inbound(tenant: str, src: str, text: str, at: datetime, channel: str = "whatsapp"):
    return domain.InboundMessage(
        tenant_id=tenant,
        source_event_id=src,
        channel=channel,
        channel_account_id=f"{channel}-acc",
        address="x",
        provider_message_id=f"wamid.{src}",
        content=ge.MessageContent(text=ge.TextContent(body=text)),
        occurred_at=at,
    )


def _conversation(tenant: str, customer: str, messages: list[domain.InboundMessage]):
    state = None
    rows = []
    for m in messages:
        for e in domain.decide_inbound(state, customer, m):
            state, row = domain.apply(state, e)
            if row is not None:
                rows.append(row)
    assert state is not None
    return state, rows


@pytest.fixture(scope="module")
async def env(database_url: str) -> AsyncIterator[Env]:
    schema = unique_name("t")
    pool = await create_pool(database_url, schema)
    channels: list[grpc.aio.Channel] = []
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *MIGRATIONS])
            await tenancy.migrate(conn, schema)
            tenant = (
                await tenancy.create_tenant(conn, "Shop", unique_name("shop"), schema=schema)
            ).tenant_id
            other = (
                await tenancy.create_tenant(conn, "Other", unique_name("other"), schema=schema)
            ).tenant_id
            key = (await tenancy.create_api_key(conn, tenant, schema=schema)).key
            other_key = (await tenancy.create_api_key(conn, other, schema=schema)).key

        rm = ConversationReadModel(schema)
        ana, ana_rows = _conversation(
            tenant,
            "cust-ana",
            [
                _inbound(tenant, "a1", "hello", T0),
                _inbound(tenant, "a2", "it's me again", T0 + timedelta(minutes=1), "sms"),
                _inbound(tenant, "a3", "anyone?", T0 + timedelta(minutes=2)),
            ],
        )
        bo, bo_rows = _conversation(
            tenant, "cust-bo", [_inbound(tenant, "b1", "hi", T0 + timedelta(hours=1))]
        )
        zed, zed_rows = _conversation(
            other, "cust-zed", [_inbound(other, "z1", "other tenant", T0 + timedelta(hours=2))]
        )
        async with pool.acquire() as conn, conn.transaction():
            await rm.save(
                conn,
                {},
                {c.conversation_id: c for c in (ana, bo, zed)},
                [*ana_rows, *bo_rows, *zed_rows],
            )

        servicer = ConversationServicer(pool, rm)
        server = build_server(
            [(cs_grpc.add_ConversationServiceServicer_to_server, servicer)],
            resolver=tenancy.ApiKeyResolver(pool, schema=schema),
            service_names=[SERVICE_NAME],
            port=0,
            telemetry_enabled=False,
        )
        await server.start()
        channels = [
            create_channel(server.address, api_key=key, telemetry_enabled=False),
            create_channel(server.address, api_key=other_key, telemetry_enabled=False),
        ]
        yield Env(
            servicer,
            cs_grpc.ConversationServiceStub(channels[0]),
            cs_grpc.ConversationServiceStub(channels[1]),
            tenant,
            other,
            ana.conversation_id,
            bo.conversation_id,
            zed.conversation_id,
        )
        for channel in channels:
            await channel.close()
        await server.stop(0)
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()


async def test_list_conversations_newest_activity_first(env: Env) -> None:
    reply = await env.stub.ListConversations(cs.ListConversationsRequest())
    assert [c.conversation_id for c in reply.conversations] == [env.bo, env.ana]
    assert reply.next_page_token == ""
    ana = reply.conversations[1]
    assert (ana.customer_id, ana.tenant_id) == ("cust-ana", env.tenant)
    assert ana.status == cs.CONVERSATION_STATUS_OPEN
    assert (ana.message_count, ana.unread_count, ana.version) == (3, 3, 4)
    assert ana.last_channel == "whatsapp"
    assert ana.opened_at.ToDatetime(tzinfo=UTC) == T0
    assert ana.last_activity_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=2)
    assert len(ana.messages) == 0  # listings carry no timeline


async def test_list_filters_by_customer(env: Env) -> None:
    reply = await env.stub.ListConversations(cs.ListConversationsRequest(customer_id="cust-ana"))
    assert [c.conversation_id for c in reply.conversations] == [env.ana]
    reply = await env.stub.ListConversations(cs.ListConversationsRequest(customer_id="nobody"))
    assert list(reply.conversations) == []


async def test_list_pages(env: Env) -> None:
    first = await env.stub.ListConversations(cs.ListConversationsRequest(page_size=1))
    assert [c.conversation_id for c in first.conversations] == [env.bo]
    assert first.next_page_token
    second = await env.stub.ListConversations(
        cs.ListConversationsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [c.conversation_id for c in second.conversations] == [env.ana]
    assert second.next_page_token == ""


async def test_get_conversation_with_messages_oldest_first_and_paged(env: Env) -> None:
    reply = await env.stub.GetConversation(cs.GetConversationRequest(conversation_id=env.ana))
    conv = reply.conversation
    assert conv.conversation_id == env.ana
    assert [(m.text, m.channel) for m in conv.messages] == [
        ("hello", "whatsapp"),
        ("it's me again", "sms"),
        ("anyone?", "whatsapp"),
    ]
    first = conv.messages[0]
    assert first.message_id == domain.message_id_for("a1")
    assert first.direction == ce.MESSAGE_DIRECTION_INBOUND
    assert first.occurred_at.ToDatetime(tzinfo=UTC) == T0
    assert (first.provider_message_id, first.channel_account_id) == ("wamid.a1", "whatsapp-acc")
    assert reply.next_page_token == ""

    page = await env.stub.GetConversation(
        cs.GetConversationRequest(conversation_id=env.ana, page_size=2)
    )
    assert [m.text for m in page.conversation.messages] == ["hello", "it's me again"]
    rest = await env.stub.GetConversation(
        cs.GetConversationRequest(
            conversation_id=env.ana, page_size=2, page_token=page.next_page_token
        )
    )
    assert [m.text for m in rest.conversation.messages] == ["anyone?"]
    assert rest.next_page_token == ""


async def test_unknown_conversation_is_not_found(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetConversation(cs.GetConversationRequest(conversation_id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_other_tenant_sees_only_its_own(env: Env) -> None:
    reply = await env.other.ListConversations(cs.ListConversationsRequest())
    assert [c.conversation_id for c in reply.conversations] == [env.zed]
    reply = await env.other.ListConversations(cs.ListConversationsRequest(customer_id="cust-ana"))
    assert list(reply.conversations) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.other.GetConversation(cs.GetConversationRequest(conversation_id=env.ana))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def _invalid(call, request) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return dict(err.value.trailing_metadata() or ()).get(FIELD_TRAILER, "")


async def test_invalid_arguments_name_the_field(env: Env) -> None:
    get, lst = env.stub.GetConversation, env.stub.ListConversations
    assert await _invalid(get, cs.GetConversationRequest()) == "conversation_id"
    assert await _invalid(lst, cs.ListConversationsRequest(page_size=-1)) == "page_size"
    assert await _invalid(lst, cs.ListConversationsRequest(page_token="garbage!")) == "page_token"
    # A token of another listing is refused too.
    first = await lst(cs.ListConversationsRequest(page_size=1))
    request = cs.GetConversationRequest(conversation_id=env.ana, page_token=first.next_page_token)
    assert await _invalid(get, request) == "page_token"


async def test_servicer_directly_with_tenant_context(env: Env) -> None:
    with tenant_scope(env.tenant):
        reply = await env.servicer.GetConversation(
            cs.GetConversationRequest(conversation_id=env.bo)
        )
        assert [m.text for m in reply.conversation.messages] == ["hi"]
        with pytest.raises(InvalidArgument):
            await env.servicer.GetConversation(cs.GetConversationRequest(conversation_id=" "))
    with tenant_scope(env.other_tenant), pytest.raises(NotFound):
        await env.servicer.GetConversation(cs.GetConversationRequest(conversation_id=env.bo))
