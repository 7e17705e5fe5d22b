"""What `parlay replay` can do with the gateway (analysts, issue 8).

Discovered through the `parlay.projections` entry point in services/gateway/pyproject.toml.

gateway.normalizer (reprocess)
    Re-runs the normalizer — with the parsers of the code now deployed — over the raw webhook
    topic. What it emits is appended to the gateway's live event store, which skips event ids it
    already holds (normalized events have deterministic ids: channel, account, provider message
    id, kind), so only the events a buggy parser missed are added; the relay then publishes
    them to parlay.gateway.inbound.v1 and every consumer picks them up as usual. Statuses go
    through the live status ledger, so a re-run only adds a status that advances what consumers
    have already seen (a missed "delivered" older than a seen "read" stays unsent, exactly as if
    the fixed parser had run from the start). Webhooks the
    fixed parser still cannot read are listed in <schema>__replay_normalizer.replay_errors.
"""

from __future__ import annotations

from parlay_gateway.channels.registry import default_registry
from parlay_gateway.normalizer import Normalizer
from parlay_kit import topics
from parlay_kit.analytics.registry import Projection


def _normalizer(schema: str) -> Normalizer:
    # `schema` is the live gateway schema: the normalizer's status ledger (message_status,
    # status_watermarks) is part of the live state a re-run continues from.
    return Normalizer(default_registry(), schema=schema)


PROJECTIONS = [
    Projection(
        name="gateway.normalizer",
        service="gateway",
        topics=(topics.WEBHOOKS,),
        handler=_normalizer,
        kind="reprocess",
        description="re-normalize raw webhooks; appends only events not stored yet",
    )
]
