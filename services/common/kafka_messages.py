"""What a consumer returns, typed as it is: confluent-kafka's Message types each accessor as optional
(unset on a Message made by hand, before it is produced), and its headers as a dict or a list."""

from __future__ import annotations

from typing import cast

from confluent_kafka import Message


def position_of(message: Message) -> tuple[str, int, int]:
    """The topic, partition and offset of a record a consumer returned (a partition EOF included):
    the consumer always sets them."""
    return cast("tuple[str, int, int]", (message.topic(), message.partition(), message.offset()))


def headers_of(message: Message) -> list[tuple[str, bytes | None]]:
    """A consumed record's headers in their order (a consumer returns a list, or None for none); a
    header's value is None when the record carries it as null."""
    return cast("list[tuple[str, bytes | None]]", message.headers() or [])
