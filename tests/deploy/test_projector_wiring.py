"""Every projector can decode what its topics carry.

The kit's projector resolves a payload's type in the process's protobuf registry and skips (and
counts) a type it cannot resolve: right for a type from a newer producer, silent data loss when
a service simply never imported the module that defines it (profile once skipped every
OrderPlaced that way, so purchase summaries stayed empty). Here each service's composition root
is imported in a fresh interpreter, as `python -m parlay_<svc>` would, and the events file of
every topic its projectors consume must then be registered.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from parlay_kit import topics as topic_names

from .projectors import discover_projectors

PROJECTORS = discover_projectors()

#: The proto file whose messages are published on each topic.
EVENTS_FILE = {
    topic_names.WEBHOOKS: "parlay/gateway/v1/gateway_events.proto",
    topic_names.INBOUND: "parlay/gateway/v1/gateway_events.proto",
    topic_names.PROFILE: "parlay/profile/v1/profile_events.proto",
    topic_names.CONVERSATION: "parlay/conversation/v1/conversation_events.proto",
    topic_names.ORDERS: "parlay/orders/v1/orders_events.proto",
    topic_names.PAYMENTS: "parlay/payments/v1/payments_events.proto",
}

PROBE = """
import importlib, json, sys
from google.protobuf import descriptor_pool
importlib.import_module(sys.argv[1])
pool = descriptor_pool.Default()
registered = []
for name in sys.argv[2:]:
    try:
        pool.FindFileByName(name)
        registered.append(name)
    except KeyError:
        pass
print(json.dumps(registered))
"""


def _consumed_files(service: str) -> dict[str, list[str]]:
    """events file -> the projectors of `service` that consume it."""
    files: dict[str, list[str]] = {}
    for projector in PROJECTORS:
        if projector.service == service:
            for topic in projector.topics:
                files.setdefault(EVENTS_FILE[topic], []).append(projector.name)
    return files


@pytest.mark.parametrize("service", sorted({p.service for p in PROJECTORS}))
def test_each_service_registers_the_events_its_projectors_consume(service: str) -> None:
    consumed = _consumed_files(service)
    assert consumed, f"{service} has no projector"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, f"parlay_{service}.main", *consumed],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    registered = set(json.loads(out.stdout.strip().splitlines()[-1]))
    missing = {f: names for f, names in consumed.items() if f not in registered}
    assert not missing, (
        f"parlay_{service}.main does not import the events its projectors consume "
        f"(their payloads would be skipped as unknown types): {missing}"
    )


def test_every_consumed_topic_has_an_events_file() -> None:
    assert {t for p in PROJECTORS for t in p.topics} <= set(EVENTS_FILE)
