"""`hooks apps`: register, get and list applications through the registry's gRPC API (JSON out).

    hooks apps register app.yaml             # the seed's registration document
    hooks apps register app.yaml --dry-run   # what it would change, changing nothing
    hooks apps get policies
    hooks apps list

A document is checked whole before anything is sent (`hooks_client.registration`, the rules the
registry applies): an unknown key (a typo such as `event_type:`) or anything else wrong refuses it,
with every problem listed by its path in the document. A registration that would remove event types
or levels filters use is refused, changing nothing, unless `--yes` allows it.

The registry is HOOKS_REGISTRY_TARGET (or --target). Reading needs an account (x-rh-identity):
--account or HOOKS_ACCOUNT, "cli" by default, since applications are the same for every account.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from hooks.registry.v1 import applications_pb2, applications_pb2_grpc
from hooks_client.registration import InvalidRegistration, document_path, load_registration
from hooks_client.registry import describe_diff
from services.common.channels import channel
from services.common.errors import field_violations_of
from services.common.identity import identity_metadata
from services.common.settings import CommonSettings


def _print(message: Message) -> None:
    click.echo(
        json.dumps(
            json_format.MessageToDict(
                message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            ),
            indent=2,
        )
    )


def _fail(error: grpc.aio.AioRpcError) -> NoReturn:
    violations = field_violations_of(error)
    if not violations:
        raise click.ClickException(f"{error.code().name}: {error.details()}")
    # The details repeat the violations in one line: each is shown once, on a line of its own.
    lines = [f"{error.code().name}: the request was refused:"]
    lines += [f"  {document_path(field)}: {description}" for field, description in violations]
    raise click.ClickException("\n".join(lines))


async def _call(target: str, method: str, request: Message, metadata: Sequence[tuple[str, str]] = ()) -> Any:
    async with channel(target, tls=CommonSettings().tls) as ch:
        stub = applications_pb2_grpc.ApplicationServiceStub(ch)
        try:
            return await getattr(stub, method)(request, metadata=metadata, timeout=30)
        except grpc.aio.AioRpcError as error:
            _fail(error)


target_option = click.option(
    "--target",
    envvar="HOOKS_REGISTRY_TARGET",
    default=lambda: CommonSettings().registry_target,
    show_default="HOOKS_REGISTRY_TARGET or 127.0.0.1:50051",
    help="The registry's gRPC address.",
)
account_option = click.option(
    "--account",
    envvar="HOOKS_ACCOUNT",
    default="cli",
    show_default=True,
    help="The account to read as (x-rh-identity).",
)


@click.group()
def apps() -> None:
    """Register and inspect applications."""


@apps.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@target_option
@click.option("--dry-run", is_flag=True, help="Print what the registration would change, and change nothing.")
@click.option(
    "--yes",
    "-y",
    "allow_removals",
    is_flag=True,
    help="Allow removing event types and levels that filters use: those filters lose the references, "
    "and one whose event-type or level set becomes empty is disabled.",
)
def register(file: Path, target: str, dry_run: bool, allow_removals: bool) -> None:
    """Register (or re-register) the application described by FILE (YAML, as in the seed's README).

    Prints what changed (on stderr), then the registry's answer as JSON: the application and the diff.
    """
    try:
        definition = load_registration(file)
    except InvalidRegistration as invalid:
        lines = [f"{file} is not a valid registration; nothing was registered:"]
        lines += [f"  {field}: {description}" for field, description in invalid.problems]
        raise click.ClickException("\n".join(lines)) from None
    request = applications_pb2.RegisterApplicationRequest(
        application=definition, dry_run=dry_run, allow_removals=allow_removals
    )
    response = asyncio.run(_call(target, "RegisterApplication", request))
    header = "dry run: nothing was changed" if dry_run else f"registered {definition.name!r}"
    click.echo(
        "\n".join(
            [header, *(f"  {line}" for line in describe_diff(response.diff, created=response.created, dry_run=dry_run))]
        ),
        err=True,
    )
    _print(response)


@apps.command()
@click.argument("name")
@target_option
@account_option
def get(name: str, target: str, account: str) -> None:
    """Show one application."""
    response = asyncio.run(
        _call(target, "GetApplication", applications_pb2.GetApplicationRequest(name=name), identity_metadata(account))
    )
    _print(response.application)


@apps.command(name="list")
@target_option
@account_option
def list_(target: str, account: str) -> None:
    """List every registered application."""

    async def all_pages() -> applications_pb2.ListApplicationsResponse:
        result = applications_pb2.ListApplicationsResponse()
        token = ""
        while True:
            page = await _call(
                target,
                "ListApplications",
                applications_pb2.ListApplicationsRequest(page_size=1000, page_token=token),
                identity_metadata(account),
            )
            result.applications.extend(page.applications)
            token = page.next_page_token
            if not token:
                return result

    _print(asyncio.run(all_pages()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(apps())
