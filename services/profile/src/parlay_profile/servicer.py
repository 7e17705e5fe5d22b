"""gRPC entry point: parlay.profile.v1.ProfileService. Every call is scoped to the caller's
tenant (`current_tenant()`); another tenant's customers do not exist for it (NOT_FOUND, and a
command naming one changes nothing). Failures are parlay_kit.errors, mapped to status codes by
the kit's interceptor: INVALID_ARGUMENT (naming the field), NOT_FOUND, FAILED_PRECONDITION,
ABORTED (version conflict)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import asyncpg

from parlay.profile.v1 import profile_events_pb2 as pe
from parlay.profile.v1 import profile_service_pb2 as ps
from parlay.profile.v1 import profile_service_pb2_grpc as ps_grpc
from parlay_kit.auth import current_tenant
from parlay_kit.envelope import to_timestamp, unpack
from parlay_kit.errors import InvalidArgument, NotFound
from parlay_kit.grpc_server import require
from parlay_profile import domain, view
from parlay_profile.commands import ProfileCommands, Resolved
from parlay_profile.readmodel import CustomerReadModel

SERVICE_NAME = "parlay.profile.v1.ProfileService"
DEFAULT_PAGE = 50
MAX_PAGE = 500
DEFAULT_HISTORY_PAGE = 100
MAX_HISTORY_PAGE = 1000
DEFAULT_ACTOR = "api"


def _evidence(rule: str, source_event_id: str, actor: str, note: str) -> pe.Evidence:
    return pe.Evidence(rule=rule, source_event_id=source_event_id, actor=actor, note=note)


def consent_to_proto(c: view.ConsentView) -> ps.Consent:
    r = c.record
    identity = None
    if r.identity_channel:
        identity = pe.Identity(channel=r.identity_channel, address=r.identity_address)
    return ps.Consent(
        channel=c.channel,
        purpose=c.purpose,
        granted=r.granted,
        source=r.source,
        evidence=_evidence(r.rule, r.source_event_id, r.actor, r.note),
        changed_at=to_timestamp(r.changed_at),
        customer_id=c.customer_id,
        identity=identity,
    )


def customer_to_proto(v: view.CustomerView) -> ps.Customer:
    customer = ps.Customer(
        customer_id=v.customer_id,
        tenant_id=v.tenant_id,
        display_name=v.display_name,
        identities=[i.link.to_proto() for i in v.identities],
        created_at=to_timestamp(v.created_at),
        updated_at=to_timestamp(v.updated_at),
        version=v.version,
        locale=v.locale,
        attributes=v.attributes,
        tags=list(v.tags),
        identity_links=[
            ps.IdentityLink(
                identity=i.link.to_proto(),
                evidence=_evidence(i.link.rule, i.link.source_event_id, i.link.actor, i.link.note),
                linked_at=to_timestamp(i.link.linked_at),
                customer_id=i.customer_id,
            )
            for i in v.identities
        ],
        consents=[consent_to_proto(c) for c in v.consents],
        channels=[
            ps.ChannelActivity(
                channel=channel,
                channel_account_id=seen.channel_account_id,
                last_seen_at=to_timestamp(seen.last_seen_at),
            )
            for channel, seen in v.channels
        ],
        purchases=ps.PurchaseSummary(
            order_count=v.order_count,
            lifetime_value=[ps.MoneyTotal(currency=c, amount_minor=a) for c, a in v.lifetime_value],
        ),
        merged_customers=[ps.MergedCustomer(customer_id=c, merge_id=m) for c, m in v.merged],
    )
    if v.location is not None:
        loc = v.location
        customer.last_location.CopyFrom(
            ps.SharedLocation(
                channel=loc.channel,
                latitude=loc.latitude,
                longitude=loc.longitude,
                name=loc.name,
                address=loc.address,
                shared_at=to_timestamp(loc.shared_at),
            )
        )
    return customer


def summarize(envelope: Any) -> str:
    """One line about a profile event, for people reading a history."""
    try:
        payload = unpack(envelope)
    except Exception:  # a type this build does not know: name it
        return envelope.event_type.rsplit(".", 1)[-1]
    name = type(payload).__name__
    if isinstance(payload, pe.IdentityLinked | pe.IdentityUnlinked):
        i, ev = payload.identity, payload.evidence
        return f"{name} {i.channel}:{i.address} ({ev.rule}{', ' + ev.actor if ev.actor else ''})"
    if isinstance(payload, pe.CustomerCreated | pe.DisplayNameChanged):
        return f"{name} {payload.display_name!r}"
    if isinstance(payload, pe.CustomerSeen):
        return f"{name} on {payload.channel}"
    if isinstance(payload, pe.ProfilesMerged | pe.ProfilesUnmerged):
        return (
            f"{name} {payload.merged_customer_id} into {payload.survivor_customer_id} "
            f"({payload.evidence.rule}, {payload.evidence.actor}) merge {payload.merge_id}"
        )
    if isinstance(payload, pe.CustomerMergedInto | pe.CustomerUnmergedFrom):
        return f"{name} {payload.survivor_customer_id} (merge {payload.merge_id})"
    if isinstance(payload, pe.ConsentChanged):
        what = "granted" if payload.granted else "withdrawn"
        return (
            f"{name} {payload.channel}/{payload.purpose} {what} "
            f"({payload.source}: {payload.evidence.note or payload.evidence.rule})"
        )
    if isinstance(payload, pe.CustomerUpdated):
        return f"{name} by {payload.actor or 'api'}"
    if isinstance(payload, pe.PurchaseRecorded):
        return f"{name} {payload.kind} {payload.order_id}"
    return name


def _page_size(value: int, default: int, maximum: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument(field, "must not be negative")
    return min(value or default, maximum)


def _resolved_reply(cls: Any, resolved: Resolved) -> Any:
    return cls(
        customer=customer_to_proto(resolved.view),
        merged=resolved.merged,
        requested_customer_id=resolved.requested_customer_id,
        merge_id=resolved.merge_id if resolved.merged else "",
    )


def _actor(value: str) -> str:
    return value.strip() or DEFAULT_ACTOR


class ProfileServicer(ps_grpc.ProfileServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        read_model: CustomerReadModel,
        commands: ProfileCommands,
    ) -> None:
        self.pool = pool
        self.read_model = read_model
        self.commands = commands

    async def _resolve(self, tenant: str, customer_id: str) -> Resolved:
        async with self.pool.acquire() as conn:
            resolved = await self.commands.resolve(conn, tenant, customer_id)
        if resolved is None:
            raise NotFound(f"customer {customer_id} not found")
        return resolved

    # ------------------------------------------------------------------ reads

    async def FindCustomerByIdentity(  # noqa: N802 - gRPC method name
        self, request: ps.FindCustomerByIdentityRequest, context: Any = None
    ) -> ps.FindCustomerByIdentityResponse:
        tenant = current_tenant()
        require(request, "channel", "address")
        channel = domain.normalize_channel(request.channel)
        address = domain.normalize_address(request.address)
        if not channel:
            raise InvalidArgument("channel", "is required")
        if not address:
            raise InvalidArgument("address", "is required")
        rm = self.read_model
        async with self.pool.acquire() as conn:
            if channel in (domain.PHONE_CHANNEL, domain.EMAIL_CHANNEL):
                if channel == domain.PHONE_CHANNEL:
                    value = domain.normalize_phone(address)
                    if not value:
                        raise InvalidArgument(
                            "address", "is not a phone number in international format"
                        )
                    owners = await rm.owners_by(conn, tenant, phone=value)
                else:
                    value = domain.normalize_email(address)
                    if not value:
                        raise InvalidArgument("address", "is not an email address")
                    owners = await rm.owners_by(conn, tenant, email=value)
                roots = await rm.roots_of(conn, owners)
                # Several customers only when a person kept them apart: the oldest answers
                # (SearchCustomers lists them all).
                states = await rm.load(conn, roots)
                first = min(
                    states.values(), key=lambda s: (s.created_at, s.customer_id), default=None
                )
                owner = first.customer_id if first is not None else None
            else:
                state = await rm.find_by_identity(conn, tenant, channel, address)
                owner = state.customer_id if state is not None else None
            resolved = (
                await self.commands.resolve(conn, tenant, owner) if owner is not None else None
            )
        if resolved is None:
            raise NotFound(f"no customer with identity {channel}:{address}")
        return ps.FindCustomerByIdentityResponse(customer=customer_to_proto(resolved.view))

    async def GetCustomer(  # noqa: N802 - gRPC method name
        self, request: ps.GetCustomerRequest, context: Any = None
    ) -> ps.GetCustomerResponse:
        tenant = current_tenant()
        customer_id = request.customer_id.strip()
        if not customer_id:
            raise InvalidArgument("customer_id", "is required")
        return _resolved_reply(ps.GetCustomerResponse, await self._resolve(tenant, customer_id))

    async def SearchCustomers(  # noqa: N802 - gRPC method name
        self, request: ps.SearchCustomersRequest, context: Any = None
    ) -> ps.SearchCustomersResponse:
        tenant = current_tenant()
        limit = _page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        rm = self.read_model
        among: set[str] | None = None
        async with self.pool.acquire() as conn:
            if request.phone.strip():
                phone = domain.normalize_phone(request.phone)
                if not phone:
                    raise InvalidArgument("phone", "is not a phone number in international format")
                among = await rm.roots_of(conn, await rm.owners_by(conn, tenant, phone=phone))
            if request.email.strip():
                email = domain.normalize_email(request.email)
                if not email:
                    raise InvalidArgument("email", "is not an email address")
                found = await rm.roots_of(conn, await rm.owners_by(conn, tenant, email=email))
                among = found if among is None else among & found
            ids = await rm.search(
                conn,
                tenant,
                among=among,
                name_prefix=request.name_prefix.strip(),
                tag=request.tag.strip(),
                after=request.page_token,
                limit=limit + 1,
            )
            customers = []
            for cid in ids[:limit]:
                resolved = await self.commands.resolve(conn, tenant, cid)
                if resolved is not None:
                    customers.append(customer_to_proto(resolved.view))
        return ps.SearchCustomersResponse(
            customers=customers, next_page_token=ids[limit - 1] if len(ids) > limit else ""
        )

    async def CanContact(  # noqa: N802 - gRPC method name
        self, request: ps.CanContactRequest, context: Any = None
    ) -> ps.CanContactResponse:
        tenant = current_tenant()
        require(request, "customer_id", "channel", "purpose")
        if request.purpose not in domain.PURPOSES:
            raise InvalidArgument("purpose", f"must be one of {', '.join(domain.PURPOSES)}")
        resolved = await self._resolve(tenant, request.customer_id.strip())
        answer = view.can_contact(resolved.view, request.channel, request.purpose)
        reply = ps.CanContactResponse(
            allowed=answer.allowed, reason=answer.reason, customer_id=resolved.view.customer_id
        )
        if answer.consent is not None:
            reply.consent.CopyFrom(consent_to_proto(answer.consent))
        return reply

    async def GetCustomerHistory(  # noqa: N802 - gRPC method name
        self, request: ps.GetCustomerHistoryRequest, context: Any = None
    ) -> ps.GetCustomerHistoryResponse:
        tenant = current_tenant()
        require(request, "customer_id")
        limit = _page_size(request.page_size, DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE)
        after = 0
        if request.page_token:
            try:
                after = int(request.page_token)
            except ValueError:
                raise InvalidArgument("page_token", "is not a token this service gave") from None
        events = await self.commands.history(
            tenant, request.customer_id.strip(), after_version=after, limit=limit + 1
        )
        page = events[:limit]
        return ps.GetCustomerHistoryResponse(
            entries=[ps.HistoryEntry(event=e, summary=summarize(e)) for e in page],
            next_page_token=str(page[-1].aggregate_version) if len(events) > limit else "",
        )

    async def GetCustomerAsOf(  # noqa: N802 - gRPC method name
        self, request: ps.GetCustomerAsOfRequest, context: Any = None
    ) -> ps.GetCustomerAsOfResponse:
        tenant = current_tenant()
        require(request, "customer_id", "as_of")
        as_of = request.as_of.ToDatetime(tzinfo=UTC)
        resolved = await self.commands.as_of(tenant, request.customer_id.strip(), as_of)
        if resolved is None:
            raise NotFound(f"customer {request.customer_id} did not exist at {as_of.isoformat()}")
        return _resolved_reply(ps.GetCustomerAsOfResponse, resolved)

    # ------------------------------------------------------------------ commands

    async def MergeCustomers(  # noqa: N802 - gRPC method name
        self, request: ps.MergeCustomersRequest, context: Any = None
    ) -> ps.MergeCustomersResponse:
        tenant = current_tenant()
        require(request, "survivor_customer_id", "merged_customer_id")
        merge_id, merged = await self.commands.merge(
            tenant,
            request.survivor_customer_id.strip(),
            request.merged_customer_id.strip(),
            actor=_actor(request.actor),
            reason=request.reason.strip(),
        )
        return ps.MergeCustomersResponse(merge_id=merge_id, customer=customer_to_proto(merged))

    async def UnmergeCustomers(  # noqa: N802 - gRPC method name
        self, request: ps.UnmergeCustomersRequest, context: Any = None
    ) -> ps.UnmergeCustomersResponse:
        tenant = current_tenant()
        require(request, "merge_id")
        survivor, restored = await self.commands.unmerge(
            tenant, request.merge_id.strip(), actor=_actor(request.actor), reason=request.reason
        )
        return ps.UnmergeCustomersResponse(
            survivor=customer_to_proto(survivor), restored=customer_to_proto(restored)
        )

    async def LinkIdentity(  # noqa: N802 - gRPC method name
        self, request: ps.LinkIdentityRequest, context: Any = None
    ) -> ps.LinkIdentityResponse:
        tenant = current_tenant()
        require(request, "customer_id", "channel", "address")
        linked = await self.commands.link(
            tenant,
            request.customer_id.strip(),
            request.channel,
            request.address,
            phone=request.phone,
            actor=_actor(request.actor),
            note=request.note.strip(),
        )
        return ps.LinkIdentityResponse(customer=customer_to_proto(linked))

    async def UnlinkIdentity(  # noqa: N802 - gRPC method name
        self, request: ps.UnlinkIdentityRequest, context: Any = None
    ) -> ps.UnlinkIdentityResponse:
        tenant = current_tenant()
        require(request, "customer_id", "channel", "address")
        customer = await self.commands.unlink(
            tenant,
            request.customer_id.strip(),
            request.channel,
            request.address,
            actor=_actor(request.actor),
            note=request.note.strip(),
        )
        return ps.UnlinkIdentityResponse(customer=customer_to_proto(customer))

    async def UpdateCustomer(  # noqa: N802 - gRPC method name
        self, request: ps.UpdateCustomerRequest, context: Any = None
    ) -> ps.UpdateCustomerResponse:
        tenant = current_tenant()
        require(request, "customer_id")
        if request.expected_version < 0:
            raise InvalidArgument("expected_version", "must not be negative")
        customer = await self.commands.update(
            tenant,
            request.customer_id.strip(),
            expected_version=request.expected_version,
            display_name=request.display_name if request.HasField("display_name") else None,
            locale=request.locale.strip() if request.HasField("locale") else None,
            set_attributes=dict(request.set_attributes),
            remove_attributes=list(request.remove_attributes),
            add_tags=list(request.add_tags),
            remove_tags=list(request.remove_tags),
            actor=_actor(request.actor),
        )
        return ps.UpdateCustomerResponse(customer=customer_to_proto(customer))

    async def SetConsent(  # noqa: N802 - gRPC method name
        self, request: ps.SetConsentRequest, context: Any = None
    ) -> ps.SetConsentResponse:
        tenant = current_tenant()
        require(request, "customer_id", "channel", "purpose", "proof")
        channel = domain.contact_channel(request.channel)
        customer = await self.commands.set_consent(
            tenant,
            request.customer_id.strip(),
            request.channel,
            request.purpose,
            request.granted,
            proof=request.proof,
            actor=_actor(request.actor),
        )
        consent = next(
            c for c in customer.consents if c.channel == channel and c.purpose == request.purpose
        )
        return ps.SetConsentResponse(consent=consent_to_proto(consent))
