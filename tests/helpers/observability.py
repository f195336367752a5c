"""The observability tests' helpers: the account, application and signing secret of their pipeline, a
valid incoming message, the services' captured log lines, and the pipeline (the whole system of
tests/helpers/stack.py) with the calls the tests make on it. The fixtures are in
tests/observability/conftest.py."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass

from hooks.registry.v1 import (
    applications_pb2,
    endpoints_pb2,
)
from services.common.settings import KafkaSettings
from services.matcher.server import MatcherServer
from tests.helpers.stack import Receiver, Stack

ACCOUNT = "obs-account"
#: A signing secret the tests look for in the logs (it must never be there).
SECRET = "whsec_T2JzZXJ2YWJpbGl0eVNlY3JldEJ5dGVzMTIzNDU2Nzg="
SHOP = applications_pb2.Application(
    name="shop",
    title="Shop",
    event_types=[
        applications_pb2.EventType(
            id="order-placed", title="Order placed", levels=[applications_pb2.Level(id="big", title="Big")]
        )
    ],
)


def incoming(account: str = ACCOUNT, **overrides) -> dict:
    """A valid message for hooks.outbox."""
    return {
        "id": f"msg-{uuid.uuid4().hex[:12]}",
        "application": "shop",
        "event_type": "order-placed",
        "level": "big",
        "message": {"text": "an order"},
        "timestamp": "2026-11-27T10:00:00Z",
        "account_id": account,
        **overrides,
    }


# -- logs -----------------------------------------------------------------------------------------


class CapturedLogs:
    """Everything the services logged since the fixture began, as configure_logging rendered it."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        """Each line as the JSON object it must be."""
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def where(self, **fields) -> list[dict]:
        return [line for line in self.lines() if all(line.get(k) == v for k, v in fields.items())]


# -- the pipeline ---------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """The running system (tests/helpers/stack.py) with the calls the observability tests make."""

    stack: Stack

    @property
    def kafka(self) -> KafkaSettings:
        return self.stack.kafka

    @property
    def receiver(self) -> Receiver:
        return self.stack.receiver

    @property
    def matcher(self) -> MatcherServer:
        return self.stack.matcher

    @property
    def sender(self) -> object:
        return self.stack.sender

    async def endpoint(
        self, name: str, path: str, account: str = ACCOUNT, secret: str = SECRET
    ) -> endpoints_pb2.Endpoint:
        """A webhook endpoint of `account` for every message of `shop`."""
        return await self.stack.subscribe(account, path, {"name": name, "secret": secret}, applications=["shop"])

    async def aproduce(self, records: list[dict | bytes], partition: int = 0) -> None:
        """Publishes the records to hooks.outbox the way an application does (a plain producer)."""
        await self.stack.produce(
            [record if isinstance(record, bytes) else json.dumps(record).encode() for record in records],
            partition,
        )
