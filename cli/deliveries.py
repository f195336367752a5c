"""`hooks deliveries`: an account's deliveries through the gateway's HTTP API, as its admin sees them
(the same calls a script or the console makes; no back door).

    hooks deliveries list --status failed --since 1h          # a table; --json for scripts
    hooks deliveries get 6f1c0d0e-...                         # one delivery and its attempts
    hooks deliveries retry 6f1c0d0e-...                       # one delivery, again
    hooks deliveries retry --status failed --since 1h [--endpoint ID]   # every FAILED one of the last hour
    hooks deliveries watch [--endpoint ID]                    # each change as it happens, until Ctrl-C

Which gateway and which account: see cli/gateway.py (--gateway, --account, --identity).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import click

from cli.dlq import parse_since
from cli.gateway import ApiError, Gateway, StreamDropped, Table, Unreachable, echo_json, enum_name, when, with_gateway
from cli.topics import json_option

STATUSES = ("pending", "succeeded", "failed")
#: The columns of a delivery in `list` and `watch`: its time column is its creation or its last change.
LIST_TABLE = Table(
    [("ID", "36"), ("STATUS", "9"), ("ENDPOINT", "36"), ("TRIES", ">5"), ("CREATED (UTC)", "19"), ("LAST ERROR", "")]
)
WATCH_TABLE = Table(
    [("ID", "36"), ("STATUS", "9"), ("ENDPOINT", "36"), ("TRIES", ">5"), ("UPDATED (UTC)", "19"), ("LAST ERROR", "")]
)
#: How long `watch` waits before reconnecting a dropped stream, first and at most (doubling in between).
RECONNECT_FIRST_SECONDS, RECONNECT_MAX_SECONDS = 0.5, 10.0
#: google.rpc.Code values with which a watch that was going ends, and that watching again may cure:
#: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED ("the watcher fell behind; watch again"), ABORTED, UNAVAILABLE.
RESUMABLE_CODES = {4, 8, 10, 14}

since_option = click.option("--since", help="Only deliveries created since: a duration (30m, 12h, 7d) or a date-time.")
endpoint_option = click.option("--endpoint", "endpoint_id", default="", help="Only deliveries to this endpoint.")


def _created_after(since: str | None) -> dict[str, str]:
    moment = parse_since(since)
    return {"createdAfter": moment.isoformat().replace("+00:00", "Z")} if moment else {}


def _row(delivery: dict[str, Any], time_field: str) -> list[object]:
    return [
        delivery.get("id", ""),
        enum_name(delivery.get("status"), "DELIVERY_STATUS_"),
        delivery.get("endpointId", ""),
        delivery.get("attemptCount", 0),
        when(delivery.get(time_field)),
        (delivery.get("lastError") or "")[:80],
    ]


@click.group()
def deliveries() -> None:
    """An account's deliveries: list, get, retry, watch (through the gateway)."""


@deliveries.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only deliveries in this status.")
@endpoint_option
@click.option("--application", default="", help="Only deliveries of this application's events.")
@since_option
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
@with_gateway
@json_option
def list_command(
    status: str | None,
    endpoint_id: str,
    application: str,
    since: str | None,
    limit: int,
    client: Gateway,
    as_json: bool,
) -> None:
    """Lists deliveries, newest first."""
    params = {"endpointId": endpoint_id, "application": application, **_created_after(since)}
    if status:
        params["status"] = f"DELIVERY_STATUS_{status.upper()}"
    found = client.pages("/deliveries", "deliveries", {k: v for k, v in params.items() if v}, limit)
    if as_json:
        for delivery in found:
            echo_json(delivery)
        return
    LIST_TABLE.print(_row(delivery, "createTime") for delivery in found)


@deliveries.command("get")
@click.argument("delivery_id")
@with_gateway
@json_option
def get_command(delivery_id: str, client: Gateway, as_json: bool) -> None:
    """Shows one delivery and each of its attempts."""
    delivery = client.call("GET", f"/deliveries/{delivery_id}")
    if as_json:
        echo_json(delivery)
        return
    status = enum_name(delivery.get("status"), "DELIVERY_STATUS_")
    click.echo(f"delivery {delivery['id']}: {status}, to endpoint {delivery.get('endpointId', '')}")
    click.echo(f"  event {delivery.get('event', {}).get('id', '')}, created {when(delivery.get('createTime'))}")
    for attempt in delivery.get("attempts", []):
        outcome = "ok" if attempt.get("succeeded") else attempt.get("error", "") or "failed"
        click.echo(
            f"  attempt {attempt.get('number', '?')} at {when(attempt.get('startTime'))}: "
            f"HTTP {attempt.get('httpStatus', '-')}, {attempt.get('latency', '')}, {outcome}"
        )


@deliveries.command("retry")
@click.argument("delivery_id", required=False)
@click.option(
    "--status",
    type=click.Choice(["failed"]),
    help="Without an id: which deliveries to queue again; only FAILED ones are (the default, said for clarity).",
)
@endpoint_option
@since_option
@click.option("--all", "everything", is_flag=True, help="Without an id: every failed one, however many calls it takes.")
@with_gateway
@json_option
def retry_command(
    delivery_id: str | None,
    status: str | None,
    endpoint_id: str,
    since: str | None,
    everything: bool,
    client: Gateway,
    as_json: bool,
) -> None:
    """Queues a delivery again (DELIVERY_ID), or every FAILED one that --endpoint and --since select
    (10,000 per call; --all goes on until none is left), e.g. `retry --status failed --since 1h`."""
    if delivery_id:
        if endpoint_id or since or everything or status:
            raise click.UsageError("give a delivery id, or --status/--endpoint/--since/--all, not both")
        delivery = client.call("POST", f"/deliveries/{delivery_id}:retry", json={})
        click.echo(json.dumps(delivery) if as_json else f"queued {delivery['id']} again")
        return
    body = {"endpointId": endpoint_id, **_created_after(since)}
    total = 0
    while True:
        answer = client.call("POST", "/deliveries:retry", json={k: v for k, v in body.items() if v})
        total += answer.get("queued", 0)
        more = answer.get("more", False)
        if not as_json and (more or total):
            click.echo(f"queued {total} failed deliveries again" + ("; more are left" if more else ""), err=more)
        if not (more and everything):
            break
    if as_json:
        echo_json({"queued": total, "more": more})
    elif not total:
        click.echo("no failed delivery matched")


@deliveries.command("watch")
@endpoint_option
@with_gateway
@json_option
def watch_command(endpoint_id: str, client: Gateway, as_json: bool) -> None:
    """Prints each change of the account's deliveries as it happens (a row, or with --json the delivery
    as a JSON line), until Ctrl-C.

    A stream that drops is opened again, after a pause that doubles up to 10 s; the new stream resumes
    after the last event printed (its SSE `id:`, sent back as Last-Event-ID), so nothing is missed. Where it
    cannot (no event yet, or away longer than the sender keeps changes), a warning says that changes in
    between are not shown.
    """
    watch = _Watch(client, endpoint_id, as_json)
    if not as_json:
        WATCH_TABLE.header()
    try:
        watch.run()
    except KeyboardInterrupt:  # Ctrl-C: how a watch is meant to end
        return


@dataclass
class _Watch:
    """`watch`'s loop: a stream, and a new one each time it drops."""

    client: Gateway
    endpoint_id: str
    as_json: bool
    #: The id of the last event printed (SSE `id:`), to resume after; empty while the gateway sends none.
    last_id: str = ""
    #: How many streams the gateway has accepted so far.
    opened: int = 0
    pause: float = RECONNECT_FIRST_SECONDS

    def run(self) -> None:
        params = {"endpointId": self.endpoint_id} if self.endpoint_id else {}
        while True:
            try:
                for event in self.client.events(
                    "/deliveries:watch", params, last_event_id=self.last_id, opened=self._opened
                ):
                    _show_watched(event.type, event.data, self.as_json)
                    self.last_id = event.id or self.last_id
            except StreamDropped as dropped:
                problem = str(dropped)
            except Unreachable as unreachable:
                if not self.opened:
                    raise
                problem = unreachable.message
            except _Resumable as resumable:
                problem = str(resumable)
            except ApiError as refused:
                if not (self.last_id and refused.status == 400 and _names_resume_token(refused)):
                    raise
                # Too old to resume from (past the sender's retention), or not understood: start afresh.
                problem, self.last_id = f"the gateway cannot resume the watch ({refused.violations[0][1]})", ""
            resuming = f"resuming after event {self.last_id}" if self.last_id else "changes meanwhile are not shown"
            click.echo(f"{problem}; reconnecting in {self.pause:g} s ({resuming})", err=True)
            time.sleep(self.pause)
            self.pause = min(self.pause * 2, RECONNECT_MAX_SECONDS)

    def _opened(self) -> None:
        self.opened += 1
        self.pause = RECONNECT_FIRST_SECONDS
        what = "watching again" if self.opened > 1 else "watching"
        to = f" to {self.endpoint_id}" if self.endpoint_id else ""
        click.echo(f"{what} the account's deliveries{to} (Ctrl-C stops)", err=True)


def _names_resume_token(error: ApiError) -> bool:
    return any(field.rsplit(".", 1)[-1] in ("resume_token", "resumeToken") for field, _ in error.violations)


class _Resumable(Exception):
    """The stream ended with an error that watching again may cure."""


def _show_watched(kind: str, data: str, as_json: bool) -> None:
    """Prints a watched change; an `error` event ends the watch (raising _Resumable, or stopping the command)."""
    try:
        document = json.loads(data)
    except ValueError:
        raise StreamDropped(f"the gateway sent an event that is not JSON: {data[:200]!r}") from None
    if kind == "error":
        message = f"the watch ended: {document.get('message', '')}"
        if document.get("code") in RESUMABLE_CODES:
            raise _Resumable(message)
        raise click.ClickException(message)
    delivery = document.get("delivery", {})
    if as_json:
        echo_json(delivery)
    else:
        WATCH_TABLE.row(*_row(delivery, "updateTime"))
