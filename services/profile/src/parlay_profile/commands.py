"""Profile application layer: command handlers (MergeCustomers, UnmergeCustomers, LinkIdentity,
UnlinkIdentity, UpdateCustomer, SetConsent) and the queries that need more than one table.

A command runs in one transaction: take the tenant's writer lock (the identity-resolution
projector takes the same one), load the customers the decision reads, decide with the pure
rules (`rules.Resolver`), append the events with explicit versions to the store (its outbox)
and write the read models with the same `apply`/`save` the projections use. A version that is
taken (someone else appended) raises ConcurrencyError: ABORTED.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import asyncpg

from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit import topics
from parlay_kit.envelope import from_timestamp, unpack, utcnow
from parlay_kit.errors import NotFound
from parlay_kit.eventstore import EventStore
from parlay_profile import domain, rules, view
from parlay_profile.projections import to_new_event
from parlay_profile.readmodel import CustomerReadModel

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Resolved:
    """A customer read by id: the view of the group it belongs to, and whether the id asked
    for was merged into another customer."""

    view: view.CustomerView
    requested_customer_id: str
    merged: bool
    merge_id: str


class ProfileCommands:
    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        read_model: CustomerReadModel,
        *,
        topic: str = topics.PROFILE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.pool = pool
        self.store = store
        self.read_model = read_model
        self.topic = topic
        self.clock = clock

    # ------------------------------------------------------------------ plumbing

    async def _run(
        self,
        tenant_id: str,
        customer_ids: Iterable[str],
        decide: Callable[[rules.Resolver], T],
        *,
        merge_ids: Iterable[str] = (),
        identities: Iterable[tuple[str, str]] = (),
        phones: Iterable[str] = (),
        emails: Iterable[str] = (),
        after: Callable[[rules.Profiles], Awaitable[None]] | None = None,
    ) -> tuple[T, rules.Profiles]:
        rm = self.read_model
        async with self.pool.acquire() as conn, conn.transaction():
            await rm.lock_tenants(conn, [tenant_id])
            ids = set(customer_ids) | await rm.merge_survivors(conn, merge_ids)
            keys = [(tenant_id, c, a) for c, a in identities]
            ids |= set((await rm.identity_owners(conn, keys)).values())
            ids |= await rm.phone_owners(conn, [(tenant_id, p) for p in phones])
            ids |= await rm.email_owners(conn, [(tenant_id, e) for e in emails])
            before = await rm.load_closure(conn, ids)
            resolver = rules.Resolver(rules.Profiles(before.values()))
            result = decide(resolver)
            if resolver.events:
                command_id = resolver.events[0].event_id
                await self.store.append(
                    conn,
                    [
                        to_new_event(e, self.topic, correlation_id=command_id)
                        for e in resolver.events
                    ],
                )
                await rm.save(conn, before, resolver.profiles.states)
            return result, resolver.profiles

    @staticmethod
    def _view(profiles: rules.Profiles, customer_id: str) -> view.CustomerView:
        return view.compose(profiles.group(profiles.root(customer_id)))

    @staticmethod
    def _new_command_id() -> str:
        return str(uuid.uuid4())

    # ------------------------------------------------------------------ commands

    async def merge(
        self, tenant_id: str, survivor_id: str, merged_id: str, *, actor: str, reason: str
    ) -> tuple[str, view.CustomerView]:
        cmd, at = self._new_command_id(), self.clock()
        merge_id, profiles = await self._run(
            tenant_id,
            [survivor_id, merged_id],
            lambda r: r.merge_customers(
                tenant_id,
                survivor_id,
                merged_id,
                actor=actor,
                reason=reason,
                at=at,
                command_id=cmd,
            ),
        )
        return merge_id, self._view(profiles, survivor_id)

    async def unmerge(
        self, tenant_id: str, merge_id: str, *, actor: str, reason: str
    ) -> tuple[view.CustomerView, view.CustomerView]:
        cmd, at = self._new_command_id(), self.clock()
        (survivor, restored), profiles = await self._run(
            tenant_id,
            [],
            lambda r: r.unmerge_customers(
                tenant_id, merge_id, actor=actor, reason=reason, at=at, command_id=cmd
            ),
            merge_ids=[merge_id],
        )
        return self._view(profiles, survivor), self._view(profiles, restored)

    async def link(
        self,
        tenant_id: str,
        customer_id: str,
        channel: str,
        address: str,
        *,
        phone: str,
        actor: str,
        note: str,
    ) -> view.CustomerView:
        identity = rules.manual_identity(channel, address, phone)
        cmd, at = self._new_command_id(), self.clock()
        _, profiles = await self._run(
            tenant_id,
            [customer_id],
            lambda r: r.link_identity(
                tenant_id,
                customer_id,
                channel,
                address,
                phone=phone,
                actor=actor,
                note=note,
                at=at,
                command_id=cmd,
            ),
            identities=[(identity.channel, identity.address)],
            phones=[identity.normalized_phone] if identity.normalized_phone else [],
            emails=[identity.email] if identity.email else [],
        )
        return self._view(profiles, customer_id)

    async def unlink(
        self, tenant_id: str, customer_id: str, channel: str, address: str, *, actor: str, note: str
    ) -> view.CustomerView:
        cmd, at = self._new_command_id(), self.clock()
        _, profiles = await self._run(
            tenant_id,
            [customer_id],
            lambda r: r.unlink_identity(
                tenant_id,
                customer_id,
                channel,
                address,
                actor=actor,
                note=note,
                at=at,
                command_id=cmd,
            ),
        )
        return self._view(profiles, customer_id)

    async def update(
        self,
        tenant_id: str,
        customer_id: str,
        *,
        expected_version: int,
        display_name: str | None,
        locale: str | None,
        set_attributes: dict[str, str],
        remove_attributes: list[str],
        add_tags: list[str],
        remove_tags: list[str],
        actor: str,
    ) -> view.CustomerView:
        cmd, at = self._new_command_id(), self.clock()
        _, profiles = await self._run(
            tenant_id,
            [customer_id],
            lambda r: r.update_customer(
                tenant_id,
                customer_id,
                expected_version=expected_version,
                display_name=display_name,
                locale=locale,
                set_attributes=set_attributes,
                remove_attributes=remove_attributes,
                add_tags=add_tags,
                remove_tags=remove_tags,
                actor=actor,
                at=at,
                command_id=cmd,
            ),
        )
        return self._view(profiles, customer_id)

    async def set_consent(
        self,
        tenant_id: str,
        customer_id: str,
        channel: str,
        purpose: str,
        granted: bool,
        *,
        proof: str,
        actor: str,
    ) -> view.CustomerView:
        cmd, at = self._new_command_id(), self.clock()
        _, profiles = await self._run(
            tenant_id,
            [customer_id],
            lambda r: r.set_consent(
                tenant_id,
                customer_id,
                channel,
                purpose,
                granted,
                proof=proof,
                actor=actor,
                at=at,
                command_id=cmd,
            ),
        )
        return self._view(profiles, customer_id)

    # ------------------------------------------------------------------ queries

    async def resolve(
        self, conn: asyncpg.Connection, tenant_id: str, customer_id: str
    ) -> Resolved | None:
        """The profile a customer id answers with now: its survivor's merged group."""
        states = await self.read_model.load_closure(conn, [customer_id])
        requested = states.get(customer_id)
        if requested is None or requested.tenant_id != tenant_id:
            return None
        profiles = rules.Profiles(states.values())
        root = profiles.root(customer_id)
        return Resolved(
            view=view.compose(profiles.group(root)),
            requested_customer_id=customer_id,
            merged=root != customer_id,
            merge_id=requested.merge_id,
        )

    async def history(
        self, tenant_id: str, customer_id: str, *, after_version: int, limit: int
    ) -> list[Envelope]:
        """The customer's own stream, oldest first, from the event store."""
        async with self.pool.acquire() as conn:
            stream = await self.store.load_stream(conn, customer_id, tenant_id=tenant_id)
        if not stream:
            raise NotFound(f"customer {customer_id} not found")
        return [e for e in stream if e.aggregate_version > after_version][:limit]

    async def as_of(self, tenant_id: str, customer_id: str, as_of: datetime) -> Resolved | None:
        """The profile as the log recorded it at `as_of`: every involved stream folded over the
        events recorded at or before that instant, merges as they stood then."""
        folded: dict[str, domain.CustomerState | None] = {}
        async with self.pool.acquire() as conn:

            async def state_of(cid: str) -> domain.CustomerState | None:
                if cid not in folded:
                    stream = await self.store.load_stream(conn, cid, tenant_id=tenant_id)
                    folded[cid] = domain.fold(
                        None,
                        [
                            _profile_event(e)
                            for e in stream
                            if from_timestamp(e.recorded_at) <= as_of
                            and e.aggregate_type == domain.AGGREGATE_TYPE
                        ],
                    )
                return folded[cid]

            requested = await state_of(customer_id)
            if requested is None:
                return None
            # Up to the survivor, then down through every merge in force at that instant.
            current = requested
            while current.merged_into:
                survivor = await state_of(current.merged_into)
                if survivor is None:
                    break
                current = survivor
            pending = [current]
            while pending:
                state = pending.pop()
                for member in state.members.values():
                    if member not in folded:
                        loaded = await state_of(member)
                        if loaded is not None:
                            pending.append(loaded)
        profiles = rules.Profiles(s for s in folded.values() if s is not None)
        root = profiles.root(customer_id)
        return Resolved(
            view=view.compose(profiles.group(root)),
            requested_customer_id=customer_id,
            merged=root != customer_id,
            merge_id=requested.merge_id,
        )


def _profile_event(envelope: Envelope) -> domain.ProfileEvent:
    return domain.ProfileEvent(
        tenant_id=envelope.tenant_id,
        aggregate_id=envelope.aggregate_id,
        version=envelope.aggregate_version,
        occurred_at=from_timestamp(envelope.occurred_at),
        payload=unpack(envelope),
        event_id=envelope.event_id,
    )
