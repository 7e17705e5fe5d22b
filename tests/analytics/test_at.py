"""`parlay at <time> customer|conversation|order <id>`: before and after a change, the aggregate is
what it was then (folded from the owning service's store with its own `apply`)."""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
import pytest
from typer.testing import CliRunner

from parlay_kit.analytics.asof import UnknownAggregateKind, at
from parlay_kit.cli import app, load_plugins

from .conftest import T0, Live, message_received


def past(result) -> dict:
    """What an answer says about the instant (events_after grows as the aggregate moves on)."""
    return {k: v for k, v in result.to_json().items() if k != "events_after"}


async def latest(live: Live, service: str, aggregate_id: str):
    conn = await asyncpg.connect(live.database_url)
    try:
        return await conn.fetchval(
            f"SELECT max(recorded_at) FROM {live.schema(service)}.events WHERE aggregate_id = $1",
            aggregate_id,
        )
    finally:
        await conn.close()


async def ids_of(live: Live, address: str) -> tuple[str, str]:
    conn = await asyncpg.connect(live.database_url)
    try:
        customer = await conn.fetchval(
            f"SELECT customer_id FROM {live.schema('profile')}.customer_identities WHERE address = $1",
            address,
        )
        conversation = await conn.fetchval(
            f"SELECT conversation_id FROM {live.schema('conversation')}.conversations WHERE customer_id = $1",
            customer,
        )
        return customer, conversation
    finally:
        await conn.close()


async def test_customer_and_conversation_before_and_after_a_change(world: Live) -> None:
    address = "16505550102"  # "Ben" in the traffic
    customer, conversation = await ids_of(world, address)
    assert customer and conversation
    before_change = max(
        await latest(world, "profile", customer), await latest(world, "conversation", conversation)
    )

    c_before = await at(
        world.database_url, "customer", customer, before_change, schema=world.schema("profile")
    )
    v_before = await at(
        world.database_url,
        "conversation",
        conversation,
        before_change,
        schema=world.schema("conversation"),
    )
    assert c_before.state["display_name"] == "Ben"

    # The change: Ben writes again under a new name, days later.
    await world.produce(
        world.topics.inbound,
        message_received(
            tenant=world.tenant,
            address=address,
            text="new phone, new name",
            name="Benjamin",
            at=T0 + timedelta(days=5),
        ),
    )
    await world.settle()
    after_change = max(
        await latest(world, "profile", customer), await latest(world, "conversation", conversation)
    )
    assert after_change > before_change

    c_then = await at(
        world.database_url, "customer", customer, before_change, schema=world.schema("profile")
    )
    c_now = await at(
        world.database_url, "customer", customer, after_change, schema=world.schema("profile")
    )
    assert past(c_then) == past(c_before)  # the past does not change
    assert c_then.state["display_name"] == "Ben" and c_now.state["display_name"] == "Benjamin"
    assert c_now.version > c_then.version and c_then.events_after == c_now.version - c_then.version
    assert c_now.events_after == 0

    v_then = await at(
        world.database_url,
        "conversation",
        conversation,
        before_change,
        schema=world.schema("conversation"),
    )
    v_now = await at(
        world.database_url,
        "conversation",
        conversation,
        after_change,
        schema=world.schema("conversation"),
    )
    assert past(v_then) == past(v_before)
    then_msgs, now_msgs = v_then.state["messages"], v_now.state["messages"]
    assert len(now_msgs) == len(then_msgs) + 1
    assert now_msgs[-1]["text"] == "new phone, new name"
    assert now_msgs[-1]["content"] == {"text": {"body": "new phone, new name"}}
    assert (
        v_now.state["conversation"]["message_count"]
        == v_then.state["conversation"]["message_count"] + 1
    )

    # Before the customer existed there is nothing; the live read model agrees with "now".
    first = await at(
        world.database_url,
        "customer",
        customer,
        T0 - timedelta(days=3650),
        schema=world.schema("profile"),
    )
    assert first.state is None and first.events_applied == 0
    conn = await asyncpg.connect(world.database_url)
    try:
        row = await conn.fetchrow(
            f"SELECT display_name, version FROM {world.schema('profile')}.customers WHERE customer_id = $1",
            customer,
        )
    finally:
        await conn.close()
    assert (row["display_name"], row["version"]) == (c_now.state["display_name"], c_now.version)


def test_cli_at_prints_json_and_unknown_kinds_are_refused(world: Live) -> None:
    load_plugins()
    runner = CliRunner()
    import asyncio

    customer, _conversation = asyncio.run(ids_of(world, "70001"))
    result = runner.invoke(
        app,
        [
            "at",
            "now",
            "customer",
            customer,
            "--schema",
            world.schema("profile"),
            "--database-url",
            world.database_url,
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["exists"] and data["state"]["display_name"] == "Dmitri"
    assert data["state"]["identities"][0]["channel"] == "telegram"
    gone = runner.invoke(
        app,
        [
            "at",
            "2000-01-01",
            "customer",
            customer,
            "--schema",
            world.schema("profile"),
            "--database-url",
            world.database_url,
        ],
    )
    assert gone.exit_code == 1 and json.loads(gone.stdout)["exists"] is False
    unknown = runner.invoke(
        app, ["at", "now", "invoice", "x", "--database-url", world.database_url]
    )
    assert unknown.exit_code == 2


async def test_unknown_kind_names_the_registered_ones(world: Live) -> None:
    with pytest.raises(UnknownAggregateKind, match="customer"):
        await at(world.database_url, "invoice", "o1", T0)


async def test_order_before_and_after_the_customer_confirms(world: Live) -> None:
    """Carla's cart (the traffic's third customer) waits for her "OK"; `parlay at order` shows
    it placed before she confirms and awaiting payment after."""
    address = "4915112345678"
    customer, _ = await ids_of(world, address)
    conn = await asyncpg.connect(world.database_url)
    try:
        order_id = await conn.fetchval(
            f"SELECT order_id FROM {world.schema('orders')}.orders WHERE customer_id = $1",
            customer,
        )
    finally:
        await conn.close()
    assert order_id
    before = await latest(world, "orders", order_id)
    placed = await at(world.database_url, "order", order_id, before, schema=world.schema("orders"))
    assert placed.state["status"] == "placed"

    await world.produce(
        world.topics.inbound,
        message_received(
            tenant=world.tenant,
            address=address,
            text="ok!",
            name="Carla",
            account="acc-wa",
            at=T0 + timedelta(days=3, hours=1),
        ),
    )
    await world.settle()
    after = await latest(world, "orders", order_id)
    assert after > before
    then = await at(world.database_url, "order", order_id, before, schema=world.schema("orders"))
    now = await at(world.database_url, "order", order_id, after, schema=world.schema("orders"))
    assert past(then) == past(placed)
    assert now.state["status"] == "awaiting_payment" and now.version > then.version
    assert now.state["total_minor"] == then.state["total_minor"] == 2 * 4990 + 3 * 2500
