from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class DeadLetterReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEAD_LETTER_REASON_UNSPECIFIED: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_INVALID_JSON: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_NOT_AN_OBJECT: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_MISSING_FIELD: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_INVALID_TYPE: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_INVALID_VALUE: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_INVALID_TIMESTAMP: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_TOO_LARGE: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_UNKNOWN_APPLICATION: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_UNKNOWN_EVENT_TYPE: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_UNKNOWN_LEVEL: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_REJECTED_BY_REGISTRY: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_REJECTED_BY_SENDER: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_UNDELIVERABLE: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_PROCESSING_ERROR: _ClassVar[DeadLetterReason]
    DEAD_LETTER_REASON_SCHEMA_VIOLATION: _ClassVar[DeadLetterReason]
DEAD_LETTER_REASON_UNSPECIFIED: DeadLetterReason
DEAD_LETTER_REASON_INVALID_JSON: DeadLetterReason
DEAD_LETTER_REASON_NOT_AN_OBJECT: DeadLetterReason
DEAD_LETTER_REASON_MISSING_FIELD: DeadLetterReason
DEAD_LETTER_REASON_INVALID_TYPE: DeadLetterReason
DEAD_LETTER_REASON_INVALID_VALUE: DeadLetterReason
DEAD_LETTER_REASON_INVALID_TIMESTAMP: DeadLetterReason
DEAD_LETTER_REASON_TOO_LARGE: DeadLetterReason
DEAD_LETTER_REASON_UNKNOWN_APPLICATION: DeadLetterReason
DEAD_LETTER_REASON_UNKNOWN_EVENT_TYPE: DeadLetterReason
DEAD_LETTER_REASON_UNKNOWN_LEVEL: DeadLetterReason
DEAD_LETTER_REASON_REJECTED_BY_REGISTRY: DeadLetterReason
DEAD_LETTER_REASON_REJECTED_BY_SENDER: DeadLetterReason
DEAD_LETTER_REASON_UNDELIVERABLE: DeadLetterReason
DEAD_LETTER_REASON_PROCESSING_ERROR: DeadLetterReason
DEAD_LETTER_REASON_SCHEMA_VIOLATION: DeadLetterReason
