"""`hooks db upgrade`: applies the migrations of every service that has tables (the services also
apply their own at start; this is for deploy pipelines that migrate first)."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from services.common.db import upgrade

ROOT = Path(__file__).resolve().parent.parent


def _targets() -> list[tuple[str, str, Path, str]]:
    """(service, database URL, migrations folder, version table) of each service with migrations."""
    from services.registry.server import MIGRATIONS, VERSION_TABLE
    from services.registry.settings import RegistrySettings

    targets = [("registry", RegistrySettings().registry_database_url, MIGRATIONS, VERSION_TABLE)]
    sender_migrations = ROOT / "services" / "sender" / "migrations"
    if sender_migrations.is_dir():
        settings = importlib.import_module("services.sender.settings").SenderSettings()
        version_table = getattr(
            importlib.import_module("services.sender.server"), "VERSION_TABLE", "alembic_version_sender"
        )
        targets.append(("sender", settings.sender_database_url, sender_migrations, version_table))
    return targets


@click.group()
def db() -> None:
    """Database schema management."""


@db.command(name="upgrade")
def upgrade_command() -> None:
    """Apply every service's migrations to its database (HOOKS_*_DATABASE_URL)."""
    for service, url, migrations, version_table in _targets():
        upgrade(url, migrations, version_table)
        click.echo(f"{service}: migrated to the latest revision")
