"""What `parlay replay` and `parlay at` can do with the profile service (analysts, issue 8).

Discovered through the `parlay.projections` entry point in services/profile/pyproject.toml.

profile.customers (read model)
    CustomerProjection folds parlay.profile.v1 into customers, customer_identities,
    customer_channels, customer_consents and customer_merges, with the same `domain.apply` the
    live projectors use to keep them. Every column is a function of the log (times are event
    times), so --verify compares every column.

customer (aggregate view for `parlay at`)
    The customer's events from profile.events, folded with `domain.apply`.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit import topics
from parlay_kit.analytics.registry import AggregateView, Projection
from parlay_kit.envelope import from_timestamp
from parlay_profile import domain
from parlay_profile.projections import CustomerProjection
from parlay_profile.readmodel import MIGRATIONS, CustomerReadModel


def _customers(schema: str) -> CustomerProjection:
    return CustomerProjection(CustomerReadModel(schema))


def fold_customer(events: Sequence[tuple[Envelope, Message]]) -> domain.CustomerState | None:
    state: domain.CustomerState | None = None
    for envelope, payload in events:
        state = domain.apply(
            state,
            domain.ProfileEvent(
                tenant_id=envelope.tenant_id,
                aggregate_id=envelope.aggregate_id,
                version=envelope.aggregate_version,
                occurred_at=from_timestamp(envelope.occurred_at),
                payload=payload,
                event_id=envelope.event_id,
            ),
        )
    return state


PROJECTIONS = [
    Projection(
        name="profile.customers",
        service="profile",
        topics=(topics.PROFILE,),
        handler=_customers,
        migrations=MIGRATIONS,
        tables=(
            "customers",
            "customer_identities",
            "customer_channels",
            "customer_consents",
            "customer_merges",
        ),
        description="customers, identities, last seen, consents, merges (parlay.profile.v1)",
    )
]

AGGREGATES = [
    AggregateView(
        kind="customer",
        service="profile",
        aggregate_type=domain.AGGREGATE_TYPE,
        fold=fold_customer,
        description="a customer: name, identities with evidence, last seen per channel",
    )
]
