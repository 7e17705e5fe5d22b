"""Re-normalizing the raw webhook topic with a fixed parser adds exactly the events a buggy
parser missed: the live normalizer runs with a deliberately buggy WhatsApp parser, then
`parlay replay gateway.normalizer` runs the fixed (deployed) one over the same raw topic."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime

import asyncpg
import pytest

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_gateway import normalizer
from parlay_gateway.channels.registry import AdapterRegistry
from parlay_gateway.channels.whatsapp import WhatsAppAdapter
from parlay_gateway.normalizer import Normalizer
from parlay_kit.analytics.registry import discover
from parlay_kit.db import create_pool, migrate
from parlay_kit.envelope import NewEvent, deterministic_event_id
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS, EventStore
from parlay_kit.projector import Projector
from parlay_kit.replay import Replayer
from parlay_kit.settings import KafkaSettings
from parlay_kit.testing import unique_name

from .conftest import end_offsets, live_services, wait_until


class FirstItemOnlyWhatsApp(WhatsAppAdapter):
    """The bug: only the first item of a batched webhook is normalized."""

    def normalize(self, webhook, tenant_id, webhook_event_id):
        return super().normalize(webhook, tenant_id, webhook_event_id)[:1]


def whatsapp_body(
    messages: list[tuple[str, str, str]], statuses: list[tuple[str, str, str]]
) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
        "contacts": [{"profile": {"name": f"N{frm}"}, "wa_id": frm} for _id, frm, _t in messages],
        "messages": [
            {
                "from": frm,
                "id": wamid,
                "timestamp": "1714986000",
                "type": "text",
                "text": {"body": text},
            }
            for wamid, frm, text in messages
        ],
        "statuses": [
            {"id": wamid, "status": status, "timestamp": "1714986100", "recipient_id": to}
            for wamid, status, to in statuses
        ],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


def webhook(tenant: str, account: str, body: bytes) -> NewEvent:
    msg = ge.WebhookReceived(
        channel="whatsapp",
        channel_account_id=account,
        http_method="POST",
        path=f"/webhooks/whatsapp/{account}",
        headers={"content-type": "application/json"},
        body=body,
    )
    msg.received_at.FromDatetime(datetime(2024, 5, 6, 9, 0))
    return NewEvent(
        event_id=deterministic_event_id(
            "webhook", "whatsapp", account, hashlib.sha256(body).hexdigest()
        ),
        tenant_id=tenant,
        aggregate_type="channel_account",
        aggregate_id=account,
        payload=msg,
        occurred_at=datetime(2024, 5, 6, 9, 0, tzinfo=UTC),
        topic="",
    )


async def stored(conn: asyncpg.Connection, schema: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        f"SELECT event_id::text, event_type FROM {schema}.events ORDER BY position"
    )
    return [(r[0], r[1]) for r in rows]


async def new_gateway_schema(live, database_url: str) -> str:
    schema = unique_name("gw")
    live.schemas.append(schema)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *normalizer.MIGRATIONS])
    finally:
        await conn.close()
    return schema


@pytest.mark.timeout(180)
async def test_fixed_parser_replay_adds_only_the_missed_events(
    kafka_bootstrap, database_url
) -> None:
    async with live_services(kafka_bootstrap, database_url) as live:
        schema = await new_gateway_schema(live, database_url)
        pool = await create_pool(database_url, schema, max_size=3)
        try:
            account = unique_name("wa")
            w = unique_name("wamid")
            hooks = [
                webhook(live.tenant, account, whatsapp_body([(f"{w}.1", "111", "one")], [])),
                webhook(
                    live.tenant,
                    account,
                    whatsapp_body(
                        [(f"{w}.2", "222", "two"), (f"{w}.3", "333", "three")],
                        [(f"{w}.outA", "delivered", "111")],
                    ),
                ),
                webhook(
                    live.tenant,
                    account,
                    whatsapp_body([(f"{w}.4", "444", "four")], [(f"{w}.outB", "read", "222")]),
                ),
            ]
            await live.produce_many(live.topics.webhooks, hooks)
            projection = discover().projections["gateway.normalizer"]

            # Ground truth: the fixed parser over the raw topic into an empty gateway schema.
            truth_schema = await new_gateway_schema(live, database_url)
            truth = await Replayer(
                projection,
                database_url=database_url,
                bootstrap=kafka_bootstrap,
                live_schema=truth_schema,
                topics=[live.topics.webhooks],
            ).run()
            assert truth.appended == 6 and truth.errors == 0
            conn = await asyncpg.connect(database_url)
            try:
                expected = await stored(conn, truth_schema)
            finally:
                await conn.close()

            # The live normalizer, with the buggy parser: the first item of each webhook only.
            projector = Projector(
                name="normalizer",
                service="gateway",
                topics=[live.topics.webhooks],
                handler=Normalizer(AdapterRegistry([FirstItemOnlyWhatsApp()]), schema=schema),
                pool=pool,
                schema=schema,
                kafka=KafkaSettings(bootstrap=kafka_bootstrap),
                store=EventStore(schema, "gateway"),
            )
            stop = asyncio.Event()
            task = asyncio.create_task(projector.run(stop))
            try:
                await wait_until(lambda: live.caught_up(projector), 60, "buggy normalizer")
            finally:
                stop.set()
                await task
            async with pool.acquire() as conn:
                before = await stored(conn, schema)
            assert len(before) == 3  # one per webhook: the bug lost the other 3 items

            # `parlay replay gateway.normalizer`: the deployed (fixed) parser over the raw topic.
            replayer = Replayer(
                projection,
                database_url=database_url,
                bootstrap=kafka_bootstrap,
                live_schema=schema,
                topics=[live.topics.webhooks],
            )
            stats = await replayer.run()
            assert stats.records == 3 and stats.errors == 0
            assert stats.appended == 3
            async with pool.acquire() as conn:
                after = await stored(conn, schema)
            assert after[:3] == before  # what the buggy parser produced is untouched
            assert sorted(after) == sorted(expected)  # and now it is what a fixed one makes
            assert len({e for e, _ in after}) == len(after) == 6

            # Running it again adds nothing; the raw log itself is never written.
            again = await replayer.run()
            assert again.appended == 0 and again.records == 3
            ends = await end_offsets(kafka_bootstrap, live.topics.webhooks)
            assert sum(ends.values()) == 3
        finally:
            await pool.close()
