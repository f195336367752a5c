"""EndpointService: an account's endpoints (public; the account comes from x-rh-identity)."""

from __future__ import annotations

from hooks.registry.v1 import endpoints_pb2, endpoints_pb2_grpc
from services.common.identity import require_account
from services.registry import endpoints
from services.registry.database import Database
from services.registry.messages import endpoint_message
from services.registry.problems import answers_problems

SERVICE_NAME = endpoints_pb2.DESCRIPTOR.services_by_name["EndpointService"].full_name


class EndpointServicer(endpoints_pb2_grpc.EndpointServiceServicer):
    def __init__(self, database: Database):
        self.database = database

    @answers_problems
    async def CreateEndpoint(self, request, context):
        account = await require_account(context)
        row = await endpoints.create_endpoint(self.database, account, request.endpoint)
        return endpoints_pb2.CreateEndpointResponse(endpoint=endpoint_message(row))

    @answers_problems
    async def GetEndpoint(self, request, context):
        account = await require_account(context)
        row = await endpoints.get_endpoint(self.database, account, request.id)
        return endpoints_pb2.GetEndpointResponse(endpoint=endpoint_message(row))

    @answers_problems
    async def ListEndpoints(self, request, context):
        account = await require_account(context)
        rows, token = await endpoints.list_endpoints(
            self.database, account, request.page_size, request.page_token, request.name_contains
        )
        return endpoints_pb2.ListEndpointsResponse(endpoints=[endpoint_message(r) for r in rows], next_page_token=token)

    @answers_problems
    async def UpdateEndpoint(self, request, context):
        account = await require_account(context)
        row = await endpoints.update_endpoint(self.database, account, request.endpoint, request.update_mask)
        return endpoints_pb2.UpdateEndpointResponse(endpoint=endpoint_message(row))

    @answers_problems
    async def DeleteEndpoint(self, request, context):
        account = await require_account(context)
        await endpoints.delete_endpoint(self.database, account, request.id)
        return endpoints_pb2.DeleteEndpointResponse()
