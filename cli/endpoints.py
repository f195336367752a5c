"""`hooks endpoints`: an account's endpoints through the gateway's HTTP API, as its admin manages them
(the same calls a script or the console makes).

    hooks endpoints list                                   # each with its health: last attempt, 24 h success rate...
    hooks endpoints get ID
    hooks endpoints create webhook --name ops --target https://ops.example.com/hooks [--header 'Authorization: Bearer t']
    hooks endpoints create slack --name team --target https://hooks.slack.com/services/...
    hooks endpoints update ID --description 'the ops team' --disable     # only the fields given change
    hooks endpoints test ID                                # a test message now; exits 1 unless it was delivered
    hooks endpoints pause ID / resume ID                   # deliveries kept pending meanwhile, sent on resume
    hooks endpoints rotate-secret ID                       # a new signing secret, shown once
    hooks endpoints delete ID

An update names what it changes in `updateMask` (AIP-134), built from the options given, so a field not
named is never touched. A signing secret hooks generates is printed once, in the answer that made it.
Which gateway and which account: see cli/gateway.py (--gateway, --account, --identity).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from cli.gateway import PAGE_SIZE, Gateway, Table, echo_json, enum_name, when, with_gateway
from cli.topics import json_option


@dataclass(frozen=True)
class Kind:
    """An endpoint type as `create` offers it."""

    api: str
    target_help: str
    #: Sent over HTTP(S): extra headers and a CA certificate apply.
    http: bool = True
    #: Deliveries are signed (Standard Webhooks) with the endpoint's secret.
    signed: bool = False


KINDS = {
    "webhook": Kind("ENDPOINT_TYPE_WEBHOOK", "The http(s) URL that receives each event as signed JSON.", signed=True),
    "slack": Kind("ENDPOINT_TYPE_SLACK", "The Slack incoming webhook's URL (https://hooks.slack.com/services/...)."),
    "teams": Kind("ENDPOINT_TYPE_TEAMS", "The Microsoft Teams incoming webhook's URL."),
    "google-chat": Kind("ENDPOINT_TYPE_GOOGLE_CHAT", "The Google Chat space webhook's URL."),
    "email": Kind("ENDPOINT_TYPE_EMAIL", "The e-mail address notifications are sent to.", http=False),
}
ORDERS = {"unordered": "DELIVERY_ORDER_UNORDERED", "ordered": "DELIVERY_ORDER_ORDERED"}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per\s+)\s*(s|sec|second|m|min|minute)\s*$", re.I)
#: The most ids one GET /endpoints:batchGetStats takes.
STATS_BATCH = 1000
SECRET_WARNING = (
    "Keep this signing secret now: hooks never shows it again (`hooks endpoints rotate-secret` makes a new one)."
)

LIST_TABLE = Table(
    [
        ("ID", "36"),
        ("NAME", "20"),
        ("TYPE", "11"),
        ("STATE", "8"),
        ("LAST ATTEMPT (UTC)", "28"),
        ("OK 24H", ">6"),
        ("FAILING SINCE", "19"),
        ("PENDING", ">7"),
        ("REASON", ""),
    ]
)


# -- options ----------------------------------------------------------------------------------------


def _rate_limit(_ctx: click.Context, _param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    match = _RATE.match(value)
    if not match:
        raise click.BadParameter(f"{value!r} is not a rate such as 10/s or 600/min")
    period = "RATE_LIMIT_PERIOD_SECOND" if match.group(2).lower().startswith("s") else "RATE_LIMIT_PERIOD_MINUTE"
    return {"requests": int(match.group(1)), "period": period}


def _headers(_ctx: click.Context, _param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, colon, text = value.partition(":")
        if not colon or not name.strip():
            raise click.BadParameter(f"{value!r} is not a header such as 'Authorization: Bearer t0k3n'")
        headers[name.strip()] = text.strip()
    return headers


def _pem(_ctx: click.Context, _param: click.Parameter, value: Any) -> str | None:
    return value.read() if value is not None else None


name_option = click.option("--name", help="Unique within the account; 1 to 200 characters.")
description_option = click.option("--description", help="Free text for people, up to 2000 characters.")
header_option = click.option(
    "--header",
    "headers",
    multiple=True,
    callback=_headers,
    metavar="'NAME: VALUE'",
    help="An extra HTTP header sent with every delivery (repeatable); its value is write-only.",
)
rate_limit_option = click.option(
    "--rate-limit",
    callback=_rate_limit,
    metavar="N/s|N/min",
    help="At most N requests per second or minute to this endpoint.",
)
order_option = click.option(
    "--order",
    type=click.Choice(list(ORDERS)),
    help="ordered: one delivery in flight at a time, in the order hooks accepted them.",
)
ca_option = click.option(
    "--ca-certificate",
    type=click.File("r"),
    callback=_pem,
    metavar="PEM_FILE",
    help="A CA certificate to trust for this endpoint's TLS, besides the system's.",
)
secret_option = click.option(
    "--secret",
    help="The signing secret (24 to 64 bytes, or whsec_ and base64); generated, and shown once, when not given.",
)


def _apply(options: Iterable[Callable[[Any], Any]], function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(list(options)):
        function = option(function)
    return function


# -- output -----------------------------------------------------------------------------------------


def _number(value: Any) -> int:
    """An integer of the API's JSON (int64 ones arrive as strings)."""
    return int(value or 0)


def _state(endpoint: dict[str, Any]) -> str:
    if not endpoint.get("enabled"):
        return "disabled"
    return "paused" if endpoint.get("paused") else "enabled"


def _reason(endpoint: dict[str, Any]) -> str:
    if not endpoint.get("enabled"):
        return endpoint.get("disabledReason", "")
    return f"paused at {when(endpoint.get('pauseTime'))}" if endpoint.get("paused") else ""


def _last_attempt(stats: dict[str, Any]) -> str:
    if not stats.get("lastAttemptTime"):
        return ""
    status = _number(stats.get("lastHttpStatus"))
    outcome = "ok" if stats.get("lastAttemptSucceeded") else "failed"
    return f"{when(stats['lastAttemptTime'])} {outcome}" + (f" HTTP {status}" if status else "")


def _success_rate(stats: dict[str, Any]) -> str:
    attempts = _number(stats.get("attempts24h"))
    return f"{100 * _number(stats.get('succeededAttempts24h')) / attempts:.0f}%" if attempts else "-"


def _row(endpoint: dict[str, Any], stats: dict[str, Any]) -> list[object]:
    return [
        endpoint.get("id", ""),
        endpoint.get("name", ""),
        enum_name(endpoint.get("type"), "ENDPOINT_TYPE_"),
        _state(endpoint),
        _last_attempt(stats),
        _success_rate(stats),
        when(stats.get("failingSince")),
        _number(stats.get("pendingCount")),
        _reason(endpoint),
    ]


def _describe(endpoint: dict[str, Any], stats: dict[str, Any]) -> list[str]:
    """`get`'s text: the endpoint's settings and its health, a line each."""
    kind = enum_name(endpoint.get("type"), "ENDPOINT_TYPE_")
    lines = [f"endpoint {endpoint.get('id', '')}: {endpoint.get('name', '')!r}, {kind}, {_state(endpoint)}"]

    def line(label: str, value: object) -> None:
        if value not in (None, "", 0):
            lines.append(f"  {label:17} {value}")

    line("target", endpoint.get("target"))
    line("description", endpoint.get("description"))
    if kind == "webhook":
        previous = endpoint.get("previousSecretHint")
        line(
            "signing secret",
            f"...{endpoint.get('secretHint', '')}"
            + (
                f" (the previous one, ...{previous}, signs too until {when(endpoint.get('previousSecretExpireTime'))})"
                if previous
                else ""
            ),
        )
    hints = endpoint.get("headerHints") or {}
    line("headers", ", ".join(f"{name} (...{hint})" if hint else name for name, hint in sorted(hints.items())))
    rate = endpoint.get("rateLimit") or {}
    if rate.get("requests"):
        line("rate limit", f"{rate['requests']} per {enum_name(rate.get('period'), 'RATE_LIMIT_PERIOD_')}")
    line("order", enum_name(endpoint.get("order"), "DELIVERY_ORDER_").replace("unspecified", ""))
    line("CA certificate", "set" if endpoint.get("caCertificate") else "")
    line("why", _reason(endpoint))
    line("last attempt", _last_attempt(stats))
    attempts = _number(stats.get("attempts24h"))
    line("success rate 24h", f"{_success_rate(stats)} of {attempts} attempt(s)" if attempts else "no attempt")
    line("failing since", when(stats.get("failingSince")))
    line("pending", _number(stats.get("pendingCount")))
    line("created", when(endpoint.get("createTime")))
    line("updated", when(endpoint.get("updateTime")))
    return lines


def _show_generated_secret(endpoint: dict[str, Any], as_json: bool, *, signed_only: bool = False) -> None:
    """The secret hooks generated in this answer, once, with the warning that it is not shown again (on
    stderr, so a script reading --json stays clean). `signed_only`: not for a type whose deliveries are not
    signed (a Slack endpoint gets a secret too, which nothing uses)."""
    secret = endpoint.get("generatedSecret")
    if not secret or signed_only and enum_name(endpoint.get("type"), "ENDPOINT_TYPE_") != "webhook":
        return
    if not as_json:
        click.echo(f"signing secret: {secret}")
    click.secho(SECRET_WARNING, err=True, fg="yellow")


def stats_of(client: Gateway, endpoint_ids: list[str]) -> dict[str, dict[str, Any]]:
    """endpoint id -> its health figures (GET /endpoints:batchGetStats, up to STATS_BATCH ids a call)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(endpoint_ids), STATS_BATCH):
        answer = client.call(
            "GET", "/endpoints:batchGetStats", params={"endpointIds": endpoint_ids[start : start + STATS_BATCH]}
        )
        found.update((stats.get("endpointId", ""), stats) for stats in answer.get("stats", []))
    return found


# -- commands ---------------------------------------------------------------------------------------


@click.group()
def endpoints() -> None:
    """An account's endpoints: list (with health), get, create, update, delete, test, pause, resume,
    rotate-secret (through the gateway)."""


@endpoints.command("list")
@click.option("--name-contains", default="", help="Only endpoints whose name contains this (any case).")
@click.option("--limit", default=PAGE_SIZE, show_default=True, help="At most this many, by name.")
@with_gateway
@json_option
def list_command(name_contains: str, limit: int, client: Gateway, as_json: bool) -> None:
    """Lists endpoints by name with their health: the last attempt, the share of attempts of the last 24 h
    that succeeded, since when it has been failing, how many deliveries are pending, and why it is
    disabled or since when paused."""
    params = {"nameContains": name_contains} if name_contains else {}
    found = list(client.pages("/endpoints", "endpoints", params, limit))
    stats = stats_of(client, [endpoint["id"] for endpoint in found])
    if as_json:
        for endpoint in found:
            echo_json({**endpoint, "stats": stats.get(endpoint["id"], {})})
        return
    LIST_TABLE.print(_row(endpoint, stats.get(endpoint["id"], {})) for endpoint in found)


@endpoints.command("get")
@click.argument("endpoint_id")
@with_gateway
@json_option
def get_command(endpoint_id: str, client: Gateway, as_json: bool) -> None:
    """Shows one endpoint: its settings (secrets as hints) and its health."""
    endpoint = client.call("GET", f"/endpoints/{endpoint_id}")
    stats = stats_of(client, [endpoint["id"]]).get(endpoint["id"], {})
    if as_json:
        echo_json({**endpoint, "stats": stats})
        return
    click.echo("\n".join(_describe(endpoint, stats)))


@endpoints.group("create")
def create() -> None:
    """Creates an endpoint of a type: webhook, slack, teams, google-chat, email."""


def _create_command(type_name: str, kind: Kind) -> None:
    options: list[Callable[[Any], Any]] = [
        click.option("--name", required=True, help="Unique within the account; 1 to 200 characters."),
        click.option("--target", required=True, help=kind.target_help),
        description_option,
        *([header_option, ca_option] if kind.http else []),
        *([secret_option] if kind.signed else []),
        rate_limit_option,
        order_option,
        click.option("--enable/--disable", "enabled", default=True, help="Whether it receives deliveries now."),
    ]

    def command(client: Gateway, as_json: bool, **fields: Any) -> None:
        body: dict[str, Any] = {
            "name": fields["name"],
            "type": kind.api,
            "target": fields["target"],
            "enabled": fields["enabled"],
        }
        for option, key in (
            ("description", "description"),
            ("headers", "headers"),
            ("ca_certificate", "caCertificate"),
            ("secret", "secret"),
            ("rate_limit", "rateLimit"),
        ):
            if fields.get(option):
                body[key] = fields[option]
        if fields.get("order"):
            body["order"] = ORDERS[fields["order"]]
        endpoint = client.call("POST", "/endpoints", json=body)
        if as_json:
            echo_json(endpoint)
        else:
            click.echo(
                f"created {type_name} endpoint {endpoint['id']} ({endpoint.get('name', '')}), {_state(endpoint)}"
            )
        _show_generated_secret(endpoint, as_json, signed_only=True)

    article = "an" if type_name[0] in "aeiou" else "a"
    command.__doc__ = f"Creates {article} {type_name} endpoint (enabled unless --disable). TARGET: {kind.target_help}"
    create.command(type_name)(_apply(options, with_gateway(json_option(command))))


for _type_name, _kind in KINDS.items():
    _create_command(_type_name, _kind)


@endpoints.command("update")
@click.argument("endpoint_id")
@name_option
@description_option
@click.option("--target", help="The new URL (or e-mail address).")
@header_option
@click.option("--remove-header", "removed_headers", multiple=True, metavar="NAME", help="Remove this header.")
@click.option("--no-headers", is_flag=True, help="Remove every extra header (with --header: keep only those).")
@click.option("--secret", help="A signing secret of your own, replacing the current one (rotate-secret generates one).")
@rate_limit_option
@click.option("--no-rate-limit", is_flag=True, help="Remove the rate limit.")
@order_option
@ca_option
@click.option("--no-ca-certificate", is_flag=True, help="Trust the system's CAs only.")
@click.option("--enable/--disable", "enabled", default=None, help="Let it receive deliveries, or stop and fail them.")
@with_gateway
@json_option
def update_command(
    endpoint_id: str,
    name: str | None,
    description: str | None,
    target: str | None,
    headers: dict[str, str],
    removed_headers: tuple[str, ...],
    no_headers: bool,
    secret: str | None,
    rate_limit: dict[str, Any] | None,
    no_rate_limit: bool,
    order: str | None,
    ca_certificate: str | None,
    no_ca_certificate: bool,
    enabled: bool | None,
    client: Gateway,
    as_json: bool,
) -> None:
    """Changes the fields the options name, and no other (the update's mask is made of them). A header is
    set or removed alone, the others keep their values; --secret replaces the secret (the old one signs
    beside it for a grace period)."""
    if rate_limit and no_rate_limit or ca_certificate is not None and no_ca_certificate:
        raise click.UsageError("give a value or remove it, not both")
    mask: list[str] = []
    body: dict[str, Any] = {}

    def change(path: str, key: str = "", value: Any = None) -> None:
        mask.append(path)
        if value is not None:
            body[key] = value

    for path, key, value in (
        ("name", "name", name),
        ("description", "description", description),
        ("target", "target", target),
        ("secret", "secret", secret),
        ("rate_limit", "rateLimit", rate_limit),
        ("order", "order", ORDERS.get(order or "")),
        ("ca_certificate", "caCertificate", ca_certificate),
        ("enabled", "enabled", enabled),
    ):
        if value is not None:
            change(path, key, value)
    if no_rate_limit:
        change("rate_limit")
    if no_ca_certificate:
        change("ca_certificate")
    if no_headers:
        change("headers", "headers", dict(headers))
    else:
        for header in headers:
            mask.append(f"headers.{header}")
        for header in removed_headers:
            mask.append(f"headers.{header}")
        if headers:
            body["headers"] = dict(headers)
    if not mask:
        raise click.UsageError("say what to change: e.g. --description, --target, --enable/--disable (see --help)")
    endpoint = client.call("PATCH", f"/endpoints/{endpoint_id}", params={"updateMask": ",".join(mask)}, json=body)
    if as_json:
        echo_json(endpoint)
    else:
        click.echo(f"updated endpoint {endpoint['id']} ({endpoint.get('name', '')}): {', '.join(mask)}")


@endpoints.command("delete")
@click.argument("endpoint_id")
@with_gateway
@json_option
def delete_command(endpoint_id: str, client: Gateway, as_json: bool) -> None:
    """Deletes an endpoint; the filters that triggered it no longer do."""
    answer = client.call("DELETE", f"/endpoints/{endpoint_id}")
    echo_json(answer) if as_json else click.echo(f"deleted endpoint {endpoint_id}")


@endpoints.command("test")
@click.argument("endpoint_id")
@click.option("--message", default="", help="The test notification's text (a default one when empty).")
@with_gateway
@json_option
def test_command(endpoint_id: str, message: str, client: Gateway, as_json: bool) -> None:
    """Sends a test message (application `hooks`, event type `test`) to the endpoint now and prints how its
    first attempt went; exits with 1 unless it was delivered."""
    body = {"message": message} if message else {}
    delivery = client.call("POST", f"/endpoints/{endpoint_id}:test", json=body)
    status = enum_name(delivery.get("status"), "DELIVERY_STATUS_")
    if as_json:
        echo_json(delivery)
    else:
        attempts = delivery.get("attempts") or [{}]
        last = attempts[-1]
        # No HTTP status: an e-mail, or no answer at all (the error says which).
        details = [f"HTTP {last['httpStatus']}" if last.get("httpStatus") else "", last.get("latency", "")]
        detail = ", ".join(d for d in details if d)
        error = last.get("error") or delivery.get("lastError") or ""
        click.echo(
            f"test delivery {delivery.get('id', '')}: {status}"
            + (f" ({detail})" if detail else "")
            + (f": {error}" if error else "")
        )
        if status == "pending" and delivery.get("nextAttemptTime"):
            click.echo(f"  hooks retries it at {when(delivery['nextAttemptTime'])} UTC")
    if status != "succeeded":
        raise SystemExit(1)


@endpoints.command("pause")
@click.argument("endpoint_id")
@with_gateway
@json_option
def pause_command(endpoint_id: str, client: Gateway, as_json: bool) -> None:
    """Pauses an endpoint: its deliveries are kept pending (none fails) until it is resumed."""
    endpoint = client.call("POST", f"/endpoints/{endpoint_id}:pause", json={})
    if as_json:
        echo_json(endpoint)
    else:
        click.echo(f"paused endpoint {endpoint['id']} ({endpoint.get('name', '')}): its deliveries wait for resume")


@endpoints.command("resume")
@click.argument("endpoint_id")
@with_gateway
@json_option
def resume_command(endpoint_id: str, client: Gateway, as_json: bool) -> None:
    """Resumes a paused endpoint: the deliveries kept go out, in order of arrival."""
    endpoint = client.call("POST", f"/endpoints/{endpoint_id}:resume", json={})
    if as_json:
        echo_json(endpoint)
    else:
        click.echo(f"resumed endpoint {endpoint['id']} ({endpoint.get('name', '')}): the deliveries kept go out now")


@endpoints.command("rotate-secret")
@click.argument("endpoint_id")
@with_gateway
@json_option
def rotate_secret_command(endpoint_id: str, client: Gateway, as_json: bool) -> None:
    """Replaces the signing secret with one hooks generates, printed once; the replaced one keeps signing
    beside it for a grace period, so receivers can switch without missing a delivery."""
    endpoint = client.call("PATCH", f"/endpoints/{endpoint_id}", params={"updateMask": "secret"}, json={})
    if as_json:
        echo_json(endpoint)
    else:
        until = when(endpoint.get("previousSecretExpireTime"))
        click.echo(
            f"rotated the signing secret of endpoint {endpoint['id']} ({endpoint.get('name', '')})"
            + (f"; the previous one signs too until {until} UTC" if until else "")
        )
    _show_generated_secret(endpoint, as_json)
