"""ApplicationService: registration (internal) and reading (public, needs an identity)."""

from __future__ import annotations

from hooks.registry.v1 import applications_pb2, applications_pb2_grpc
from services.common.errors import FieldViolations
from services.common.identity import require_account
from services.registry import applications
from services.registry.database import Database
from services.registry.messages import application_message
from services.registry.problems import answers_problems

SERVICE_NAME = applications_pb2.DESCRIPTOR.services_by_name["ApplicationService"].full_name


class ApplicationServicer(applications_pb2_grpc.ApplicationServiceServicer):
    def __init__(self, database: Database):
        self.database = database

    @answers_problems
    async def RegisterApplication(self, request, context):
        app, created = await applications.register_application(self.database, request.application)
        return applications_pb2.RegisterApplicationResponse(application=application_message(app), created=created)

    @answers_problems
    async def GetApplication(self, request, context):
        await require_account(context)
        if not request.name:
            raise FieldViolations([("name", "is required")])
        app = await applications.get_application(self.database, request.name[:200])
        return applications_pb2.GetApplicationResponse(application=application_message(app))

    @answers_problems
    async def ListApplications(self, request, context):
        await require_account(context)
        rows, token = await applications.list_applications(self.database, request.page_size, request.page_token)
        return applications_pb2.ListApplicationsResponse(
            applications=[application_message(a) for a in rows], next_page_token=token
        )
