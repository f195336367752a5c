"""hooks_client: what an application needs to publish events to hooks.

- `register(path_or_mapping)`: register (or re-register) the application's event types at start-up;
  idempotent, returns the diff, never removes what filters use unless told to.
- `Publisher` / `AsyncPublisher`: publish events to Kafka (`hooks.outbox`), checked with the very
  rules hooks applies, each with a stable id, acknowledged by the broker.
- `GrpcPublisher` / `AsyncGrpcPublisher`: the same through the matcher's PublishMessage, for
  services without Kafka access.

See the README of this package for examples.
"""

from hooks_client.envelope import Rejected, build_envelope, encode, parse_message
from hooks_client.grpc_publisher import AsyncGrpcPublisher, GrpcPublisher, PublishRefused
from hooks_client.kafka import Published, PublishError
from hooks_client.publisher import AsyncPublisher, Publisher
from hooks_client.registration import InvalidRegistration, parse_registration
from hooks_client.registry import Registration, RegistrationRefused, RemovalsRefused, register

__all__ = [
    "AsyncGrpcPublisher",
    "AsyncPublisher",
    "build_envelope",
    "encode",
    "GrpcPublisher",
    "InvalidRegistration",
    "parse_message",
    "parse_registration",
    "Published",
    "Publisher",
    "PublishError",
    "PublishRefused",
    "register",
    "Registration",
    "RegistrationRefused",
    "Rejected",
    "RemovalsRefused",
]
