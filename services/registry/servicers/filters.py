"""FilterService: an account's filters (public; the account comes from x-rh-identity)."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import grpc

from hooks.registry.v1 import filters_pb2, filters_pb2_grpc
from services.common.identity import require_account
from services.registry import filters
from services.registry.database import Database
from services.registry.messages import filter_message
from services.registry.quotas import Quotas

SERVICE_NAME = filters_pb2.DESCRIPTOR.services_by_name["FilterService"].full_name


@dataclass
class FilterServicer(filters_pb2_grpc.FilterServiceServicer):
    database: Database
    _: KW_ONLY
    #: The tenants' limits (filters per account, endpoints per filter).
    quotas: Quotas

    async def CreateFilter(
        self, request: filters_pb2.CreateFilterRequest, context: grpc.aio.ServicerContext
    ) -> filters_pb2.CreateFilterResponse:
        account = await require_account(context)
        row = await filters.create_filter(self.database, account, request.filter, quotas=self.quotas)
        return filters_pb2.CreateFilterResponse(filter=filter_message(row))

    async def GetFilter(
        self, request: filters_pb2.GetFilterRequest, context: grpc.aio.ServicerContext
    ) -> filters_pb2.GetFilterResponse:
        account = await require_account(context)
        row = await filters.FILTERS.read(self.database, account, request.id)
        return filters_pb2.GetFilterResponse(filter=filter_message(row))

    async def ListFilters(
        self, request: filters_pb2.ListFiltersRequest, context: grpc.aio.ServicerContext
    ) -> filters_pb2.ListFiltersResponse:
        account = await require_account(context)
        rows, token = await filters.list_filters(
            self.database, account, request.page_size, request.page_token, request.endpoint_id
        )
        return filters_pb2.ListFiltersResponse(filters=[filter_message(r) for r in rows], next_page_token=token)

    async def UpdateFilter(
        self, request: filters_pb2.UpdateFilterRequest, context: grpc.aio.ServicerContext
    ) -> filters_pb2.UpdateFilterResponse:
        account = await require_account(context)
        row = await filters.update_filter(
            self.database, account, request.filter, request.update_mask, quotas=self.quotas
        )
        return filters_pb2.UpdateFilterResponse(filter=filter_message(row))

    async def DeleteFilter(
        self, request: filters_pb2.DeleteFilterRequest, context: grpc.aio.ServicerContext
    ) -> filters_pb2.DeleteFilterResponse:
        account = await require_account(context)
        await filters.delete_filter(self.database, account, request.id)
        return filters_pb2.DeleteFilterResponse()
