"""The whole profile model in memory (pure): what the service does, minus Postgres and Kafka.

Used by the property tests and handy in a notebook: feed observations and commands, read
customers as people see them, and check the log: every customer's state is the fold of its
own events.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from parlay_profile import domain, rules, view


class InMemoryProfiles:
    def __init__(self, *, seen_resolution: timedelta = domain.DEFAULT_SEEN_RESOLUTION) -> None:
        self.resolver = rules.Resolver(rules.Profiles(), seen_resolution=seen_resolution)

    @property
    def profiles(self) -> rules.Profiles:
        return self.resolver.profiles

    @property
    def log(self) -> list[domain.ProfileEvent]:
        return self.resolver.events

    def observe(self, observation: rules.AnyObservation) -> list[domain.ProfileEvent]:
        """Apply an observation; the events it produced."""
        mark = len(self.resolver.events)
        self.resolver.observe(observation)
        return self.resolver.events[mark:]

    def command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a Resolver command (merge_customers, unmerge_customers, link_identity, ...).
        A command that raises leaves nothing behind (as its transaction would)."""
        mark = len(self.resolver.events)
        try:
            return getattr(self.resolver, name)(*args, **kwargs)
        except Exception:
            touched = {e.aggregate_id for e in self.resolver.events[mark:]}
            del self.resolver.events[mark:]
            for cid in touched:  # refold what the failed command had begun to change
                state = domain.fold(None, [e for e in self.log if e.aggregate_id == cid])
                if state is not None:
                    self.profiles.put(state)
                else:
                    self.profiles.states.pop(cid, None)
            raise

    def state(self, customer_id: str) -> domain.CustomerState:
        return self.profiles.require(customer_id)

    def owner(self, tenant_id: str, channel: str, address: str) -> str | None:
        return self.profiles.owner(tenant_id, channel, address)

    def root(self, customer_id: str) -> str:
        return self.profiles.root(customer_id)

    def view(self, customer_id: str) -> view.CustomerView:
        """The customer as GetCustomer answers (the survivor's merged group)."""
        return view.compose(self.profiles.group(self.profiles.root(customer_id)))

    def roots(self, tenant_id: str | None = None) -> list[str]:
        return sorted(
            cid
            for cid, s in self.profiles.states.items()
            if not s.merged_into and (tenant_id is None or s.tenant_id == tenant_id)
        )

    def refold(self) -> dict[str, domain.CustomerState]:
        """Every customer rebuilt from the log alone (what CustomerProjection does)."""
        streams: dict[str, list[domain.ProfileEvent]] = defaultdict(list)
        for event in self.log:
            streams[event.aggregate_id].append(event)
        out = {}
        for cid, events in streams.items():
            state = domain.fold(None, events)
            assert state is not None
            out[cid] = state
        return out
