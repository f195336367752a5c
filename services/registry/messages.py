"""Stored rows as API messages. Endpoint secrets (the signing secret, header values) leave only through
`delivery_target`; everyone else sees hints."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import timestamp_pb2
from sqlalchemy import Row

from hooks.registry.v1 import applications_pb2, endpoints_pb2, filters_pb2
from services.common.db import utcnow
from services.registry.models import Application, Endpoint, Filter
from services.registry.signing_secrets import secret_hint
from services.registry.validation import ENDPOINT_TYPE_NUMBERS


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def application_message(app: Application, *, with_schemas: bool = True) -> applications_pb2.Application:
    """The application; `with_schemas=False` leaves the schemas out (their versions stay), for lists."""
    message = applications_pb2.Application(
        name=app.name,
        title=app.title,
        create_time=timestamp(app.create_time),
        update_time=timestamp(app.update_time),
    )
    for et in app.event_types:
        event_type = message.event_types.add(
            id=et.key,
            title=et.title,
            levels=[applications_pb2.Level(id=level.key, title=level.title) for level in et.levels],
            schema_version=et.schema_version,
        )
        if with_schemas and et.schema is not None:
            event_type.schema.update(et.schema)
    return message


#: Stored rate limit periods and delivery orders as the proto's numbers.
RATE_LIMIT_PERIOD_NUMBERS = {
    "second": endpoints_pb2.RATE_LIMIT_PERIOD_SECOND,
    "minute": endpoints_pb2.RATE_LIMIT_PERIOD_MINUTE,
}
DELIVERY_ORDER_NUMBERS = {
    "unordered": endpoints_pb2.DELIVERY_ORDER_UNORDERED,
    "ordered": endpoints_pb2.DELIVERY_ORDER_ORDERED,
}


def endpoint_message(endpoint: Endpoint) -> endpoints_pb2.Endpoint:
    """The endpoint as its owner sees it: `secret_hint`, never `secret`; `header_hints`, never a
    header's value; while a rotated secret still signs, its hint and until when."""
    message = endpoints_pb2.Endpoint(
        id=endpoint.id,
        name=endpoint.name,
        description=endpoint.description,
        type=ENDPOINT_TYPE_NUMBERS[endpoint.type],
        target=endpoint.target,
        enabled=endpoint.enabled,
        header_hints={name: secret_hint(value) for name, value in (endpoint.headers or {}).items()},
        ca_certificate=endpoint.ca_certificate,
        secret_hint=secret_hint(endpoint.secret),
        disabled_reason=endpoint.disabled_reason,
        rate_limit=endpoints_pb2.RateLimit(
            requests=endpoint.rate_limit_requests,
            period=RATE_LIMIT_PERIOD_NUMBERS.get(
                endpoint.rate_limit_period, endpoints_pb2.RATE_LIMIT_PERIOD_UNSPECIFIED
            ),
        ),
        order=DELIVERY_ORDER_NUMBERS.get(endpoint.delivery_order, endpoints_pb2.DELIVERY_ORDER_UNORDERED),
        create_time=timestamp(endpoint.create_time),
        update_time=timestamp(endpoint.update_time),
    )
    if endpoint.pause_time is not None:
        message.paused = True
        message.pause_time.CopyFrom(timestamp(endpoint.pause_time))
    expires = endpoint.previous_secret_expire_time
    if expires is not None and previous_secret(endpoint):
        message.previous_secret_hint = secret_hint(endpoint.previous_secret)
        message.previous_secret_expire_time.CopyFrom(timestamp(expires))
    return message


def previous_secret(endpoint: Endpoint) -> str:
    """The secret the endpoint's current one replaced, while it still signs deliveries; "" otherwise."""
    expires = endpoint.previous_secret_expire_time
    if not endpoint.previous_secret or expires is None or expires <= utcnow():
        return ""
    return endpoint.previous_secret


#: What an endpoint's summary is made of: small fields only, nothing secret.
SUMMARY_COLUMNS = (
    Endpoint.id, Endpoint.name, Endpoint.type, Endpoint.target, Endpoint.enabled, Endpoint.description, Endpoint.pause_time,
)  # fmt: skip


def endpoint_summary(row: Endpoint | Row) -> endpoints_pb2.Endpoint:
    """An endpoint as a route of the dry run shows it (a row of SUMMARY_COLUMNS, or an Endpoint):
    id, name, type, target, enabled, description and whether it is paused; never a secret, header
    values or a CA certificate, so the answer stays small however large the endpoints are."""
    return endpoints_pb2.Endpoint(
        id=row.id,
        name=row.name,
        type=ENDPOINT_TYPE_NUMBERS[row.type],
        target=row.target,
        enabled=row.enabled,
        description=row.description,
        paused=row.pause_time is not None,
    )


def delivery_target(endpoint: Endpoint) -> endpoints_pb2.Endpoint:
    """The endpoint with its secret and header values: internal, for the sender only."""
    message = endpoint_message(endpoint)
    message.secret = endpoint.secret
    message.headers.update(endpoint.headers or {})
    return message


def filter_message(row: Filter) -> filters_pb2.Filter:
    return filters_pb2.Filter(
        id=row.id,
        name=row.name,
        enabled=row.enabled,
        applications=[a.application for a in row.applications],
        event_types=[
            filters_pb2.EventTypeRef(application=e.application, event_type=e.event_type) for e in row.event_types
        ],
        levels=[
            filters_pb2.LevelRef(application=lv.application, event_type=lv.event_type, level=lv.level)
            for lv in row.levels
        ],
        endpoint_ids=[e.endpoint_id for e in row.endpoints],
        create_time=timestamp(row.create_time),
        update_time=timestamp(row.update_time),
    )
