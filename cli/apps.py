"""`hooks apps`: register, get and list applications through the registry's gRPC API (JSON out).

    hooks apps register app.yaml     # the seed's registration document
    hooks apps get policies
    hooks apps list

The registry is HOOKS_REGISTRY_TARGET (or --target). Reading needs an account (x-rh-identity):
--account or HOOKS_ACCOUNT, "cli" by default, since applications are the same for every account.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
import grpc
import yaml
from google.protobuf import json_format

from hooks.registry.v1 import applications_pb2, applications_pb2_grpc
from services.common.channels import channel
from services.common.errors import field_violations_of
from services.common.identity import identity_metadata
from services.common.settings import CommonSettings

MAX_DOCUMENT_BYTES = 1024 * 1024


def _text(value, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise click.ClickException(f"{where} must be a text value, not a {type(value).__name__}")
    return str(value)


def parse_registration(document) -> applications_pb2.Application:
    """The seed's YAML document as an Application message. `levels: {}` (or none) means no levels."""
    if not isinstance(document, dict) or not isinstance(document.get("application"), dict):
        raise click.ClickException("the document needs an `application:` mapping with `name` and `title`")
    app = document["application"]
    result = applications_pb2.Application(
        name=_text(app.get("name"), "application.name"), title=_text(app.get("title"), "application.title")
    )
    event_types = document.get("event_types") or []
    if not isinstance(event_types, list):
        raise click.ClickException("`event_types` must be a list")
    for i, et in enumerate(event_types):
        if not isinstance(et, dict):
            raise click.ClickException(f"event_types[{i}] must be a mapping with `id`, `title` and `levels`")
        message = result.event_types.add(id=_text(et.get("id"), f"event_types[{i}].id"), title=_text(et.get("title"), f"event_types[{i}].title"))
        levels = et.get("levels") or []
        if isinstance(levels, dict):
            if levels:
                raise click.ClickException(f"event_types[{i}].levels must be a list, or {{}} for none")
            levels = []
        if not isinstance(levels, list):
            raise click.ClickException(f"event_types[{i}].levels must be a list, or {{}} for none")
        for j, level in enumerate(levels):
            if not isinstance(level, dict):
                raise click.ClickException(f"event_types[{i}].levels[{j}] must be a mapping with `id` and `title`")
            message.levels.add(
                id=_text(level.get("id"), f"event_types[{i}].levels[{j}].id"),
                title=_text(level.get("title"), f"event_types[{i}].levels[{j}].title"),
            )
    return result


def _print(message) -> None:
    click.echo(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True), indent=2))


def _fail(error: grpc.aio.AioRpcError) -> None:
    lines = [f"{error.code().name}: {error.details()}"]
    lines += [f"  {field}: {description}" for field, description in field_violations_of(error)]
    raise click.ClickException("\n".join(lines))


async def _call(target: str, method: str, request, metadata=()):
    async with channel(target) as ch:
        stub = applications_pb2_grpc.ApplicationServiceStub(ch)
        try:
            return await getattr(stub, method)(request, metadata=metadata, timeout=30)
        except grpc.aio.AioRpcError as error:
            _fail(error)


target_option = click.option(
    "--target", envvar="HOOKS_REGISTRY_TARGET", default=lambda: CommonSettings().registry_target,
    show_default="HOOKS_REGISTRY_TARGET or 127.0.0.1:50051", help="The registry's gRPC address.",
)
account_option = click.option(
    "--account", envvar="HOOKS_ACCOUNT", default="cli", show_default=True, help="The account to read as (x-rh-identity)."
)


@click.group()
def apps() -> None:
    """Register and inspect applications."""


@apps.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@target_option
def register(file: Path, target: str) -> None:
    """Register (or re-register) the application described by FILE (YAML, as in the seed's README)."""
    if file.stat().st_size > MAX_DOCUMENT_BYTES:
        raise click.ClickException(f"{file} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file} is not valid YAML: {exc}") from None
    request = applications_pb2.RegisterApplicationRequest(application=parse_registration(document))
    _print(asyncio.run(_call(target, "RegisterApplication", request)))


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

    async def all_pages():
        result = applications_pb2.ListApplicationsResponse()
        token = ""
        while True:
            page = await _call(
                target, "ListApplications", applications_pb2.ListApplicationsRequest(page_size=1000, page_token=token),
                identity_metadata(account),
            )
            result.applications.extend(page.applications)
            token = page.next_page_token
            if not token:
                return result

    _print(asyncio.run(all_pages()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(apps())
