"""`parlay events tail`: follow topics live, decoded to JSON lines, with filters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from parlay_kit.analytics.decode import Decoded, PayloadDecoder, decode_record, to_json_obj
from parlay_kit.analytics.logreader import end_offsets, make_consumer, topic_partitions


@dataclass(frozen=True)
class TailFilter:
    event_types: frozenset[str] = frozenset()
    tenant: str | None = None
    aggregate: str | None = None
    customer: str | None = None

    def matches(self, d: Decoded, obj: dict | None = None) -> bool:
        e = d.envelope
        if self.event_types and (e is None or not _type_matches(e.event_type, self.event_types)):
            return False
        if self.tenant is not None and (e is None or e.tenant_id != self.tenant):
            return False
        if self.aggregate is not None and (e is None or e.aggregate_id != self.aggregate):
            return False
        if self.customer is not None:
            if e is None:
                return False
            if e.aggregate_type == "customer" and e.aggregate_id == self.customer:
                return True
            # Any event whose payload names the customer (conversation, orders, merges, ...).
            payload = (obj or to_json_obj(d)).get("payload") or {}
            return _mentions(payload, self.customer)
        return True


def _type_matches(event_type: str, wanted: frozenset[str]) -> bool:
    """Full name ("parlay.gateway.v1.MessageReceived") or short name ("MessageReceived")."""
    return event_type in wanted or event_type.rsplit(".", 1)[-1] in wanted


def _mentions(payload: object, customer: str) -> bool:
    """A `customer_id`-like field anywhere in the payload equals `customer`."""
    if isinstance(payload, dict):
        for k, v in payload.items():
            if isinstance(v, str):
                if v == customer and "customer" in k:
                    return True
            elif _mentions(v, customer):
                return True
        return False
    if isinstance(payload, list):
        return any(_mentions(v, customer) for v in payload)
    return False


async def tail(
    bootstrap: str,
    topics: Sequence[str],
    emit: Callable[[str], None],
    *,
    flt: TailFilter = TailFilter(),
    from_beginning: bool = False,
    max_events: int | None = None,
    stop_at_end: bool = False,
    stop: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> int:
    """Print matching events as JSON lines until stopped (or `max_events` printed, or, with
    `stop_at_end`, once the ends seen at start are reached). Returns how many were printed."""
    decoder = PayloadDecoder()
    consumer = make_consumer(bootstrap, max_records=2000)
    await consumer.start()
    printed = 0
    try:
        tps = await topic_partitions(consumer, topics)
        ends = await end_offsets(consumer, tps)
        starts = await consumer.beginning_offsets(tps) if from_beginning else ends
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        if ready is not None:
            ready()
        pending = {tp for tp in tps if starts[tp] < ends[tp]}
        while stop is None or not stop.is_set():
            if stop_at_end and not pending:
                break
            fetched = await consumer.getmany(timeout_ms=200)
            for tp, records in sorted(fetched.items()):
                for r in records:
                    d = decode_record(
                        decoder, r.topic, r.partition, r.offset, r.timestamp, r.key, r.value
                    )
                    obj = to_json_obj(d)
                    if flt.matches(d, obj):
                        emit(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
                        printed += 1
                        if max_events is not None and printed >= max_events:
                            return printed
                if records and records[-1].offset >= ends[tp] - 1:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return printed
