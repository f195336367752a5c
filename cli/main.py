"""The `hooks` command. Each group of subcommands lives in its own module beside this one."""

from __future__ import annotations

import importlib

import click

# (module, attribute): each a click command or group, added if the module exists.
SUBCOMMANDS = [
    ("cli.apps", "apps"),  # hooks apps register FILE.yaml / get / list
    ("cli.db", "db"),  # hooks db upgrade
    ("cli.send", "send"),  # hooks send: inject test messages
    ("cli.run", "run"),  # hooks run: the whole system, embedded defaults
    ("cli.listen", "listen"),  # hooks listen: a local webhook receiver that checks signatures
    ("cli.topics", "topics"),  # hooks topics: partitions, records, the matcher's lag
    ("cli.dlq", "dlq"),  # hooks dlq list / replay: the dead-letter topic
    ("cli.messages", "messages"),  # hooks messages get ID: what happened to one message
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """hooks: routes platform events to webhooks, Slack, Teams, Google Chat and e-mail."""


for module_name, attribute in SUBCOMMANDS:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        continue
    main.add_command(getattr(module, attribute))


if __name__ == "__main__":
    main()
