"""Decoding Kafka records of Parlay topics for people and tools: envelope fields + the payload
as ProtoJSON, after upcasting (so an export or a tail shows every event in its current shape).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from google.protobuf.message import Message

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit import upcasting
from parlay_kit.analytics.jsonify import message_to_dict
from parlay_kit.envelope import UnknownEventType, payload_class, unpack

#: Envelope fields, in the order they appear in exports and tails.
ENVELOPE_FIELDS = (
    "event_id",
    "event_type",
    "source",
    "tenant_id",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "occurred_at",
    "recorded_at",
    "correlation_id",
    "causation_id",
)

_types_loaded = False


def load_event_types() -> list[str]:
    """Import every generated `parlay.*` protobuf module so any payload type can be decoded
    (the projector imports only what its handlers use; analysts read everything)."""
    global _types_loaded
    names: list[str] = []
    if _types_loaded:
        return names
    import parlay

    # The generated packages are namespace packages (no __init__.py), which pkgutil does not
    # walk: find the modules on disk.
    for root in parlay.__path__:
        base = Path(root)
        for path in sorted(base.rglob("*_pb2.py")):
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join(("parlay", *parts))
            importlib.import_module(name)
            names.append(name)
    _types_loaded = True
    return names


class PayloadDecoder:
    """Payloads of every Parlay type (all generated modules are imported first), with the
    kit's one type URL -> class lookup (`parlay_kit.envelope.payload_class`)."""

    def __init__(self) -> None:
        load_event_types()

    def message_class(self, type_url: str) -> type[Message] | None:
        try:
            return payload_class(type_url)
        except UnknownEventType:
            return None

    def decode(self, envelope: Envelope) -> Message | None:
        """The payload as its message; None when the type is unknown to this process."""
        try:
            return unpack(envelope)
        except UnknownEventType:
            return None


def ts_micros(ts: Any) -> int:
    """A protobuf Timestamp as integer microseconds since the epoch (fast, exact to 1 µs)."""
    return int(ts.seconds * 1_000_000 + ts.nanos // 1000)


def iso(ts: Any) -> str | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return datetime.fromtimestamp(ts.seconds, UTC).replace(microsecond=ts.nanos // 1000).isoformat()


@dataclass(slots=True)
class Decoded:
    """One record, decoded."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str
    envelope: Envelope | None
    payload: Message | None
    error: str = ""


def decode_record(
    decoder: PayloadDecoder,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
) -> Decoded:
    key_text = key.decode(errors="replace") if key else ""
    try:
        envelope = Envelope.FromString(value or b"")
        if not envelope.event_id:
            raise ValueError("not a Parlay envelope (no event_id)")
        envelope = upcasting.upcast(envelope)
    except Exception as exc:
        return Decoded(topic, partition, offset, timestamp_ms, key_text, None, None, str(exc))
    try:
        payload = decoder.decode(envelope)
    except Exception as exc:
        return Decoded(topic, partition, offset, timestamp_ms, key_text, envelope, None, str(exc))
    error = "" if payload is not None else f"unknown payload type {envelope.payload.type_url}"
    return Decoded(topic, partition, offset, timestamp_ms, key_text, envelope, payload, error)


def to_json_obj(d: Decoded) -> dict[str, Any]:
    """A JSON-ready dict: Kafka coordinates, envelope fields, the payload (ProtoJSON)."""
    out: dict[str, Any] = {
        "topic": d.topic,
        "partition": d.partition,
        "offset": d.offset,
        "timestamp": datetime.fromtimestamp(d.timestamp_ms / 1000, UTC).isoformat()
        if d.timestamp_ms
        else None,
        "key": d.key,
    }
    e = d.envelope
    if e is not None:
        out.update(
            event_id=e.event_id,
            event_type=e.event_type,
            source=e.source,
            tenant_id=e.tenant_id,
            aggregate_type=e.aggregate_type,
            aggregate_id=e.aggregate_id,
            aggregate_version=e.aggregate_version,
            occurred_at=iso(e.occurred_at),
            recorded_at=iso(e.recorded_at),
            correlation_id=e.correlation_id,
            causation_id=e.causation_id,
        )
    out["payload"] = message_to_dict(d.payload) if d.payload is not None else None
    if d.error:
        out["error"] = d.error
    return out


def to_json_line(d: Decoded) -> str:
    return orjson.dumps(to_json_obj(d)).decode()
