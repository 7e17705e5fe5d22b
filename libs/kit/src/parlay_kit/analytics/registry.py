"""What services make available to the analyst tools, discovered through entry points.

Each service declares one module in its pyproject::

    [project.entry-points."parlay.projections"]
    profile = "parlay_profile.rebuild"

and that module (``services/<svc>/src/parlay_<svc>/rebuild.py``) defines

* ``PROJECTIONS``: the `Projection`s `parlay replay` can rebuild (read models from the log) or
  re-run (processes such as the gateway normalizer, whose output goes back to the store);
* ``AGGREGATES`` (optional): the `AggregateView`s `parlay at` can fold (customer, conversation,
  order, ...), each with the owning service's own `apply`.

A new service (orders, payments) plugs in with the same two names; nothing in the kit changes.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from google.protobuf.message import Message

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit.db import Migration
from parlay_kit.envelope import from_timestamp
from parlay_kit.projector import Handler

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "parlay.projections"


@dataclass(frozen=True)
class Projection:
    """A projection `parlay replay` can run from the log.

    kind="readmodel": rebuilt into a fresh schema beside the live one (`<schema>__rebuild_<local
    name>`) with the service's read-model `migrations`; `tables` are the read models it owns
    (compared by `--verify`, moved into the live schema by `--swap`).
    kind="reprocess": re-run over the log against the *live* schema; the events the handler
    emits are appended to the live event store (duplicates skipped by event id), e.g. the
    gateway normalizer over the raw webhooks with a fixed parser.
    """

    name: str
    service: str
    topics: tuple[str, ...]
    #: schema -> the handler (a projector Handler; `handle_batch` is used when defined).
    handler: Callable[[str], Handler]
    migrations: Sequence[Migration] = ()
    tables: tuple[str, ...] = ()
    kind: Literal["readmodel", "reprocess"] = "readmodel"
    #: Columns `--verify` leaves out, per table, because they hold wall-clock time (when a row
    #: was written), not a function of the log.
    ignore_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""
    #: A rebuild drops the secondary indexes of `tables` (neither unique nor backing a
    #: constraint) after the migrations and builds them again once the log is read: one bulk
    #: build costs far less than updating every index row by row. Only for a handler that never
    #: reads its tables through such an index (it would scan the whole table instead).
    defer_secondary_indexes: bool = False

    @property
    def local_name(self) -> str:
        return self.name.rsplit(".", 1)[-1].replace("-", "_")


@dataclass(frozen=True)
class AggregateView:
    """How `parlay at` folds one kind of aggregate from its owning service's event store."""

    kind: str
    service: str
    aggregate_type: str
    #: [(envelope, payload)] oldest first -> a JSON-ready description of the state (None when
    #: the aggregate did not exist yet).
    fold: Callable[[Sequence[tuple[Envelope, Message]]], Any]
    description: str = ""
    aliases: tuple[str, ...] = ()


def fold_with(apply: Callable[..., Any]) -> Callable[[Sequence[tuple[Envelope, Message]]], Any]:
    """An `AggregateView.fold` from a domain's `apply(state, payload, *, tenant_id, version,
    at)`: the aggregate's events folded oldest first (`parlay at` makes the result JSON-ready)."""

    def fold(events: Sequence[tuple[Envelope, Message]]) -> Any:
        state = None
        for envelope, payload in events:
            state = apply(
                state,
                payload,
                tenant_id=envelope.tenant_id,
                version=envelope.aggregate_version,
                at=from_timestamp(envelope.occurred_at),
            )
        return state

    return fold


@dataclass
class Registry:
    projections: dict[str, Projection] = field(default_factory=dict)
    aggregates: dict[str, AggregateView] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add_module(self, module: ModuleType | Any, origin: str = "") -> None:
        for p in getattr(module, "PROJECTIONS", ()):
            if p.name in self.projections:
                self.problems.append(f"projection {p.name} registered twice ({origin})")
                continue
            self.projections[p.name] = p
        for a in getattr(module, "AGGREGATES", ()):
            for kind in (a.kind, *a.aliases):
                if kind in self.aggregates:
                    self.problems.append(f"aggregate kind {kind} registered twice ({origin})")
                    continue
                self.aggregates[kind] = a

    def of_service(self, service: str) -> list[Projection]:
        return [p for p in self.projections.values() if p.service == service]


def discover() -> Registry:
    """Load every module registered under ``parlay.projections``."""
    registry = Registry()
    for ep in sorted(
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
    ):
        try:
            module = ep.load()
        except Exception as exc:  # one broken service must not hide the others
            registry.problems.append(f"{ep.name} ({ep.value}): {type(exc).__name__}: {exc}")
            log.warning("could not load %s: %s", ep.value, exc)
            continue
        registry.add_module(module, ep.value)
    return registry
