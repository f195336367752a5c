"""`hooks db upgrade`: applies the migrations of every service that has tables (the services also
apply their own at start; this is for deploy pipelines that migrate first)."""

from __future__ import annotations

from pathlib import Path

import click

from services.common.db import upgrade


def _targets() -> list[tuple[str, str, Path, str]]:
    """(service, database URL, migrations folder, version table) of each service with migrations.
    Imported here, when used: the servers pull in much that the other commands do not need."""
    from services.registry import server as registry
    from services.registry.settings import RegistrySettings
    from services.sender import server as sender
    from services.sender.settings import SenderSettings

    return [
        ("registry", RegistrySettings().registry_database_url, registry.MIGRATIONS, registry.VERSION_TABLE),
        ("sender", SenderSettings().sender_database_url, sender.MIGRATIONS, sender.VERSION_TABLE),
    ]


@click.group()
def db() -> None:
    """Database schema management."""


@db.command(name="upgrade")
def upgrade_command() -> None:
    """Apply every service's migrations to its database (HOOKS_*_DATABASE_URL)."""
    for service, url, migrations, version_table in _targets():
        upgrade(url, migrations, version_table)
        click.echo(f"{service}: migrated to the latest revision")
