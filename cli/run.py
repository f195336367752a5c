"""The whole system on one machine, on embedded defaults: `hooks run`, what `make run` calls.

It starts the embedded Kafka-compatible broker (unless a Kafka is configured), then registry, sender,
matcher and gateway as child processes (`python -m services.<name>`), each only once the one before
answers its health check, so nothing starts against a dependency that is not there yet. Their logs are
interleaved on stdout, each line prefixed with the service's name. Ctrl-C or SIGTERM stops them in the
reverse order (the matcher stops consuming before the sender it hands deliveries to), then the broker,
and exits 0; a second Ctrl-C kills what is still draining. If a service dies on its own, everything is
stopped and the command exits 1, naming it.

Every address, database URL and setting is the services' own HOOKS_* variable; this command only fills
in local defaults for what is unset:

\b
  HOOKS_KAFKA_BOOTSTRAP_SERVERS   unset: the embedded broker on 127.0.0.1:9092
  HOOKS_<SVC>_LISTEN_ADDRESS      the services' defaults (50051, 50052, 50053, 8080)
  HOOKS_<SVC>_TARGET              derived from the listen addresses above
  HOOKS_<SVC>_DATABASE_URL        SQLite files under --data-dir (var/)
  HOOKS_SENDER_ALLOWED_NETWORKS   127.0.0.0/8,::1/128 (local receivers allowed)
  HOOKS_METRICS_PORT              9101-9104, one per service (set it to 0 for none)
  HOOKS_KAFKA_CREATE_TOPICS       true
  HOOKS_GATEWAY_DEVELOPMENT       true (the console at /console/ offers a sign-in that picks an account)
  HOOKS_LOG_FORMAT                console
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from services.common.identity import encode_identity
from services.common.processes import die_with_parent
from services.common.settings import MATCHER_ADDRESS, REGISTRY_ADDRESS, SENDER_ADDRESS

if TYPE_CHECKING:  # imported when the broker starts: `hooks` without an embedded broker never needs them
    from services.common.broker import BrokerSnapshot, EmbeddedBroker

#: Seconds a service may take to answer its health check after it was started (migrations included).
START_TIMEOUT = 120.0
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
#: Under --data-dir: the embedded broker's records not yet done with, saved at a stop, restored at the start.
SNAPSHOT_FILE = "broker-snapshot.jsonl"
DEMO_ACCOUNT = "000001"

COLOURS = {"broker": "white", "registry": "cyan", "sender": "magenta", "matcher": "yellow", "gateway": "green"}


@dataclass(frozen=True)
class Service:
    """One child process: what it is called, how it is started, where it listens."""

    name: str
    module: str
    default_address: str
    metrics_port: int
    #: "grpc" (grpc.health.v1 Check) or "http" (GET /healthz)
    health: str = "grpc"

    @property
    def prefix(self) -> str:
        return f"HOOKS_{self.name.upper()}"


SERVICES = [
    Service("registry", "services.registry", REGISTRY_ADDRESS, 9101),
    Service("sender", "services.sender", SENDER_ADDRESS, 9102),
    Service("matcher", "services.matcher", MATCHER_ADDRESS, 9103),
    Service("gateway", "gateway", "127.0.0.1:8080", 9104, health="http"),
]


def dial_address(listen_address: str) -> str:
    """Where a client on this machine reaches a server listening on `listen_address`."""
    host, _, port = listen_address.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::", "*"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def child_environment(base: dict[str, str], services: list[Service], bootstrap: str, data_dir: Path) -> dict[str, str]:
    """The HOOKS_* environment every child shares: what is set stays, local defaults fill the rest."""
    env = dict(base)
    env["HOOKS_KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    env.setdefault("HOOKS_KAFKA_CREATE_TOPICS", "true")
    env.setdefault("HOOKS_REGISTRY_DATABASE_URL", f"sqlite:///{data_dir / 'registry.db'}")
    env.setdefault("HOOKS_SENDER_DATABASE_URL", f"sqlite:///{data_dir / 'sender.db'}")
    env.setdefault("HOOKS_SENDER_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
    env.setdefault("HOOKS_LOG_FORMAT", "console")
    env.setdefault("HOOKS_GATEWAY_DEVELOPMENT", "true")
    env["PYTHONUNBUFFERED"] = "1"
    for service in services:
        address = env.setdefault(f"{service.prefix}_LISTEN_ADDRESS", service.default_address)
        if service.health == "grpc":
            env.setdefault(f"{service.prefix}_TARGET", dial_address(address))
    return env


class Console:
    """Prefixed output lines: `registry | ...`, coloured on a terminal."""

    def __init__(self) -> None:
        self.colour = sys.stdout.isatty()
        self.width = max(len(name) for name in [*COLOURS, "hooks"])

    def line(self, source: str, text: str) -> None:
        label = f"{source:<{self.width}} |"
        if self.colour:
            label = click.style(label, fg=COLOURS.get(source, "blue"), bold=source == "hooks")
        click.echo(f"{label} {text}")

    def say(self, text: str) -> None:
        for part in text.splitlines() or [""]:
            self.line("hooks", part)


@dataclass
class Child:
    service: Service
    process: asyncio.subprocess.Process
    pump: asyncio.Task
    address: str
    exited: asyncio.Task = field(init=False)

    def __post_init__(self) -> None:
        self.exited = asyncio.ensure_future(self.process.wait())


class StartupFailed(Exception):
    pass


class Supervisor:
    """Starts the broker and the services, watches them, stops them all."""

    def __init__(
        self,
        console: Console,
        broker_mode: str,
        data_dir: Path,
        grace: float,
        environ: dict[str, str],
    ) -> None:
        self.console = console
        self.broker_mode = broker_mode
        self.data_dir = data_dir
        self.grace = grace
        self.environ = environ
        self.broker: EmbeddedBroker | None = None
        #: The embedded broker's records kept across a stop.
        self.snapshot: BrokerSnapshot | None = None
        self.children: list[Child] = []
        self.stop_requested = asyncio.Event()
        #: Set by a second Ctrl-C while stopping: kill what is still draining.
        self.hurry = asyncio.Event()
        self.signal_name = ""

    # -- the broker -----------------------------------------------------------------------------

    def embedded(self) -> bool:
        if self.broker_mode == "auto":
            return not self.environ.get("HOOKS_KAFKA_BOOTSTRAP_SERVERS")
        return self.broker_mode == "embedded"

    async def start_broker(self) -> str:
        from services.common.broker import BrokerSnapshot, EmbeddedBroker, ensure_topics
        from services.common.settings import KafkaSettings

        settings = KafkaSettings()
        bootstrap = self.environ.get("HOOKS_KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP
        if not self.embedded():
            self.console.say(f"using the Kafka at {bootstrap}")
            return bootstrap
        host, _, port = bootstrap.partition(",")[0].rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit():
            raise StartupFailed(f"the embedded broker listens on 127.0.0.1 only, not {bootstrap!r}")
        log_path = self.data_dir / "broker.log"
        self.console.line("broker", f"starting the embedded Tansu broker on 127.0.0.1:{port} (log: {log_path})")
        broker = EmbeddedBroker(port=int(port))
        self.broker = broker
        try:
            await asyncio.to_thread(broker.start, 30.0, str(log_path))
        except (RuntimeError, TimeoutError) as exc:
            raise StartupFailed(f"the embedded broker did not start ({exc}); is port {port} taken?") from exc
        config = {"bootstrap.servers": broker.bootstrap_servers}
        topics = [settings.topic, settings.dlq_topic]
        await asyncio.to_thread(ensure_topics, config, topics, settings.topic_partitions)
        # Memory only: what was not done with at the last stop was saved, and goes back first.
        group = self.environ.get("HOOKS_MATCHER_GROUP_ID") or "hooks-matcher"
        snapshot = BrokerSnapshot(
            self.data_dir / SNAPSHOT_FILE, config, {settings.topic: group, settings.dlq_topic: None}
        )
        restored = await asyncio.to_thread(snapshot.restore)
        self.snapshot = snapshot
        if restored:
            self.console.line("broker", f"restored {restored} record(s) saved at the last stop ({snapshot.path})")
        self.console.line("broker", f"ready; topics {', '.join(topics)}")
        return broker.bootstrap_servers

    # -- the services ---------------------------------------------------------------------------

    async def start_service(self, service: Service, env: dict[str, str]) -> Child:
        env = dict(env)
        if "HOOKS_METRICS_PORT" not in self.environ:
            env["HOOKS_METRICS_PORT"] = str(service.metrics_port)
        address = dial_address(env[f"{service.prefix}_LISTEN_ADDRESS"])
        self.console.line(service.name, f"starting python -m {service.module} on {address}")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            service.module,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group: a terminal's Ctrl-C reaches only us, and we stop them in order.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        child = Child(service, process, asyncio.create_task(self._pump(service.name, process)), address)
        self.children.append(child)
        await self._wait_healthy(child)
        self.console.line(service.name, "healthy")
        return child

    async def _pump(self, name: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # a line longer than the stream's limit: pass on what is there
                line = await process.stdout.read(64 * 1024)
            if not line:
                return
            self.console.line(name, line.decode(errors="replace").rstrip())

    async def _wait_healthy(self, child: Child) -> None:
        check = self._grpc_serving if child.service.health == "grpc" else self._http_healthy
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if child.exited.done():
                raise StartupFailed(f"{child.service.name} exited with code {child.process.returncode} while starting")
            if self.stop_requested.is_set():
                raise StartupFailed("stopped while starting")
            if await check(child.address):
                return
            await asyncio.sleep(0.2)
        raise StartupFailed(f"{child.service.name} was not healthy within {START_TIMEOUT:.0f}s")

    @staticmethod
    async def _grpc_serving(address: str) -> bool:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from services.common.channels import channel as make_channel
        from services.common.settings import CommonSettings

        async with make_channel(address, tls=CommonSettings().tls) as channel:
            try:
                response = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1.0
                )
            except grpc.aio.AioRpcError:
                return False
        return response.status == health_pb2.HealthCheckResponse.SERVING

    @staticmethod
    async def _http_healthy(address: str) -> bool:
        import aiohttp

        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
                async with session.get(f"http://{address}/healthz") as response:
                    return response.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    # -- running and stopping -------------------------------------------------------------------

    def request_stop(self, signum: int) -> None:
        if self.stop_requested.is_set():
            if not self.hurry.is_set():
                self.console.say("stopping now: killing what is left")
            self.hurry.set()
            return
        self.signal_name = signal.Signals(signum).name
        self.stop_requested.set()

    async def run(self, services: list[Service]) -> int:
        """0 after a requested stop; 1 when something failed to start or died."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_stop, signum)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            return await self._run(services)
        except BaseException:
            await self.stop_all()
            raise

    async def _run(self, services: list[Service]) -> int:
        try:
            bootstrap = await self.start_broker()
            env = child_environment(self.environ, services, bootstrap, self.data_dir)
            for service in services:
                if self.stop_requested.is_set():
                    raise StartupFailed("stopped while starting")
                await self.start_service(service, env)
        except StartupFailed as exc:
            if self.stop_requested.is_set() and not self._any_died():
                return await self._stop_all_saying(f"{self.signal_name}: stopping", 0)
            return await self._stop_all_saying(f"cannot start: {exc}", 1)
        self.console.say(banner(env, self.children, bootstrap, self.embedded(), self.data_dir))

        stop = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait({stop, *(child.exited for child in self.children)}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        dead = [child for child in self.children if child.exited.done()]
        if dead and not self.stop_requested.is_set():
            return await self._stop_all_saying(
                "\n".join(
                    f"{child.service.name} exited unexpectedly with code {child.process.returncode}; stopping everything"
                    for child in dead
                ),
                1,
            )
        return await self._stop_all_saying(f"{self.signal_name}: stopping", 0)

    async def _stop_all_saying(self, message: str, exit_code: int) -> int:
        """Says `message` (one line a line), stops everything, and returns `exit_code` for `hooks run`."""
        self.console.say(message)
        await self.stop_all()
        return exit_code

    def _any_died(self) -> bool:
        return any(child.exited.done() and child.process.returncode not in (0, None) for child in self.children)

    async def stop_all(self) -> None:
        """SIGTERM to each running child, newest first (each drains); SIGKILL after the grace (or at a
        second Ctrl-C); then the broker."""
        hurry = asyncio.ensure_future(self.hurry.wait())
        for child in reversed(self.children):
            if not child.exited.done():
                with contextlib.suppress(ProcessLookupError):
                    child.process.terminate()
                await asyncio.wait({child.exited, hurry}, timeout=self.grace, return_when=asyncio.FIRST_COMPLETED)
                if not child.exited.done():
                    reason = "" if self.hurry.is_set() else f"still running after {self.grace:.0f}s: "
                    self.console.line(child.service.name, f"{reason}killing it")
                    with contextlib.suppress(ProcessLookupError):
                        child.process.kill()
                    # Bounded: a grandchild holding its output pipe open must not hang us.
                    await asyncio.wait({child.exited}, timeout=5)
            self.console.line(child.service.name, f"stopped (code {child.process.returncode})")
        hurry.cancel()
        for child in self.children:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(child.pump, 5)
        if self.broker is not None:
            broker, self.broker = self.broker, None
            if self.snapshot is not None:  # after the matcher stopped: its committed offsets are final
                await self._save_snapshot(self.snapshot)
            await asyncio.to_thread(broker.stop)
            self.console.line("broker", "stopped")

    async def _save_snapshot(self, snapshot: BrokerSnapshot) -> None:
        try:
            saved = await asyncio.to_thread(snapshot.save)
        except Exception as exc:  # noqa: BLE001 - the broker may be gone; say so, stop anyway
            self.console.line("broker", f"could not save its unconsumed records: {exc}")
            return
        if saved:
            self.console.line(
                "broker", f"saved {saved} record(s) not yet done with to {snapshot.path} for the next start"
            )


def banner(env: dict[str, str], children: list[Child], bootstrap: str, embedded: bool, data_dir: Path) -> str:
    """What is running where, and what to try next."""
    registry = dial_address(env["HOOKS_REGISTRY_LISTEN_ADDRESS"])
    lines = ["", "hooks is up:"]
    for child in children:
        kind = "http" if child.service.health == "http" else "grpc"
        lines.append(f"  {child.service.name:<9} {kind}://{child.address}")
    if any(child.service.name == "gateway" for child in children):
        gateway = dial_address(env["HOOKS_GATEWAY_LISTEN_ADDRESS"])
        lines.append(f"  {'openapi':<9} http://{gateway}/api/hooks/v1/openapi.json")
        lines.append(f"  {'api docs':<9} http://{gateway}/api/hooks/v1/docs")
        lines.append(
            f"  {'console':<9} http://{gateway}/console/ (development sign-in: pick an account, e.g. {DEMO_ACCOUNT})"
        )
    lines.append(f"  {'kafka':<9} {bootstrap}{' (embedded, memory only)' if embedded else ''}")
    lines.append(f"  {'data':<9} {data_dir}")
    identity = encode_identity(DEMO_ACCOUNT)
    # The commands to try, with whatever differs from the defaults they assume.
    registry_env = "" if registry == REGISTRY_ADDRESS else f"HOOKS_REGISTRY_TARGET={registry} "
    kafka_option = "" if bootstrap == DEFAULT_BOOTSTRAP else f" --bootstrap-servers {bootstrap}"
    lines += [
        "",
        "Next, in another terminal:",
        f"  {registry_env}hooks apps register app.yaml   # an application, in the seed's registration YAML",
        f"  grpcurl -plaintext -H 'x-rh-identity: {identity}' \\",
        '    -d \'{"endpoint": {"name": "mine", "type": "ENDPOINT_TYPE_WEBHOOK", "target": '
        '"http://127.0.0.1:9000/hook", "enabled": true}}\' \\',
        f"    {registry} hooks.registry.v1.EndpointService/CreateEndpoint",
        f"  grpcurl -plaintext -H 'x-rh-identity: {identity}' \\",
        '    -d \'{"filter": {"enabled": true, "endpoint_ids": ["<endpoint id>"]}}\' \\',
        f"    {registry} hooks.registry.v1.FilterService/CreateFilter",
        f"  hooks send --application <name> --event-type <id> --account {DEMO_ACCOUNT} --count 10{kafka_option}",
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


@click.command("run", help=__doc__)
@click.option(
    "--broker",
    "broker_mode",
    type=click.Choice(["auto", "embedded", "external"]),
    default="auto",
    show_default=True,
    envvar="HOOKS_RUN_BROKER",
    help="auto: the embedded broker unless HOOKS_KAFKA_BOOTSTRAP_SERVERS is set. embedded: start it on "
    "HOOKS_KAFKA_BOOTSTRAP_SERVERS's port (default 9092). external: use HOOKS_KAFKA_BOOTSTRAP_SERVERS as it is. "
    "[env: HOOKS_RUN_BROKER]",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="var",
    show_default=True,
    envvar="HOOKS_RUN_DATA_DIR",
    help="Where the default SQLite databases and the broker's log go. [env: HOOKS_RUN_DATA_DIR]",
)
@click.option(
    "--grace",
    type=float,
    default=15.0,
    show_default=True,
    help="Seconds each service gets to drain after SIGTERM before it is killed.",
)
@click.option("--no-gateway", is_flag=True, help="Do not start the HTTP gateway.")
def run(broker_mode: str, data_dir: Path, grace: float, no_gateway: bool) -> None:
    console = Console()
    services = [s for s in SERVICES if not (no_gateway and s.name == "gateway")]
    supervisor = Supervisor(console, broker_mode, data_dir.resolve(), grace, dict(os.environ))
    sys.exit(asyncio.run(supervisor.run(services)))
