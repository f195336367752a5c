"""`hooks filters`: which of the account's events go to which endpoints, through the gateway's HTTP API.

    hooks filters list [--endpoint ID]
    hooks filters get ID
    hooks filters create --name 'policies to ops' --application policies --endpoint EP_ID
    hooks filters create --event-type policies/policy-triggered --level policies/policy-triggered/high --endpoint EP_ID
    hooks filters update ID --disable          # only the fields given change
    hooks filters update ID --any-level        # an empty set matches everything
    hooks filters delete ID

A filter matches an event when each of its sets contains it: its applications, its event types (each
APPLICATION/EVENT_TYPE) and its levels (APPLICATION/EVENT_TYPE/LEVEL); an empty set matches everything,
any entry of a set may match (OR), every set must (AND). It triggers one or more endpoints.
Which gateway and which account: see cli/gateway.py (--gateway, --account, --identity).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from cli.gateway import PAGE_SIZE, Gateway, Table, echo_json, when, with_gateway
from cli.topics import json_option

LIST_TABLE = Table([("ID", "36"), ("NAME", "24"), ("STATE", "8"), ("MATCHES", "40"), ("ENDPOINTS", "")])


def _references(parts: int, example: str) -> Any:
    """A click callback turning APPLICATION/EVENT_TYPE[/LEVEL] values into the API's references."""
    keys = ("application", "eventType", "level")[:parts]

    def convert(_ctx: click.Context, _param: click.Parameter, values: Sequence[str]) -> list[dict[str, str]]:
        found = []
        for value in values:
            pieces = value.split("/")
            if len(pieces) != parts or not all(pieces):
                raise click.BadParameter(f"{value!r} is not {example}")
            found.append(dict(zip(keys, pieces, strict=True)))
        return found

    return convert


application_option = click.option(
    "--application", "applications", multiple=True, metavar="APP", help="Events of this application (repeatable)."
)
event_type_option = click.option(
    "--event-type",
    "event_types",
    multiple=True,
    metavar="APP/TYPE",
    callback=_references(2, "APPLICATION/EVENT_TYPE, such as policies/policy-triggered"),
    help="Events of this event type (repeatable).",
)
level_option = click.option(
    "--level",
    "levels",
    multiple=True,
    metavar="APP/TYPE/LEVEL",
    callback=_references(3, "APPLICATION/EVENT_TYPE/LEVEL, such as policies/policy-triggered/high"),
    help="Events of this level (repeatable).",
)
endpoint_option = click.option(
    "--endpoint", "endpoint_ids", multiple=True, metavar="ID", help="An endpoint it triggers (repeatable)."
)


def _event_type(reference: dict[str, str]) -> str:
    return f"{reference.get('application', '')}/{reference.get('eventType', '')}"


def _level(reference: dict[str, str]) -> str:
    return f"{_event_type(reference)}/{reference.get('level', '')}"


def _sets(flt: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [
        ("applications", list(flt.get("applications") or [])),
        ("event types", [_event_type(ref) for ref in flt.get("eventTypes") or []]),
        ("levels", [_level(ref) for ref in flt.get("levels") or []]),
    ]


def _matches(flt: dict[str, Any]) -> str:
    """What a filter matches in a few words: `everything`, or each non-empty set."""
    named = [f"{label}: {', '.join(values)}" for label, values in _sets(flt) if values]
    return "; ".join(named) or "everything"


def _state(flt: dict[str, Any]) -> str:
    return "enabled" if flt.get("enabled") else "disabled"


def _body(
    name: str | None,
    applications: Sequence[str],
    event_types: Sequence[dict[str, str]],
    levels: Sequence[dict[str, str]],
    endpoint_ids: Sequence[str],
    enabled: bool | None,
) -> dict[str, Any]:
    """The Filter JSON of the values given (None and empty ones left out)."""
    body: dict[str, Any] = {
        "name": name,
        "applications": list(applications),
        "eventTypes": list(event_types),
        "levels": list(levels),
        "endpointIds": list(endpoint_ids),
        "enabled": enabled,
    }
    return {key: value for key, value in body.items() if value not in (None, [])}


@click.group()
def filters() -> None:
    """An account's filters: list, get, create, update, delete (through the gateway)."""


@filters.command("list")
@click.option("--endpoint", "endpoint_id", default="", help="Only filters that trigger this endpoint.")
@click.option("--limit", default=PAGE_SIZE, show_default=True, help="At most this many, oldest first.")
@with_gateway
@json_option
def list_command(endpoint_id: str, limit: int, client: Gateway, as_json: bool) -> None:
    """Lists filters, oldest first: what each matches and which endpoints it triggers."""
    found = client.pages("/filters", "filters", {"endpointId": endpoint_id} if endpoint_id else {}, limit)
    if as_json:
        for flt in found:
            echo_json(flt)
        return
    LIST_TABLE.print(
        [flt.get("id", ""), flt.get("name", ""), _state(flt), _matches(flt), ", ".join(flt.get("endpointIds") or [])]
        for flt in found
    )


@filters.command("get")
@click.argument("filter_id")
@with_gateway
@json_option
def get_command(filter_id: str, client: Gateway, as_json: bool) -> None:
    """Shows one filter."""
    flt = client.call("GET", f"/filters/{filter_id}")
    if as_json:
        echo_json(flt)
        return
    click.echo(f"filter {flt.get('id', '')}: {flt.get('name', '')!r}, {_state(flt)}")
    for label, values in _sets(flt):
        click.echo(f"  {label:12} {', '.join(values) or 'any'}")
    click.echo(f"  {'endpoints':12} {', '.join(flt.get('endpointIds') or [])}")
    click.echo(f"  {'created':12} {when(flt.get('createTime'))}, updated {when(flt.get('updateTime'))}")


@filters.command("create")
@click.option("--name", default="", help="Free text for people, up to 200 characters.")
@application_option
@event_type_option
@level_option
@endpoint_option
@click.option("--enable/--disable", "enabled", default=True, help="Whether it triggers its endpoints now.")
@with_gateway
@json_option
def create_command(
    name: str,
    applications: tuple[str, ...],
    event_types: list[dict[str, str]],
    levels: list[dict[str, str]],
    endpoint_ids: tuple[str, ...],
    enabled: bool,
    client: Gateway,
    as_json: bool,
) -> None:
    """Creates a filter (enabled unless --disable): the events it matches go to each --endpoint. Without
    --application, --event-type or --level it matches every event of the account."""
    body = _body(name or None, applications, event_types, levels, endpoint_ids, enabled)
    flt = client.call("POST", "/filters", json=body)
    if as_json:
        echo_json(flt)
    else:
        click.echo(f"created filter {flt['id']} ({_matches(flt)}), {_state(flt)}")


@filters.command("update")
@click.argument("filter_id")
@click.option("--name", help="Free text for people, up to 200 characters.")
@application_option
@click.option("--any-application", is_flag=True, help="Match every application (an empty set).")
@event_type_option
@click.option("--any-event-type", is_flag=True, help="Match every event type (an empty set).")
@level_option
@click.option("--any-level", is_flag=True, help="Match every level (an empty set).")
@endpoint_option
@click.option("--enable/--disable", "enabled", default=None, help="Let it trigger its endpoints, or not.")
@with_gateway
@json_option
def update_command(
    filter_id: str,
    name: str | None,
    applications: tuple[str, ...],
    any_application: bool,
    event_types: list[dict[str, str]],
    any_event_type: bool,
    levels: list[dict[str, str]],
    any_level: bool,
    endpoint_ids: tuple[str, ...],
    enabled: bool | None,
    client: Gateway,
    as_json: bool,
) -> None:
    """Changes the fields the options name, and no other (the update's mask is made of them). A set given
    (--application, --event-type, --level, --endpoint, each repeatable) replaces the filter's whole set;
    --any-... empties one, so that it matches everything."""
    for given, emptied, option in (
        (applications, any_application, "application"),
        (event_types, any_event_type, "event-type"),
        (levels, any_level, "level"),
    ):
        if given and emptied:
            raise click.UsageError(f"give --{option} or --any-{option}, not both")
    chosen = [
        ("name", name is not None),
        ("applications", bool(applications) or any_application),
        ("event_types", bool(event_types) or any_event_type),
        ("levels", bool(levels) or any_level),
        ("endpoint_ids", bool(endpoint_ids)),
        ("enabled", enabled is not None),
    ]
    mask = [path for path, given in chosen if given]
    if not mask:
        raise click.UsageError("say what to change: e.g. --name, --application, --endpoint, --enable/--disable")
    body = _body(name, applications, event_types, levels, endpoint_ids, enabled)
    flt = client.call("PATCH", f"/filters/{filter_id}", params={"updateMask": ",".join(mask)}, json=body)
    if as_json:
        echo_json(flt)
    else:
        click.echo(f"updated filter {flt['id']}: {', '.join(mask)}")


@filters.command("delete")
@click.argument("filter_id")
@with_gateway
@json_option
def delete_command(filter_id: str, client: Gateway, as_json: bool) -> None:
    """Deletes a filter: its endpoints get nothing more through it."""
    answer = client.call("DELETE", f"/filters/{filter_id}")
    echo_json(answer) if as_json else click.echo(f"deleted filter {filter_id}")
