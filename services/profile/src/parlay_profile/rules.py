"""Profile rules: what an observation or a command means for the customers. Pure, no I/O.

`Profiles` is a working set of customer states with identity, phone and email indexes (the
identity-resolution projector loads the part a batch needs; a property test holds a whole
world). `Resolver` decides over it: each decision appends `ProfileEvent`s with exact versions,
folds them in at once (the next decision sees them) and keeps them in `events`.

The rules (docs/profile.md has the long form):

* An identity is (channel, address) inside one tenant; it belongs to at most one customer.
  Nothing is ever resolved across tenants: every index is keyed by tenant.
* First sighting of an identity whose normalized phone another identity already has: it is
  linked to that identity's customer (rule ``same_phone``). Otherwise a new customer
  (``first_contact``).
* Identity evidence (a phone shared on Telegram, a changed WhatsApp number, a verified email)
  links an identity to the subject's customer; then every other customer holding an identity
  with the same normalized phone or email is merged (survivor = the older customer).
* Weak evidence (the same display name) never joins anyone.
* The rules never undo a person's decision: customers that were unmerged are never merged again
  automatically, an unlinked identity is never linked back to that customer automatically, and
  a display name a person set is never replaced by a channel's.
* Consent is a ledger per (contact channel, purpose); a change is recorded only when it changes
  the customer's effective consent, and an observation older than the current entry never
  overrides it (so replays and late deliveries cannot flip consent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.message import Message

from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_kit.errors import ConcurrencyError, FailedPrecondition, InvalidArgument, NotFound
from parlay_profile import keywords
from parlay_profile.domain import (
    DEFAULT_SEEN_RESOLUTION,
    EMAIL_CHANNEL,
    PHONE_CHANNEL,
    PURPOSE_MARKETING,
    PURPOSE_TRANSACTIONAL,
    PURPOSES,
    RULE_CHANGED_NUMBER,
    RULE_CHANNEL_EVENT,
    RULE_FIRST_CONTACT,
    RULE_KEYWORD,
    RULE_MANUAL,
    RULE_SAME_EMAIL,
    RULE_SAME_PHONE,
    RULE_SHARED_PHONE,
    RULE_VERIFIED_EMAIL,
    SYSTEM_ACTOR,
    ConsentRecord,
    CustomerState,
    ProfileEvent,
    apply,
    contact_channel,
    customer_id_for,
    event_id_for,
    identity_label,
    identity_phone,
    normalize_address,
    normalize_channel,
    normalize_email,
    normalize_phone,
)

EVIDENCE_KINDS = ("shared_phone", "changed_number", "verified_email")
PURCHASE_KINDS = ("order_placed", "payment_captured")

# ------------------------------------------------------------------------------- observations


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""


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
    text: str = ""
    location: Location | None = None

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
    text: str = "",
    location: Location | None = None,
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
        text=text,
        location=location,
    )


@dataclass(frozen=True, slots=True)
class EvidenceObservation:
    """The gateway saw identity evidence about a subject (IdentityEvidenceObserved)."""

    tenant_id: str
    channel: str
    channel_account_id: str
    subject_channel: str
    subject_address: str
    #: "shared_phone" | "changed_number" | "verified_email"
    kind: str
    phone: str
    email: str
    occurred_at: datetime
    source_event_id: str
    #: changed_number: the subject's new address on the same channel (e.g. the new wa_id).
    new_address: str = ""

    @property
    def subject(self) -> tuple[str, str]:
        return (
            normalize_channel(self.subject_channel or self.channel),
            normalize_address(self.subject_address),
        )


#: ContactSubscriptionChanged reasons that are an opt-in / opt-out (docs/channels.md); others
#: (Viber's "conversation_started") observe the current state and change no consent.
CONSENT_REASONS = frozenset(
    {"subscribed", "unsubscribed", "subscribe", "unsubscribe", "follow", "unfollow"}
)


@dataclass(frozen=True, slots=True)
class SubscriptionObservation:
    """A channel reported a (un)subscribe / (un)follow of a subject (ContactSubscriptionChanged)."""

    tenant_id: str
    channel: str
    channel_account_id: str
    subject_channel: str
    subject_address: str
    subscribed: bool
    reason: str
    occurred_at: datetime
    source_event_id: str

    @property
    def subject(self) -> tuple[str, str]:
        return (
            normalize_channel(self.subject_channel or self.channel),
            normalize_address(self.subject_address),
        )


@dataclass(frozen=True, slots=True)
class PurchaseObservation:
    """An order was placed or a payment captured for a customer (orders / payments events)."""

    tenant_id: str
    customer_id: str
    order_id: str
    #: "order_placed" | "payment_captured"
    kind: str
    currency: str
    amount_minor: int
    occurred_at: datetime
    source_event_id: str


AnyObservation = Observation | EvidenceObservation | SubscriptionObservation | PurchaseObservation


def evidence_identity(ev: EvidenceObservation) -> pe.Identity | None:
    """The identity a piece of evidence adds (None when its value is unusable)."""
    subject_channel, _ = ev.subject
    if ev.kind == "shared_phone":
        phone = normalize_phone(ev.phone)
        return (
            pe.Identity(channel=PHONE_CHANNEL, address=phone, normalized_phone=phone)
            if phone
            else None
        )
    if ev.kind == "changed_number":
        if ev.new_address.strip():
            address = normalize_address(ev.new_address)
            phone = identity_phone(subject_channel, address, ev.phone)
            return pe.Identity(channel=subject_channel, address=address, normalized_phone=phone)
        phone = normalize_phone(ev.phone)
        if not phone:
            return None
        # WhatsApp addresses are wa_ids: the E.164 digits without "+".
        address = phone[1:] if subject_channel == "whatsapp" else phone
        return pe.Identity(channel=subject_channel, address=address, normalized_phone=phone)
    if ev.kind == "verified_email":
        email = normalize_email(ev.email)
        return pe.Identity(channel=EMAIL_CHANNEL, address=email, email=email) if email else None
    return None


_EVIDENCE_RULES = {
    "shared_phone": RULE_SHARED_PHONE,
    "changed_number": RULE_CHANGED_NUMBER,
    "verified_email": RULE_VERIFIED_EMAIL,
}


# ------------------------------------------------------------------------------- working set


class InconsistentWorkingSet(RuntimeError):
    """A decision needed a customer the working set does not hold (a loading bug)."""


class Profiles:
    """Customer states with indexes: identity -> owner, (tenant, phone) and (tenant, email) ->
    customers holding such an identity. `put` keeps the indexes current."""

    def __init__(self, states: Iterable[CustomerState] = ()) -> None:
        self.states: dict[str, CustomerState] = {}
        self._owner: dict[tuple[str, str, str], str] = {}
        self._phone: dict[tuple[str, str], set[str]] = {}
        self._email: dict[tuple[str, str], set[str]] = {}
        for state in states:
            self.put(state)

    def get(self, customer_id: str) -> CustomerState | None:
        return self.states.get(customer_id)

    def put(self, state: CustomerState) -> None:
        cid, tenant = state.customer_id, state.tenant_id
        old = self.states.get(cid)
        self.states[cid] = state
        if old is not None and old.identities is state.identities:
            return
        if old is not None:
            for link in old.identities.values():
                key = (tenant, *link.key)
                if self._owner.get(key) == cid:
                    del self._owner[key]
                if link.normalized_phone:
                    self._phone.get((tenant, link.normalized_phone), set()).discard(cid)
                if link.email:
                    self._email.get((tenant, link.email), set()).discard(cid)
        for link in state.identities.values():
            self._owner[(tenant, *link.key)] = cid
            if link.normalized_phone:
                self._phone.setdefault((tenant, link.normalized_phone), set()).add(cid)
            if link.email:
                self._email.setdefault((tenant, link.email), set()).add(cid)

    def owner(self, tenant_id: str, channel: str, address: str) -> str | None:
        return self._owner.get((tenant_id, channel, address))

    def phone_owners(self, tenant_id: str, phone: str) -> set[str]:
        return set(self._phone.get((tenant_id, phone), ()))

    def email_owners(self, tenant_id: str, email: str) -> set[str]:
        return set(self._email.get((tenant_id, email), ()))

    def require(self, customer_id: str) -> CustomerState:
        state = self.states.get(customer_id)
        if state is None:
            raise InconsistentWorkingSet(f"customer {customer_id} is not in the working set")
        return state

    def root(self, customer_id: str) -> str:
        """The customer `customer_id` is (transitively) merged into, or itself."""
        current = customer_id
        for _ in range(1000):
            state = self.require(current)
            if not state.merged_into:
                return current
            current = state.merged_into
        raise InconsistentWorkingSet(f"merge cycle from customer {customer_id}")

    def group(self, root_id: str) -> list[CustomerState]:
        """The root followed by every customer merged into it (depth first, merge order)."""
        out: list[CustomerState] = []

        def walk(cid: str) -> None:
            state = self.require(cid)
            out.append(state)
            for member in state.members.values():
                walk(member)

        walk(root_id)
        return out

    def identity_keys(self) -> Iterator[tuple[str, str, str]]:
        return iter(self._owner)


def effective_consent(
    group: Iterable[CustomerState], channel: str, purpose: str
) -> tuple[ConsentRecord, str] | None:
    """The ledger entry in force for (contact channel, purpose) across a merged group: the
    latest change of any member (the root wins a tie). With the customer id that holds it."""
    best: tuple[ConsentRecord, str] | None = None
    for state in group:
        record = state.consents.get((channel, purpose))
        if record is not None and (best is None or record.changed_at > best[0].changed_at):
            best = (record, state.customer_id)
    return best


def _older(a: CustomerState, b: CustomerState) -> tuple[CustomerState, CustomerState]:
    """(older, newer) by creation time, then id: the survivor of an automatic merge."""
    return (a, b) if (a.created_at, a.customer_id) <= (b.created_at, b.customer_id) else (b, a)


_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_ATTRIBUTE_KEY = 128
MAX_ATTRIBUTE_VALUE = 4096
MAX_TAG = 64
MAX_NAME = 256


# ------------------------------------------------------------------------------- decisions


class Resolver:
    """Decides over a working set; `events` collects what was decided, in order."""

    def __init__(
        self, profiles: Profiles, *, seen_resolution: timedelta = DEFAULT_SEEN_RESOLUTION
    ) -> None:
        self.profiles = profiles
        self.seen_resolution = seen_resolution
        self.events: list[ProfileEvent] = []

    # -------------------------------------------------------------- plumbing

    def _emit(
        self, tenant_id: str, customer_id: str, payload: Message, at: datetime, event_id: str
    ) -> CustomerState:
        state = self.profiles.get(customer_id)
        if state is not None and state.tenant_id != tenant_id:
            raise InconsistentWorkingSet(f"customer {customer_id} is not in tenant {tenant_id}")
        event = ProfileEvent(
            tenant_id=tenant_id,
            aggregate_id=customer_id,
            version=(state.version if state is not None else 0) + 1,
            occurred_at=at,
            payload=payload,
            event_id=event_id,
        )
        new = apply(state, event)
        self.profiles.put(new)
        self.events.append(event)
        return new

    def _state(self, customer_id: str) -> CustomerState:
        return self.profiles.require(customer_id)

    def _in_tenant(self, tenant_id: str, customer_id: str, field: str) -> CustomerState:
        """The customer, if it exists in this tenant; NotFound otherwise (another tenant's
        customers do not exist for the caller)."""
        if not customer_id:
            raise InvalidArgument(field, "is required")
        state = self.profiles.get(customer_id)
        if state is None or state.tenant_id != tenant_id:
            raise NotFound(f"customer {customer_id} not found")
        return state

    def _separated(self, a: str, b: str) -> bool:
        """A person kept these customers' groups apart: unmerged one side from the other, or
        unlinked from one side an identity the other side now holds."""
        p = self.profiles
        root_a, root_b = p.root(a), p.root(b)
        left, right = p.group(root_a), p.group(root_b)
        right_ids = {s.customer_id for s in right}
        for x in left:
            if right_ids & x.separated.keys():
                return True
        left_ids = {s.customer_id for s in left}
        for y in right:
            if left_ids & y.separated.keys():
                return True
        for side, other_root in ((left, root_b), (right, root_a)):
            for x in side:
                for key in x.detached:
                    owner = p.owner(x.tenant_id, *key)
                    if owner is not None and p.root(owner) == other_root:
                        return True
        return False

    # -------------------------------------------------------------- identities

    def _first_sighting(
        self,
        tenant_id: str,
        identity: pe.Identity,
        display_name: str,
        at: datetime,
        source_event_id: str,
    ) -> str | None:
        """Link a never-seen identity: to the customer of an identity with the same phone, else
        to a new customer. None when the observation predates this identity's unlinking (a
        replay or a late delivery: a newer decision about the identity stands)."""
        p = self.profiles
        key = (identity.channel, identity.address)
        label = identity_label(*key)
        phone = identity.normalized_phone
        candidates: list[CustomerState] = []
        for cid in sorted(p.phone_owners(tenant_id, phone)) if phone else ():
            state = p.require(cid)
            unlinked_at = state.detached.get(key)
            if unlinked_at is not None:
                if at <= unlinked_at:
                    return None
                continue
            candidates.append(state)
        if candidates:
            target = min(candidates, key=lambda s: (s.created_at, s.customer_id))
            match = next(i for i in target.identities.values() if i.normalized_phone == phone)
            self._emit(
                tenant_id,
                target.customer_id,
                pe.IdentityLinked(
                    customer_id=target.customer_id,
                    identity=identity,
                    evidence=pe.Evidence(
                        rule=RULE_SAME_PHONE,
                        source_event_id=source_event_id,
                        actor=SYSTEM_ACTOR,
                        note=f"{phone} is also {identity_label(*match.key)}",
                    ),
                ),
                at,
                event_id_for(source_event_id, "identity_linked"),
            )
            self._rename(target.customer_id, label, display_name, at, source_event_id)
            self._join(
                tenant_id,
                target.customer_id,
                {phone},
                set(),
                RULE_SAME_PHONE,
                source_event_id,
                SYSTEM_ACTOR,
                at,
            )
            return target.customer_id
        customer_id = customer_id_for(tenant_id, *key)
        existing = p.get(customer_id)
        if existing is not None:
            unlinked_at = existing.detached.get(key)
            if unlinked_at is not None and at <= unlinked_at:
                return None
            # The identity was unlinked from the customer it created: a new person.
            customer_id = customer_id_for(tenant_id, *key, source_event_id)
        if p.get(customer_id) is None:
            self._emit(
                tenant_id,
                customer_id,
                pe.CustomerCreated(
                    customer_id=customer_id,
                    display_name=display_name,
                    display_name_source=label if display_name else "",
                ),
                at,
                event_id_for(source_event_id, "customer_created"),
            )
        self._emit(
            tenant_id,
            customer_id,
            pe.IdentityLinked(
                customer_id=customer_id,
                identity=identity,
                evidence=pe.Evidence(
                    rule=RULE_FIRST_CONTACT, source_event_id=source_event_id, actor=SYSTEM_ACTOR
                ),
            ),
            at,
            event_id_for(source_event_id, "identity_linked"),
        )
        return customer_id

    def _subject(
        self, tenant_id: str, channel: str, address: str, at: datetime, source_event_id: str
    ) -> str | None:
        """The customer of an evidence / subscription subject, created on first sight."""
        if not channel or not address:
            raise ValueError("a subject needs a channel and an address")
        owner = self.profiles.owner(tenant_id, channel, address)
        if owner is not None:
            return owner
        identity = pe.Identity(
            channel=channel,
            address=address,
            normalized_phone=identity_phone(channel, address),
        )
        return self._first_sighting(tenant_id, identity, "", at, source_event_id)

    def _link(
        self,
        tenant_id: str,
        customer_id: str,
        identity: pe.Identity,
        evidence: pe.Evidence,
        at: datetime,
    ) -> bool:
        """Link an identity nobody holds to the customer; False when someone holds it or when
        the rules would link back an identity a person unlinked from this customer."""
        key = (identity.channel, identity.address)
        if self.profiles.owner(tenant_id, *key) is not None:
            return False
        state = self._state(customer_id)
        if key in state.detached and evidence.actor == SYSTEM_ACTOR:
            return False
        self._emit(
            tenant_id,
            customer_id,
            pe.IdentityLinked(customer_id=customer_id, identity=identity, evidence=evidence),
            at,
            event_id_for(evidence.source_event_id, f"identity_linked:{identity_label(*key)}"),
        )
        return True

    def _join(
        self,
        tenant_id: str,
        customer_id: str,
        phones: set[str],
        emails: set[str],
        rule: str,
        source_event_id: str,
        actor: str,
        at: datetime,
    ) -> None:
        """Merge every other customer holding an identity with one of these phones / emails
        into one group with `customer_id` (survivor: the older root), unless a person
        separated them."""
        p = self.profiles
        others: set[str] = set()
        for phone in phones - {""}:
            others |= p.phone_owners(tenant_id, phone)
        for email in emails - {""}:
            others |= p.email_owners(tenant_id, email)
        ordered = sorted(others, key=lambda c: (p.require(c).created_at, c))
        for other in ordered:
            mine, theirs = p.root(customer_id), p.root(other)
            if mine == theirs or self._separated(customer_id, other):
                continue
            survivor, merged = _older(p.require(mine), p.require(theirs))
            what = ", ".join(sorted((phones | emails) - {""}))
            self._merge(
                tenant_id,
                survivor.customer_id,
                merged.customer_id,
                pe.Evidence(
                    rule=rule,
                    source_event_id=source_event_id,
                    actor=actor,
                    note=f"both hold {what}",
                ),
                "",
                event_id_for(source_event_id, f"merge:{merged.customer_id}"),
                at,
            )

    # -------------------------------------------------------------- profile data

    def _rename(
        self, customer_id: str, label: str, name: str, at: datetime, source_event_id: str
    ) -> None:
        """A channel reported a display name: it becomes the customer's when the customer has
        none, or when the current one came from this same identity and is older. Names set by
        people and names from other identities stay (no flip-flop between channels)."""
        if not name:
            return
        state = self._state(customer_id)
        if name == state.display_name:
            return
        if state.display_name and state.display_name_source not in ("", label):
            return
        if state.display_name_at is not None and at < state.display_name_at:
            return
        self._emit(
            state.tenant_id,
            customer_id,
            pe.DisplayNameChanged(
                customer_id=customer_id, display_name=name, display_name_source=label
            ),
            at,
            event_id_for(source_event_id, "display_name_changed"),
        )

    def _seen(self, customer_id: str, obs: Observation) -> None:
        state = self._state(customer_id)
        last = state.seen.get(obs.channel)
        if last is None or obs.occurred_at - last.last_seen_at >= self.seen_resolution:
            self._emit(
                state.tenant_id,
                customer_id,
                pe.CustomerSeen(
                    customer_id=customer_id,
                    channel=obs.channel,
                    channel_account_id=obs.channel_account_id,
                ),
                obs.occurred_at,
                event_id_for(obs.source_event_id, "customer_seen"),
            )

    def _located(self, customer_id: str, obs: Observation) -> None:
        loc = obs.location
        state = self._state(customer_id)
        if loc is None or (
            state.location is not None and obs.occurred_at < state.location.shared_at
        ):
            return
        self._emit(
            state.tenant_id,
            customer_id,
            pe.LocationShared(
                customer_id=customer_id,
                channel=obs.channel,
                latitude=loc.latitude,
                longitude=loc.longitude,
                name=loc.name,
                address=loc.address,
            ),
            obs.occurred_at,
            event_id_for(obs.source_event_id, "location_shared"),
        )

    def _consent(
        self,
        customer_id: str,
        channel: str,
        purpose: str,
        granted: bool,
        source: str,
        evidence: pe.Evidence,
        identity: pe.Identity | None,
        at: datetime,
        *,
        always: bool = False,
    ) -> bool:
        """Record a consent change on `customer_id`'s stream when it changes the effective
        consent of the customer's merged group (or `always`, for a person's explicit choice
        with its proof) and is not older than the entry in force."""
        p = self.profiles
        state = self._state(customer_id)
        current = effective_consent(p.group(p.root(customer_id)), channel, purpose)
        if current is not None:
            record = current[0]
            if at < record.changed_at:
                return False
            if record.granted == granted and not always:
                return False
        self._emit(
            state.tenant_id,
            customer_id,
            pe.ConsentChanged(
                customer_id=customer_id,
                channel=channel,
                purpose=purpose,
                granted=granted,
                source=source,
                evidence=evidence,
                identity=identity,
            ),
            at,
            event_id_for(evidence.source_event_id, f"consent:{channel}:{purpose}"),
        )
        return True

    # -------------------------------------------------------------- observations

    def observe(self, obs: AnyObservation) -> None:
        if isinstance(obs, Observation):
            self.observe_message(obs)
        elif isinstance(obs, EvidenceObservation):
            self.observe_evidence(obs)
        elif isinstance(obs, SubscriptionObservation):
            self.observe_subscription(obs)
        else:
            self.observe_purchase(obs)

    def observe_message(self, obs: Observation) -> None:
        """What a customer's message means: identity (first sighting), name, last seen, last
        shared location, and opt-out / opt-in keywords on SMS and WhatsApp."""
        if not obs.address or not obs.channel:
            raise ValueError("an observation needs a channel and an address")
        tenant = obs.tenant_id
        label = identity_label(*obs.key)
        owner = self.profiles.owner(tenant, *obs.key)
        if owner is None:
            identity = pe.Identity(
                channel=obs.channel,
                address=obs.address,
                normalized_phone=identity_phone(obs.channel, obs.address, obs.vouched_phone),
            )
            owner = self._first_sighting(
                tenant, identity, obs.display_name, obs.occurred_at, obs.source_event_id
            )
            if owner is None:
                return
        else:
            self._rename(owner, label, obs.display_name, obs.occurred_at, obs.source_event_id)
        self._seen(owner, obs)
        self._located(owner, obs)
        keyword = keywords.detect(obs.text, obs.channel)
        if keyword is None:
            return
        channel = contact_channel(obs.channel)
        # SMS carriers block every message after STOP; on WhatsApp it stops promotions.
        purposes = PURPOSES if channel == "sms" else (PURPOSE_MARKETING,)
        for purpose in purposes:
            self._consent(
                owner,
                channel,
                purpose,
                keyword == "opt_in",
                "keyword",
                pe.Evidence(
                    rule=RULE_KEYWORD,
                    source_event_id=obs.source_event_id,
                    actor=SYSTEM_ACTOR,
                    note=obs.text.strip()[:64],
                ),
                pe.Identity(channel=obs.channel, address=obs.address),
                obs.occurred_at,
            )

    def observe_evidence(self, ev: EvidenceObservation) -> None:
        """Identity evidence from a channel: link the identity it names to the subject's
        customer, then join everyone holding the same phone / email."""
        channel, address = ev.subject
        identity = evidence_identity(ev)
        if identity is None:
            return  # unknown kind or unusable value: nothing to link
        owner = self._subject(ev.tenant_id, channel, address, ev.occurred_at, ev.source_event_id)
        if owner is None:
            return
        rule = _EVIDENCE_RULES[ev.kind]
        evidence = pe.Evidence(
            rule=rule,
            source_event_id=ev.source_event_id,
            actor=SYSTEM_ACTOR,
            note=f"reported by {identity_label(channel, address)}",
        )
        self._link(ev.tenant_id, owner, identity, evidence, ev.occurred_at)
        self._join(
            ev.tenant_id,
            owner,
            {identity.normalized_phone},
            {identity.email},
            rule,
            ev.source_event_id,
            SYSTEM_ACTOR,
            ev.occurred_at,
        )

    def observe_subscription(self, sub: SubscriptionObservation) -> None:
        """Unsubscribe / unfollow (WeChat, LINE, Viber ...) withdraws both purposes on that
        channel; subscribe / follow grants them. Other reasons (an observation of the current
        state, like Viber's conversation_started) change nothing."""
        reason = sub.reason.strip().lower()
        if reason and reason not in CONSENT_REASONS:
            return
        channel, address = sub.subject
        owner = self._subject(sub.tenant_id, channel, address, sub.occurred_at, sub.source_event_id)
        if owner is None:
            return
        for purpose in PURPOSES:
            self._consent(
                owner,
                contact_channel(sub.channel or channel),
                purpose,
                sub.subscribed,
                "channel_event",
                pe.Evidence(
                    rule=RULE_CHANNEL_EVENT,
                    source_event_id=sub.source_event_id,
                    actor=SYSTEM_ACTOR,
                    note=sub.reason,
                ),
                pe.Identity(channel=channel, address=address),
                sub.occurred_at,
            )

    def observe_purchase(self, purchase: PurchaseObservation) -> bool:
        """Count an order / add a captured payment to the customer's purchase summary (on the
        customer's own stream; a merged group shows the sum). False when the customer is not
        known in that tenant."""
        state = self.profiles.get(purchase.customer_id)
        if (
            state is None
            or state.tenant_id != purchase.tenant_id
            or purchase.kind not in PURCHASE_KINDS
            or purchase.source_event_id in state.purchase_keys
        ):
            return False
        self._emit(
            state.tenant_id,
            state.customer_id,
            pe.PurchaseRecorded(
                customer_id=state.customer_id,
                order_id=purchase.order_id,
                kind=purchase.kind,
                currency=purchase.currency.upper(),
                amount_minor=purchase.amount_minor,
                source_event_id=purchase.source_event_id,
            ),
            purchase.occurred_at,
            event_id_for(purchase.source_event_id, f"purchase:{purchase.kind}"),
        )
        return True

    # -------------------------------------------------------------- commands

    def _merge(
        self,
        tenant_id: str,
        survivor_id: str,
        merged_id: str,
        evidence: pe.Evidence,
        reason: str,
        merge_id: str,
        at: datetime,
    ) -> None:
        self._emit(
            tenant_id,
            survivor_id,
            pe.ProfilesMerged(
                merge_id=merge_id,
                survivor_customer_id=survivor_id,
                merged_customer_id=merged_id,
                evidence=evidence,
                reason=reason,
            ),
            at,
            event_id_for(merge_id, "profiles_merged"),
        )
        self._emit(
            tenant_id,
            merged_id,
            pe.CustomerMergedInto(
                customer_id=merged_id, survivor_customer_id=survivor_id, merge_id=merge_id
            ),
            at,
            event_id_for(merge_id, "customer_merged_into"),
        )

    def merge_customers(
        self,
        tenant_id: str,
        survivor_id: str,
        merged_id: str,
        *,
        actor: str,
        reason: str,
        at: datetime,
        command_id: str,
    ) -> str:
        """A person joins two customers. Returns the merge id (the existing one when this exact
        merge is already in force: a retried request)."""
        if survivor_id and survivor_id == merged_id:
            raise InvalidArgument("merged_customer_id", "must differ from survivor_customer_id")
        survivor = self._in_tenant(tenant_id, survivor_id, "survivor_customer_id")
        merged = self._in_tenant(tenant_id, merged_id, "merged_customer_id")
        if merged.merged_into:
            if merged.merged_into == survivor_id:
                return merged.merge_id
            raise FailedPrecondition(
                f"customer {merged_id} is already merged into {merged.merged_into}"
            )
        if survivor.merged_into:
            raise FailedPrecondition(
                f"customer {survivor_id} is merged into {survivor.merged_into}; "
                "merge into that customer instead"
            )
        merge_id = event_id_for(command_id, "merge")
        self._merge(
            tenant_id,
            survivor_id,
            merged_id,
            pe.Evidence(rule=RULE_MANUAL, source_event_id=command_id, actor=actor),
            reason,
            merge_id,
            at,
        )
        return merge_id

    def find_merge(self, tenant_id: str, merge_id: str) -> tuple[CustomerState, CustomerState]:
        for state in self.profiles.states.values():
            record = state.merges.get(merge_id)
            if record is not None and state.tenant_id == tenant_id:
                return state, self._state(record.merged_customer_id)
        raise NotFound(f"merge {merge_id} not found")

    def unmerge_customers(
        self,
        tenant_id: str,
        merge_id: str,
        *,
        actor: str,
        reason: str,
        at: datetime,
        command_id: str,
    ) -> tuple[str, str]:
        """Undo a merge: (survivor id, restored customer id). The rules never merge the two
        again on their own."""
        survivor, merged = self.find_merge(tenant_id, merge_id)
        record = survivor.merges[merge_id]
        if not record.active:
            raise FailedPrecondition(f"merge {merge_id} was already undone")
        evidence = pe.Evidence(rule=RULE_MANUAL, source_event_id=command_id, actor=actor)
        p = self.profiles
        leaving = [s.customer_id for s in p.group(merged.customer_id)]
        staying = sorted(s.customer_id for s in p.group(p.root(survivor.customer_id)))
        staying = [c for c in staying if c not in set(leaving)]
        self._emit(
            tenant_id,
            survivor.customer_id,
            pe.ProfilesUnmerged(
                merge_id=merge_id,
                survivor_customer_id=survivor.customer_id,
                merged_customer_id=merged.customer_id,
                evidence=evidence,
                reason=reason,
                separated_customer_ids=sorted(leaving),
            ),
            at,
            event_id_for(command_id, "profiles_unmerged"),
        )
        self._emit(
            tenant_id,
            merged.customer_id,
            pe.CustomerUnmergedFrom(
                customer_id=merged.customer_id,
                survivor_customer_id=survivor.customer_id,
                merge_id=merge_id,
                separated_customer_ids=staying,
            ),
            at,
            event_id_for(command_id, "customer_unmerged_from"),
        )
        return survivor.customer_id, merged.customer_id

    def _writable(self, tenant_id: str, customer_id: str) -> CustomerState:
        state = self._in_tenant(tenant_id, customer_id, "customer_id")
        if state.merged_into:
            raise FailedPrecondition(
                f"customer {customer_id} is merged into {state.merged_into}; address that customer"
            )
        return state

    def link_identity(
        self,
        tenant_id: str,
        customer_id: str,
        channel: str,
        address: str,
        *,
        phone: str = "",
        actor: str,
        note: str,
        at: datetime,
        command_id: str,
    ) -> None:
        """A person links an identity to a customer; then the phone / email rules apply."""
        state = self._writable(tenant_id, customer_id)
        identity = manual_identity(channel, address, phone)
        key = (identity.channel, identity.address)
        owner = self.profiles.owner(tenant_id, *key)
        if owner is not None:
            if self.profiles.root(owner) == customer_id:
                return  # already this customer's: a retried request
            raise FailedPrecondition(
                f"identity {identity_label(*key)} belongs to customer {owner}; "
                "merge the customers or unlink it first"
            )
        self._link(
            tenant_id,
            state.customer_id,
            identity,
            pe.Evidence(rule=RULE_MANUAL, source_event_id=command_id, actor=actor, note=note),
            at,
        )
        rule = RULE_SAME_EMAIL if identity.email else RULE_SAME_PHONE
        self._join(
            tenant_id,
            customer_id,
            {identity.normalized_phone},
            {identity.email},
            rule,
            command_id,
            SYSTEM_ACTOR,
            at,
        )

    def unlink_identity(
        self,
        tenant_id: str,
        customer_id: str,
        channel: str,
        address: str,
        *,
        actor: str,
        note: str,
        at: datetime,
        command_id: str,
    ) -> str:
        """A person unlinks an identity from a customer (or from a customer merged into it).
        Returns the customer whose stream held it."""
        self._in_tenant(tenant_id, customer_id, "customer_id")
        key = (normalize_channel(channel), normalize_address(address))
        if key[0] == PHONE_CHANNEL:
            key = (key[0], normalize_phone(key[1]) or key[1])
        elif key[0] == EMAIL_CHANNEL:
            key = (key[0], normalize_email(key[1]) or key[1])
        owner = self.profiles.owner(tenant_id, *key)
        p = self.profiles
        if owner is None or (owner != customer_id and p.root(owner) != customer_id):
            raise NotFound(f"customer {customer_id} has no identity {identity_label(*key)}")
        link = p.require(owner).identities[key]
        self._emit(
            tenant_id,
            owner,
            pe.IdentityUnlinked(
                customer_id=owner,
                identity=link.to_proto(),
                evidence=pe.Evidence(
                    rule=RULE_MANUAL, source_event_id=command_id, actor=actor, note=note
                ),
            ),
            at,
            event_id_for(command_id, "identity_unlinked"),
        )
        return owner

    def update_customer(
        self,
        tenant_id: str,
        customer_id: str,
        *,
        expected_version: int = 0,
        display_name: str | None = None,
        locale: str | None = None,
        set_attributes: dict[str, str] | None = None,
        remove_attributes: Iterable[str] = (),
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
        actor: str,
        at: datetime,
        command_id: str,
    ) -> bool:
        """Profile data set by an integrator. ConcurrencyError (ABORTED) when the customer is
        not at `expected_version` (0: no check). False when nothing would change."""
        state = self._writable(tenant_id, customer_id)
        if expected_version and expected_version != state.version:
            raise ConcurrencyError(
                f"customer {customer_id} is at version {state.version}, "
                f"not the expected {expected_version}"
            )
        set_attributes = dict(set_attributes or {})
        remove = [k.strip() for k in remove_attributes]
        add = sorted({t.strip() for t in add_tags})
        drop = sorted({t.strip() for t in remove_tags})
        for k, v in set_attributes.items():
            if not k.strip() or len(k) > MAX_ATTRIBUTE_KEY:
                raise InvalidArgument("set_attributes", f"key {k!r}: 1..{MAX_ATTRIBUTE_KEY} chars")
            if len(v) > MAX_ATTRIBUTE_VALUE:
                raise InvalidArgument("set_attributes", f"{k}: at most {MAX_ATTRIBUTE_VALUE} chars")
        if any(not k for k in remove):
            raise InvalidArgument("remove_attributes", "keys must not be empty")
        if any(not t or len(t) > MAX_TAG for t in (*add, *drop)):
            raise InvalidArgument("add_tags", f"tags are 1..{MAX_TAG} chars")
        if set(add) & set(drop):
            raise InvalidArgument("remove_tags", "a tag cannot be added and removed at once")
        if set(set_attributes) & set(remove):
            raise InvalidArgument(
                "remove_attributes", "an attribute cannot be set and removed at once"
            )
        if locale is not None and locale and not _LOCALE.match(locale):
            raise InvalidArgument("locale", "must be a BCP 47 tag such as 'es' or 'pt-BR'")
        if display_name is not None:
            display_name = display_name.strip()
            if len(display_name) > MAX_NAME:
                raise InvalidArgument("display_name", f"at most {MAX_NAME} chars")
        event = pe.CustomerUpdated(customer_id=customer_id, actor=actor)
        if display_name is not None and display_name != state.display_name:
            event.display_name = display_name
        if locale is not None and locale != state.locale:
            event.locale = locale
        for k, v in set_attributes.items():
            if state.attributes.get(k) != v:
                event.set_attributes[k] = v
        event.removed_attributes.extend(k for k in remove if k in state.attributes)
        event.added_tags.extend(t for t in add if t not in state.tags)
        event.removed_tags.extend(t for t in drop if t in state.tags)
        if event.ByteSize() == pe.CustomerUpdated(customer_id=customer_id, actor=actor).ByteSize():
            return False
        self._emit(tenant_id, customer_id, event, at, event_id_for(command_id, "customer_updated"))
        return True

    def set_consent(
        self,
        tenant_id: str,
        customer_id: str,
        channel: str,
        purpose: str,
        granted: bool,
        *,
        proof: str,
        actor: str,
        at: datetime,
        command_id: str,
    ) -> None:
        """The business records an explicit opt-in / opt-out with its proof."""
        if purpose not in PURPOSES:
            raise InvalidArgument("purpose", f"must be one of {', '.join(PURPOSES)}")
        if not channel.strip():
            raise InvalidArgument("channel", "is required")
        if not proof.strip():
            raise InvalidArgument("proof", "is required: what shows the customer's choice")
        state = self._writable(tenant_id, customer_id)
        self._consent(
            state.customer_id,
            contact_channel(channel),
            purpose,
            granted,
            "business",
            pe.Evidence(
                rule=RULE_MANUAL, source_event_id=command_id, actor=actor, note=proof.strip()
            ),
            None,
            at,
            always=True,
        )


def manual_identity(channel: str, address: str, phone: str = "") -> pe.Identity:
    """The identity a person names (LinkIdentity), normalized; InvalidArgument if unusable."""
    channel = normalize_channel(channel)
    address = normalize_address(address)
    if not channel:
        raise InvalidArgument("channel", "is required")
    if not address:
        raise InvalidArgument("address", "is required")
    if channel == PHONE_CHANNEL:
        normalized = normalize_phone(address)
        if not normalized:
            raise InvalidArgument("address", "is not a phone number in international format")
        return pe.Identity(channel=channel, address=normalized, normalized_phone=normalized)
    if channel == EMAIL_CHANNEL:
        email = normalize_email(address)
        if not email:
            raise InvalidArgument("address", "is not an email address")
        return pe.Identity(channel=channel, address=email, email=email)
    vouched = ""
    if phone:
        vouched = normalize_phone(phone)
        if not vouched:
            raise InvalidArgument("phone", "is not a phone number in international format")
    return pe.Identity(
        channel=channel, address=address, normalized_phone=identity_phone(channel, address, vouched)
    )


__all__ = [
    "PURPOSE_TRANSACTIONAL",
    "AnyObservation",
    "EvidenceObservation",
    "Location",
    "Observation",
    "Profiles",
    "PurchaseObservation",
    "Resolver",
    "SubscriptionObservation",
    "effective_consent",
    "evidence_identity",
    "manual_identity",
    "observation",
]
