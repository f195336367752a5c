"""Deliver and DeliverBatch isolate each request (issue 8, findings 2 and 3): a request whose event breaks
the agreed limits (a NaN or an infinity in its message, nesting too deep, a NUL or another control
character in a name or id, a timestamp RFC 3339 cannot write) is refused alone with INVALID_ARGUMENT
naming the field (the matcher dead-letters it), while the stream and the other requests of its batch
carry on and are delivered. A value the database itself refuses fails only its own request; an outage
fails them all, as UNAVAILABLE (the matcher sends them again)."""

from __future__ import annotations

import contextlib

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import code_pb2, error_details_pb2
from sqlalchemy import text

from hooks.sender.v1 import deliveries_pb2
from services.common.db import create_engine
from services.common.limits import MAX_DEPTH
from tests.helpers.sender import create_endpoint, make_event, new_account, request_for, wait_for_status
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED


class BatchStream:
    """One DeliverBatch stream kept open: send a batch, read its answers, send the next."""

    def __init__(self, sender):
        self.call = sender.deliveries.DeliverBatch(timeout=60)

    async def send(self, *requests: deliveries_pb2.DeliverRequest) -> dict[str, deliveries_pb2.DeliverResponse]:
        await self.call.write(deliveries_pb2.DeliverBatchRequest(requests=requests))
        answers: dict[str, deliveries_pb2.DeliverResponse] = {}
        while len(answers) < len(requests):
            message = await self.call.read()
            assert message is not grpc.aio.EOF, "the stream ended"
            answers.update((r.request_id, r) for r in message.responses)
        assert set(answers) == {r.request_id for r in requests}
        return answers

    async def close(self) -> None:
        await self.call.done_writing()
        assert await self.call.read() is grpc.aio.EOF
        assert await self.call.code() == grpc.StatusCode.OK


@contextlib.asynccontextmanager
async def batch_stream(sender):
    stream = BatchStream(sender)
    try:
        yield stream
        await stream.close()
    finally:
        stream.call.cancel()


def violations(response: deliveries_pb2.DeliverResponse) -> list[tuple[str, str]]:
    found = []
    for detail in response.status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found += [(v.field, v.description) for v in bad.field_violations]
    return found


def with_number(account: str, number: float):
    event = make_event(account, {"reading": 1})
    event.message.struct_value.fields["reading"].number_value = number
    return event


def nested(depth: int) -> struct_pb2.Value:
    value = struct_pb2.Value(string_value="bottom")
    for _ in range(depth):
        outer = struct_pb2.Value()
        outer.list_value.values.add().CopyFrom(value)
        value = outer
    return value


async def test_a_non_finite_or_too_deep_message_fails_alone_and_the_stream_goes_on(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("calm"))
    deep = make_event(account)
    deep.message.CopyFrom(nested(MAX_DEPTH + 1))
    just_deep_enough = make_event(account)
    just_deep_enough.message.CopyFrom(nested(MAX_DEPTH))
    bad = {
        "nan": request_for(with_number(account, float("nan")), endpoint.id),
        "infinity": request_for(with_number(account, float("inf")), endpoint.id),
        "minus infinity": request_for(with_number(account, float("-inf")), endpoint.id),
        "deep": request_for(deep, endpoint.id),
    }
    good = [request_for(make_event(account), endpoint.id), request_for(just_deep_enough, endpoint.id)]

    async with batch_stream(sender) as stream:
        answers = await stream.send(good[0], *bad.values(), good[1])
        # The same stream still takes requests after the bad ones.
        later = request_for(make_event(account), endpoint.id)
        [after] = (await stream.send(later)).values()

    for name, request in bad.items():
        answer = answers[request.request_id]
        assert answer.status.code == code_pb2.INVALID_ARGUMENT, name
        assert not answer.delivery_ids
        [(field, description)] = violations(answer)
        assert field == "event.message", name
        assert ("finite" if name != "deep" else f"deeper than {MAX_DEPTH}") in description, description
    for answer in [answers[r.request_id] for r in good] + [after]:
        assert answer.status.code == code_pb2.OK
        await wait_for_status(sender, account, answer.delivery_ids[0], SUCCEEDED)
    assert len(receiver.on("calm")) == 3


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("account_id", "acct\u0000", "U+0000"),
        ("account_id", "acct\u001f", "U+001F"),
        ("application", "inventory\u0000", "U+0000"),
        ("event_type", "disk\u0000full", "U+0000"),
        ("level", "critical\u0000", "U+0000"),
        ("level", "crit\u0085ical", "U+0085"),
        ("id", "evt\u0000-1", "U+0000"),
        ("id", "evt\n2", "U+000A"),
    ],
)
async def test_a_control_character_in_a_name_or_id_fails_alone(sender, receiver, field, value, expected):
    """On SQLite and PostgreSQL alike: PostgreSQL cannot store a NUL (the whole batch used to be refused
    UNAVAILABLE, for ever), and a NUL account was never settled."""
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("names"))
    poisoned = make_event(account)
    setattr(poisoned, field, value)
    before, bad, after = (
        request_for(make_event(account), endpoint.id),
        request_for(poisoned, endpoint.id),
        request_for(make_event(account), endpoint.id),
    )

    async with batch_stream(sender) as stream:
        answers = await stream.send(before, bad, after)

    refused = answers[bad.request_id]
    assert refused.status.code == code_pb2.INVALID_ARGUMENT and not refused.delivery_ids
    [(violated, description)] = violations(refused)
    assert violated == f"event.{field}" and expected in description, description
    for request in (before, after):
        assert answers[request.request_id].status.code == code_pb2.OK
        await wait_for_status(sender, account, answers[request.request_id].delivery_ids[0], SUCCEEDED)
    assert len(receiver.on("names")) == 2


async def test_a_timestamp_rfc_3339_cannot_write_fails_alone(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("time"))
    far = make_event(account)
    far.timestamp.seconds = 10**12  # the year 33658
    good = request_for(make_event(account), endpoint.id)
    bad = request_for(far, endpoint.id)

    async with batch_stream(sender) as stream:
        answers = await stream.send(bad, good)

    assert answers[bad.request_id].status.code == code_pb2.INVALID_ARGUMENT
    assert [field for field, _ in violations(answers[bad.request_id])] == ["event.timestamp"]
    await wait_for_status(sender, account, answers[good.request_id].delivery_ids[0], SUCCEEDED)


async def test_a_single_deliver_stream_goes_on_after_a_bad_request(sender, receiver):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("single"))
    requests = [
        request_for(make_event(account), endpoint.id),
        request_for(with_number(account, float("nan")), endpoint.id),
        request_for(make_event(account), endpoint.id),
    ]
    call = sender.deliveries.Deliver(iter(requests), timeout=30)
    answers = [answer async for answer in call]
    assert [a.status.code for a in answers] == [code_pb2.OK, code_pb2.INVALID_ARGUMENT, code_pb2.OK]
    await eventually(lambda: len(receiver.on("single")) == 2)


@contextlib.asynccontextmanager
async def refusing_event_ids(database_url: str, prefix: str):
    """The sender's own database refuses deliveries whose event id starts with `prefix`, as PostgreSQL
    refuses a NUL in text (SQLSTATE 22021, which asyncpg raises as a plain DBAPIError); on SQLite, as
    a constraint does. A refusal the sender's own checks know nothing of."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text(
                        "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                        " RAISE EXCEPTION 'invalid byte sequence' USING ERRCODE = 'character_not_in_repertoire';"
                        " END $$"
                    )
                )
                await connection.execute(
                    text(
                        "CREATE TRIGGER test_refused BEFORE INSERT ON deliveries FOR EACH ROW"
                        f" WHEN (NEW.event_id LIKE '{prefix}%') EXECUTE FUNCTION test_refuse()"
                    )
                )
            else:
                await connection.execute(
                    text(
                        "CREATE TRIGGER test_refused BEFORE INSERT ON deliveries"
                        f" WHEN NEW.event_id LIKE '{prefix}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                    )
                )
        yield
    finally:
        await engine.dispose()


async def test_a_value_the_database_refuses_fails_only_its_own_request(sender, receiver, database_url):
    account = new_account()
    endpoint = await create_endpoint(sender, account, receiver.url("stored"))
    async with refusing_event_ids(database_url, "refused-"):
        refused = request_for(make_event(account, id="refused-1"), endpoint.id)
        others = [request_for(make_event(account), endpoint.id) for _ in range(5)]
        async with batch_stream(sender) as stream:
            answers = await stream.send(*others[:2], refused, *others[2:])

    answer = answers[refused.request_id]
    assert answer.status.code == code_pb2.INVALID_ARGUMENT and not answer.delivery_ids
    assert answer.status.message == "the request holds a value that cannot be stored"
    for request in others:
        assert answers[request.request_id].status.code == code_pb2.OK
    await eventually(lambda: len(receiver.on("stored")) == 5)
    for request in others:
        await wait_for_status(sender, account, answers[request.request_id].delivery_ids[0], SUCCEEDED)
