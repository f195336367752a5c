"""`hooks deliveries list / get / retry / watch` against the whole system through its gateway, as an account
admin uses them: find what failed in the last hour, look at its attempts, retry it all at once, watch."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner
from google.protobuf import struct_pb2

from cli.main import main as hooks_cli
from hooks.matcher.v1 import matcher_pb2
from hooks.registry.v1 import applications_pb2
from hooks.sender.v1 import deliveries_pb2
from services.common.identity import identity_metadata
from tests.helpers import cli
from tests.helpers.processes import HooksCommand
from tests.helpers.stack import running_stack
from tests.helpers.waiting import eventually

SHOP = applications_pb2.Application(
    name="shop", title="Shop", event_types=[applications_pb2.EventType(id="placed", title="Placed")]
)
ACCOUNT, OTHER = "acct-admin", "acct-other"


@pytest.fixture
async def stack(sqlite_url, kafka, topics):
    async with running_stack(sqlite_url, kafka.bootstrap_servers, topics) as running:
        await running.register(SHOP)
        yield running


async def run(stack, *args: str, account: str = ACCOUNT) -> str:
    return await cli.run(stack, "deliveries", *args, account=account)


async def test_an_admin_finds_what_failed_looks_at_it_and_retries_it_all(stack):
    broken = await stack.subscribe(ACCOUNT, "/broken")
    theirs = await stack.subscribe(OTHER, "/theirs")
    stack.receiver.script["/broken"] = [400, 400]  # refused, not retried; fixed after two
    stack.receiver.script["/theirs"] = [400]
    for account, count in ((ACCOUNT, 2), (OTHER, 1)):
        for number in range(count):
            await stack.publish(
                matcher_pb2.PublishMessageRequest(
                    application="shop", event_type="placed", message=struct_pb2.Value(number_value=number)
                ),
                identity_metadata(account),
            )

    async def failed(account: str) -> list[dict]:
        output = await run(stack, "list", "--status", "failed", "--since", "1h", "--json", account=account)
        return [json.loads(line) for line in output.splitlines()]

    await eventually(lambda: len(stack.receiver.at("/broken")) == 2 and len(stack.receiver.at("/theirs")) == 1)
    mine = await failed(ACCOUNT)
    assert len(mine) == 2 and {d["endpointId"] for d in mine} == {broken.id}
    assert (await run(stack, "list", "--application", "not-shop", "--json")).strip() == ""
    shop = await run(stack, "list", "--application", "shop", "--status", "failed", "--json", account=ACCOUNT)
    assert sorted(json.loads(line)["id"] for line in shop.splitlines()) == sorted(d["id"] for d in mine)
    table = await run(stack, "list", "--status", "failed")
    assert table.splitlines()[0].split()[:3] == ["ID", "STATUS", "ENDPOINT"]
    assert all(d["id"] in table for d in mine) and "HTTP 400" in table

    shown = await run(stack, "get", mine[0]["id"])
    assert "failed" in shown.splitlines()[0] and "attempt 1" in shown and "HTTP 400" in shown

    retried = await run(stack, "retry", "--status", "failed", "--since", "1h", "--endpoint", broken.id)
    assert retried.strip() == "queued 2 failed deliveries again"
    await eventually(lambda: len(stack.receiver.at("/broken")) == 4, message="both delivered on retry")

    async def none_failed() -> bool:
        return not await failed(ACCOUNT)

    await eventually(none_failed, message="none of the account's deliveries is FAILED any more")
    assert len(await failed(OTHER)) == 1  # another account's failures are untouched
    assert (await run(stack, "retry", "--json")).strip() == json.dumps({"queued": 0, "more": False})
    assert json.loads(await run(stack, "retry", mine[0]["id"], "--json"))["id"] == mine[0]["id"]

    assert "404 Not Found" in await cli.refused(stack, "deliveries", "get", theirs.id, account=ACCOUNT)
    unnamed = CliRunner().invoke(hooks_cli, ["deliveries", "list"], env={"HOOKS_ACCOUNT": ""})
    assert unnamed.exit_code != 0 and "--account" in unnamed.output


async def publish(stack, account: str, number: int) -> None:
    await stack.publish(
        matcher_pb2.PublishMessageRequest(
            application="shop", event_type="placed", message=struct_pb2.Value(number_value=number)
        ),
        identity_metadata(account),
    )


def watched(command: HooksCommand) -> list[dict]:
    return [json.loads(line) for line in command.stdout if line.startswith("{")]


def succeeded_ids(command: HooksCommand, endpoint_id: str) -> set[str]:
    """The deliveries to `endpoint_id` the watch printed as succeeded."""
    return {
        d["id"]
        for d in watched(command)
        if d["endpointId"] == endpoint_id and d["status"] == "DELIVERY_STATUS_SUCCEEDED"
    }


async def stack_succeeded(stack, endpoint_id: str, count: int) -> bool:
    """Whether `count` deliveries to the endpoint have succeeded (asked over gRPC, not through the gateway)."""
    found = await stack.list_deliveries(
        ACCOUNT, endpoint_id=endpoint_id, status=deliveries_pb2.DELIVERY_STATUS_SUCCEEDED
    )
    return len(found) == count


async def test_an_admin_watches_deliveries_change_across_a_dropped_connection_until_ctrl_c(stack):
    mine = await stack.subscribe(ACCOUNT, "/watched")
    other = await stack.subscribe(ACCOUNT, "/unwatched")  # the same events (the account's catch-all filters)
    env = {"HOOKS_GATEWAY_URL": str(stack.http.base_url), "HOOKS_ACCOUNT": ACCOUNT}
    as_json = await HooksCommand("deliveries", "watch", "--json", env=env).start()
    as_table = await HooksCommand("deliveries", "watch", "--endpoint", mine.id, env=env).start()
    try:
        for command in (as_json, as_table):
            await eventually(lambda c=command: any(line.startswith("watching") for line in c.stderr), message="open")
        await publish(stack, ACCOUNT, 1)
        await eventually(
            lambda: (
                {(d["endpointId"], d["status"]) for d in watched(as_json)}
                >= {(mine.id, "DELIVERY_STATUS_SUCCEEDED"), (other.id, "DELIVERY_STATUS_SUCCEEDED")}
            ),
            message="both deliveries seen succeeding",
        )
        await eventually(lambda: any(mine.id in line and "succeeded" in line for line in as_table.stdout))
        assert as_table.stdout[0].split()[:3] == ["ID", "STATUS", "ENDPOINT"]
        assert not any(other.id in line for line in as_table.stdout)  # --endpoint: only that endpoint's

        # The connection drops (the gateway stops), a change happens meanwhile, the gateway comes back.
        await stack.stop_gateway()
        await eventually(lambda: any("reconnecting" in line for line in as_json.stderr), message="the drop told")
        await publish(stack, ACCOUNT, 2)
        await eventually(
            lambda: stack_succeeded(stack, mine.id, 2), message="the message of the outage delivered meanwhile"
        )
        await stack.start_gateway()
        await eventually(lambda: any(line.startswith("watching again") for line in as_json.stderr), timeout=60)
        await publish(stack, ACCOUNT, 3)
        assert any("resuming after event" in line for line in as_json.stderr), as_json.stderr  # Last-Event-ID
        await eventually(
            lambda: len(succeeded_ids(as_json, mine.id)) == 3,
            message="the change made while disconnected, and the one after the reconnection, seen",
        )
        for command in (as_json, as_table):
            assert await command.stop_with_ctrl_c() == 0, command.stderr
            assert not any("Traceback" in line for line in command.stderr), command.stderr
    finally:
        await as_json.close()
        await as_table.close()


async def test_watch_errors_are_said_plainly(stack):
    unnamed = CliRunner().invoke(hooks_cli, ["deliveries", "watch"], env={"HOOKS_ACCOUNT": ""})
    assert unnamed.exit_code != 0 and "--account" in unnamed.output
    nowhere = await asyncio.to_thread(
        CliRunner().invoke, hooks_cli, ["deliveries", "watch", "--gateway", "http://127.0.0.1:9", "--account", "a"]
    )
    assert (
        nowhere.exit_code == 1 and "cannot be reached" in nowhere.output and nowhere.exception.__class__ is SystemExit
    )


async def test_a_watch_too_old_to_resume_starts_afresh_and_says_so(sqlite_url, kafka, topics):
    """A sender keeps changes for HOOKS_SENDER_RETENTION_SECONDS; a watch away for longer cannot resume (400
    naming resume_token) and watches from now on, saying that changes in between are not shown."""
    retention = 2.0
    async with running_stack(
        sqlite_url, kafka.bootstrap_servers, topics, sender_settings={"sender_retention_seconds": retention}
    ) as stack:
        await stack.register(SHOP)
        mine = await stack.subscribe(ACCOUNT, "/watched")
        env = {"HOOKS_GATEWAY_URL": str(stack.http.base_url), "HOOKS_ACCOUNT": ACCOUNT}
        watch = await HooksCommand("deliveries", "watch", "--json", env=env).start()
        try:
            await eventually(lambda: any(line.startswith("watching") for line in watch.stderr), message="open")
            await publish(stack, ACCOUNT, 1)
            await eventually(lambda: succeeded_ids(watch, mine.id), message="the first change seen")
            seen = time.monotonic()
            await stack.stop_gateway()
            await eventually(lambda: time.monotonic() > seen + retention + 1, timeout=retention + 5)
            await stack.start_gateway()
            await eventually(lambda: any(line.startswith("watching again") for line in watch.stderr), timeout=60)
            told = [line for line in watch.stderr if "cannot resume" in line]
            assert told and "older than this sender keeps" in told[0], watch.stderr
            assert "changes meanwhile are not shown" in told[0]
            await publish(stack, ACCOUNT, 2)
            await eventually(lambda: len(succeeded_ids(watch, mine.id)) == 2, message="live changes after it")
            assert await watch.stop_with_ctrl_c() == 0, watch.stderr
        finally:
            await watch.close()
