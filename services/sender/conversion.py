"""Between the sender's rows and the protos: events as their JSON body, deliveries and attempts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from hooks.events.v1 import event_pb2
from hooks.sender.v1 import deliveries_pb2
from services.sender.models import Attempt, Delivery, DeliveryState

STATUS_TO_PROTO = {
    DeliveryState.PENDING: deliveries_pb2.DELIVERY_STATUS_PENDING,
    DeliveryState.SUCCEEDED: deliveries_pb2.DELIVERY_STATUS_SUCCEEDED,
    DeliveryState.FAILED: deliveries_pb2.DELIVERY_STATUS_FAILED,
}
STATUS_FROM_PROTO = {value: key for key, value in STATUS_TO_PROTO.items()}


def value_to_python(value: struct_pb2.Value) -> object:
    """The JSON value a protobuf `Value` holds, as `json_format.MessageToDict` gives it, except that
    it never raises: a NaN or an infinity is kept as the float it is, for the limits to refuse
    (`services.common.limits.json_value_problem`), and any depth is converted without recursion."""
    root: list[object] = [None]
    # (value, where it goes, its key there): a list with an int index or a dict with a str key.
    stack: list[tuple[struct_pb2.Value, Any, int | str]] = [(value, root, 0)]
    while stack:
        item, parent, key = stack.pop()
        kind = item.WhichOneof("kind")
        result: object
        if kind == "struct_value":
            fields: dict[str, object] = {}
            for name, child in item.struct_value.fields.items():
                fields[name] = None  # keeps the keys' order; filled in below
                stack.append((child, fields, name))
            result = fields
        elif kind == "list_value":
            children = item.list_value.values
            values: list[object] = [None] * len(children)
            stack.extend((child, values, index) for index, child in enumerate(children))
            result = values
        elif kind is None or kind == "null_value":
            result = None
        else:
            result = getattr(item, kind)
        parent[key] = result
    return root[0]


def event_to_body(event: event_pb2.Event) -> dict:
    """The event as a webhook receives it (the keys of an incoming message, plus its id). Its
    timestamp must be valid (see `timestamp_problem`); its message is converted as it is."""
    message = value_to_python(event.message) if event.HasField("message") else None
    timestamp = event.timestamp.ToJsonString() if event.HasField("timestamp") else ""
    return {
        "id": event.id,
        "application": event.application,
        "event_type": event.event_type,
        "level": event.level,
        "account_id": event.account_id,
        "timestamp": timestamp,
        "message": message,
    }


#: The range of an RFC 3339 timestamp (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z), in Unix seconds.
TIMESTAMP_SECONDS = (-62135596800, 253402300799)


def timestamp_problem(value: timestamp_pb2.Timestamp) -> str | None:
    """What makes a Timestamp impossible to write in RFC 3339, or None."""
    low, high = TIMESTAMP_SECONDS
    if not low <= value.seconds <= high:
        return "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
    if not 0 <= value.nanos < 1_000_000_000:
        return "has nanos outside 0 to 999,999,999"
    return None


def event_from_body(body: dict) -> event_pb2.Event:
    event = event_pb2.Event(
        id=body.get("id", ""),
        application=body.get("application", ""),
        event_type=body.get("event_type", ""),
        level=body.get("level", ""),
        account_id=body.get("account_id", ""),
    )
    if body.get("timestamp"):
        event.timestamp.FromJsonString(body["timestamp"])
    if body.get("message") is not None:
        json_format.ParseDict(body["message"], event.message)
    return event


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def attempt_to_proto(attempt: Attempt) -> deliveries_pb2.Attempt:
    result = deliveries_pb2.Attempt(
        number=attempt.number,
        start_time=timestamp(attempt.started_at),
        http_status=attempt.http_status,
        response_body=attempt.response_body,
        error=attempt.error,
        succeeded=attempt.succeeded,
    )
    result.latency.FromMicroseconds(round(attempt.latency_seconds * 1_000_000))
    return result


def delivery_to_proto(delivery: Delivery, attempts: list[Attempt] | None = None) -> deliveries_pb2.Delivery:
    result = deliveries_pb2.Delivery(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event=event_from_body(json.loads(delivery.event)),
        status=STATUS_TO_PROTO[DeliveryState(delivery.status)],
        attempt_count=delivery.attempt_count,
        create_time=timestamp(delivery.created_at),
        update_time=timestamp(delivery.updated_at),
        last_error=delivery.last_error,
        attempts=[attempt_to_proto(a) for a in attempts or ()],
    )
    if delivery.status == DeliveryState.PENDING and delivery.next_attempt_at is not None:
        result.next_attempt_time.CopyFrom(timestamp(delivery.next_attempt_at))
    return result
