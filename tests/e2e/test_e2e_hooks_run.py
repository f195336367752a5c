"""`hooks run` (what `make run` calls) brings the whole system up on its own broker, it delivers, and
Ctrl-C stops every process it started; a service dying takes the whole command down, loudly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook

from cli.run import SERVICES
from hooks.registry.v1 import endpoints_pb2
from services.common.broker import free_port
from services.common.identity import identity_metadata
from tests.helpers.e2e import SECRET, Hooks, HttpReceiver
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.processes import REPO, grpc_serving
from tests.helpers.waiting import eventually

APP_YAML = """\
---
application:
  name: shop
  title: Shop
event_types:
  - id: order-placed
    title: Order placed
    levels:
      - id: big
        title: Big order
"""


class HooksRun:
    """`python -m cli.main run` on free ports, its output collected line by line."""

    def __init__(self, data_dir: Path, *extra_args: str, bootstrap: str = "", metrics: bool = False) -> None:
        self.addresses = {name: f"127.0.0.1:{free_port()}" for name in ("registry", "sender", "matcher", "gateway")}
        self.bootstrap = bootstrap or f"127.0.0.1:{free_port()}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HOOKS_")},
            "HOOKS_RUN_BROKER": "embedded",
            "HOOKS_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "HOOKS_RUN_DATA_DIR": str(data_dir),
            "HOOKS_METRICS_PORT": "0",
            "HOOKS_MATCHER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            **{f"HOOKS_{name.upper()}_LISTEN_ADDRESS": address for name, address in self.addresses.items()},
        }
        if metrics:  # `hooks run`'s own metrics ports, 9101-9104 (it sets them only when this is unset)
            del self.env["HOOKS_METRICS_PORT"]
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--grace", "10", *extra_args],
            cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def up(self) -> None:
        await eventually(
            lambda: "hooks is up:" in self.output or self.process.poll() is not None, timeout=120, message="hooks is up"
        )
        assert self.process.poll() is None, self.output

    def children(self) -> dict[str, int]:
        """The service processes it started: name -> pid (from /proc)."""
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and b"-m" in cmdline:
                module = cmdline[cmdline.index(b"-m") + 1].decode()
                found[module.rsplit(".", 1)[-1]] = int(stat.parent.name)
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def hooks_run(tmp_path):
    runs: list[HooksRun] = []

    def start(*args: str, **kwargs) -> HooksRun:
        runs.append(HooksRun(tmp_path / f"var{len(runs)}", *args, **kwargs))
        return runs[-1]

    yield start
    for run in runs:
        run.stop()


def hooks_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


async def test_hooks_run_delivers_end_to_end_and_stops_cleanly_on_ctrl_c(hooks_run, tmp_path):
    system = hooks_run()
    await system.up()
    registry = system.addresses["registry"]
    for name in ("registry", "sender", "matcher"):
        assert await grpc_serving(system.addresses[name]), name
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{system.addresses['gateway']}/healthz") as response:
            assert response.status == 200
    assert f"HOOKS_REGISTRY_TARGET={registry} hooks apps register" in system.output  # the banner's next steps

    # An application, registered the way applications are told to: `hooks apps register FILE.yaml`.
    (tmp_path / "app.yaml").write_text(APP_YAML)
    registered = hooks_cli(
        {**system.env, "HOOKS_REGISTRY_TARGET": registry}, "apps", "register", str(tmp_path / "app.yaml")
    )
    assert registered.returncode == 0, registered.stderr

    receiver = await HttpReceiver().start()
    hooks = Hooks(registry, system.addresses["sender"], account="000001")
    try:
        endpoint = await hooks.endpoint("local", receiver.url("/hook"), secret=SECRET)
        await hooks.filter([endpoint.id], applications=["shop"])

        sent = hooks_cli(
            system.env, "send", "-a", "shop", "-e", "order-placed", "-l", "big", "--count", "3",
            "-b", system.bootstrap,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        sent_ids = {line.strip() for line in sent.stdout.splitlines()[1:]}
        assert len(sent_ids) == 3

        await eventually(lambda: len(receiver.requests) >= 3, timeout=60, message="3 webhooks")
        received = {Webhook(SECRET).verify(r.body, r.headers)["id"] for r in receiver.requests}
        assert received == sent_ids

        # The same deliveries, seen from outside through the gateway's HTTP API.
        url = f"http://{system.addresses['gateway']}/api/hooks/v1/endpoints/{endpoint.id}/deliveries"
        listed: list[dict] = []

        async def listed_as_succeeded() -> bool:
            async with aiohttp.ClientSession(headers=dict(identity_metadata("000001"))) as http:
                async with http.get(url) as response:
                    assert response.status == 200, await response.text()
                    listed[:] = (await response.json()).get("deliveries", [])
            return len(listed) == 3 and all(d["status"] == "DELIVERY_STATUS_SUCCEEDED" for d in listed)

        await eventually(listed_as_succeeded, message="3 succeeded deliveries listed by the gateway")
        assert {d["event"]["id"] for d in listed} == sent_ids
    finally:
        await hooks.close()
        await receiver.stop()

    children = system.children()
    assert set(children) == {"registry", "sender", "matcher", "gateway"}
    system.process.send_signal(signal.SIGINT)
    # Each service drains at once (the grace, 10 s each, is a ceiling, not a wait).
    assert system.process.wait(30) == 0, system.output
    for name, pid in children.items():
        assert not Path(f"/proc/{pid}").exists(), name
        assert f"{name:<8} | stopped (code 0)" in system.output, name
    assert "broker   | stopped" in system.output
    assert not await grpc_serving(registry)


async def test_hooks_run_stops_everything_when_a_service_dies(hooks_run):
    system = hooks_run("--no-gateway")
    await system.up()
    children = system.children()
    assert set(children) == {"registry", "sender", "matcher"}

    os.kill(children["sender"], signal.SIGKILL)

    assert system.process.wait(90) == 1, system.output
    assert "sender exited unexpectedly with code -9" in system.output
    for name in ("matcher", "registry"):
        assert f"{name:<8} | stopped" in system.output
        assert not Path(f"/proc/{children[name]}").exists()


async def test_hooks_run_says_when_the_broker_port_is_taken(hooks_run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        system = hooks_run("--no-gateway", bootstrap=f"127.0.0.1:{busy.getsockname()[1]}")
        assert system.process.wait(90) == 1, system.output
    assert "cannot start: the embedded broker did not start" in system.output
    assert not system.children()


# -- metrics ----------------------------------------------------------------------------------------

METRICS_PORTS = {service.name: service.metrics_port for service in SERVICES}


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the metrics listener does
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


async def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of http://127.0.0.1:<port>/metrics as (name, labels, value)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def total(samples, name: str, **labels: str) -> float | None:
    """The sum of the samples called `name` whose labels include `labels`; None when there is none."""
    found = [value for n, have, value in samples if n == name and labels.items() <= have.items()]
    return sum(found) if found else None


async def test_hooks_run_serves_each_services_metrics_after_messages_flowed(hooks_run, tmp_path):
    busy = [port for port in METRICS_PORTS.values() if not port_is_free(port)]
    if busy:
        pytest.skip(f"metrics ports {busy} are taken (another `hooks run`?)")
    system = hooks_run(metrics=True)
    await system.up()
    (tmp_path / "app.yaml").write_text(APP_YAML)
    registered = hooks_cli(
        {**system.env, "HOOKS_REGISTRY_TARGET": system.addresses["registry"]},
        "apps",
        "register",
        str(tmp_path / "app.yaml"),
    )
    assert registered.returncode == 0, registered.stderr

    receiver = await HttpReceiver().start()
    hooks = Hooks(system.addresses["registry"], system.addresses["sender"], account="000001")
    try:
        endpoint = await hooks.endpoint("local", receiver.url("/hook"), secret=SECRET)
        await hooks.filter([endpoint.id], applications=["shop"])
        with pytest.raises(grpc.aio.AioRpcError) as missing:  # one failed call, to be counted by its code
            await hooks.endpoints.GetEndpoint(
                endpoints_pb2.GetEndpointRequest(id="no-such-endpoint"), metadata=hooks.metadata
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        sent = hooks_cli(
            system.env, "send", "-a", "shop", "-e", "order-placed", "-l", "big", "--count", "3", "-b", system.bootstrap
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        await eventually(lambda: len(receiver.requests) >= 3, timeout=60, message="3 webhooks")
        async with aiohttp.ClientSession(headers=dict(identity_metadata("000001"))) as http:
            url = f"http://{system.addresses['gateway']}/api/hooks/v1/endpoints/{endpoint.id}/deliveries"
            async with http.get(url) as response:
                assert response.status == 200
    finally:
        await hooks.close()
        await receiver.stop()

    # The matcher: messages consumed and routed, deliveries handed over, consumer lag per partition.
    matcher = await scrape(METRICS_PORTS["matcher"])
    assert total(matcher, "hooks_matcher_messages_consumed_total", topic="hooks.outbox") >= 3
    assert total(matcher, "hooks_matcher_messages_routed_total") >= 3
    assert total(matcher, "hooks_matcher_deliveries_handed_total") >= 3
    assert total(matcher, "hooks_matcher_in_flight") is not None

    # The sender: attempts by endpoint type and outcome, their latency, the queue.
    sender: list = []

    async def sender_counted() -> bool:
        sender[:] = await scrape(METRICS_PORTS["sender"])
        succeeded = total(sender, "hooks_sender_attempts_total", endpoint_type="webhook", outcome="succeeded")
        return (succeeded or 0) >= 3

    await eventually(sender_counted, message="3 successful attempts counted")
    assert total(sender, "hooks_sender_attempt_seconds_count", endpoint_type="webhook") >= 3
    assert total(sender, "hooks_sender_attempt_seconds_bucket", endpoint_type="webhook", le="+Inf") >= 3
    assert total(sender, "hooks_sender_queue_depth") is not None
    assert total(sender, "hooks_sender_oldest_due_seconds") is not None

    # Every gRPC server: calls by method and code (streams too), unary calls timed by method.
    registry = await scrape(METRICS_PORTS["registry"])
    service = "hooks.registry.v1.EndpointService"
    handled = "hooks_grpc_server_handled_total"
    assert total(registry, handled, grpc_service=service, grpc_method="GetEndpoint", grpc_code="NOT_FOUND") == 1
    assert total(registry, handled, grpc_service=service, grpc_method="CreateEndpoint", grpc_code="OK") == 1
    assert total(registry, handled, grpc_method="ResolveRoutes", grpc_code="OK") >= 1
    assert total(sender, handled, grpc_method="ListDeliveries", grpc_code="OK") >= 1
    assert (
        total(registry, "hooks_grpc_server_handling_seconds_count", grpc_service=service, grpc_method="CreateEndpoint")
        >= 1
    )
    assert total(registry, "hooks_grpc_server_handling_seconds_count", grpc_method="ResolveRoutes") >= 1
    assert total(sender, "hooks_grpc_server_handling_seconds_count", grpc_method="ListDeliveries") >= 1

    # The gateway: requests by route template and status, and their latency.
    gateway = await scrape(METRICS_PORTS["gateway"])
    requests = [
        (labels, v) for n, labels, v in gateway if n == "hooks_gateway_requests_total" and labels.get("status") == "200"
    ]
    assert any("deliveries" in labels["route"] and labels["method"] == "GET" for labels, _ in requests), requests
    assert total(gateway, "hooks_gateway_request_duration_seconds_count", method="GET") >= 1

    system.process.send_signal(signal.SIGINT)
    assert system.process.wait(30) == 0, system.output
