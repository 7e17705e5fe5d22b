"""The hand-written protobuf encoding of stored message entries (render.py) gives exactly the
bytes the generated code gives: rows written before and after it are equal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parlay.conversation.v1 import conversation_service_pb2 as cs
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import domain, render
from parlay_conversation.domain import TimelineMessage

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def reference_static(m: TimelineMessage) -> bytes:
    """What message_static_bytes was before it was hand-written: the generated serializer."""
    data = render.static_message(m).SerializeToString()
    if m.content:
        tag = (
            render._OUTBOUND_CONTENT_TAG if m.direction == domain.OUTBOUND else render._CONTENT_TAG
        )
        data += tag + render.varint(len(m.content)) + m.content
    return data


def message(**changes: object) -> TimelineMessage:
    fields: dict[str, object] = dict(
        tenant_id="t1",
        conversation_id="c1",
        message_id="m1",
        seq=1,
        direction=domain.INBOUND,
        channel="whatsapp",
        channel_account_id="acc-1",
        provider_message_id="wamid.1",
        text="hola",
        content=ge.MessageContent(text=ge.TextContent(body="hola")).SerializeToString(),
        occurred_at=T0,
        source_event_id="e1",
    )
    fields.update(changes)
    return TimelineMessage(**fields)  # type: ignore[arg-type]


LONG = "ü" * 300  # multi-byte characters, a two-byte length


@pytest.mark.parametrize(
    "m",
    [
        message(),
        message(
            text=LONG, content=ge.MessageContent(text=ge.TextContent(body=LONG)).SerializeToString()
        ),
        message(occurred_at=T0 + timedelta(microseconds=123_456)),
        message(occurred_at=datetime(1960, 2, 3, 4, 5, 6, 7, tzinfo=UTC)),  # negative seconds
        message(occurred_at=datetime(1970, 1, 1, tzinfo=UTC)),  # all zero
        message(message_id="", channel="", channel_account_id="", provider_message_id="", text=""),
        message(content=b""),
        message(direction="", sender="bot"),
        message(
            direction=domain.OUTBOUND,
            provider_message_id="wamid.out",  # not part of an outbound message's static bytes
            content=ge.OutboundContent(
                template=ge.TemplateContent(name="t", language="en")
            ).SerializeToString(),
            status=domain.MSG_PENDING,
            sender="agent:ana",
            purpose="marketing",
            client_message_id="c-1",
            status_at=T0,
        ),
    ],
)
def test_static_bytes_are_the_generated_serialization(m: TimelineMessage) -> None:
    assert render.message_static_bytes(m) == reference_static(m)
    assert cs.Message.FromString(render.message_static_bytes(m)).message_id == m.message_id


@pytest.mark.parametrize(
    "progress",
    [
        ("sent", T0, "wamid.9", "", ""),
        ("failed", T0 + timedelta(microseconds=1), "", "131047", "Re-engagement message " * 20),
        ("", None, "", "", ""),
        ("read", datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), "p", "e", "m"),
    ],
)
def test_progress_bytes_are_the_generated_serialization(progress: tuple) -> None:
    assert (
        render.progress_bytes(*progress) == render.progress_message(*progress).SerializeToString()
    )


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16_383, 16_384, 2**31, 2**63 - 1, -1, -(2**63)])
def test_varint_matches_protobuf(n: int) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    # A Timestamp's seconds (int64, field 1) is a tag byte and the varint.
    assert b"\x08" + render.varint(n) == (Timestamp(seconds=n).SerializeToString() or b"\x08\x00")


def test_entries_of_long_messages_parse() -> None:
    m = message(
        text=LONG, content=ge.MessageContent(text=ge.TextContent(body=LONG)).SerializeToString()
    )
    conversation = cs.Conversation.FromString(render.message_entry(m) + render.message_entry(m))
    assert [x.text for x in conversation.messages] == [LONG, LONG]
    assert conversation.messages[0] == render.message_to_proto(m)


def test_timestamps_round_trip() -> None:
    for dt in (T0, T0 + timedelta(microseconds=999_999), datetime(1901, 1, 1, tzinfo=UTC)):
        assert domain.timestamp(render.timestamp(dt)) == dt
