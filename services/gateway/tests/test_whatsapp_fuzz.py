"""Property tests: whatever JSON arrives, the WhatsApp parser either normalizes it or raises
MalformedPayload (-> retried, then dead-lettered with the reason); it never crashes otherwise."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from gateway_testkit import TS, body_of, change, contact, payload, status, text_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parlay_gateway.channels.base import MalformedPayload
from parlay_gateway.channels.whatsapp import normalize_payload

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

VALID = payload(
    [
        change(
            contacts=[contact("111", "Ann")],
            messages=[
                text_message("wamid.1", "111", "hi", context={"id": "wamid.0"}),
                {
                    "from": "111",
                    "id": "wamid.2",
                    "timestamp": TS,
                    "type": "order",
                    "order": {
                        "catalog_id": "c",
                        "product_items": [
                            {
                                "product_retailer_id": "s",
                                "quantity": 1,
                                "item_price": 9.5,
                                "currency": "EUR",
                            }
                        ],
                    },
                },
                {
                    "from": "111",
                    "id": "wamid.3",
                    "timestamp": TS,
                    "type": "location",
                    "location": {"latitude": 1.5, "longitude": 2.5},
                },
                {
                    "from": "111",
                    "id": "wamid.4",
                    "timestamp": TS,
                    "type": "interactive",
                    "interactive": {
                        "type": "button_reply",
                        "button_reply": {"id": "b", "title": "B"},
                    },
                },
                {
                    "from": "111",
                    "id": "wamid.5",
                    "timestamp": TS,
                    "type": "contacts",
                    "contacts": [{"name": {"formatted_name": "X"}, "phones": [{"phone": "1"}]}],
                },
            ],
            statuses=[status("wamid.9", "failed", "111", errors=[{"code": 1, "title": "t"}])],
        )
    ]
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(VALID)[1:]


def _replace(doc: Any, path: tuple, value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _normalize(body: bytes) -> None:
    with contextlib.suppress(MalformedPayload):
        normalize_payload(body, account_id="a", tenant_id="t", webhook_event_id="w")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    _normalize(body_of({"object": "whatsapp_business_account", "entry": value}))
    _normalize(body_of(value) if not isinstance(value, float) else b"1.0")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), json_values)
def test_mutated_valid_payload_never_crashes(path: tuple, value: Any) -> None:
    _normalize(body_of(_replace(VALID, path, value)))


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _normalize(data)


def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    try:
        normalize_payload(deep, account_id="a", tenant_id="t", webhook_event_id="w")
    except MalformedPayload as exc:
        assert "RecursionError" in str(exc)
    else:
        raise AssertionError("expected MalformedPayload")
