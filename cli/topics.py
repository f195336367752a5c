"""`hooks topics`: what the broker holds, with a client that works against the embedded broker too
(Debian's kcat, librdkafka 2.0, does not: see services/common/broker.py).

    hooks topics                 # hooks.outbox and its dead-letter topic: partitions, records, matcher lag
    hooks topics --all           # every topic of the broker

Shared by the Kafka commands (`hooks dlq`, `hooks messages`): the connection options and settings.
"""

from __future__ import annotations

import json
from typing import Any

import click

from services.common.broker import committed_offsets, partitions_of, read_topic
from services.common.settings import KafkaSettings

bootstrap_option = click.option(
    "--bootstrap-servers",
    "-b",
    default=None,
    help="Kafka brokers, host:port[,host:port]. Default: HOOKS_KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per line) instead of text.")


def kafka_config(bootstrap_servers: str | None) -> tuple[KafkaSettings, dict[str, str]]:
    """The Kafka settings (HOOKS_KAFKA_*: topics, security) and the client config, with the brokers
    of --bootstrap-servers when given."""
    settings = KafkaSettings()
    config = settings.client_config()
    if bootstrap_servers:
        config["bootstrap.servers"] = bootstrap_servers
    return settings, config


def matcher_group() -> str:
    """The matcher's consumer group (HOOKS_MATCHER_GROUP_ID)."""
    from services.matcher.settings import MatcherSettings

    return MatcherSettings().matcher_group_id


def describe_topic(config: dict[str, str], topic: str, group: str | None) -> dict:
    """Partitions of a topic with their first offset, end and record count, and the group's
    committed offsets and lag (records not yet committed) when a group is given."""
    records = read_topic(config, topic)
    committed = committed_offsets(config, group, topic) if group else {}
    from confluent_kafka import Consumer

    consumer = Consumer({**config, "group.id": "hooks-topics", "log_level": 0})
    try:
        partitions = partitions_of(consumer, topic)
    finally:
        consumer.close()
    rows: list[dict[str, Any]] = []
    for partition in partitions:
        offsets = [r.offset for r in records if r.partition == partition]
        end = offsets[-1] + 1 if offsets else 0
        row: dict[str, Any] = {
            "partition": partition,
            "first": offsets[0] if offsets else None,
            "end": end,
            "records": len(offsets),
        }
        if group:
            done = committed.get(partition)
            row["committed"] = done
            row["lag"] = sum(1 for offset in offsets if done is None or offset >= done)
        rows.append(row)
    result: dict[str, Any] = {"topic": topic, "partitions": rows, "records": len(records)}
    if group:
        result["group"] = group
        result["lag"] = sum(row["lag"] for row in rows)
    return result


@click.command("topics")
@bootstrap_option
@click.option("--all", "every", is_flag=True, help="Every topic of the broker, not only hooks' two.")
@json_option
def topics(bootstrap_servers: str | None, every: bool, as_json: bool) -> None:
    """Show hooks' topics: partitions, records, and how far the matcher got (its lag).

    Reads every record to count it, so it is meant for development and small topics.
    """
    from confluent_kafka.admin import AdminClient

    settings, config = kafka_config(bootstrap_servers)
    names = [settings.topic, settings.dlq_topic]
    if every:
        listed = AdminClient({**config, "log_level": 0}).list_topics(timeout=10).topics
        names = sorted(name for name in listed if not name.startswith("__"))
    for name in names:
        try:
            described = describe_topic(config, name, matcher_group() if name == settings.topic else None)
        except LookupError as missing:
            raise click.ClickException(str(missing)) from None
        if as_json:
            click.echo(json.dumps(described))
            continue
        lag = f", {described['lag']} not yet done by {described['group']}" if "group" in described else ""
        click.echo(f"{name}: {described['records']} record(s) in {len(described['partitions'])} partition(s){lag}")
        for row in described["partitions"]:
            extra = f"  committed {row['committed']}  lag {row['lag']}" if "committed" in row else ""
            click.echo(
                f"  partition {row['partition']}: offsets {row['first']}..{row['end']}  {row['records']} record(s){extra}"
            )
