"""`hooks dlq list`, `hooks dlq replay` and `hooks messages get` against the real broker and the whole
system: dead letters listed by reason and application, replayed (original bytes, without the error
headers) after the cause is fixed and then delivered; one message's fate told by its id."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from click.testing import CliRunner

from cli.main import main as hooks_cli
from hooks.registry.v1 import applications_pb2
from hooks_client import Publisher
from services.common.broker import committed_offsets, read_topic
from tests.helpers.stack import running_stack
from tests.helpers.waiting import eventually

SHOP = applications_pb2.Application(
    name="shop",
    title="Shop",
    event_types=[
        applications_pb2.EventType(id="placed", title="Placed", levels=[applications_pb2.Level(id="big", title="Big")])
    ],
)
FIXED = applications_pb2.Application(
    name="shop",
    title="Shop",
    event_types=[*SHOP.event_types, applications_pb2.EventType(id="returned", title="Returned")],
)
SUBSCRIBED, SILENT = "acct-subscribed", "acct-silent"


def hooks(stack, *args: str):
    env = {
        "HOOKS_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        "HOOKS_KAFKA_TOPIC": stack.kafka.topic,
        "HOOKS_KAFKA_DLQ_TOPIC": stack.kafka.dlq_topic,
        "HOOKS_MATCHER_GROUP_ID": stack.matcher.matcher.settings.matcher_group_id,
        "HOOKS_SENDER_TARGET": stack.sender_target,
    }
    return CliRunner().invoke(hooks_cli, list(args), env=env, catch_exceptions=False)


def delivered(stack) -> set[str]:
    return {json.loads(r.body)["id"] for r in stack.receiver.at("/hook")}


@pytest.fixture
async def stack(sqlite_url, kafka, topics):
    async with running_stack(sqlite_url, kafka.bootstrap_servers, topics) as running:
        await running.register(SHOP)
        await running.subscribe(SUBSCRIBED, "/hook", applications=["shop"])
        yield running


async def test_dead_letters_are_listed_replayed_and_each_message_told(stack):
    def publish() -> dict[str, str]:
        with Publisher(bootstrap_servers=stack.bootstrap, topic=stack.kafka.topic) as publisher:
            ids = {
                "routed": publisher.publish(
                    application="shop", event_type="placed", level="big", message={"n": 1}, account_id=SUBSCRIBED
                ).id,
                "unroutable": publisher.publish(
                    application="shop", event_type="placed", level="big", message={"n": 2}, account_id=SILENT
                ).id,
                "unknown": publisher.publish(
                    application="shop", event_type="returned", message={"n": 3}, account_id=SUBSCRIBED
                ).id,
            }
        return ids

    ids = await asyncio.to_thread(publish)
    await stack.produce([b"{not json"])
    await eventually(lambda: ids["routed"] in delivered(stack), message="the routed message delivered")

    async def letters():
        return len(await stack.dead_letters.read()) == 2

    await eventually(letters, message="two dead letters")
    config = {"bootstrap.servers": stack.bootstrap}
    group = stack.matcher.matcher.settings.matcher_group_id

    def all_committed() -> bool:
        done = committed_offsets(config, group, stack.kafka.topic)
        return all(done.get(r.partition, -1) > r.offset for r in read_topic(config, stack.kafka.topic))

    await eventually(lambda: asyncio.to_thread(all_committed), message="the matcher committed every record")

    # hooks dlq list: everything, then by reason and application.
    listed = await asyncio.to_thread(hooks, stack, "dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(row["reason"] for row in rows) == ["invalid_json", "unknown_event_type"]
    chosen = await asyncio.to_thread(
        hooks, stack, "dlq", "list", "--reason", "unknown_event_type", "--application", "shop", "--json"
    )
    [row] = [json.loads(line) for line in chosen.stdout.splitlines()]
    assert row["id"] == ids["unknown"] and row["event_type"] == "returned" and "'returned'" in row["description"]
    assert row["origin"].startswith(f"{stack.kafka.topic}/")
    text = await asyncio.to_thread(hooks, stack, "dlq", "list", "--application", "nope")
    assert text.exit_code == 0 and text.stdout == "" and "0 dead letter(s)" in text.stderr

    # hooks messages get, for each fate.
    async def get(message_id: str) -> tuple[int, dict]:
        result = await asyncio.to_thread(hooks, stack, "messages", "get", message_id, "--json")
        return result.exit_code, json.loads(result.stdout)

    code, routed = await get(ids["routed"])
    assert code == 0 and routed["status"] == "routed" and routed["account_id"] == SUBSCRIBED
    [delivery] = routed["deliveries"]
    assert delivery["status"] == "succeeded" and routed["outbox"][0]["done_by_matcher"]
    code, unroutable = await get(ids["unroutable"])
    assert (
        code == 0
        and unroutable["status"] == "unroutable"
        and not unroutable["deliveries"]
        and not unroutable["dead_letters"]
    )
    code, dead = await get(ids["unknown"])
    assert code == 0 and dead["status"] == "dead_lettered" and dead["dead_letters"][0]["reason"] == "unknown_event_type"
    code, missing = await get(str(uuid.uuid4()))
    assert code == 1 and missing["status"] == "not_found"
    human = await asyncio.to_thread(hooks, stack, "messages", "get", ids["unknown"])
    assert "dead lettered" in human.stdout.splitlines()[0] and "(unknown_event_type)" in human.stdout

    # Fix the cause, then replay: a dry run first, then for real; the message is delivered.
    await stack.register(FIXED)
    dry = await asyncio.to_thread(hooks, stack, "dlq", "replay", "--reason", "unknown_event_type", "--dry-run")
    assert dry.exit_code == 0 and "1 dead letter(s) would be replayed" in dry.stderr
    assert ids["unknown"] not in delivered(stack)
    nothing = await asyncio.to_thread(hooks, stack, "dlq", "replay")
    assert nothing.exit_code == 2 and "--all" in nothing.output
    replayed = await asyncio.to_thread(hooks, stack, "dlq", "replay", "--reason", "unknown_event_type")
    assert replayed.exit_code == 0, replayed.output
    assert f"id={ids['unknown']}" in replayed.stdout and "1 of 1 dead letter(s) replayed" in replayed.stderr
    await eventually(lambda: ids["unknown"] in delivered(stack), message="the replayed message delivered")

    outbox = [r for r in read_topic(config, stack.kafka.topic) if r.key == ids["unknown"].encode()]
    assert len(outbox) == 2 and outbox[0].value == outbox[1].value  # the original bytes
    assert not [name for name, _ in outbox[-1].headers if name.startswith("hooks.error.")]
    code, now = await get(ids["unknown"])
    assert now["status"] == "routed" and now["dead_letters"]  # delivered after the replay; the dead letter stays listed


async def test_hooks_topics_shows_what_the_matcher_has_not_done(stack):
    await stack.produce([b"{not json"])
    await eventually(lambda: stack.dead_letters.read(), message="the dead letter")
    shown = await asyncio.to_thread(hooks, stack, "topics", "--json")
    assert shown.exit_code == 0, shown.output
    outbox, dlq = (json.loads(line) for line in shown.stdout.splitlines())
    assert outbox["topic"] == stack.kafka.topic and outbox["records"] == 1 and "lag" in outbox
    assert dlq["topic"] == stack.kafka.dlq_topic and dlq["records"] == 1
