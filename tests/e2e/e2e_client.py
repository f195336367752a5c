"""The calls a user's tools make to hooks (gRPC with x-rh-identity), and what the e2e tests register."""

from __future__ import annotations

import grpc
from google.protobuf import field_mask_pb2

from hooks.registry.v1 import (
    applications_pb2,
    applications_pb2_grpc,
    endpoints_pb2,
    endpoints_pb2_grpc,
    filters_pb2,
    filters_pb2_grpc,
)
from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
from services.common.identity import identity_metadata

ACCOUNT = "e2e-account"
#: A known signing secret, so the test can verify signatures as a receiver would.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: Millisecond retries, so a failed attempt is retried within the test.
FAST_RETRIES = "100ms,200ms,400ms,800ms,1s,1s,1s"

POLICIES = applications_pb2.Application(
    name="policies",
    title="Policies",
    event_types=[
        applications_pb2.EventType(
            id="policy-triggered",
            title="Policy triggered",
            levels=[applications_pb2.Level(id="low", title="Low"), applications_pb2.Level(id="high", title="High")],
        ),
        applications_pb2.EventType(id="policy-created", title="Policy created"),
    ],
)


class Hooks:
    """The public and internal gRPC calls a user (or an application) makes, as account ACCOUNT."""

    def __init__(self, registry_target: str, sender_target: str, account: str = ACCOUNT) -> None:
        self.registry_channel = grpc.aio.insecure_channel(registry_target)
        self.sender_channel = grpc.aio.insecure_channel(sender_target)
        self.metadata = identity_metadata(account)
        self.applications = applications_pb2_grpc.ApplicationServiceStub(self.registry_channel)
        self.endpoints = endpoints_pb2_grpc.EndpointServiceStub(self.registry_channel)
        self.filters = filters_pb2_grpc.FilterServiceStub(self.registry_channel)
        self.deliveries = deliveries_pb2_grpc.DeliveryServiceStub(self.sender_channel)

    async def close(self) -> None:
        await self.registry_channel.close()
        await self.sender_channel.close()

    async def register(self, application: applications_pb2.Application = POLICIES) -> None:
        await self.applications.RegisterApplication(
            applications_pb2.RegisterApplicationRequest(application=application)
        )

    async def endpoint(self, name: str, target: str, kind=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK, **fields):
        response = await self.endpoints.CreateEndpoint(
            endpoints_pb2.CreateEndpointRequest(
                endpoint=endpoints_pb2.Endpoint(name=name, type=kind, target=target, enabled=True, **fields)
            ),
            metadata=self.metadata,
        )
        return response.endpoint

    async def filter(self, endpoint_ids: list[str], **fields):
        response = await self.filters.CreateFilter(
            filters_pb2.CreateFilterRequest(
                filter=filters_pb2.Filter(enabled=True, endpoint_ids=endpoint_ids, **fields)
            ),
            metadata=self.metadata,
        )
        return response.filter

    async def update_filter(self, filter_id: str, paths: list[str], **fields):
        response = await self.filters.UpdateFilter(
            filters_pb2.UpdateFilterRequest(
                filter=filters_pb2.Filter(id=filter_id, **fields),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            ),
            metadata=self.metadata,
        )
        return response.filter

    async def update_endpoint(self, endpoint_id: str, paths: list[str], **fields):
        response = await self.endpoints.UpdateEndpoint(
            endpoints_pb2.UpdateEndpointRequest(
                endpoint=endpoints_pb2.Endpoint(id=endpoint_id, **fields),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            ),
            metadata=self.metadata,
        )
        return response.endpoint

    async def deliveries_of(self, endpoint_id: str = "", event_id: str = "") -> list[deliveries_pb2.Delivery]:
        response = await self.deliveries.ListDeliveries(
            deliveries_pb2.ListDeliveriesRequest(endpoint_id=endpoint_id, event_id=event_id, page_size=1000),
            metadata=self.metadata,
        )
        return list(response.deliveries)
