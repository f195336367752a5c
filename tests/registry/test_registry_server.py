"""The server as operators and other tools see it: health, reflection, the `hooks apps` and
`hooks db upgrade` commands, and `python -m services.registry`."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import grpc
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import create_engine, inspect

from cli.main import main as hooks_cli
from hooks.registry.v1 import applications_pb2 as pb
from hooks.registry.v1 import filters_pb2 as f_pb
from hooks.registry.v1 import routing_pb2 as r_pb
from services.common.channels import channel
from services.common.identity import identity_metadata
from tests.helpers.registry import expect_error

ROOT = Path(__file__).resolve().parents[2]
GRPCURL = Path(sys.executable).parent / "grpcurl"
SERVICES = [
    "hooks.registry.v1.ApplicationService",
    "hooks.registry.v1.EndpointService",
    "hooks.registry.v1.FilterService",
    "hooks.registry.v1.RoutingService",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The seed's YAML example with its placeholders filled in, and a second version of it.
SEED_EXAMPLE = (EXAMPLES / "policies.yaml").read_text()
SECOND_VERSION = (EXAMPLES / "policies-v2.yaml").read_text()


async def test_health_and_reflection(registry):
    health = health_pb2_grpc.HealthStub(registry.channel)
    for service in ["", *SERVICES]:
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    listed = await asyncio.to_thread(
        subprocess.run,
        [str(GRPCURL), "-plaintext", registry.target, "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    for service in [*SERVICES, "grpc.health.v1.Health"]:
        assert service in listed.stdout.split()
    described = await asyncio.to_thread(
        subprocess.run,
        [str(GRPCURL), "-plaintext", registry.target, "describe", "hooks.registry.v1.RoutingService"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "ResolveRoutes" in described.stdout and "WatchChanges" in described.stdout


def run_cli(args, target: str):
    return CliRunner().invoke(hooks_cli, args, env={"HOOKS_REGISTRY_TARGET": target}, catch_exceptions=False)


async def test_cli_registers_the_seed_example_then_a_changed_version(registry, tmp_path):
    first, second = tmp_path / "app.yaml", tmp_path / "app-v2.yaml"
    first.write_text(SEED_EXAMPLE)
    second.write_text(SECOND_VERSION)

    result = await asyncio.to_thread(run_cli, ["apps", "register", str(first)], registry.target)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["created"] is True
    assert [et["id"] for et in printed["application"]["event_types"]] == ["policy-triggered", "policy-changed"]
    app = (
        await registry.apps.GetApplication(pb.GetApplicationRequest(name="policies"), metadata=identity_metadata("a"))
    ).application
    assert app.title == "Policies"
    assert [(et.id, [lv.id for lv in et.levels]) for et in app.event_types] == [
        ("policy-triggered", []),
        ("policy-changed", ["low", "high"]),
    ]

    result = await asyncio.to_thread(run_cli, ["apps", "register", str(second)], registry.target)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] is False
    app = (
        await registry.apps.GetApplication(pb.GetApplicationRequest(name="policies"), metadata=identity_metadata("a"))
    ).application
    assert app.title == "Policy engine"
    assert [et.id for et in app.event_types] == ["policy-changed"]
    routes = await registry.routing.ResolveRoutes(
        r_pb.ResolveRoutesRequest(account_id="a", application="policies", event_type="policy-triggered")
    )
    assert not routes.registered

    got = await asyncio.to_thread(run_cli, ["apps", "get", "policies"], registry.target)
    assert got.exit_code == 0 and json.loads(got.output)["title"] == "Policy engine"
    listed = await asyncio.to_thread(run_cli, ["apps", "list"], registry.target)
    assert [a["name"] for a in json.loads(listed.output)["applications"]] == ["hooks", "policies"]


async def test_cli_reports_bad_documents(registry, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "application:\n  name: 'no spaces allowed'\n  title: T\nevent_types:\n  - id: a\n    title: A\n  - id: a\n    title: Again\n"
    )
    result = await asyncio.to_thread(run_cli, ["apps", "register", str(bad)], registry.target)
    assert result.exit_code == 1
    assert "nothing was registered" in result.output
    assert "  application.name: must be" in result.output and "  event_types[1].id: duplicates" in result.output
    shapeless = tmp_path / "shapeless.yaml"
    shapeless.write_text("- just\n- a list\n")
    result = await asyncio.to_thread(run_cli, ["apps", "register", str(shapeless)], registry.target)
    assert result.exit_code == 1 and "application:" in result.output
    missing = await asyncio.to_thread(run_cli, ["apps", "get", "nope"], registry.target)
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output


#: Typos of the seed example (examples/policies.yaml), each with what `hooks apps register` must say.
TYPOS = [
    (("event_types:", "event_type:"), ["event_type: unknown key; did you mean 'event_types'?"]),
    (
        ("    levels:\n      - id: low", "    level:\n      - id: low"),
        ["event_types[1].level: unknown key; did you mean 'levels'?"],
    ),
    (
        ("  title: Policies", "  tilte: Policies"),
        ["application.tilte: unknown key; did you mean 'title'?", "application.title: is required"],
    ),
]


async def test_cli_refuses_unknown_keys_naming_them_and_changes_nothing(registry, tmp_path):
    """A typo used to drop what the key held: every event type (and every filter naming one emptied
    and disabled), or the levels. Now the document is refused whole, each problem named once."""
    seed = tmp_path / "app.yaml"
    seed.write_text(SEED_EXAMPLE)
    assert (await asyncio.to_thread(run_cli, ["apps", "register", str(seed)], registry.target)).exit_code == 0
    before = (
        await registry.apps.GetApplication(pb.GetApplicationRequest(name="policies"), metadata=identity_metadata("a"))
    ).application
    endpoint = await registry.endpoint("a", "ops")
    flt = await registry.filter(
        "a",
        [endpoint.id],
        event_types=[("policies", "policy-changed")],
        levels=[("policies", "policy-changed", "high")],
    )

    for (right, wrong), lines in TYPOS:
        assert right in SEED_EXAMPLE
        typo = tmp_path / "typo.yaml"
        typo.write_text(SEED_EXAMPLE.replace(right, wrong, 1))
        result = await asyncio.to_thread(run_cli, ["apps", "register", str(typo)], registry.target)
        assert result.exit_code == 1, result.output
        assert "nothing was registered" in result.output
        problems = [line.strip() for line in result.output.splitlines()[1:]]
        assert problems == lines, result.output

    # Everything at once, each under its path in the document.
    several = tmp_path / "several.yaml"
    several.write_text(
        "application:\n  name: policies\n  tilte: P\nevent_types:\n  - id: bad id\n    title: X\n    level: []\n  - just text\n"
    )
    result = await asyncio.to_thread(run_cli, ["apps", "register", str(several)], registry.target)
    assert result.exit_code == 1
    for line in [
        "application.tilte: unknown key; did you mean 'title'?",
        "event_types[0].level: unknown key; did you mean 'levels'?",
        "event_types[1]: must be a mapping with `id`, `title` and `levels`",
        "application.title: is required",
        "event_types[0].id: must be 1 to 100 characters",
    ]:
        assert line in result.output, result.output

    after = (
        await registry.apps.GetApplication(pb.GetApplicationRequest(name="policies"), metadata=identity_metadata("a"))
    ).application
    assert after == before
    kept = (await registry.filters.GetFilter(f_pb.GetFilterRequest(id=flt.id), metadata=identity_metadata("a"))).filter
    assert kept.enabled and kept == flt


def test_db_upgrade_creates_the_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    result = CliRunner().invoke(
        hooks_cli,
        ["db", "upgrade"],
        env={"HOOKS_REGISTRY_DATABASE_URL": url, "HOOKS_SENDER_DATABASE_URL": f"sqlite:///{tmp_path / 'sender.db'}"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "registry: migrated" in result.output
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"applications", "endpoints", "filters", "changes", "alembic_version_registry"} <= tables


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_python_dash_m_serves_and_drains_on_sigterm(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "HOOKS_REGISTRY_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "HOOKS_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "HOOKS_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.registry",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with channel(f"127.0.0.1:{port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            response = await health.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=30)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
            await expect_error(
                ch.unary_unary(
                    "/hooks.registry.v1.ApplicationService/ListApplications",
                    request_serializer=pb.ListApplicationsRequest.SerializeToString,
                    response_deserializer=pb.ListApplicationsResponse.FromString,
                )(pb.ListApplicationsRequest()),
                grpc.StatusCode.UNAUTHENTICATED,
            )
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_migrations_match_the_models(database_url):
    """The tables the migrations make are the tables the models describe (no forgotten migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from services.common.db import create_engine as create_async
    from services.registry.models import Base
    from services.registry.server import VERSION_TABLE, migrate

    await migrate(database_url)
    engine = create_async(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"version_table": VERSION_TABLE}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert differences == []
