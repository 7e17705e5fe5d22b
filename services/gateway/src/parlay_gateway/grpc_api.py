"""gRPC entry point: parlay.gateway.v1.GatewayService, scoped to the caller's tenant.

Errors are `parlay_kit.errors` exceptions; the kit's server interceptor maps them to status codes
(InvalidArgument -> INVALID_ARGUMENT naming the field, AlreadyExists, NotFound, ...).
"""

from __future__ import annotations

from typing import Any

from parlay.gateway.v1 import gateway_service_pb2 as pb
from parlay.gateway.v1 import gateway_service_pb2_grpc
from parlay_gateway.account_service import ChannelAccounts
from parlay_kit.auth import current_tenant
from parlay_kit.telemetry import current_traceparent

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GatewayService"].full_name
add_to_server = gateway_service_pb2_grpc.add_GatewayServiceServicer_to_server


class GatewayServicer(gateway_service_pb2_grpc.GatewayServiceServicer):
    def __init__(self, accounts: ChannelAccounts) -> None:
        self._accounts = accounts

    async def CreateChannelAccount(  # noqa: N802 - gRPC method name
        self, request: pb.CreateChannelAccountRequest, context: Any
    ) -> pb.CreateChannelAccountResponse:
        account = await self._accounts.create(
            current_tenant(),
            request.channel_account_id,
            request.channel,
            dict(request.credentials),
            dict(request.settings),
            traceparent=current_traceparent(),
        )
        return pb.CreateChannelAccountResponse(channel_account=account.to_proto())

    async def GetChannelAccount(  # noqa: N802
        self, request: pb.GetChannelAccountRequest, context: Any
    ) -> pb.GetChannelAccountResponse:
        account = await self._accounts.get(current_tenant(), request.channel_account_id)
        return pb.GetChannelAccountResponse(channel_account=account.to_proto())

    async def ListChannelAccounts(  # noqa: N802
        self, request: pb.ListChannelAccountsRequest, context: Any
    ) -> pb.ListChannelAccountsResponse:
        accounts, next_token = await self._accounts.list(
            current_tenant(),
            channel=request.channel,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListChannelAccountsResponse(
            channel_accounts=[a.to_proto() for a in accounts], next_page_token=next_token
        )
