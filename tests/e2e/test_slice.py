"""The backbone slice end to end: a WhatsApp webhook over real HTTP reaches the unified profile
and the conversation, read back over real gRPC — five service processes, a real broker, a real
Postgres."""

from __future__ import annotations

import time
import uuid

import grpc
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from parlay.conversation.v1 import conversation_service_pb2 as conv_pb
from parlay.conversation.v1 import conversation_service_pb2_grpc as conv_grpc
from parlay.profile.v1 import profile_service_pb2 as profile_pb
from parlay.profile.v1 import profile_service_pb2_grpc as profile_grpc
from parlay_kit import envelope, topics
from parlay_kit.kafka import log_end_offsets

from .stack import ServiceStack, eventually, running_stack
from .whatsapp import account, signed_headers, status, text_message, webhook

pytestmark = pytest.mark.slow
ACCOUNT = f"wa-e2e-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap, database_url, tmp_path_factory):
    async with running_stack(
        database_url,
        tmp_path_factory.mktemp("stack"),
        lambda tenant: [account(ACCOUNT, tenant)],
        kafka_bootstrap=kafka_bootstrap,
    ) as s:
        yield s


async def post(stack: ServiceStack, body: bytes, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{stack.gateway_url}/webhooks/whatsapp/{ACCOUNT}",
            content=body,
            headers=signed_headers(body, **headers),
        )


async def find_customer(stack: ServiceStack, wa_id: str):
    async with stack.channel("profile") as channel:
        stub = profile_grpc.ProfileServiceStub(channel)
        try:
            response = await stub.FindCustomerByIdentity(
                profile_pb.FindCustomerByIdentityRequest(channel="whatsapp", address=wa_id),
                metadata=stack.metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
    return response.customer


async def conversation_of(stack: ServiceStack, customer_id: str, min_messages: int = 1):
    async with stack.channel("conversation") as channel:
        stub = conv_grpc.ConversationServiceStub(channel)
        listed = await stub.ListConversations(
            conv_pb.ListConversationsRequest(customer_id=customer_id), metadata=stack.metadata()
        )
        if not listed.conversations:
            return None
        got = await stub.GetConversation(
            conv_pb.GetConversationRequest(
                conversation_id=listed.conversations[0].conversation_id, page_size=100
            ),
            metadata=stack.metadata(),
        )
    conversation = got.conversation
    return conversation if len(conversation.messages) >= min_messages else None


async def test_whatsapp_text_reaches_profile_and_conversation(stack):
    wa_id = "16505551234"
    body = webhook(
        [text_message("wamid.slice1", wa_id, "Hola, do you deliver today?")], [(wa_id, "Ana Souza")]
    )
    assert (await post(stack, body)).status_code == 200

    customer = await eventually(lambda: find_customer(stack, wa_id))
    assert customer.display_name == "Ana Souza"
    assert [(i.channel, i.address) for i in customer.identities] == [("whatsapp", wa_id)]

    conversation = await eventually(lambda: conversation_of(stack, customer.customer_id))
    assert conversation.customer_id == customer.customer_id
    assert conversation.status == conv_pb.CONVERSATION_STATUS_OPEN
    [message] = conversation.messages
    assert message.text == "Hola, do you deliver today?"
    assert message.channel == "whatsapp"
    assert message.direction == 1  # inbound
    assert message.occurred_at.seconds > 0


async def test_the_same_webhook_twice_yields_one_message(stack):
    wa_id = "16505550002"
    body = webhook([text_message("wamid.dup1", wa_id, "only once")], [(wa_id, "Bo")])
    for _ in range(2):
        assert (await post(stack, body)).status_code == 200
    later = webhook([text_message("wamid.dup2", wa_id, "second message")], [(wa_id, "Bo")])
    assert (await post(stack, later)).status_code == 200
    customer = await eventually(lambda: find_customer(stack, wa_id))
    conversation = await eventually(lambda: conversation_of(stack, customer.customer_id, 2))
    assert [m.text for m in conversation.messages] == ["only once", "second message"]


async def test_batched_webhook_yields_one_event_per_message_and_status(stack, kafka_bootstrap):
    now = int(time.time())
    body = webhook(
        [
            text_message("wamid.b1", "16505550010", "first", now),
            text_message("wamid.b2", "16505550011", "second", now),
            text_message("wamid.b3", "16505550010", "third", now + 1),
        ],
        [("16505550010", "Cy"), ("16505550011", "Di")],
        statuses=[
            status("wamid.out1", "16505550010", "delivered", now),
            status("wamid.out1", "16505550010", "read", now + 2),
        ],
    )
    assert (await post(stack, body)).status_code == 200
    cy = await eventually(lambda: find_customer(stack, "16505550010"))
    di = await eventually(lambda: find_customer(stack, "16505550011"))
    assert cy.customer_id != di.customer_id
    cy_conv = await eventually(lambda: conversation_of(stack, cy.customer_id, 2))
    assert [m.text for m in cy_conv.messages] == ["first", "third"]
    records = await eventually(
        lambda: inbound_records(kafka_bootstrap, stack.tenant_id, "wamid.b", "wamid.out1", 5)
    )
    # Kafka delivery is at-least-once (and other stacks in this test session share the broker
    # and its topics), so the same event may appear twice: one event per item means one event id.
    unique = {r.event_id: r for r in records}.values()
    kinds = sorted(r.event_type.rsplit(".", 1)[1] for r in unique)
    assert kinds == ["MessageReceived"] * 3 + ["MessageStatusUpdated"] * 2


async def test_rejected_webhooks_publish_nothing(stack):
    body = webhook([text_message("wamid.forged", "16505550099", "forged")], [("16505550099", "X")])
    async with httpx.AsyncClient() as client:
        forged = await client.post(
            f"{stack.gateway_url}/webhooks/whatsapp/{ACCOUNT}",
            content=body,
            headers={"x-hub-signature-256": "sha256=" + "0" * 64},
        )
        unknown = await client.post(
            f"{stack.gateway_url}/webhooks/whatsapp/nope-{ACCOUNT}",
            content=body,
            headers=signed_headers(body),
        )
    assert forged.status_code == 403
    assert unknown.status_code == 404
    # A later, valid message from someone else is processed, the forged one never was.
    ok = webhook([text_message("wamid.after", "16505550098", "valid")], [("16505550098", "Y")])
    assert (await post(stack, ok)).status_code == 200
    await eventually(lambda: find_customer(stack, "16505550098"))
    assert await find_customer(stack, "16505550099") is None


async def test_one_trace_spans_webhook_kafka_and_both_consumers(stack, kafka_bootstrap):
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    wa_id = "16505550077"
    body = webhook([text_message("wamid.trace", wa_id, "trace me")], [(wa_id, "Tr")])
    assert (await post(stack, body, traceparent=traceparent)).status_code == 200
    customer = await eventually(lambda: find_customer(stack, wa_id))
    await eventually(lambda: conversation_of(stack, customer.customer_id))

    async def trace_ids(topic: str) -> set[str]:
        records = await read_topic(kafka_bootstrap, topic)
        return {
            dict(r.headers).get("traceparent", b"").decode().split("-")[1]
            for r in records
            if envelope.decode(r.value).tenant_id == stack.tenant_id
            and dict(r.headers).get("traceparent")
        }

    for topic in (topics.WEBHOOKS, topics.INBOUND, topics.PROFILE, topics.CONVERSATION):
        assert trace_id in await eventually(lambda t=topic: trace_ids(t)), topic


async def test_killed_conversation_service_resumes_without_loss_or_duplicates(stack):
    wa_id = "16505550055"
    first = webhook([text_message("wamid.k0", wa_id, "before the kill")], [(wa_id, "Ki")])
    assert (await post(stack, first)).status_code == 200
    customer = await eventually(lambda: find_customer(stack, wa_id))
    await eventually(lambda: conversation_of(stack, customer.customer_id, 1))

    stack.kill("conversation")
    for i in range(1, 11):
        body = webhook(
            [text_message(f"wamid.k{i}", wa_id, f"while down {i}", int(time.time()) + i)],
            [(wa_id, "Ki")],
        )
        assert (await post(stack, body)).status_code == 200
    stack.restart("conversation")
    await stack.wait_healthy()
    conversation = await eventually(lambda: conversation_of(stack, customer.customer_id, 11), 60)
    texts = [m.text for m in conversation.messages]
    assert texts == ["before the kill"] + [f"while down {i}" for i in range(1, 11)]


async def read_topic(bootstrap: str, topic: str) -> list:
    # auto_offset_reset instead of seek_to_beginning: seeking after assign races the first fetch
    # in aiokafka and can hand back the same records twice.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        end = await log_end_offsets(consumer, tps)
        for tp in tps:
            consumer.seek(tp, 0)
        records = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind():
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def inbound_records(bootstrap, tenant_id, prefix_a, prefix_b, expected):
    out = []
    for record in await read_topic(bootstrap, topics.INBOUND):
        env = envelope.decode(record.value)
        if env.tenant_id != tenant_id:
            continue
        payload = envelope.unpack(env)
        if payload.provider_message_id.startswith((prefix_a, prefix_b)):
            out.append(env)
    distinct = list({e.event_id: e for e in out}.values())
    return distinct if len(distinct) >= expected else None
