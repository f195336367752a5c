"""`hooks apps register`: --dry-run prints the diff and changes nothing; a removal of what filters use
without --yes changes nothing and says what would be lost; a typo is reported by name, with every
other problem of the document (a bad JSON Schema included), before anything is sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest_asyncio
from click.testing import CliRunner

from cli.main import main as hooks_cli
from hooks.registry.v1 import applications_pb2 as pb
from hooks.registry.v1 import applications_pb2_grpc, endpoints_pb2_grpc, filters_pb2_grpc
from hooks.registry.v1 import endpoints_pb2 as ep_pb
from hooks.registry.v1 import filters_pb2 as f_pb
from services.common.channels import channel
from services.common.identity import identity_metadata
from tests.helpers.registry import running_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ME = identity_metadata("000001")


@pytest_asyncio.fixture
async def registry(sqlite_url):
    async with running_registry(sqlite_url) as (_, port):
        async with channel(f"127.0.0.1:{port}") as ch:
            yield f"127.0.0.1:{port}", ch


def hooks(target: str, *args: str):
    return CliRunner().invoke(hooks_cli, list(args), env={"HOOKS_REGISTRY_TARGET": target}, catch_exceptions=False)


async def test_dry_run_then_removal_needs_yes(registry, tmp_path):
    target, ch = registry
    apps = applications_pb2_grpc.ApplicationServiceStub(ch)
    assert (await asyncio.to_thread(hooks, target, "apps", "register", str(EXAMPLES / "policies.yaml"))).exit_code == 0
    endpoint = (
        await endpoints_pb2_grpc.EndpointServiceStub(ch).CreateEndpoint(
            ep_pb.CreateEndpointRequest(
                endpoint=ep_pb.Endpoint(
                    name="ops", type=ep_pb.ENDPOINT_TYPE_WEBHOOK, target="https://example.com/h", enabled=True
                )
            ),
            metadata=ME,
        )
    ).endpoint
    flt = (
        await filters_pb2_grpc.FilterServiceStub(ch).CreateFilter(
            f_pb.CreateFilterRequest(
                filter=f_pb.Filter(
                    enabled=True,
                    endpoint_ids=[endpoint.id],
                    event_types=[f_pb.EventTypeRef(application="policies", event_type="policy-triggered")],
                )
            ),
            metadata=ME,
        )
    ).filter
    before = (await apps.GetApplication(pb.GetApplicationRequest(name="policies"), metadata=ME)).application

    # policies-v2 drops policy-triggered, which the filter names.
    dry = await asyncio.to_thread(hooks, target, "apps", "register", str(EXAMPLES / "policies-v2.yaml"), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stderr.splitlines() == [
        "dry run: nothing was changed",
        "  title would be changed (was 'Policies')",
        "  event type 'policy-triggered' would be removed",
        "  1 filter(s) of 1 account(s) would lose references to removed event types or levels; 1 of them would be disabled",
    ]
    assert json.loads(dry.stdout)["diff"]["filters_disabled"] == 1

    refused = await asyncio.to_thread(hooks, target, "apps", "register", str(EXAMPLES / "policies-v2.yaml"))
    assert refused.exit_code == 1
    assert (
        "FAILED_PRECONDITION" in refused.output
        and "event type 'policy-triggered' is referenced by 1 filter(s)" in refused.output
    )
    assert "--yes" in refused.output
    assert (await apps.GetApplication(pb.GetApplicationRequest(name="policies"), metadata=ME)).application == before

    done = await asyncio.to_thread(hooks, target, "apps", "register", str(EXAMPLES / "policies-v2.yaml"), "--yes")
    assert done.exit_code == 0, done.output
    assert "  event type 'policy-triggered' removed" in done.stderr
    after = (
        await filters_pb2_grpc.FilterServiceStub(ch).GetFilter(f_pb.GetFilterRequest(id=flt.id), metadata=ME)
    ).filter
    assert not after.enabled


async def test_a_typo_is_named_with_every_other_problem_and_nothing_is_sent(registry, tmp_path):
    target, ch = registry
    document = tmp_path / "app.yaml"
    document.write_text(
        "application:\n  name: shop\n  title: Shop\n"
        "event_types:\n"
        "  - id: placed\n    tilte: Placed\n    schema: {type: objekt}\n"
        "  - id: shipped\n    title: Shipped\n    schemas: {type: object}\n"
    )
    result = await asyncio.to_thread(hooks, target, "apps", "register", str(document))
    assert result.exit_code == 1
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines[0].endswith("is not a valid registration; nothing was registered:")
    assert "event_types[0].tilte: unknown key; did you mean 'title'?" in lines
    assert "event_types[1].schemas: unknown key; did you mean 'schema'?" in lines
    assert "event_types[0].title: is required" in lines
    assert any(
        line.startswith("event_types[0].schema: is not a valid JSON Schema (Draft 2020-12)") for line in lines
    ), lines
    listed = await applications_pb2_grpc.ApplicationServiceStub(ch).ListApplications(
        pb.ListApplicationsRequest(), metadata=ME
    )
    assert [a.name for a in listed.applications] == ["hooks"]
