"""Stored rows as API messages. Endpoint secrets leave only through `delivery_target`."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2

from hooks.registry.v1 import applications_pb2, endpoints_pb2, filters_pb2
from services.registry.models import Application, Endpoint, Filter
from services.registry.signing_secrets import secret_hint
from services.registry.validation import ENDPOINT_TYPE_NUMBERS


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def application_message(app: Application) -> applications_pb2.Application:
    return applications_pb2.Application(
        name=app.name,
        title=app.title,
        event_types=[
            applications_pb2.EventType(
                id=et.key,
                title=et.title,
                levels=[applications_pb2.Level(id=level.key, title=level.title) for level in et.levels],
            )
            for et in app.event_types
        ],
        create_time=timestamp(app.create_time),
        update_time=timestamp(app.update_time),
    )


def endpoint_message(endpoint: Endpoint) -> endpoints_pb2.Endpoint:
    """The endpoint as its owner sees it: `secret_hint`, never `secret`."""
    return endpoints_pb2.Endpoint(
        id=endpoint.id,
        name=endpoint.name,
        description=endpoint.description,
        type=ENDPOINT_TYPE_NUMBERS[endpoint.type],
        target=endpoint.target,
        enabled=endpoint.enabled,
        headers=endpoint.headers or {},
        ca_certificate=endpoint.ca_certificate,
        secret_hint=secret_hint(endpoint.secret),
        disabled_reason=endpoint.disabled_reason,
        create_time=timestamp(endpoint.create_time),
        update_time=timestamp(endpoint.update_time),
    )


def delivery_target(endpoint: Endpoint) -> endpoints_pb2.Endpoint:
    """The endpoint with its secret: internal, for the sender only."""
    message = endpoint_message(endpoint)
    message.secret = endpoint.secret
    return message


def filter_message(row: Filter) -> filters_pb2.Filter:
    return filters_pb2.Filter(
        id=row.id,
        name=row.name,
        enabled=row.enabled,
        applications=[a.application for a in row.applications],
        event_types=[filters_pb2.EventTypeRef(application=e.application, event_type=e.event_type) for e in row.event_types],
        levels=[
            filters_pb2.LevelRef(application=lv.application, event_type=lv.event_type, level=lv.level)
            for lv in row.levels
        ],
        endpoint_ids=[e.endpoint_id for e in row.endpoints],
        create_time=timestamp(row.create_time),
        update_time=timestamp(row.update_time),
    )
