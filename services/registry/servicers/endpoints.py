"""EndpointService: an account's endpoints (public; the account comes from x-rh-identity)."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import grpc

from hooks.registry.v1 import endpoints_pb2, endpoints_pb2_grpc
from services.common.identity import require_account
from services.registry import endpoints
from services.registry.database import Database
from services.registry.endpoint_policy import EndpointPolicy
from services.registry.messages import endpoint_message
from services.registry.quotas import Quotas

SERVICE_NAME = endpoints_pb2.DESCRIPTOR.services_by_name["EndpointService"].full_name


@dataclass
class EndpointServicer(endpoints_pb2_grpc.EndpointServiceServicer):
    database: Database
    _: KW_ONLY
    #: The tenants' limits (endpoints per account).
    quotas: Quotas
    #: The operator's rules for endpoints (secret rotation, e-mail domains).
    policy: EndpointPolicy

    async def CreateEndpoint(
        self, request: endpoints_pb2.CreateEndpointRequest, context: grpc.aio.ServicerContext
    ) -> endpoints_pb2.CreateEndpointResponse:
        account = await require_account(context)
        row = await endpoints.create_endpoint(
            self.database, account, request.endpoint, quotas=self.quotas, policy=self.policy
        )
        created = endpoint_message(row)
        if not request.endpoint.secret:
            created.generated_secret = row.secret  # shown this once, so signatures can be checked
        return endpoints_pb2.CreateEndpointResponse(endpoint=created)

    async def GetEndpoint(
        self, request: endpoints_pb2.GetEndpointRequest, context: grpc.aio.ServicerContext
    ) -> endpoints_pb2.GetEndpointResponse:
        account = await require_account(context)
        row = await endpoints.ENDPOINTS.read(self.database, account, request.id)
        return endpoints_pb2.GetEndpointResponse(endpoint=endpoint_message(row))

    async def ListEndpoints(
        self, request: endpoints_pb2.ListEndpointsRequest, context: grpc.aio.ServicerContext
    ) -> endpoints_pb2.ListEndpointsResponse:
        account = await require_account(context)
        rows, token = await endpoints.list_endpoints(
            self.database, account, request.page_size, request.page_token, request.name_contains
        )
        return endpoints_pb2.ListEndpointsResponse(endpoints=[endpoint_message(r) for r in rows], next_page_token=token)

    async def UpdateEndpoint(
        self, request: endpoints_pb2.UpdateEndpointRequest, context: grpc.aio.ServicerContext
    ) -> endpoints_pb2.UpdateEndpointResponse:
        account = await require_account(context)
        row = await endpoints.update_endpoint(
            self.database, account, request.endpoint, request.update_mask, policy=self.policy
        )
        updated = endpoint_message(row)
        if "secret" in request.update_mask.paths and not request.endpoint.secret:
            updated.generated_secret = row.secret  # a rotation to a generated secret: shown this once
        return endpoints_pb2.UpdateEndpointResponse(endpoint=updated)

    async def DeleteEndpoint(
        self, request: endpoints_pb2.DeleteEndpointRequest, context: grpc.aio.ServicerContext
    ) -> endpoints_pb2.DeleteEndpointResponse:
        account = await require_account(context)
        await endpoints.delete_endpoint(self.database, account, request.id)
        return endpoints_pb2.DeleteEndpointResponse()

    async def PauseEndpoint(
        self, request: endpoints_pb2.PauseEndpointRequest, context: grpc.aio.ServicerContext
    ) -> endpoints_pb2.PauseEndpointResponse:
        account = await require_account(context)
        row = await endpoints.set_paused(self.database, account, request.id, paused=True)
        return endpoints_pb2.PauseEndpointResponse(endpoint=endpoint_message(row))

    async def ResumeEndpoint(
        self, request: endpoints_pb2.ResumeEndpointRequest, context: grpc.aio.ServicerContext
    ) -> endpoints_pb2.ResumeEndpointResponse:
        account = await require_account(context)
        row = await endpoints.set_paused(self.database, account, request.id, paused=False)
        return endpoints_pb2.ResumeEndpointResponse(endpoint=endpoint_message(row))
