"""`parlay at <time> <kind> <id>`: an aggregate as it stood at an instant.

The owning service's event store is the source: the aggregate's events with
``recorded_at <= time`` (when Parlay knew them), upcast, decoded and folded with the service's
own `apply` (registered in its `rebuild.py` as an `AggregateView`). The answer is what the
service's read model said at that instant, not a guess from the current state.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

import asyncpg
from google.protobuf.message import Message

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit import upcasting
from parlay_kit.analytics.decode import PayloadDecoder
from parlay_kit.analytics.jsonify import message_to_dict
from parlay_kit.analytics.registry import AggregateView, Registry, discover
from parlay_kit.db import check_identifier


class UnknownAggregateKind(LookupError):
    pass


@dataclass
class AsOf:
    kind: str
    aggregate_id: str
    at: datetime
    version: int
    events_applied: int
    events_after: int
    last_recorded_at: datetime | None
    state: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.aggregate_id,
            "at": self.at.isoformat(),
            "exists": self.state is not None,
            "version": self.version,
            "events_applied": self.events_applied,
            "events_after": self.events_after,
            "last_event_recorded_at": self.last_recorded_at.isoformat()
            if self.last_recorded_at
            else None,
            "state": self.state,
        }


def jsonable(value: Any) -> Any:
    """Dataclasses, named tuples, mappings, datetimes, bytes, enums and messages to JSON-ready
    values.
    Mappings with non-string keys (e.g. identities keyed by (channel, address)) become the
    list of their values."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Message):
        return message_to_dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple
        return {k: jsonable(getattr(value, k)) for k in value._fields}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: jsonable(v) for k, v in value.items()}
        return [jsonable(v) for _k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def find_view(kind: str, registry: Registry | None = None) -> AggregateView:
    registry = registry or discover()
    view = registry.aggregates.get(kind)
    if view is None:
        known = ", ".join(sorted(registry.aggregates)) or "none"
        raise UnknownAggregateKind(
            f"no service registers aggregates of kind {kind!r} yet (registered: {known})"
        )
    return view


async def aggregate_at(
    conn: asyncpg.Connection,
    view: AggregateView,
    aggregate_id: str,
    at: datetime,
    *,
    schema: str | None = None,
    tenant_id: str | None = None,
) -> AsOf:
    """Fold the aggregate's events recorded at or before `at`."""
    s = check_identifier(schema or view.service)
    rows = await conn.fetch(
        f"""SELECT envelope, recorded_at, aggregate_version FROM {s}.events
            WHERE aggregate_id = $1 AND aggregate_type = $2
              AND ($3::text IS NULL OR tenant_id = $3)
            ORDER BY aggregate_version""",
        aggregate_id,
        view.aggregate_type,
        tenant_id,
    )
    decoder = PayloadDecoder()
    events: list[tuple[Envelope, Message]] = []
    after = 0
    last: datetime | None = None
    version = 0
    for row in rows:
        if row["recorded_at"] > at:
            after += 1
            continue
        envelope = upcasting.upcast(Envelope.FromString(row["envelope"]))
        payload = decoder.decode(envelope)
        if payload is None:
            raise LookupError(f"unknown payload type {envelope.payload.type_url}")
        events.append((envelope, payload))
        last = row["recorded_at"]
        version = row["aggregate_version"]
    state = view.fold(events) if events else None
    return AsOf(
        kind=view.kind,
        aggregate_id=aggregate_id,
        at=at,
        version=version,
        events_applied=len(events),
        events_after=after,
        last_recorded_at=last,
        state=jsonable(state),
    )


async def at(
    database_url: str,
    kind: str,
    aggregate_id: str,
    when: datetime,
    *,
    schema: str | None = None,
    tenant_id: str | None = None,
    registry: Registry | None = None,
) -> AsOf:
    view = find_view(kind, registry)
    conn = await asyncpg.connect(database_url)
    try:
        return await aggregate_at(
            conn, view, aggregate_id, when, schema=schema, tenant_id=tenant_id
        )
    finally:
        await conn.close()
