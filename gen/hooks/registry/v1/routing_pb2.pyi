from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from hooks.registry.v1 import endpoints_pb2 as _endpoints_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Unregistered(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNREGISTERED_UNSPECIFIED: _ClassVar[Unregistered]
    UNREGISTERED_APPLICATION: _ClassVar[Unregistered]
    UNREGISTERED_EVENT_TYPE: _ClassVar[Unregistered]
    UNREGISTERED_LEVEL: _ClassVar[Unregistered]

class ResourceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOURCE_KIND_UNSPECIFIED: _ClassVar[ResourceKind]
    RESOURCE_KIND_APPLICATION: _ClassVar[ResourceKind]
    RESOURCE_KIND_ENDPOINT: _ClassVar[ResourceKind]
    RESOURCE_KIND_FILTER: _ClassVar[ResourceKind]
UNREGISTERED_UNSPECIFIED: Unregistered
UNREGISTERED_APPLICATION: Unregistered
UNREGISTERED_EVENT_TYPE: Unregistered
UNREGISTERED_LEVEL: Unregistered
RESOURCE_KIND_UNSPECIFIED: ResourceKind
RESOURCE_KIND_APPLICATION: ResourceKind
RESOURCE_KIND_ENDPOINT: ResourceKind
RESOURCE_KIND_FILTER: ResourceKind

class ResolveRoutesRequest(_message.Message):
    __slots__ = ("account_id", "application", "event_type", "level", "with_endpoints", "with_schema")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    WITH_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    WITH_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    application: str
    event_type: str
    level: str
    with_endpoints: bool
    with_schema: bool
    def __init__(self, account_id: _Optional[str] = ..., application: _Optional[str] = ..., event_type: _Optional[str] = ..., level: _Optional[str] = ..., with_endpoints: _Optional[bool] = ..., with_schema: _Optional[bool] = ...) -> None: ...

class ResolveRoutesResponse(_message.Message):
    __slots__ = ("routes", "registered", "reason", "unregistered", "schema_version", "schema")
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNREGISTERED_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    registered: bool
    reason: str
    unregistered: Unregistered
    schema_version: str
    schema: _struct_pb2.Struct
    def __init__(self, routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., registered: _Optional[bool] = ..., reason: _Optional[str] = ..., unregistered: _Optional[_Union[Unregistered, str]] = ..., schema_version: _Optional[str] = ..., schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("endpoint", "filter_ids", "endpoint_id")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    FILTER_IDS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint: _endpoints_pb2.Endpoint
    filter_ids: _containers.RepeatedScalarFieldContainer[str]
    endpoint_id: str
    def __init__(self, endpoint: _Optional[_Union[_endpoints_pb2.Endpoint, _Mapping]] = ..., filter_ids: _Optional[_Iterable[str]] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class WatchChangesRequest(_message.Message):
    __slots__ = ("after_sequence",)
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    def __init__(self, after_sequence: _Optional[int] = ...) -> None: ...

class WatchChangesResponse(_message.Message):
    __slots__ = ("sequence", "kind", "resource_id", "account_id", "heartbeat")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    kind: ResourceKind
    resource_id: str
    account_id: str
    heartbeat: bool
    def __init__(self, sequence: _Optional[int] = ..., kind: _Optional[_Union[ResourceKind, str]] = ..., resource_id: _Optional[str] = ..., account_id: _Optional[str] = ..., heartbeat: _Optional[bool] = ...) -> None: ...

class GetDeliveryTargetRequest(_message.Message):
    __slots__ = ("endpoint_id",)
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    def __init__(self, endpoint_id: _Optional[str] = ...) -> None: ...

class GetDeliveryTargetResponse(_message.Message):
    __slots__ = ("endpoint", "account_id", "previous_secret")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_FIELD_NUMBER: _ClassVar[int]
    endpoint: _endpoints_pb2.Endpoint
    account_id: str
    previous_secret: str
    def __init__(self, endpoint: _Optional[_Union[_endpoints_pb2.Endpoint, _Mapping]] = ..., account_id: _Optional[str] = ..., previous_secret: _Optional[str] = ...) -> None: ...

class DisableEndpointRequest(_message.Message):
    __slots__ = ("endpoint_id", "reason")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    reason: str
    def __init__(self, endpoint_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DisableEndpointResponse(_message.Message):
    __slots__ = ("endpoint", "changed")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    endpoint: _endpoints_pb2.Endpoint
    changed: bool
    def __init__(self, endpoint: _Optional[_Union[_endpoints_pb2.Endpoint, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...
