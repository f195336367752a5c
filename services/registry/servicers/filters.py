"""FilterService: an account's filters (public; the account comes from x-rh-identity)."""

from __future__ import annotations

from hooks.registry.v1 import filters_pb2, filters_pb2_grpc
from services.common.identity import require_account
from services.registry import filters
from services.registry.database import Database
from services.registry.messages import filter_message
from services.registry.problems import answers_problems

SERVICE_NAME = filters_pb2.DESCRIPTOR.services_by_name["FilterService"].full_name


class FilterServicer(filters_pb2_grpc.FilterServiceServicer):
    def __init__(self, database: Database):
        self.database = database

    @answers_problems
    async def CreateFilter(self, request, context):
        account = await require_account(context)
        row = await filters.create_filter(self.database, account, request.filter)
        return filters_pb2.CreateFilterResponse(filter=filter_message(row))

    @answers_problems
    async def GetFilter(self, request, context):
        account = await require_account(context)
        row = await filters.get_filter(self.database, account, request.id)
        return filters_pb2.GetFilterResponse(filter=filter_message(row))

    @answers_problems
    async def ListFilters(self, request, context):
        account = await require_account(context)
        rows, token = await filters.list_filters(
            self.database, account, request.page_size, request.page_token, request.endpoint_id
        )
        return filters_pb2.ListFiltersResponse(filters=[filter_message(r) for r in rows], next_page_token=token)

    @answers_problems
    async def UpdateFilter(self, request, context):
        account = await require_account(context)
        row = await filters.update_filter(self.database, account, request.filter, request.update_mask)
        return filters_pb2.UpdateFilterResponse(filter=filter_message(row))

    @answers_problems
    async def DeleteFilter(self, request, context):
        account = await require_account(context)
        await filters.delete_filter(self.database, account, request.id)
        return filters_pb2.DeleteFilterResponse()
