"""The embedded broker is memory only, yet a Ctrl-C of `hooks run` (what `make run` is) loses no
accepted message: records the matcher has not finished are saved at the stop and produced again at
the next start, where they are delivered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from aiohttp import web

from hooks_client import Publisher, register
from services.common.broker import free_port
from tests.helpers.groups import SESSION_TIMEOUT_MS
from tests.helpers.http import serving
from tests.helpers.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "000001"
APP = {"application": {"name": "shop", "title": "Shop"}, "event_types": [{"id": "placed", "title": "Placed"}]}


class HooksRun:
    """`hooks run` as a child process on free ports, its output collected."""

    def __init__(self, data_dir: Path, bootstrap: str, addresses: dict[str, str]):
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HOOKS_")},
            "HOOKS_RUN_BROKER": "embedded",
            "HOOKS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "HOOKS_RUN_DATA_DIR": str(data_dir),
            "HOOKS_METRICS_PORT": "0",
            "HOOKS_MATCHER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            **{f"HOOKS_{name.upper()}_LISTEN_ADDRESS": address for name, address in addresses.items()},
        }
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--grace", "3", "--no-gateway"],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def up(self) -> None:
        await eventually(lambda: "hooks is up:" in self.output or self.process.poll() is not None, timeout=120)
        assert self.process.poll() is None, self.output

    def child(self, module: str) -> int:
        """The pid of the service process running `python -m <module>`."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if parent == self.process.pid and module.encode() in cmdline:
                return int(stat.parent.name)
        raise AssertionError(f"no child running {module}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def test_ctrl_c_with_unconsumed_messages_then_start_again_delivers_every_one(tmp_path):
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as port:
        bootstrap = f"127.0.0.1:{free_port()}"
        addresses = {name: f"127.0.0.1:{free_port()}" for name in ("registry", "sender", "matcher")}
        first = HooksRun(tmp_path / "var", bootstrap, addresses)
        try:
            await first.up()
            register(APP, target=addresses["registry"])
            from hooks.registry.v1 import endpoints_pb2, endpoints_pb2_grpc, filters_pb2, filters_pb2_grpc
            from services.common.channels import channel
            from services.common.identity import identity_metadata

            async with channel(addresses["registry"]) as ch:
                endpoint = (
                    await endpoints_pb2_grpc.EndpointServiceStub(ch).CreateEndpoint(
                        endpoints_pb2.CreateEndpointRequest(
                            endpoint=endpoints_pb2.Endpoint(
                                name="local",
                                type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                                target=f"http://127.0.0.1:{port}/hook",
                                enabled=True,
                            )  # fmt: skip
                        ),
                        metadata=identity_metadata(ACCOUNT),
                    )
                ).endpoint
                await filters_pb2_grpc.FilterServiceStub(ch).CreateFilter(
                    filters_pb2.CreateFilterRequest(
                        filter=filters_pb2.Filter(enabled=True, endpoint_ids=[endpoint.id])
                    ),
                    metadata=identity_metadata(ACCOUNT),
                )
            # The matcher is frozen: what is published now is accepted by the broker and not consumed.
            matcher = first.child("services.matcher")
            os.kill(matcher, signal.SIGSTOP)
            with Publisher(bootstrap_servers=bootstrap) as publisher:
                ids = [
                    publisher.publish(application="shop", event_type="placed", message={"n": n}, account_id=ACCOUNT).id
                    for n in range(5)
                ]
            first.process.send_signal(signal.SIGINT)  # Ctrl-C
            assert first.process.wait(60) == 0, first.output
            assert not received
            assert "saved 5 record(s) not yet done with" in first.output, first.output
        finally:
            first.stop()
            try:
                os.kill(matcher, signal.SIGCONT)
            except (ProcessLookupError, UnboundLocalError):
                pass

        second = HooksRun(tmp_path / "var", bootstrap, addresses)
        try:
            await second.up()
            assert "restored 5 record(s) saved at the last stop" in second.output, second.output
            await eventually(
                lambda: {body["id"] for body in received} >= set(ids), timeout=60, message="every message delivered"
            )
            assert sorted(body["message"]["n"] for body in received if body["id"] in ids) == [0, 1, 2, 3, 4]
            assert not (tmp_path / "var" / "broker-snapshot.jsonl").exists()
            second.process.send_signal(signal.SIGINT)
            assert second.process.wait(60) == 0
            assert "not yet done with" not in second.output  # every record was done: nothing to keep this time
        finally:
            second.stop()
