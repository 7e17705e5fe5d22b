"""Pure conversation rules: ids, opening, appending, counters, last channel, text rendering."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import domain

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def inbound(
    src: str, *, at: datetime = T0, channel: str = "whatsapp", text: str = "hi"
) -> domain.InboundMessage:
    return domain.InboundMessage(
        tenant_id="t1",
        source_event_id=src,
        channel=channel,
        channel_account_id=f"{channel}-acc",
        address="16505551234",
        provider_message_id=f"wamid.{src}",
        content=ge.MessageContent(text=ge.TextContent(body=text)),
        occurred_at=at,
    )


def run(
    messages: list[domain.InboundMessage], customer: str = "c1"
) -> tuple[domain.ConversationState, list[domain.TimelineMessage], list[domain.ConversationEvent]]:
    state = None
    rows: list[domain.TimelineMessage] = []
    events: list[domain.ConversationEvent] = []
    for m in messages:
        decided = domain.decide_inbound(state, customer, m)
        events += decided
        for e in decided:
            state, row = domain.apply(state, e)
            if row is not None:
                rows.append(row)
    assert state is not None
    return state, rows, events


def test_ids_are_deterministic() -> None:
    assert domain.conversation_id_for("t1", "c1") == domain.conversation_id_for("t1", "c1")
    assert domain.conversation_id_for("t1", "c1") != domain.conversation_id_for("t2", "c1")
    assert domain.message_id_for("e1") != domain.message_id_for("e2")
    assert domain.event_id_for("e1", "opened") != domain.event_id_for("e1", "message_appended")
    assert domain.normalize_identity("t", " WhatsApp ", " 1650 ") == ("t", "whatsapp", "1650")


def test_first_message_opens_then_appends() -> None:
    decided = domain.decide_inbound(None, "c1", inbound("e1"))
    assert [type(e.payload).__name__ for e in decided] == ["ConversationOpened", "MessageAppended"]
    assert [e.version for e in decided] == [1, 2]
    opened, appended = (e.payload for e in decided)
    cid = domain.conversation_id_for("t1", "c1")
    assert opened.conversation_id == appended.conversation_id == cid
    assert opened.customer_id == "c1"
    assert appended.message_id == domain.message_id_for("e1")
    assert appended.direction == ce.MESSAGE_DIRECTION_INBOUND
    assert appended.text == "hi"
    assert appended.source_event_id == "e1"
    assert appended.sent_at.ToDatetime(tzinfo=UTC) == T0
    assert {e.aggregate_id for e in decided} == {cid}
    # Same cause, same event ids.
    assert [e.event_id for e in decided] == [
        e.event_id for e in domain.decide_inbound(None, "c1", inbound("e1"))
    ]


def test_appending_counts_and_tracks_last_channel_by_provider_time() -> None:
    state, rows, events = run(
        [
            inbound("e1", at=T0),
            inbound("e2", at=T0 + timedelta(minutes=5), channel="sms"),
            # Arrives later but was sent earlier: it does not become the last channel.
            inbound("e3", at=T0 + timedelta(minutes=1), channel="telegram"),
        ]
    )
    assert [e.version for e in events] == [1, 2, 3, 4]
    assert state.version == 4
    assert state.message_count == 3
    assert state.unread_count == 3
    assert state.status == domain.STATUS_OPEN
    assert state.opened_at == T0
    assert state.last_activity_at == T0 + timedelta(minutes=5)
    assert (state.last_channel, state.last_channel_account_id) == ("sms", "sms-acc")
    assert [r.seq for r in rows] == [1, 2, 3]
    assert [r.channel for r in rows] == ["whatsapp", "sms", "telegram"]
    assert rows[1].direction == domain.INBOUND
    assert ge.MessageContent.FromString(rows[0].content).text.body == "hi"


def test_apply_rejects_impossible_streams_and_skips_unknown_types() -> None:
    opened = domain.decide_inbound(None, "c1", inbound("e1"))[0]
    state, _ = domain.apply(None, opened)
    with pytest.raises(domain.InvalidTransition):
        domain.apply(state, opened)
    with pytest.raises(domain.InvalidTransition):
        domain.apply(None, domain.decide_inbound(state, "c1", inbound("e2"))[0])
    future = domain.ConversationEvent("t1", state.conversation_id, 2, T0, ge.TextContent())
    assert domain.apply(state, future) == (replace(state, version=2), None)


def test_timeline_order_is_provider_time_then_arrival() -> None:
    a = inbound("a", at=T0 + timedelta(seconds=2))
    b = inbound("b", at=T0)
    c = inbound("c", at=T0)
    assert domain.timeline_order([(a, 1), (c, 3), (b, 2)]) == [b, c, a]


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (ge.MessageContent(text=ge.TextContent(body="hola")), "hola"),
        (ge.MessageContent(media=ge.MediaContent(kind="image", caption="look")), "look"),
        (
            ge.MessageContent(media=ge.MediaContent(kind="document", filename="a.pdf")),
            "[document: a.pdf]",
        ),
        (
            ge.MessageContent(location=ge.LocationContent(name="Shop", address="Main St 1")),
            "[location: Shop, Main St 1]",
        ),
        (
            ge.MessageContent(location=ge.LocationContent(latitude=1.5, longitude=-2)),
            "[location: 1.500000,-2.000000]",
        ),
        (
            ge.MessageContent(contacts=ge.ContactsContent(contacts=[ge.SharedContact(name="Bo")])),
            "[contact: Bo]",
        ),
        (
            ge.MessageContent(
                interactive_reply=ge.InteractiveReplyContent(reply_id="r1", title="Yes")
            ),
            "Yes",
        ),
        (ge.MessageContent(reaction=ge.ReactionContent(emoji="👍")), "[reaction: 👍]"),
        (
            ge.MessageContent(
                order=ge.OrderContent(text="asap", items=[ge.OrderItem(sku="x", quantity=2)])
            ),
            "[order: 2 items] asap",
        ),
        (
            ge.MessageContent(unsupported=ge.UnsupportedContent(provider_type="ephemeral")),
            "[unsupported: ephemeral]",
        ),
        (ge.MessageContent(), ""),
    ],
)
def test_render_text(content: ge.MessageContent, text: str) -> None:
    assert domain.render_text(content) == text
