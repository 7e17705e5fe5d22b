"""Profile domain rules: pure functions, no I/O.

A customer is an aggregate ("customer", id = customer_id). Its state is a fold of its events
(`apply`); what a new observation of an identity means for it is decided by `decide_message`.
The identity-resolution projection and the read-model rebuild both use these two functions, so
the read models are a function of the profile topic.

Rules implemented now (issue 2):

* An identity is (channel, address) inside one tenant, the address exactly as the channel gives
  it (trimmed; channel names lower-case). Nothing is ever resolved across tenants.
* First contact from an unknown identity creates a customer whose id is derived from
  (tenant, channel, address), so replaying the same inbound log creates the same id, and links
  the identity with evidence rule ``first_contact`` naming the message event.
* The display name is the one the channel reports. It changes (DisplayNameChanged) when a later
  message reports a different, non-empty name; a message older than the current name's
  evidence never overrides it, so out-of-order or replayed messages cannot flip it back.
* Last seen per channel: CustomerSeen is emitted when a message moves the customer's last-seen
  time on that channel forward by at least `seen_resolution` (default one minute), the first
  message on a channel included. The topic stays lean (a chatty customer costs at most one
  CustomerSeen a minute per channel) and last-seen is still rebuildable from the log.
* Phone numbers the channel vouches for are normalized to E.164 and stored on the identity.
  Joining customers that share a phone (issue 4) is deliberately not done here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import phonenumbers
from google.protobuf.message import Message

from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_kit.envelope import deterministic_event_id

AGGREGATE_TYPE = "customer"
#: Evidence rule of an identity linked because it wrote to the business for the first time.
RULE_FIRST_CONTACT = "first_contact"
#: Actor recorded for links made by rules rather than people.
SYSTEM_ACTOR = "system"
DEFAULT_SEEN_RESOLUTION = timedelta(minutes=1)

#: Channels whose address is itself a phone number (E.164 with or without "+").
PHONE_ADDRESS_CHANNELS = frozenset({"whatsapp", "sms", "twilio"})


# ------------------------------------------------------------------------------- identities


def normalize_channel(channel: str) -> str:
    return channel.strip().lower()


def normalize_address(address: str) -> str:
    return address.strip()


def normalize_phone(raw: str) -> str:
    """E.164 ("+16505551234") for a phone number given with its country code, with or without
    "+", spaces or punctuation; "" when it is not a possible phone number."""
    raw = raw.strip()
    if not raw:
        return ""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if not digits or len(digits) > 15:
        return ""
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_possible_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def identity_phone(channel: str, address: str, vouched_phone: str = "") -> str:
    """The normalized phone of an identity: the number the channel vouches for, else the address
    itself on channels whose addresses are phone numbers."""
    if vouched_phone:
        phone = normalize_phone(vouched_phone)
        if phone:
            return phone
    if normalize_channel(channel) in PHONE_ADDRESS_CHANNELS:
        return normalize_phone(address)
    return ""


def customer_id_for(tenant_id: str, channel: str, address: str) -> str:
    """The id of the customer created on first contact from this identity (stable on replay)."""
    return deterministic_event_id(
        "customer", tenant_id, normalize_channel(channel), normalize_address(address)
    )


def event_id_for(source_event_id: str, kind: str) -> str:
    """Id of the event of `kind` caused by `source_event_id`: reprocessing never duplicates."""
    return deterministic_event_id(source_event_id, "profile", kind)


# ------------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class LinkedIdentity:
    channel: str
    address: str
    normalized_phone: str
    rule: str
    source_event_id: str
    actor: str
    note: str
    linked_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.channel, self.address)

    def to_proto(self) -> pe.Identity:
        return pe.Identity(
            channel=self.channel, address=self.address, normalized_phone=self.normalized_phone
        )


@dataclass(frozen=True, slots=True)
class ChannelSeen:
    channel_account_id: str
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerState:
    tenant_id: str
    customer_id: str
    display_name: str
    #: occurred_at of the event whose name is current (None: no name yet).
    display_name_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    identities: Mapping[tuple[str, str], LinkedIdentity] = field(default_factory=dict)
    seen: Mapping[str, ChannelSeen] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProfileEvent:
    """A customer event as the fold sees it (from the store, the topic, or just decided)."""

    tenant_id: str
    aggregate_id: str
    version: int
    occurred_at: datetime
    payload: Message
    event_id: str = ""


class InvalidTransition(ValueError):
    """An event does not fit the state it is applied to (a bug or a corrupted stream)."""


def apply(state: CustomerState | None, event: ProfileEvent) -> CustomerState:
    """Fold one event into the customer's state. Event types this version does not know still
    advance the version, so newer streams replay without error."""
    payload = event.payload
    at = event.occurred_at
    if isinstance(payload, pe.CustomerCreated):
        if state is not None:
            raise InvalidTransition(f"customer {payload.customer_id} created twice")
        return CustomerState(
            tenant_id=event.tenant_id,
            customer_id=payload.customer_id,
            display_name=payload.display_name,
            display_name_at=at if payload.display_name else None,
            version=event.version,
            created_at=at,
            updated_at=at,
        )
    if state is None:
        raise InvalidTransition(
            f"{type(payload).__name__} for customer {event.aggregate_id} before CustomerCreated"
        )
    updated_at = max(state.updated_at, at)
    if isinstance(payload, pe.IdentityLinked):
        ident = payload.identity
        link = LinkedIdentity(
            channel=ident.channel,
            address=ident.address,
            normalized_phone=ident.normalized_phone,
            rule=payload.evidence.rule,
            source_event_id=payload.evidence.source_event_id,
            actor=payload.evidence.actor,
            note=payload.evidence.note,
            linked_at=at,
        )
        identities = dict(state.identities)
        identities[link.key] = link
        return replace(state, identities=identities, version=event.version, updated_at=updated_at)
    if isinstance(payload, pe.DisplayNameChanged):
        return replace(
            state,
            display_name=payload.display_name,
            display_name_at=at,
            version=event.version,
            updated_at=updated_at,
        )
    if isinstance(payload, pe.CustomerSeen):
        seen = dict(state.seen)
        previous = seen.get(payload.channel)
        if previous is None or at >= previous.last_seen_at:
            seen[payload.channel] = ChannelSeen(payload.channel_account_id, at)
        return replace(state, seen=seen, version=event.version, updated_at=updated_at)
    return replace(state, version=event.version)


# ------------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Observation:
    """A customer wrote to the business from an identity (from a MessageReceived)."""

    tenant_id: str
    channel: str
    address: str
    channel_account_id: str
    display_name: str
    vouched_phone: str
    occurred_at: datetime
    source_event_id: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.channel, self.address)


def observation(
    *,
    tenant_id: str,
    channel: str,
    address: str,
    channel_account_id: str = "",
    display_name: str = "",
    vouched_phone: str = "",
    occurred_at: datetime,
    source_event_id: str,
) -> Observation:
    """An Observation with the identity normalized (channel lower-case, address trimmed)."""
    return Observation(
        tenant_id=tenant_id,
        channel=normalize_channel(channel),
        address=normalize_address(address),
        channel_account_id=channel_account_id,
        display_name=display_name.strip(),
        vouched_phone=vouched_phone,
        occurred_at=occurred_at,
        source_event_id=source_event_id,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """Events to append to one customer's stream, with their exact versions and ids."""

    customer_id: str
    events: tuple[ProfileEvent, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(type(e.payload).__name__ for e in self.events)


def decide_message(
    obs: Observation,
    linked: CustomerState | None,
    fresh: CustomerState | None = None,
    *,
    seen_resolution: timedelta = DEFAULT_SEEN_RESOLUTION,
) -> Decision:
    """What an observed message means for the profile.

    linked: the customer the identity is linked to, None if the identity is unknown.
    fresh: when the identity is unknown, the state of the customer `customer_id_for` names
        (None if it does not exist; it can exist when the identity was unlinked from it later).
    """
    if not obs.address or not obs.channel:
        raise ValueError("an observation needs a channel and an address")
    payloads: list[tuple[str, Message]] = []
    state: CustomerState | None
    if linked is not None:
        state = linked
        customer_id = linked.customer_id
        if (
            obs.display_name
            and obs.display_name != linked.display_name
            and (linked.display_name_at is None or obs.occurred_at >= linked.display_name_at)
        ):
            payloads.append(
                (
                    "display_name_changed",
                    pe.DisplayNameChanged(customer_id=customer_id, display_name=obs.display_name),
                )
            )
    else:
        state = fresh
        customer_id = (
            fresh.customer_id
            if fresh is not None
            else customer_id_for(obs.tenant_id, obs.channel, obs.address)
        )
        if fresh is None:
            payloads.append(
                (
                    "customer_created",
                    pe.CustomerCreated(customer_id=customer_id, display_name=obs.display_name),
                )
            )
        payloads.append(
            (
                "identity_linked",
                pe.IdentityLinked(
                    customer_id=customer_id,
                    identity=pe.Identity(
                        channel=obs.channel,
                        address=obs.address,
                        normalized_phone=identity_phone(
                            obs.channel, obs.address, obs.vouched_phone
                        ),
                    ),
                    evidence=pe.Evidence(
                        rule=RULE_FIRST_CONTACT,
                        source_event_id=obs.source_event_id,
                        actor=SYSTEM_ACTOR,
                    ),
                ),
            )
        )
    last = state.seen.get(obs.channel) if state is not None else None
    if last is None or obs.occurred_at - last.last_seen_at >= seen_resolution:
        payloads.append(
            (
                "customer_seen",
                pe.CustomerSeen(
                    customer_id=customer_id,
                    channel=obs.channel,
                    channel_account_id=obs.channel_account_id,
                ),
            )
        )
    version = state.version if state is not None else 0
    events = tuple(
        ProfileEvent(
            tenant_id=obs.tenant_id,
            aggregate_id=customer_id,
            version=version + i,
            occurred_at=obs.occurred_at,
            payload=payload,
            event_id=event_id_for(obs.source_event_id, kind),
        )
        for i, (kind, payload) in enumerate(payloads, start=1)
    )
    return Decision(customer_id, events)


def fold(
    state: CustomerState | None, events: tuple[ProfileEvent, ...] | list[ProfileEvent]
) -> CustomerState | None:
    """Apply events in order (a decision's events, or a whole stream)."""
    for event in events:
        state = apply(state, event)
    return state
