"""`make run` after a stop: the memory broker comes back empty (new cluster id), the stores re-seed
it, and the stack carries on with the same customers and conversations and no duplicates."""

from __future__ import annotations

import time
import uuid

import pytest

from parlay_kit import topics
from parlay_kit.broker import LocalBroker, free_port

from .stack import ServiceStack
from .test_slice import conversation_of, eventually, find_customer, read_topic
from .whatsapp import account, signed_headers, text_message, webhook

pytestmark = pytest.mark.slow


async def test_restart_on_an_empty_broker_reseeds_the_log_and_keeps_state(database_url, tmp_path):
    account_id = f"wa-restart-{uuid.uuid4().hex[:6]}"
    wa_id = "16505553333"
    port = free_port()
    broker = LocalBroker(port=port, log_path=tmp_path / "broker1.log")
    await broker.start()
    stack = ServiceStack(database_url, broker.bootstrap, tmp_path)
    try:
        await stack.start(accounts=[account(account_id, stack.tenant_id)])
        import httpx

        async def post(wamid: str, text: str) -> None:
            body = webhook([text_message(wamid, wa_id, text, int(time.time()))], [(wa_id, "Re")])
            async with httpx.AsyncClient() as client:
                r = await client.post(
                    f"{stack.gateway_url}/webhooks/whatsapp/{account_id}",
                    content=body,
                    headers=signed_headers(body),
                )
            assert r.status_code == 200

        await post("wamid.r1", "before restart")
        customer = await eventually(lambda: find_customer(stack, wa_id))
        await eventually(lambda: conversation_of(stack, customer.customer_id, 1))

        # Stop everything, broker included: the memory log is gone.
        stack.stop()
        await broker.stop()
        broker = LocalBroker(port=port, log_path=tmp_path / "broker2.log")
        await broker.start()
        stack.kafka_bootstrap = broker.bootstrap
        from parlay_kit.broker import ensure_topics

        await ensure_topics(broker.bootstrap, topics.ALL_TOPICS, topics.DEFAULT_PARTITIONS)
        for name in list(stack.services):
            stack.restart(name)
        await stack.wait_healthy()

        # Same customer and conversation, answered from the stores' read models at once.
        again = await find_customer(stack, wa_id)
        assert again is not None and again.customer_id == customer.customer_id
        await post("wamid.r2", "after restart")
        conversation = await eventually(lambda: conversation_of(stack, customer.customer_id, 2))
        assert [m.text for m in conversation.messages] == ["before restart", "after restart"]

        # The new log was re-seeded from the stores: the first message's events are on it again,
        # exactly once per event id.
        async def reseeded():
            records = await read_topic(broker.bootstrap, topics.CONVERSATION)
            ids = [dict(r.headers)["ce_id"] for r in records]
            return ids if len(ids) >= 3 else None

        ids = await eventually(reseeded)
        assert len(ids) == len(set(ids))
    finally:
        stack.stop()
        await stack.drop_schemas()
        await broker.stop()
