"""The fast ProtoJSON converter used by export/tail gives exactly json_format's output."""

from __future__ import annotations

import math

from google.protobuf import json_format, struct_pb2, wrappers_pb2
from google.protobuf.any_pb2 import Any
from hypothesis import given, settings
from hypothesis import strategies as st

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_kit.analytics.decode import load_event_types
from parlay_kit.analytics.jsonify import message_to_dict


def reference(message) -> object:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def test_every_parlay_event_type_round_trips_with_defaults() -> None:
    import importlib

    from google.protobuf import symbol_database

    db = symbol_database.Default()
    checked = 0
    for module_name in load_event_types() or _loaded_modules():
        if not module_name.endswith("_events_pb2"):
            continue
        module = importlib.import_module(module_name)
        for msg_name in module.DESCRIPTOR.message_types_by_name:
            cls = db.GetSymbol(f"{module.DESCRIPTOR.package}.{msg_name}")
            empty = cls()
            assert message_to_dict(empty) == reference(empty)
            checked += 1
    assert checked >= 10


def _loaded_modules() -> list[str]:
    import sys

    return [n for n in sys.modules if n.startswith("parlay.") and n.endswith("_pb2")]


def test_a_fresh_process_can_decode_every_event_type() -> None:
    """The CLI imports nothing but the kit: the decoder must find every generated module
    (they are namespace packages, which pkgutil does not walk)."""
    import subprocess
    import sys

    code = (
        "from parlay_kit.analytics.decode import PayloadDecoder\n"
        "d = PayloadDecoder()\n"
        "for t in ('parlay.conversation.v1.MessageAppended', 'parlay.profile.v1.CustomerCreated',"
        " 'parlay.gateway.v1.WebhookReceived'):\n"
        "    assert d.message_class('type.googleapis.com/' + t) is not None, t\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_nested_content_maps_bytes_enums_timestamps_and_int64() -> None:
    msg = ce.MessageAppended(
        conversation_id="c1",
        message_id="m1",
        direction=ce.MESSAGE_DIRECTION_INBOUND,
        channel="whatsapp",
        text="héllo ✓",
        content=ge.MessageContent(
            order=ge.OrderContent(
                items=[ge.OrderItem(quantity=3, unit_price_minor=1250)],
                text="x",
            )
        ),
    )
    msg.sent_at.FromJsonString("2024-05-06T09:00:00.123456Z")
    assert message_to_dict(msg) == reference(msg)
    wh = ge.WebhookReceived(
        channel="whatsapp",
        headers={"content-type": "application/json", "x": "y"},
        body=b"\x00\xffbinary{}",
    )
    wh.received_at.FromJsonString("2024-05-06T09:00:00Z")
    assert message_to_dict(wh) == reference(wh)
    loc = ge.MessageContent(location=ge.LocationContent(latitude=math.pi, longitude=-0.0))
    assert message_to_dict(loc) == reference(loc)


def test_well_known_types_delegate_to_json_format() -> None:
    s = struct_pb2.Struct()
    s.update({"a": 1, "b": [True, None, "x"]})
    assert message_to_dict(s) == reference(s)
    a = Any()
    a.Pack(wrappers_pb2.StringValue(value="v"))
    assert message_to_dict(a) == reference(a)


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(max_size=30),
    lat=st.floats(allow_nan=True, allow_infinity=True),
    qty=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    seconds=st.integers(min_value=-62135596800, max_value=253402300799),
    nanos=st.integers(min_value=0, max_value=999_999_999),
    status=st.integers(min_value=0, max_value=7),
    headers=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    body=st.binary(max_size=20),
)
def test_property_equal_to_json_format(
    text, lat, qty, seconds, nanos, status, headers, body
) -> None:
    msgs = [
        ge.MessageContent(text=ge.TextContent(body=text)),
        ge.MessageContent(location=ge.LocationContent(latitude=lat, name=text)),
        ge.OrderItem(quantity=qty, sku=text),
        ge.MessageStatusUpdated(status=status, error_code=text),
        ge.WebhookReceived(headers=headers, body=body),
    ]
    ts = ge.MessageReceived(provider_message_id=text)
    ts.sent_at.seconds = seconds
    ts.sent_at.nanos = nanos
    msgs.append(ts)
    for m in msgs:
        assert message_to_dict(m) == reference(m)


def test_same_keys_in_the_same_order_as_json_format() -> None:
    """The export stores the payload as a JSON string: the text must be json_format's, key
    order included (field-number order, oneof members and proto3 `optional` among them)."""
    import orjson

    from parlay.profile.v1 import profile_events_pb2 as pe

    msg = ce.MessageAppended(
        text="t",
        conversation_id="c1",
        channel="whatsapp",
        content=ge.MessageContent(text=ge.TextContent(body="hi")),
        direction=ce.MESSAGE_DIRECTION_OUTBOUND,
    )
    msg.sent_at.FromJsonString("2024-05-06T09:00:59.5Z")
    updated = pe.CustomerUpdated(
        customer_id="c", locale="", set_attributes={"b": "1", "a": "2"}, added_tags=["x"]
    )
    for m in (msg, updated, pe.CustomerUpdated(display_name="Ana"), pe.CustomerUpdated()):
        assert orjson.dumps(message_to_dict(m)) == orjson.dumps(reference(m))
    # proto3 `optional` set to its default is present (it has presence), like json_format says.
    assert message_to_dict(updated)["locale"] == ""


@settings(max_examples=100, deadline=None)
@given(seconds=st.lists(st.integers(min_value=0, max_value=4_102_444_800), max_size=8))
def test_timestamps_through_the_minute_cache(seconds) -> None:
    """Timestamps share a cached "YYYY-MM-DDTHH:MM:" per minute: any sequence (same minute,
    next second, far apart) prints as Timestamp.ToJsonString does."""
    for s in seconds + [s + 1 for s in seconds] + [s - 59 for s in seconds if s >= 59]:
        m = ge.MessageReceived()
        m.sent_at.seconds = s
        m.sent_at.nanos = 1000 * (s % 7)
        assert message_to_dict(m) == reference(m)
