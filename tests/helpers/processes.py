"""Services run as real processes (`python -m services.<name>`), for tests and benchmarks that must
kill one (SIGKILL, like a crash) or measure its CPU."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


async def grpc_serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


class ServiceProcess:
    """`python -m services.<name>` with the given HOOKS_* environment; its output goes to a log file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOOKS_LOG_FORMAT": "json", "HOOKS_METRICS_PORT": "0", **env}
        self.address = self.env[f"HOOKS_{name.upper()}_LISTEN_ADDRESS"]
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    async def start(self, timeout: float = 60.0) -> ServiceProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not await grpc_serving(self.address):
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not serving within {timeout}s: {self.log_tail()}")
            await asyncio.sleep(0.1)
        return self

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye, exactly like a crash."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class HooksCommand:
    """`python -m cli.main ARGS` (the `hooks` command) as a real process, for what only a process shows: a
    command that runs until Ctrl-C (`stop_with_ctrl_c`), what it prints as it goes. Its stdout and stderr
    are read line by line into `stdout` and `stderr` while it runs."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.args = args
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task] = []

    async def start(self) -> HooksCommand:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            *self.args,
            env=self.env,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.process.stdout, self.stdout)),
            asyncio.create_task(self._read(self.process.stderr, self.stderr)),
        ]
        return self

    @staticmethod
    async def _read(stream: asyncio.StreamReader, lines: list[str]) -> None:
        async for line in stream:
            lines.append(line.decode(errors="replace").rstrip("\n"))

    async def stop_with_ctrl_c(self, timeout: float = 30.0) -> int:
        """SIGINT, as Ctrl-C sends it; the exit status once the process has ended and its output is read."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return await self.wait(timeout)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        status = await asyncio.wait_for(self.process.wait(), timeout)
        await asyncio.gather(*self._readers)
        return status

    async def close(self) -> None:
        """Kills the process if it still runs (a test that failed half-way)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        for reader in self._readers:
            reader.cancel()
