"""The event envelope: building, encoding and decoding the one message every topic carries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf import any_pb2, symbol_database
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from parlay.envelope.v1.envelope_pb2 import Envelope

#: Namespace for deterministic event ids (uuid5). Never change it: ids must stay stable.
EVENT_ID_NAMESPACE = uuid.UUID("6f1f7a52-4c1e-5e8e-9a57-2d0f3b1f0a11")

TYPE_URL_PREFIX = "type.googleapis.com/"


def deterministic_event_id(*parts: str) -> str:
    """uuid5 over the parts, e.g. ("whatsapp", wamid, "received"): a retried input yields the same id."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts)))


def new_event_id() -> str:
    return str(uuid.uuid4())


def to_timestamp(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def event_type_of(message: Message) -> str:
    return message.DESCRIPTOR.full_name


def pack(message: Message) -> any_pb2.Any:
    payload = any_pb2.Any()
    payload.Pack(message)
    return payload


class UnknownEventType(LookupError):
    """The payload's type is not in this process's descriptor pool."""


#: Payload class by type URL: the symbol database is asked once per type, not once per event
#: (a lookup and the Any's own type check were a fifth of a projector's decoding).
_PAYLOAD_CLASSES: dict[str, type[Message]] = {}


def payload_class(type_url: str) -> type[Message]:
    """The message class of a payload's type URL (the type must be imported somewhere)."""
    cls = _PAYLOAD_CLASSES.get(type_url)
    if cls is None:
        type_name = type_url.removeprefix(TYPE_URL_PREFIX)
        try:
            cls = symbol_database.Default().GetSymbol(type_name)
        except KeyError as exc:
            raise UnknownEventType(type_name) from exc
        # Only found types are remembered: a type imported later is still found then.
        _PAYLOAD_CLASSES[type_url] = cls
    return cls


def unpack(envelope: Envelope) -> Message:
    """Decode the payload to its concrete message class. What Any.Unpack does, less its type
    check: the class was found by this very type URL."""
    payload = envelope.payload  # a sub-message: read once (each access wraps it anew)
    return payload_class(payload.type_url).FromString(payload.value)


def encode(envelope: Envelope) -> bytes:
    return envelope.SerializeToString(deterministic=True)


def decode(data: bytes) -> Envelope:
    envelope = Envelope()
    envelope.ParseFromString(data)
    return envelope


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event a service is about to append; the store fills in position and recorded_at."""

    event_id: str
    tenant_id: str
    aggregate_type: str
    aggregate_id: str
    payload: Message
    occurred_at: datetime
    topic: str
    #: None: the store assigns the next version of the aggregate (no concurrency check).
    #: An int: this exact version, the append fails with ConcurrencyError if it is taken.
    aggregate_version: int | None = None
    correlation_id: str = ""
    causation_id: str = ""
    #: W3C traceparent of the work that produced the event; the relay puts it on the record.
    traceparent: str = ""

    @property
    def event_type(self) -> str:
        return event_type_of(self.payload)

    def to_envelope(self, source: str, version: int, recorded_at: datetime) -> Envelope:
        return Envelope(
            event_id=self.event_id,
            event_type=self.event_type,
            source=source,
            tenant_id=self.tenant_id,
            aggregate_type=self.aggregate_type,
            aggregate_id=self.aggregate_id,
            aggregate_version=version,
            occurred_at=to_timestamp(self.occurred_at),
            recorded_at=to_timestamp(recorded_at),
            correlation_id=self.correlation_id or self.event_id,
            causation_id=self.causation_id,
            payload=pack(self.payload),
        )
