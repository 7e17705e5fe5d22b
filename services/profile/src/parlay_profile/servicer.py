"""gRPC entry point: parlay.profile.v1.ProfileService, read side. Every query is scoped to the
caller's tenant (`current_tenant()`); another tenant's customers do not exist for it."""

from __future__ import annotations

from typing import Any

import asyncpg

from parlay.profile.v1 import profile_events_pb2 as pe
from parlay.profile.v1 import profile_service_pb2 as ps
from parlay.profile.v1 import profile_service_pb2_grpc as ps_grpc
from parlay_kit.auth import current_tenant
from parlay_kit.envelope import to_timestamp
from parlay_kit.errors import InvalidArgument, NotFound
from parlay_profile import domain
from parlay_profile.readmodel import CustomerReadModel

SERVICE_NAME = "parlay.profile.v1.ProfileService"


def customer_to_proto(state: domain.CustomerState) -> ps.Customer:
    identities = sorted(state.identities.values(), key=lambda i: (i.linked_at, i.key))
    return ps.Customer(
        customer_id=state.customer_id,
        tenant_id=state.tenant_id,
        display_name=state.display_name,
        identities=[
            pe.Identity(channel=i.channel, address=i.address, normalized_phone=i.normalized_phone)
            for i in identities
        ],
        created_at=to_timestamp(state.created_at),
        updated_at=to_timestamp(state.updated_at),
        version=state.version,
    )


def _required(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(field, "is required")
    return value


class ProfileServicer(ps_grpc.ProfileServiceServicer):
    def __init__(self, pool: asyncpg.Pool, read_model: CustomerReadModel) -> None:
        self.pool = pool
        self.read_model = read_model

    async def FindCustomerByIdentity(  # noqa: N802 - gRPC method name
        self, request: ps.FindCustomerByIdentityRequest, context: Any = None
    ) -> ps.FindCustomerByIdentityResponse:
        tenant = current_tenant()
        channel = domain.normalize_channel(_required(request.channel, "channel"))
        address = domain.normalize_address(_required(request.address, "address"))
        async with self.pool.acquire() as conn:
            state = await self.read_model.find_by_identity(conn, tenant, channel, address)
        if state is None:
            raise NotFound(f"no customer with identity {channel}:{address}")
        return ps.FindCustomerByIdentityResponse(customer=customer_to_proto(state))

    async def GetCustomer(  # noqa: N802 - gRPC method name
        self, request: ps.GetCustomerRequest, context: Any = None
    ) -> ps.GetCustomerResponse:
        tenant = current_tenant()
        customer_id = _required(request.customer_id, "customer_id")
        async with self.pool.acquire() as conn:
            state = await self.read_model.get(conn, tenant, customer_id)
        if state is None:
            raise NotFound(f"customer {customer_id} not found")
        return ps.GetCustomerResponse(customer=customer_to_proto(state))
