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
import pytest
from standardwebhooks import Webhook

from e2e_client import SECRET, Hooks
from e2e_support import REPO, HttpReceiver, eventually, grpc_serving
from services.common.broker import free_port
from services.common.identity import identity_metadata

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

    def __init__(self, data_dir: Path, *extra_args: str, bootstrap: str = "") -> None:
        self.addresses = {name: f"127.0.0.1:{free_port()}" for name in ("registry", "sender", "matcher", "gateway")}
        self.bootstrap = bootstrap or f"127.0.0.1:{free_port()}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HOOKS_")},
            "HOOKS_RUN_BROKER": "embedded",
            "HOOKS_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "HOOKS_RUN_DATA_DIR": str(data_dir),
            "HOOKS_METRICS_PORT": "0",
            "HOOKS_MATCHER_SESSION_TIMEOUT_MS": "6000",
            **{f"HOOKS_{name.upper()}_LISTEN_ADDRESS": address for name, address in self.addresses.items()},
        }
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
