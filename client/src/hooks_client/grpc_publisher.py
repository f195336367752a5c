"""Publishing without Kafka access: `GrpcPublisher` and `AsyncGrpcPublisher` call the matcher's
`PublishMessage`, which puts the message on `hooks.outbox` and answers once the broker acknowledged it.

The message is checked here first with the same rules (`Rejected`, nothing sent); the matcher checks
it again and also that its application, event type and level are registered: a refusal raises
`PublishRefused` with the fields it names. The account is the caller's identity (`x-rh-identity`,
built from `account_id`), as for every public call of hooks. The id is set here (a uuid4 unless
given), so publishing again after a doubtful failure (a deadline, UNAVAILABLE) never delivers twice.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from hooks.matcher.v1 import matcher_pb2, matcher_pb2_grpc
from hooks_client.envelope import parse_timestamp
from hooks_client.kafka import Published, PublishError
from hooks_client.limits import MAX_MESSAGE_BYTES
from hooks_client.publisher import checked_message
from hooks_client.registry import _violations

#: Where the matcher is when neither `target` nor HOOKS_MATCHER_TARGET says.
DEFAULT_MATCHER_TARGET = "127.0.0.1:50053"
IDENTITY_HEADER = "x-rh-identity"


class PublishRefused(PublishError):
    """The matcher refused the message (INVALID_ARGUMENT): `violations` lists (field, why), e.g. an
    application, event type or level that is not registered."""

    def __init__(self, message: str, violations: list[tuple[str, str]]):
        super().__init__(message)
        self.violations = violations


def identity_header(account_id: str) -> str:
    """The x-rh-identity value (base64 JSON) of an account."""
    document = {"identity": {"account_number": account_id, "type": "User"}}
    return base64.b64encode(json.dumps(document).encode()).decode()


def _request(
    *,
    application: str,
    event_type: str,
    level: str,
    message: Any,
    account_id: str,
    id: str | None,
    timestamp: datetime | str | None,
    max_message_bytes: int,
) -> matcher_pb2.PublishMessageRequest:
    """The checked PublishMessageRequest (raises Rejected)."""
    identity, raw = checked_message(
        application=application,
        event_type=event_type,
        level=level,
        message=message,
        account_id=account_id,
        id=id,
        timestamp=timestamp,
        max_message_bytes=max_message_bytes,
    )
    document = json.loads(raw)
    value = struct_pb2.Value()
    json_format.ParseDict(document["message"], value)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(parse_timestamp(document["timestamp"]))
    return matcher_pb2.PublishMessageRequest(
        application=application, event_type=event_type, level=level, message=value, timestamp=stamp, id=identity
    )


def _failure(error: grpc.RpcError) -> PublishError:
    code = error.code()  # type: ignore[attr-defined]
    details = error.details() or ""  # type: ignore[attr-defined]
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return PublishRefused(f"{code.name}: {details}", _violations(error))
    return PublishError(f"{code.name}: {details}")


def _published(response: matcher_pb2.PublishMessageResponse) -> Published:
    return Published(response.id, response.topic, response.partition, response.offset)


class GrpcPublisher:
    """Publishes through the matcher's PublishMessage (blocking).

    - `target`: the matcher's gRPC address; default HOOKS_MATCHER_TARGET, else 127.0.0.1:50053.
    - `credentials`: TLS channel credentials; None: plaintext.
    - `timeout`: seconds one call may take (waiting for the matcher to be reachable included).
    """

    def __init__(
        self,
        *,
        target: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        timeout: float = 30.0,
    ):
        self.target = target or os.environ.get("HOOKS_MATCHER_TARGET") or DEFAULT_MATCHER_TARGET
        self._channel = (
            grpc.secure_channel(self.target, credentials) if credentials else grpc.insecure_channel(self.target)
        )
        self._stub = matcher_pb2_grpc.MatcherServiceStub(self._channel)
        self._metadata = tuple(metadata)
        self.max_message_bytes = max_message_bytes
        self.timeout = timeout

    def publish(
        self,
        *,
        application: str,
        event_type: str,
        level: str = "",
        message: Any,
        account_id: str,
        id: str | None = None,
        timestamp: datetime | str | None = None,
    ) -> Published:
        """Checks and publishes one message; returns once it is on the topic. Raises Rejected (not
        sent), PublishRefused (the matcher refused it) or PublishError (e.g. unreachable)."""
        request = _request(
            application=application, event_type=event_type, level=level, message=message, account_id=account_id,
            id=id, timestamp=timestamp, max_message_bytes=self.max_message_bytes,
        )  # fmt: skip
        metadata = ((IDENTITY_HEADER, identity_header(account_id)), *self._metadata)
        try:
            response = self._stub.PublishMessage(request, metadata=metadata, timeout=self.timeout, wait_for_ready=True)
        except grpc.RpcError as error:
            raise _failure(error) from None
        return _published(response)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncGrpcPublisher:
    """`GrpcPublisher` for asyncio (grpc.aio); same options."""

    def __init__(
        self,
        *,
        target: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        timeout: float = 30.0,
    ):
        self.target = target or os.environ.get("HOOKS_MATCHER_TARGET") or DEFAULT_MATCHER_TARGET
        self._credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._metadata = tuple(metadata)
        self.max_message_bytes = max_message_bytes
        self.timeout = timeout

    def _stub(self) -> matcher_pb2_grpc.MatcherServiceStub:
        # Made on first use, inside the running event loop.
        if self._channel is None:
            self._channel = (
                grpc.aio.secure_channel(self.target, self._credentials)
                if self._credentials
                else grpc.aio.insecure_channel(self.target)
            )
        return matcher_pb2_grpc.MatcherServiceStub(self._channel)

    async def publish(
        self,
        *,
        application: str,
        event_type: str,
        level: str = "",
        message: Any,
        account_id: str,
        id: str | None = None,
        timestamp: datetime | str | None = None,
    ) -> Published:
        """Checks and publishes one message; returns once it is on the topic (see GrpcPublisher)."""
        request = _request(
            application=application, event_type=event_type, level=level, message=message, account_id=account_id,
            id=id, timestamp=timestamp, max_message_bytes=self.max_message_bytes,
        )  # fmt: skip
        metadata = ((IDENTITY_HEADER, identity_header(account_id)), *self._metadata)
        try:
            response = await self._stub().PublishMessage(
                request, metadata=metadata, timeout=self.timeout, wait_for_ready=True
            )
        except grpc.RpcError as error:
            raise _failure(error) from None
        return _published(response)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def __aenter__(self) -> AsyncGrpcPublisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
