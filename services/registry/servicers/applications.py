"""ApplicationService: registration (internal) and reading (public, needs an identity)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from hooks.registry.v1 import applications_pb2, applications_pb2_grpc
from services.common.identity import require_account
from services.registry import applications
from services.registry.database import Database
from services.registry.messages import application_message

SERVICE_NAME = applications_pb2.DESCRIPTOR.services_by_name["ApplicationService"].full_name


@dataclass
class ApplicationServicer(applications_pb2_grpc.ApplicationServiceServicer):
    database: Database

    async def RegisterApplication(
        self, request: applications_pb2.RegisterApplicationRequest, context: grpc.aio.ServicerContext
    ) -> applications_pb2.RegisterApplicationResponse:
        registration = await applications.register_application(
            self.database, request.application, dry_run=request.dry_run, allow_removals=request.allow_removals
        )
        return applications_pb2.RegisterApplicationResponse(
            application=registration.application, created=registration.created, diff=registration.diff
        )

    async def GetApplication(
        self, request: applications_pb2.GetApplicationRequest, context: grpc.aio.ServicerContext
    ) -> applications_pb2.GetApplicationResponse:
        await require_account(context)
        app = await applications.get_application(self.database, request.name)
        return applications_pb2.GetApplicationResponse(application=application_message(app))

    async def ListApplications(
        self, request: applications_pb2.ListApplicationsRequest, context: grpc.aio.ServicerContext
    ) -> applications_pb2.ListApplicationsResponse:
        await require_account(context)
        rows, token = await applications.list_applications(self.database, request.page_size, request.page_token)
        return applications_pb2.ListApplicationsResponse(
            applications=[application_message(a, with_schemas=False) for a in rows], next_page_token=token
        )
