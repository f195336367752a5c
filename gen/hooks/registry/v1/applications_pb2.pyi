import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_ADDED: _ClassVar[ChangeKind]
    CHANGE_KIND_CHANGED: _ClassVar[ChangeKind]
    CHANGE_KIND_REMOVED: _ClassVar[ChangeKind]
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_ADDED: ChangeKind
CHANGE_KIND_CHANGED: ChangeKind
CHANGE_KIND_REMOVED: ChangeKind

class Application(_message.Message):
    __slots__ = ("name", "title", "event_types", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    title: str
    event_types: _containers.RepeatedCompositeFieldContainer[EventType]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., title: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[EventType, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EventType(_message.Message):
    __slots__ = ("id", "title", "levels", "schema", "schema_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    levels: _containers.RepeatedCompositeFieldContainer[Level]
    schema: _struct_pb2.Struct
    schema_version: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., levels: _Optional[_Iterable[_Union[Level, _Mapping]]] = ..., schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., schema_version: _Optional[str] = ...) -> None: ...

class Level(_message.Message):
    __slots__ = ("id", "title")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class RegisterApplicationRequest(_message.Message):
    __slots__ = ("application", "dry_run", "allow_removals")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    ALLOW_REMOVALS_FIELD_NUMBER: _ClassVar[int]
    application: Application
    dry_run: bool
    allow_removals: bool
    def __init__(self, application: _Optional[_Union[Application, _Mapping]] = ..., dry_run: _Optional[bool] = ..., allow_removals: _Optional[bool] = ...) -> None: ...

class RegisterApplicationResponse(_message.Message):
    __slots__ = ("application", "created", "diff")
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    application: Application
    created: bool
    diff: RegistrationDiff
    def __init__(self, application: _Optional[_Union[Application, _Mapping]] = ..., created: _Optional[bool] = ..., diff: _Optional[_Union[RegistrationDiff, _Mapping]] = ...) -> None: ...

class RegistrationDiff(_message.Message):
    __slots__ = ("unchanged", "previous_title", "event_types", "levels", "event_types_reordered", "filters_losing_references", "filters_disabled", "accounts")
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TITLE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_REORDERED_FIELD_NUMBER: _ClassVar[int]
    FILTERS_LOSING_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    FILTERS_DISABLED_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    unchanged: bool
    previous_title: str
    event_types: _containers.RepeatedCompositeFieldContainer[EventTypeChange]
    levels: _containers.RepeatedCompositeFieldContainer[LevelChange]
    event_types_reordered: bool
    filters_losing_references: int
    filters_disabled: int
    accounts: int
    def __init__(self, unchanged: _Optional[bool] = ..., previous_title: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[EventTypeChange, _Mapping]]] = ..., levels: _Optional[_Iterable[_Union[LevelChange, _Mapping]]] = ..., event_types_reordered: _Optional[bool] = ..., filters_losing_references: _Optional[int] = ..., filters_disabled: _Optional[int] = ..., accounts: _Optional[int] = ...) -> None: ...

class EventTypeChange(_message.Message):
    __slots__ = ("event_type", "kind", "fields")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    kind: ChangeKind
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_type: _Optional[str] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class LevelChange(_message.Message):
    __slots__ = ("event_type", "level", "kind", "fields")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    level: str
    kind: ChangeKind
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_type: _Optional[str] = ..., level: _Optional[str] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class GetApplicationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetApplicationResponse(_message.Message):
    __slots__ = ("application",)
    APPLICATION_FIELD_NUMBER: _ClassVar[int]
    application: Application
    def __init__(self, application: _Optional[_Union[Application, _Mapping]] = ...) -> None: ...

class ListApplicationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListApplicationsResponse(_message.Message):
    __slots__ = ("applications", "next_page_token")
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    applications: _containers.RepeatedCompositeFieldContainer[Application]
    next_page_token: str
    def __init__(self, applications: _Optional[_Iterable[_Union[Application, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
