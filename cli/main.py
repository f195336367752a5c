"""The `hooks` command. Each group of subcommands lives in its own module beside this one."""

from __future__ import annotations

import click

from cli.apps import apps
from cli.db import db
from cli.deliveries import deliveries
from cli.dlq import dlq
from cli.endpoints import endpoints
from cli.filters import filters
from cli.listen import listen
from cli.messages import messages
from cli.run import run
from cli.send import send
from cli.topics import topics


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hooks: routes platform events to webhooks, Slack, Teams, Google Chat and e-mail."""


for command in (
    apps,  # hooks apps register FILE.yaml / get / list
    db,  # hooks db upgrade
    send,  # hooks send: inject test messages
    run,  # hooks run: the whole system, embedded defaults
    listen,  # hooks listen: a local webhook receiver that checks signatures
    topics,  # hooks topics: partitions, records, the matcher's lag
    dlq,  # hooks dlq list / replay: the dead-letter topic
    messages,  # hooks messages get ID: what happened to one message
    endpoints,  # hooks endpoints list / get / create / update / test / pause ...: an account's endpoints
    filters,  # hooks filters list / get / create / update / delete: which events go to which endpoints
    deliveries,  # hooks deliveries list / get / retry / watch: an account's deliveries, through the gateway
):
    main.add_command(command)


if __name__ == "__main__":
    main()
