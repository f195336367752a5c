import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EndpointType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_TYPE_UNSPECIFIED: _ClassVar[EndpointType]
    ENDPOINT_TYPE_WEBHOOK: _ClassVar[EndpointType]
    ENDPOINT_TYPE_SLACK: _ClassVar[EndpointType]
    ENDPOINT_TYPE_TEAMS: _ClassVar[EndpointType]
    ENDPOINT_TYPE_GOOGLE_CHAT: _ClassVar[EndpointType]
    ENDPOINT_TYPE_EMAIL: _ClassVar[EndpointType]

class RateLimitPeriod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RATE_LIMIT_PERIOD_UNSPECIFIED: _ClassVar[RateLimitPeriod]
    RATE_LIMIT_PERIOD_SECOND: _ClassVar[RateLimitPeriod]
    RATE_LIMIT_PERIOD_MINUTE: _ClassVar[RateLimitPeriod]

class DeliveryOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_ORDER_UNSPECIFIED: _ClassVar[DeliveryOrder]
    DELIVERY_ORDER_UNORDERED: _ClassVar[DeliveryOrder]
    DELIVERY_ORDER_ORDERED: _ClassVar[DeliveryOrder]
ENDPOINT_TYPE_UNSPECIFIED: EndpointType
ENDPOINT_TYPE_WEBHOOK: EndpointType
ENDPOINT_TYPE_SLACK: EndpointType
ENDPOINT_TYPE_TEAMS: EndpointType
ENDPOINT_TYPE_GOOGLE_CHAT: EndpointType
ENDPOINT_TYPE_EMAIL: EndpointType
RATE_LIMIT_PERIOD_UNSPECIFIED: RateLimitPeriod
RATE_LIMIT_PERIOD_SECOND: RateLimitPeriod
RATE_LIMIT_PERIOD_MINUTE: RateLimitPeriod
DELIVERY_ORDER_UNSPECIFIED: DeliveryOrder
DELIVERY_ORDER_UNORDERED: DeliveryOrder
DELIVERY_ORDER_ORDERED: DeliveryOrder

class Endpoint(_message.Message):
    __slots__ = ("id", "name", "description", "type", "target", "enabled", "headers", "ca_certificate", "secret", "secret_hint", "disabled_reason", "create_time", "update_time", "rate_limit", "order", "header_hints", "previous_secret_hint", "previous_secret_expire_time", "generated_secret", "paused", "pause_time")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class HeaderHintsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    SECRET_HINT_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    HEADER_HINTS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_HINT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    GENERATED_SECRET_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    PAUSE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    type: EndpointType
    target: str
    enabled: bool
    headers: _containers.ScalarMap[str, str]
    ca_certificate: str
    secret: str
    secret_hint: str
    disabled_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    rate_limit: RateLimit
    order: DeliveryOrder
    header_hints: _containers.ScalarMap[str, str]
    previous_secret_hint: str
    previous_secret_expire_time: _timestamp_pb2.Timestamp
    generated_secret: str
    paused: bool
    pause_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., type: _Optional[_Union[EndpointType, str]] = ..., target: _Optional[str] = ..., enabled: _Optional[bool] = ..., headers: _Optional[_Mapping[str, str]] = ..., ca_certificate: _Optional[str] = ..., secret: _Optional[str] = ..., secret_hint: _Optional[str] = ..., disabled_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ..., order: _Optional[_Union[DeliveryOrder, str]] = ..., header_hints: _Optional[_Mapping[str, str]] = ..., previous_secret_hint: _Optional[str] = ..., previous_secret_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., generated_secret: _Optional[str] = ..., paused: _Optional[bool] = ..., pause_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("requests", "period")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    requests: int
    period: RateLimitPeriod
    def __init__(self, requests: _Optional[int] = ..., period: _Optional[_Union[RateLimitPeriod, str]] = ...) -> None: ...

class CreateEndpointRequest(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ...) -> None: ...

class CreateEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ...) -> None: ...

class GetEndpointRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ...) -> None: ...

class ListEndpointsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name_contains")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name_contains: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name_contains: _Optional[str] = ...) -> None: ...

class ListEndpointsResponse(_message.Message):
    __slots__ = ("endpoints", "next_page_token")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    next_page_token: str
    def __init__(self, endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateEndpointRequest(_message.Message):
    __slots__ = ("endpoint", "update_mask")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ...) -> None: ...

class DeleteEndpointRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteEndpointResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseEndpointRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class PauseEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ...) -> None: ...

class ResumeEndpointRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ResumeEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: Endpoint
    def __init__(self, endpoint: _Optional[_Union[Endpoint, _Mapping]] = ...) -> None: ...
