"""`hooks endpoints ...` against the whole system through its gateway, as an account admin uses them: create
an endpoint of each type, read it, change one field without touching the others, send it a test message,
see its health in the list, rotate its secret, pause and resume it, delete it; and the errors a mistake
gets (which field, why), never a traceback."""

from __future__ import annotations

import json
import re

import pytest
from google.protobuf import struct_pb2
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from hooks.matcher.v1 import matcher_pb2
from hooks.registry.v1 import applications_pb2
from services.common.identity import identity_metadata
from tests.helpers import cli
from tests.helpers.certificates import Authority
from tests.helpers.stack import running_stack
from tests.helpers.waiting import eventually

SHOP = applications_pb2.Application(
    name="shop", title="Shop", event_types=[applications_pb2.EventType(id="placed", title="Placed")]
)
ACCOUNT, OTHER = "acct-endpoints", "acct-someone-else"
SECRET_LINE = re.compile(r"^signing secret: (whsec_\S+)$", re.M)


@pytest.fixture
async def stack(sqlite_url, kafka, topics):
    async with running_stack(sqlite_url, kafka.bootstrap_servers, topics) as running:
        await running.register(SHOP)
        yield running


async def run(stack, *args: str, account: str = ACCOUNT) -> str:
    return await cli.run(stack, "endpoints", *args, account=account)


async def refused(stack, *args: str, account: str = ACCOUNT) -> str:
    return await cli.refused(stack, "endpoints", *args, account=account)


async def run_json(stack, *args: str, account: str = ACCOUNT) -> dict:
    return json.loads(await run(stack, *args, "--json", account=account))


def signed_by(secret: str, received) -> bool:
    try:
        Webhook(secret).verify(received.body, received.headers)
    except WebhookVerificationError:
        return False
    return True


async def test_an_admin_creates_each_type_reads_it_changes_only_what_is_named_and_deletes_it(stack, tmp_path):
    authority = Authority.create(tmp_path / "ca")
    result = await cli.hooks(
        stack,
        "endpoints",
        "create",
        "webhook",
        "--name",
        "ops",
        "--target",
        stack.receiver.url("/ops"),
        "--description",
        "the ops team",
        "--header",
        "X-Team: ops-team-token-1234",
        "--rate-limit",
        "10/s",
        "--order",
        "ordered",
        "--ca-certificate",
        str(authority.ca_file),
        account=ACCOUNT,
    )
    assert result.exit_code == 0, result.output
    created = cli.stdout_of(result)
    endpoint_id = re.search(r"created webhook endpoint (\S+) \(ops\), enabled", created).group(1)
    secret = SECRET_LINE.search(created).group(1)  # generated, shown once
    assert "never shows it again" in result.stderr

    shown = await run(stack, "get", endpoint_id)
    assert shown.splitlines()[0] == f"endpoint {endpoint_id}: 'ops', webhook, enabled"
    for expected in (
        f"target            {stack.receiver.url('/ops')}",
        "description       the ops team",
        f"signing secret    ...{secret[-4:]}",
        "headers           X-Team (...1234)",
        "rate limit        10 per second",
        "order             ordered",
        "CA certificate    set",
        "success rate 24h  no attempt",
    ):
        assert expected in shown, (expected, shown)
    assert secret not in shown and "ops-team-token" not in shown  # write-only values stay hidden
    read = await run_json(stack, "get", endpoint_id)
    assert "generatedSecret" not in read or not read["generatedSecret"]
    assert read["stats"]["endpointId"] == endpoint_id and read["stats"]["pendingCount"] == 0
    assert read["caCertificate"] == authority.ca_file.read_text()

    # The other types, each with what it takes; --json gives the API's answer.
    slack = await run_json(
        stack, "create", "slack", "--name", "chat", "--target", stack.receiver.url("/slack"), "--disable"
    )
    assert (slack["type"], slack["enabled"]) == ("ENDPOINT_TYPE_SLACK", False)
    teams = await run_json(stack, "create", "teams", "--name", "teams", "--target", stack.receiver.url("/teams"))
    chat = await run_json(stack, "create", "google-chat", "--name", "gchat", "--target", stack.receiver.url("/g"))
    mail = await run_json(stack, "create", "email", "--name", "mail", "--target", "ops@example.com")
    assert [e["type"] for e in (teams, chat, mail)] == [
        "ENDPOINT_TYPE_TEAMS",
        "ENDPOINT_TYPE_GOOGLE_CHAT",
        "ENDPOINT_TYPE_EMAIL",
    ]
    own = await cli.hooks(
        stack,
        "endpoints",
        "create",
        "webhook",
        "--name",
        "own-secret",
        "--target",
        stack.receiver.url("/own"),
        "--secret",
        "whsec_" + "A" * 44,
        account=ACCOUNT,
    )
    assert own.exit_code == 0 and not SECRET_LINE.search(own.stdout) and "never shows" not in own.stderr

    # An update changes what its options name and nothing else (updateMask from the flags).
    updated = await run_json(stack, "update", endpoint_id, "--description", "night shift", "--disable")
    assert (updated["description"], updated["enabled"], updated["name"]) == ("night shift", False, "ops")
    assert updated["headerHints"] == {"X-Team": "1234"} and updated["rateLimit"]["requests"] == 10
    assert updated["order"] == "DELIVERY_ORDER_ORDERED"
    text = await run(stack, "update", endpoint_id, "--enable", "--header", "X-Other: v", "--remove-header", "X-Team")
    assert text.strip() == f"updated endpoint {endpoint_id} (ops): enabled, headers.X-Other, headers.X-Team"
    updated = await run_json(stack, "update", endpoint_id, "--no-rate-limit", "--order", "unordered")
    assert updated["enabled"] is True and updated["headerHints"] == {"X-Other": ""}
    assert not (updated.get("rateLimit") or {}).get("requests") and updated["description"] == "night shift"
    assert updated["caCertificate"] and updated["order"] == "DELIVERY_ORDER_UNORDERED"
    updated = await run_json(stack, "update", endpoint_id, "--no-ca-certificate", "--no-headers", "--header", "A: b")
    assert (updated["caCertificate"], updated["headerHints"]) == ("", {"A": ""})  # the whole set replaced

    table = await run(stack, "list")
    assert table.splitlines()[0].split()[:4] == ["ID", "NAME", "TYPE", "STATE"]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert rows[endpoint_id][1:4] == ["ops", "webhook", "enabled"]
    assert rows[slack["id"]][1:4] == ["chat", "slack", "disabled"]
    listed = [json.loads(line) for line in (await run(stack, "list", "--json", "--name-contains", "MAI")).splitlines()]
    assert [e["name"] for e in listed] == ["mail"] and listed[0]["stats"]["attempts24h"] == 0

    assert (await run(stack, "delete", endpoint_id)).strip() == f"deleted endpoint {endpoint_id}"
    assert "404 Not Found" in await refused(stack, "get", endpoint_id)


async def test_mistakes_are_told_by_field_and_reason_with_a_non_zero_exit(stack):
    bad_target = await refused(stack, "create", "webhook", "--name", "x", "--target", "ftp://example.com/")
    assert "400 Bad Request" in bad_target and "target: must be an http:// or https:// URL" in bad_target
    both = await refused(stack, "create", "webhook", "--name", "", "--target", "nope")
    assert "  endpoint.name:" in both or "  name:" in both
    assert "--rate-limit" in await refused(
        stack, "create", "webhook", "--name", "x", "--target", stack.receiver.url("/x"), "--rate-limit", "fast"
    )
    assert "--header" in await refused(
        stack, "create", "webhook", "--name", "x", "--target", stack.receiver.url("/x"), "--header", "no-colon"
    )
    theirs = await run_json(
        stack, "create", "webhook", "--name", "theirs", "--target", stack.receiver.url("/t"), account=OTHER
    )
    for command in (["get"], ["update", "--disable"], ["delete"], ["test"], ["pause"], ["rotate-secret"]):
        said = await refused(stack, command[0], theirs["id"], *command[1:])
        assert "404 Not Found" in said, (command, said)
    assert "say what to change" in await refused(stack, "update", theirs["id"])
    unauthenticated = await cli.hooks(stack, "endpoints", "list", "--identity", "not-an-identity", account=ACCOUNT)
    assert unauthenticated.exit_code == 1 and "401 Unauthorized" in unauthenticated.output
    assert "--account" in unauthenticated.output and "Traceback" not in unauthenticated.output


async def test_an_admin_tests_an_endpoint_sees_its_health_and_rotates_its_secret(stack):
    good = await run_json(stack, "create", "webhook", "--name", "good", "--target", stack.receiver.url("/good"))
    bad = await run_json(stack, "create", "webhook", "--name", "bad", "--target", stack.receiver.url("/bad"))
    stack.receiver.script["/bad"] = [400]

    said = await run(stack, "test", good["id"], "--message", "hello from the admin")
    assert re.match(r"^test delivery \S+: succeeded \(HTTP 200, [0-9.]+s\)$", said.strip()), said
    [arrived] = stack.receiver.at("/good")
    assert arrived.json()["message"] == "hello from the admin" and arrived.json()["event_type"] == "test"
    assert signed_by(good["generatedSecret"], arrived)  # the secret printed at creation checks signatures

    failed = await cli.hooks(stack, "endpoints", "test", bad["id"], account=ACCOUNT)
    assert failed.exit_code == 1 and "failed (HTTP 400" in cli.stdout_of(failed), failed.output
    as_json = await cli.hooks(stack, "endpoints", "test", bad["id"], "--json", account=ACCOUNT)
    assert as_json.exit_code == 0  # the receiver answers 200 now
    assert json.loads(cli.stdout_of(as_json))["status"] == "DELIVERY_STATUS_SUCCEEDED"
    stack.receiver.script["/bad"] = [400]
    assert (await cli.hooks(stack, "endpoints", "test", bad["id"], account=ACCOUNT)).exit_code == 1

    table = await run(stack, "list")
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert re.search(r"\d{2}:\d{2}:\d{2} ok HTTP 200 +100%", rows[good["id"]]), rows[good["id"]]
    assert re.search(r"\d{2}:\d{2}:\d{2} failed HTTP 400 +33%", rows[bad["id"]]), rows[bad["id"]]
    listed = {e["id"]: e for e in map(json.loads, (await run(stack, "list", "--json")).splitlines())}
    health = listed[bad["id"]]["stats"]
    assert (health["attempts24h"], health["succeededAttempts24h"], health["lastHttpStatus"]) == (3, 1, 400)
    assert health["failingSince"] and not listed[good["id"]]["stats"].get("failingSince")

    rotated = await cli.hooks(stack, "endpoints", "rotate-secret", good["id"], account=ACCOUNT)
    assert rotated.exit_code == 0, rotated.output
    new_secret = SECRET_LINE.search(cli.stdout_of(rotated)).group(1)
    assert new_secret != good["generatedSecret"] and "never shows it again" in rotated.stderr
    assert "the previous one signs too until" in cli.stdout_of(rotated)

    async def signed_with_the_new_secret() -> bool:
        await run(stack, "test", good["id"])
        return signed_by(new_secret, stack.receiver.at("/good")[-1])

    await eventually(signed_with_the_new_secret, message="deliveries signed with the rotated secret")
    assert signed_by(good["generatedSecret"], stack.receiver.at("/good")[-1])  # and the old one, for a while
    again = await run_json(stack, "rotate-secret", good["id"])
    assert again["generatedSecret"] not in (new_secret, good["generatedSecret"])


async def test_a_paused_endpoint_keeps_its_deliveries_until_it_is_resumed(stack):
    endpoint = await stack.subscribe(ACCOUNT, "/paused")
    said = await run(stack, "pause", endpoint.id)
    assert said.startswith(f"paused endpoint {endpoint.id}")
    assert (await run_json(stack, "pause", endpoint.id))["paused"] is True  # pausing again: as it is
    for number in range(2):
        await stack.publish(
            matcher_pb2.PublishMessageRequest(
                application="shop", event_type="placed", message=struct_pb2.Value(number_value=number)
            ),
            identity_metadata(ACCOUNT),
        )

    async def both_kept() -> dict | None:
        [listed] = [json.loads(line) for line in (await run(stack, "list", "--json")).splitlines()]
        return listed if listed["stats"]["pendingCount"] == 2 else None

    shown = await eventually(both_kept, message="both deliveries kept pending")
    assert shown["paused"] is True and shown["pauseTime"]
    row = (await run(stack, "list")).splitlines()[1]
    assert " paused " in row and "paused at " in row and re.search(r" 2  paused at ", row), row
    assert not stack.receiver.at("/paused")

    resumed = await run(stack, "resume", endpoint.id)
    assert resumed.startswith(f"resumed endpoint {endpoint.id}")
    await eventually(lambda: len(stack.receiver.at("/paused")) == 2, message="the kept deliveries sent on resume")
    assert [r.json()["message"] for r in stack.receiver.at("/paused")] == [0, 1]  # in order of arrival
    assert (await run_json(stack, "get", endpoint.id))["paused"] is False
