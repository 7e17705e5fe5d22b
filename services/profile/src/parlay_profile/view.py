"""The profile as people see it (pure): a customer together with every customer merged into it.

Each customer's own state stays what its stream says; a merged group is *shown* as one:

* identities, tags: the union; attributes: the survivor's win over the merged customers';
* display name, locale: the survivor's, else the first merged customer's that has one;
* consent per (channel, purpose): the latest ledger entry of any member;
* last seen per channel, last shared location: the latest of any member;
* purchase summary: the sum; created_at: the earliest; updated_at: the latest;
* version: the survivor's own stream version (what UpdateCustomer's expected_version checks).

Unmerging ends the grouping and nothing else, so both customers are shown exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from parlay_profile.domain import (
    PURPOSE_TRANSACTIONAL,
    ChannelSeen,
    ConsentRecord,
    CustomerState,
    LinkedIdentity,
    SharedLocation,
    contact_channel,
)


@dataclass(frozen=True, slots=True)
class IdentityView:
    link: LinkedIdentity
    customer_id: str


@dataclass(frozen=True, slots=True)
class ConsentView:
    channel: str
    purpose: str
    record: ConsentRecord
    customer_id: str


@dataclass(frozen=True, slots=True)
class CustomerView:
    tenant_id: str
    customer_id: str
    display_name: str
    version: int
    created_at: datetime
    updated_at: datetime
    locale: str
    attributes: dict[str, str]
    tags: tuple[str, ...]
    identities: tuple[IdentityView, ...]
    consents: tuple[ConsentView, ...]
    channels: tuple[tuple[str, ChannelSeen], ...]
    location: SharedLocation | None
    order_count: int
    lifetime_value: tuple[tuple[str, int], ...]
    #: (customer id, merge id) of every customer shown inside this one.
    merged: tuple[tuple[str, str], ...]


def compose(group: Sequence[CustomerState]) -> CustomerView:
    """The view of a merged group: `group[0]` is the survivor (root), the rest the customers
    merged into it, depth first in merge order (`Profiles.group`)."""
    root = group[0]
    identities = sorted(
        (IdentityView(link, s.customer_id) for s in group for link in s.identities.values()),
        key=lambda i: (i.link.linked_at, i.link.channel, i.link.address),
    )
    attributes: dict[str, str] = {}
    for state in reversed(group):
        attributes.update(state.attributes)
    consents: dict[tuple[str, str], ConsentView] = {}
    for state in group:
        for (channel, purpose), record in state.consents.items():
            best = consents.get((channel, purpose))
            if best is None or record.changed_at > best.record.changed_at:
                consents[(channel, purpose)] = ConsentView(
                    channel, purpose, record, state.customer_id
                )
    channels: dict[str, ChannelSeen] = {}
    for state in group:
        for channel, seen in state.seen.items():
            best_seen = channels.get(channel)
            if best_seen is None or seen.last_seen_at > best_seen.last_seen_at:
                channels[channel] = seen
    location: SharedLocation | None = None
    for state in group:
        if state.location is not None and (
            location is None or state.location.shared_at > location.shared_at
        ):
            location = state.location
    ltv: dict[str, int] = {}
    for state in group:
        for currency, amount in state.lifetime_value.items():
            ltv[currency] = ltv.get(currency, 0) + amount
    merged: list[tuple[str, str]] = []
    for state in group[1:]:
        merged.append((state.customer_id, state.merge_id))
    return CustomerView(
        tenant_id=root.tenant_id,
        customer_id=root.customer_id,
        display_name=next((s.display_name for s in group if s.display_name), ""),
        version=root.version,
        created_at=min(s.created_at for s in group),
        updated_at=max(s.updated_at for s in group),
        locale=next((s.locale for s in group if s.locale), ""),
        attributes=attributes,
        tags=tuple(sorted({t for s in group for t in s.tags})),
        identities=tuple(identities),
        consents=tuple(consents[k] for k in sorted(consents)),
        channels=tuple(sorted(channels.items())),
        location=location,
        order_count=sum(s.order_count for s in group),
        lifetime_value=tuple(sorted(ltv.items())),
        merged=tuple(merged),
    )


@dataclass(frozen=True, slots=True)
class ContactAnswer:
    allowed: bool
    reason: str
    consent: ConsentView | None


def can_contact(view: CustomerView, channel: str, purpose: str) -> ContactAnswer:
    """May the business message this customer on `channel` for `purpose`, and why.

    * No identity on that channel: no (there is no address to write to).
    * A ledger entry for (channel, purpose): what it says, with its source and evidence.
    * No entry: transactional messages are allowed until the customer opts out; marketing
      needs an opt-in."""
    channel = contact_channel(channel)
    if not any(contact_channel(i.link.channel) == channel for i in view.identities):
        return ContactAnswer(False, f"the customer has no {channel} identity", None)
    entry = next((c for c in view.consents if c.channel == channel and c.purpose == purpose), None)
    if entry is not None:
        r = entry.record
        what = "opted in to" if r.granted else "opted out of"
        how = f"{r.source}/{r.rule}"
        if r.note:
            how += f' "{r.note}"'
        return ContactAnswer(
            r.granted,
            f"{what} {purpose} on {channel} at {r.changed_at.isoformat()} ({how})",
            entry,
        )
    if purpose == PURPOSE_TRANSACTIONAL:
        return ContactAnswer(
            True, f"no opt-out recorded on {channel}: transactional messages are allowed", None
        )
    return ContactAnswer(False, f"no {purpose} opt-in recorded on {channel}", None)
