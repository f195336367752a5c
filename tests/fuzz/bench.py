"""The fuzz suite's bench: one running stack kept across hypothesis examples, and the property
every example is checked against, observed from outside (the receiver, the dead-letter topic read
back, ListDeliveries, the matcher's in-flight count).

The property, for each example (a batch of hostile inputs with good messages around them):
- every hostile input that entered the pipeline settles within SETTLE_WITHIN seconds: delivered to
  the hostile tenant's endpoint (intact) or dead-lettered (the original record, untouched, with a
  `hooks.error.reason` from the closed set), never both, and the one its expectation calls for;
- every good message (another account, its own endpoint and filter) is delivered within
  GOOD_WITHIN seconds of being sent: those around the hostile ones, and those the good tenant
  keeps sending while the outcomes are awaited (traffic goes on; it is also what lets the matcher
  tell a poison from an outage);
- then nothing is in flight in the matcher, and ListDeliveries lists each delivery as succeeded.

Hypothesis runs synchronous functions; the bench owns an event loop (`asyncio.Runner`) in which the
stack lives and each example's coroutine runs. An example that fails may leave the stack holding
what broke it (a message retried for ever, a broken stream); the next example then gets a fresh
stack (fresh topics and tenants, the same database), so that every example, and so every shrunk
counterexample, is judged on its own. Only a WrongOutcome (an input that settled, but not as it
should have, with nothing left in flight) keeps the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from hooks.registry.v1 import applications_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.broker import ensure_topics
from tests.fuzz.cases import APPLICATIONS, Tenants, short
from tests.fuzz.oracle import CLOSED_REASONS, Expectation, same_json
from tests.helpers.stack import DeadLetter, Received, Stack, running_stack
from tests.helpers.waiting import eventually

#: Most seconds from sending a good message to its delivery (a second or two, as the issue says).
GOOD_WITHIN = 2.0
#: Most seconds for a hostile input to be delivered or dead-lettered ("never retried for ever").
SETTLE_WITHIN = 10.0
#: Most seconds for the matcher to have nothing in flight once every outcome is seen, and for
#: ListDeliveries to show a received delivery as succeeded.
IDLE_WITHIN = 5.0
#: Seconds between the good tenant's messages while an example's outcomes are awaited.
TRICKLE_EVERY = 0.25
HOSTILE_PATH = "/hostile"
GOOD_PATH = "/good"
#: What a caller must never be shown: Python's class names and tracebacks.
PYTHON_NAMES = re.compile(r"<class |Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b")


@dataclass
class Sent:
    """Something sent into the pipeline, and what must become of it.

    `key` is the (application, id) its delivery carries (None: it cannot be delivered); `origin`
    the (partition, offset) it got on the outbox (None: not on the topic); `raw` its bytes when it
    was produced as a record (a dead letter must carry them untouched)."""

    label: str
    path: str
    expectation: Expectation
    account: str
    sent_at: float
    key: tuple[str, str] | None = None
    origin: tuple[int, int] | None = None
    raw: bytes | None = None
    good: bool = False
    #: The key and headers it was produced with (a dead letter must keep them).
    record_key: bytes | None = None
    record_headers: tuple[tuple[str, bytes], ...] = ()


SendGood = Callable[["Bench"], Awaitable[Sent]]


class WrongOutcome(AssertionError):
    """An input met the wrong outcome or answer, but it settled: the stack is not left holding it,
    so the next example may run on the same stack (any other failure gets it a fresh one)."""


def _bodies_key(request: Received) -> tuple[str, str, str] | None:
    try:
        body = json.loads(request.body)
        return request.path, body["application"], body["id"]
    except (ValueError, KeyError, TypeError):
        return None


class Arrivals:
    """The receiver's POSTs indexed by (path, application, id) as their JSON bodies say."""

    def __init__(self, stack: Stack):
        self._received = stack.receiver.received
        self._seen = 0
        self._index: dict[tuple[str, str, str], list[tuple[Received, dict]]] = {}

    def of(self, path: str, key: tuple[str, str] | None) -> list[tuple[Received, dict]]:
        while self._seen < len(self._received):
            request = self._received[self._seen]
            self._seen += 1
            found = _bodies_key(request)
            if found is not None:
                self._index.setdefault(found, []).append((request, json.loads(request.body)))
        return self._index.get((path, *key), []) if key else []


def application_definition(name: str) -> applications_pb2.Application:
    return applications_pb2.Application(
        name=name,
        title=name.title(),
        event_types=[
            applications_pb2.EventType(
                id=type_id,
                title=type_id.title(),
                levels=[applications_pb2.Level(id=lv, title=lv.title()) for lv in levels],
            )
            for type_id, levels in APPLICATIONS[name].items()
        ],
    )


class Bench:
    """A stack kept up across examples, renewed after one that failed; see the module's docstring."""

    def __init__(self, database_url: str, bootstrap: str, topics: dict[str, str]):
        self._database_url = database_url
        self._bootstrap = bootstrap
        self._topics = topics
        self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self._exit: contextlib.AsyncExitStack | None = None
        self._fresh = True
        self.incarnations = 0
        self.examples = 0
        self.stack: Stack
        self.tenants: Tenants
        self.arrivals: Arrivals

    # -- lifecycle ----------------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._exit is not None:
            await self._exit.aclose()
        topics = self._topics
        if self.incarnations:
            suffix = f".{self.incarnations}"
            topics = {name: topic + suffix for name, topic in self._topics.items()}
            await asyncio.to_thread(ensure_topics, {"bootstrap.servers": self._bootstrap}, list(topics.values()), 2)
        self.incarnations += 1
        self._exit = contextlib.AsyncExitStack()
        self.stack = await self._exit.enter_async_context(running_stack(self._database_url, self._bootstrap, topics))
        for name in APPLICATIONS:
            await self.stack.register(application_definition(name))
        self.tenants = Tenants.fresh()
        await self.stack.subscribe(self.tenants.hostile, HOSTILE_PATH)
        await self.stack.subscribe(self.tenants.good, GOOD_PATH, applications=["fuzz"])
        self.arrivals = Arrivals(self.stack)
        self._fresh = False

    def run(self, check: Callable[..., Awaitable[Any]], *args) -> Any:
        """Runs `check(bench, *args)` in the bench's loop, on a fresh stack if the last one failed."""
        if self._fresh:
            self._runner.run(self._start())
        self.examples += 1
        try:
            return self._runner.run(check(self, *args))
        except WrongOutcome:
            self._fresh = self.stack.in_flight > 0
            raise
        except BaseException:
            self._fresh = True
            raise

    def close(self) -> None:
        try:
            if self._exit is not None:
                self._runner.run(self._exit.aclose())
        finally:
            self._runner.close()

    # -- what the tenants send ----------------------------------------------------------------------

    def good_record(self) -> tuple[bytes, Sent]:
        """A valid message of the good tenant, as a record of hooks.outbox."""
        document, sent = self.good_event()
        document["account_id"] = self.tenants.good
        document["timestamp"] = "2026-11-27T10:00:00Z"
        return json.dumps(document).encode(), sent

    def good_event(self) -> tuple[dict, Sent]:
        """A valid event of the good tenant {application, event_type, level, id, message} and what
        must become of it (its `sent_at` set when it is sent)."""
        token = f"good-{uuid.uuid4().hex}"
        document = {
            "id": token,
            "application": "fuzz",
            "event_type": "hit",
            "level": "high",
            "message": {"good": token},
        }
        expectation = Expectation(True, document={**document, "account_id": self.tenants.good})
        return dict(document), Sent(
            "a good message", GOOD_PATH, expectation, self.tenants.good, 0.0, ("fuzz", token), good=True
        )

    # -- the property -------------------------------------------------------------------------------

    async def verify(self, sent: list[Sent], case: Any, send_good: SendGood) -> None:
        """Checks the property (module docstring) for what one example sent; `case` names it in
        failures. While waiting for the hostile inputs to settle, the good tenant keeps sending
        (`send_good`, every TRICKLE_EVERY seconds), as traffic does: each of those must be delivered
        promptly too, and they are what tells a poison from an outage."""
        stack = self.stack
        letters: dict[tuple[int, int], list[DeadLetter]] = {}
        hostile = [item for item in sent if not item.good and (item.key or item.origin)]
        goods = [item for item in sent if item.good]

        def outcome(item: Sent) -> tuple[list, list]:
            return self.arrivals.of(item.path, item.key), letters.get(item.origin, []) if item.origin else []

        async def settled(items: list[Sent]) -> bool:
            letters.update(await stack.dead_letters.letters())
            return all(any(outcome(item)) for item in items)

        async def keep_sending() -> None:
            while True:
                goods.append(await send_good(self))
                await asyncio.sleep(TRICKLE_EVERY)  # the pace of the traffic, not a wait for a condition

        trickle = asyncio.create_task(keep_sending())
        try:
            with contextlib.suppress(AssertionError):
                await eventually(lambda: settled(hostile), timeout=SETTLE_WITHIN)
        finally:
            trickle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trickle
        with contextlib.suppress(AssertionError):
            await eventually(lambda: settled(goods), timeout=GOOD_WITHIN + 1.0)

        for item in hostile:
            delivered, dead = outcome(item)
            assert delivered or dead, (
                f"{item.label}: neither delivered nor dead-lettered within {SETTLE_WITHIN} s (retried for ever?); "
                f"it should be {_should(item.expectation)} ({'; '.join(item.expectation.problems) or 'valid'}); "
                f"in flight in the matcher: {stack.in_flight}"
            )
        for item in goods:
            delivered, dead = outcome(item)
            assert delivered, f"a good message sent with {case!r} was not delivered within {GOOD_WITHIN + 1.0} s" + (
                f" (dead-lettered as {dead[0].reason}: {dead[0].description})" if dead else ""
            )
            late = delivered[0][0].at - item.sent_at
            assert late <= GOOD_WITHIN, (
                f"a good message sent with {case!r} was delivered {late:.2f} s after it was sent (most {GOOD_WITHIN} s)"
            )
        for item in sent:
            self._check_outcome(item, *outcome(item))

        try:
            await eventually(lambda: stack.in_flight == 0, timeout=IDLE_WITHIN)
        except AssertionError:
            raise AssertionError(
                f"{stack.in_flight} message(s) still in flight in the matcher {IDLE_WITHIN} s after every outcome "
                f"of {case!r} was seen"
            ) from None
        letters.update(await stack.dead_letters.letters())
        for item in sent:  # a late second outcome: delivered and dead-lettered
            self._check_outcome(item, *outcome(item))
        for item in sent:
            if item.key and self.arrivals.of(item.path, item.key):
                await self._check_listed(item)

    def _check_outcome(self, item: Sent, delivered: list, dead: list[DeadLetter]) -> None:
        try:
            self._judge_outcome(item, delivered, dead)
        except AssertionError as error:
            raise WrongOutcome(*error.args) from None

    def _judge_outcome(self, item: Sent, delivered: list, dead: list[DeadLetter]) -> None:
        expectation = item.expectation
        why = "; ".join(expectation.problems) or "it is valid"
        if dead:
            reasons = sorted({letter.reason for letter in dead})
            assert not delivered, f"{item.label}: delivered and also dead-lettered as {reasons}"
            assert set(reasons) <= CLOSED_REASONS, (
                f"{item.label}: dead-lettered with reason {reasons}, not one of the closed set {sorted(CLOSED_REASONS)}"
            )
            assert expectation.deliver is not True, (
                f"{item.label}: dead-lettered as {reasons} ({dead[0].description!r}), but {why}: it must be delivered"
            )
            assert set(reasons) <= expectation.reasons, (
                f"{item.label}: dead-lettered as {reasons} ({dead[0].description!r}); "
                f"its problems ({why}) call for one of {sorted(expectation.reasons)}"
            )
            if item.raw is not None:
                assert all(letter.value == item.raw for letter in dead), (
                    f"{item.label}: the dead letter does not carry the original record untouched"
                )
                for letter in dead:
                    assert letter.key == item.record_key, f"{item.label}: the dead letter lost the record's key"
                    own = letter.header_list[: len(item.record_headers)]
                    assert own == tuple((name, value or b"") for name, value in item.record_headers), (
                        f"{item.label}: the dead letter does not carry the record's headers untouched"
                    )
        elif delivered:
            assert expectation.deliver is not False, (
                f"{item.label}: delivered, but {why}: it must be dead-lettered as one of {sorted(expectation.reasons)}"
            )
            document = expectation.document or {}
            for _, body in delivered:
                for name in ("application", "event_type", "level"):
                    assert body.get(name) == document.get(name), (
                        f"{item.label}: delivered with {name} {short(body.get(name))}, sent {short(document.get(name))}"
                    )
                assert body.get("account_id") == item.account, f"{item.label}: delivered with another account_id"
                assert same_json(body.get("message"), document.get("message")), (
                    f"{item.label}: delivered with message {short(body.get('message'), 200)}, "
                    f"sent {short(document.get('message'), 200)}"
                )

    async def _check_listed(self, item: Sent) -> None:
        """ListDeliveries (as the tenant, by event id) answers and shows the delivery as succeeded."""
        application, event_id = item.key  # type: ignore[misc]
        found: list[deliveries_pb2.Delivery] = []

        async def listed() -> bool:
            try:
                found[:] = await self.stack.list_deliveries(item.account, event_id=event_id)
            except grpc.aio.AioRpcError as error:
                raise AssertionError(
                    f"{item.label}: ListDeliveries(event_id={short(event_id)}) failed: {error.code().name} "
                    f"{error.details()!r}"
                ) from None
            return any(
                d.event.application == application and d.status == deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
                for d in found
            )

        try:
            await eventually(listed, timeout=IDLE_WITHIN)
        except AssertionError as error:
            if "ListDeliveries" in str(error):
                raise
            states = [(d.event.application, deliveries_pb2.DeliveryStatus.Name(d.status)) for d in found]
            raise AssertionError(
                f"{item.label}: received, but ListDeliveries does not show it as succeeded within {IDLE_WITHIN} s: {states}"
            ) from None

    async def finish(self, send_good: SendGood) -> None:
        """At the end: the pipeline is alive (a last good message is delivered promptly), nothing is in
        flight, every dead letter so far has a reason of the closed set, and ListDeliveries answers
        for both tenants, every page."""
        last = await send_good(self)
        await self.verify([last], "the last good message", send_good)
        for origin, found in (await self.stack.dead_letters.letters()).items():
            for letter in found:
                assert letter.reason in CLOSED_REASONS, f"a dead letter of {origin} has reason {letter.reason!r}"
        for tenant, account in (("hostile", self.tenants.hostile), ("good", self.tenants.good)):
            try:
                await self.stack.list_deliveries(account)
            except grpc.aio.AioRpcError as error:
                raise AssertionError(
                    f"ListDeliveries of the {tenant} tenant's deliveries (all pages) failed after "
                    f"{self.examples} examples: {error.code().name} {error.details()!r}"
                ) from None


def _should(expectation: Expectation) -> str:
    if expectation.deliver is None:
        return "delivered or dead-lettered"
    if expectation.deliver:
        return "delivered"
    return f"dead-lettered as one of {sorted(expectation.reasons)}"


def judge_answer(label: str, code: str, details: str, expectation: Expectation, accepted: str) -> None:
    """An entry's answer (a gRPC code name, an HTTP status) is the one the expectation calls for, and
    shows no Python names; raises WrongOutcome for a wrong refusal, AssertionError for a wrong
    acceptance (what was accepted is in the pipeline: the stack is renewed after it)."""
    why = "; ".join(expectation.problems) or "it is valid"
    if expectation.deliver is False and code == accepted:  # it is in the pipeline now: not a WrongOutcome
        raise AssertionError(f"{label}: accepted ({code}), but {why}: it must be one of {sorted(expectation.reasons)}")
    if expectation.deliver is True and code != accepted:
        raise WrongOutcome(f"{label}: answered {code} {details[:300]!r}, but {why}: it must be accepted")
    if expectation.deliver is False and code not in expectation.reasons:
        raise WrongOutcome(
            f"{label}: answered {code} {details[:300]!r}; {why}: it must be one of {sorted(expectation.reasons)}"
        )
    if code != accepted and code not in expectation.reasons:
        raise WrongOutcome(f"{label}: answered {code} {details[:300]!r} ({why})")
    problem = status_problem(details) if code != accepted else None
    if problem:
        raise WrongOutcome(f"{label}: {problem}")


def status_problem(text: str) -> str | None:
    """What a caller must not be shown in an error message, or None."""
    found = PYTHON_NAMES.search(text)
    return f"the error message shows {found.group(0)!r}: {text[:200]!r}" if found else None
