"""Upcasting: events of an older schema are turned into the current message when they are read.

Stored events are never rewritten (DESIGN.md, "Schema evolution"). When a change cannot be
additive, the new shape is a new message (or package); the old events stay in the log as they
were written, and one registry — this module — says how to read them today. Every read path goes
through it: the projector's decode (so live consumers and `parlay replay` see current messages),
the `parlay events tail|export` decoders and `parlay at`.

An upcaster is registered for an old event type (the full protobuf name in the envelope's
`event_type` / the payload's type URL), optionally with a predicate on the envelope for the case
where the type name stayed but an old *shape* must be recognised (e.g. events written before a
field existed). It receives the envelope exactly as stored and returns the current message::

    from parlay_kit import upcasting

    @upcasting.upcaster("parlay.profile.v1.CustomerRenamed")
    def _renamed(envelope: Envelope) -> Message:
        old = upcasting.parse_old(envelope, OLD_DESCRIPTOR_POOL)   # or decode by hand
        return pe.DisplayNameChanged(customer_id=old.customer_id, display_name=old.name)

The old type does not have to be importable any more: an upcaster may parse the payload bytes
with a private descriptor pool (`parse_old`) or any other way. Upcasters chain (v1 -> v2 -> v3)
until no registered upcaster matches; the result keeps every envelope field (event id, aggregate,
versions, times, correlation) and only changes `event_type` and `payload`.

Packages contribute upcasters for their own events through the entry-point group
``parlay.upcasters`` (the value is a module that registers on import); they are loaded on the
first call to `upcast`. Reading an event that no upcaster touches costs one dict lookup.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit.envelope import TYPE_URL_PREFIX

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "parlay.upcasters"
#: A chain longer than this is a predicate that never turns false: a bug, reported loudly.
MAX_CHAIN = 16

UpcastFn = Callable[[Envelope], Message]
Predicate = Callable[[Envelope], bool]


class UpcastError(RuntimeError):
    """An upcaster failed or upcasters loop; the event cannot be read as a current message."""


@dataclass(frozen=True, slots=True)
class Upcaster:
    event_type: str
    fn: UpcastFn
    when: Predicate | None = None
    name: str = ""


class UpcasterRegistry:
    """Old event type -> the upcasters that may apply to it (first matching predicate wins)."""

    def __init__(self) -> None:
        self._by_type: dict[str, list[Upcaster]] = {}
        self._lock = threading.Lock()
        self._entry_points_loaded = False

    # ------------------------------------------------------------------ registration

    def register(
        self, event_type: str, fn: UpcastFn, *, when: Predicate | None = None, name: str = ""
    ) -> Upcaster:
        if not event_type or event_type.startswith(TYPE_URL_PREFIX):
            raise ValueError(f"register the full proto name, not {event_type!r}")
        up = Upcaster(event_type, fn, when, name or getattr(fn, "__qualname__", repr(fn)))
        with self._lock:
            existing = self._by_type.setdefault(event_type, [])
            if when is None and any(u.when is None for u in existing):
                raise ValueError(f"{event_type} already has an unconditional upcaster")
            # Conditional upcasters are tried before the unconditional one.
            existing.insert(0 if when is not None else len(existing), up)
        return up

    def unregister(self, up: Upcaster) -> None:
        with self._lock:
            items = self._by_type.get(up.event_type, [])
            if up in items:
                items.remove(up)
            if not items:
                self._by_type.pop(up.event_type, None)

    @contextlib.contextmanager
    def registered(
        self, event_type: str, fn: UpcastFn, *, when: Predicate | None = None
    ) -> Iterator[Upcaster]:
        """Register for the duration of a block (tests, one-off tools)."""
        up = self.register(event_type, fn, when=when)
        try:
            yield up
        finally:
            self.unregister(up)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._by_type

    def types(self) -> list[str]:
        return sorted(self._by_type)

    def load_entry_points(self) -> list[str]:
        """Import the modules registered under ``parlay.upcasters`` (once)."""
        if self._entry_points_loaded:
            return []
        self._entry_points_loaded = True
        loaded = []
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
                loaded.append(ep.name)
            except Exception:  # a broken plug-in must not stop every reader
                log.exception("could not load upcasters %s (%s)", ep.name, ep.value)
        return loaded

    # ------------------------------------------------------------------ reading

    def _match(self, envelope: Envelope) -> Upcaster | None:
        type_name = envelope.payload.type_url.removeprefix(TYPE_URL_PREFIX)
        candidates = self._by_type.get(type_name)
        if not candidates:
            return None
        for up in candidates:
            if up.when is None or up.when(envelope):
                return up
        return None

    def upcast(self, envelope: Envelope) -> Envelope:
        """The envelope as the current schema reads it: the same object when no upcaster
        applies, else a copy whose payload (and event_type) is the upcast message."""
        if not self._entry_points_loaded:
            self.load_entry_points()
        if not self._by_type:
            return envelope
        up = self._match(envelope)
        if up is None:
            return envelope
        current = envelope
        chain: list[str] = []
        while up is not None:
            chain.append(up.name)
            if len(chain) > MAX_CHAIN:
                raise UpcastError(f"upcasters loop on event {envelope.event_id}: {chain}")
            try:
                message = up.fn(current)
            except Exception as exc:
                raise UpcastError(
                    f"upcaster {up.name} failed on event {envelope.event_id}"
                    f" ({current.event_type}): {exc}"
                ) from exc
            upgraded = Envelope()
            upgraded.CopyFrom(current)
            upgraded.payload.Pack(message)
            upgraded.event_type = message.DESCRIPTOR.full_name
            current = upgraded
            up = self._match(current)
        return current


#: The one registry every reader uses.
REGISTRY = UpcasterRegistry()


def upcaster(event_type: str, *, when: Predicate | None = None) -> Callable[[UpcastFn], UpcastFn]:
    """Decorator: register `fn` as the upcaster of `event_type` (optionally only `when`)."""

    def decorate(fn: UpcastFn) -> UpcastFn:
        REGISTRY.register(event_type, fn, when=when)
        return fn

    return decorate


def register(event_type: str, fn: UpcastFn, *, when: Predicate | None = None) -> Upcaster:
    return REGISTRY.register(event_type, fn, when=when)


def upcast(envelope: Envelope) -> Envelope:
    """Apply the registry to one envelope (see UpcasterRegistry.upcast)."""
    return REGISTRY.upcast(envelope)


def parse_old(envelope: Envelope, pool: descriptor_pool.DescriptorPool) -> Message:
    """Parse the payload with a message type from `pool` (e.g. a pool built from the old
    .proto's descriptor, kept beside the upcaster) — for types no longer generated."""
    type_name = envelope.payload.type_url.removeprefix(TYPE_URL_PREFIX)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(type_name))
    message = cls()
    message.ParseFromString(envelope.payload.value)
    return message
