"""`hooks deliveries`: an account's deliveries through the gateway's HTTP API, as its admin sees them
(the same calls a script or the console makes; no back door).

    hooks deliveries list --status failed --since 1h          # a table; --json for scripts
    hooks deliveries get 6f1c0d0e-...                         # one delivery and its attempts
    hooks deliveries retry 6f1c0d0e-...                       # one delivery, again
    hooks deliveries retry --since 1h [--endpoint ID]         # every FAILED one of the last hour

Which account: `--account` (HOOKS_ACCOUNT), sent as the platform proxy's `x-rh-identity` header; or
`--identity` (HOOKS_IDENTITY), a whole header as the proxy would send it. Where: `--gateway`
(HOOKS_GATEWAY_URL, default http://127.0.0.1:8080, as `make run` starts it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click
import httpx

from cli.dlq import parse_since
from cli.topics import json_option
from services.common.identity import IDENTITY_HEADER, encode_identity

API = "/api/hooks/v1"
STATUSES = ("pending", "succeeded", "failed")
#: ListDeliveries' largest page.
PAGE_SIZE = 1000

gateway_option = click.option(
    "--gateway",
    envvar="HOOKS_GATEWAY_URL",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="The gateway's URL (HOOKS_GATEWAY_URL).",
)
account_option = click.option("--account", envvar="HOOKS_ACCOUNT", help="The account to act as (HOOKS_ACCOUNT).")
identity_option = click.option(
    "--identity", envvar="HOOKS_IDENTITY", help="An x-rh-identity header value, instead of --account (HOOKS_IDENTITY)."
)
since_option = click.option("--since", help="Only deliveries created since: a duration (30m, 12h, 7d) or a date-time.")
endpoint_option = click.option("--endpoint", "endpoint_id", default="", help="Only deliveries to this endpoint.")


class Gateway:
    """The gateway, as one account: each call raises click.ClickException with the API's own error."""

    def __init__(self, url: str, account: str | None, identity: str | None):
        if not identity and not account:
            raise click.UsageError("say which account: --account (HOOKS_ACCOUNT) or --identity (HOOKS_IDENTITY)")
        header = identity or encode_identity(account or "")
        self._client = httpx.Client(base_url=url.rstrip("/"), headers={IDENTITY_HEADER: header}, timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, API + path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"the gateway cannot be reached: {exc}") from None
        if response.status_code >= 400:
            try:
                problem = response.json()
                message = problem.get("message") or response.text
            except ValueError:
                message = response.text
            raise click.ClickException(f"{response.status_code}: {message}")
        return response.json()

    def deliveries(self, params: dict[str, str], limit: int) -> Iterator[dict[str, Any]]:
        """The deliveries `params` select, newest first, at most `limit`, page after page."""
        token, seen = "", 0
        while seen < limit:
            page = self.call(
                "GET", "/deliveries", params={**params, "pageSize": min(PAGE_SIZE, limit - seen), "pageToken": token}
            )
            for delivery in page.get("deliveries", []):
                seen += 1
                yield delivery
            token = page.get("nextPageToken", "")
            if not token:
                return


def _created_after(since: str | None) -> dict[str, str]:
    moment = parse_since(since)
    return {"createdAfter": moment.isoformat().replace("+00:00", "Z")} if moment else {}


def _status_name(status: str) -> str:
    return status.removeprefix("DELIVERY_STATUS_").lower()


def _when(text: str) -> str:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S") if text else ""


@click.group()
def deliveries() -> None:
    """An account's deliveries: list, get, retry (through the gateway)."""


@deliveries.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only deliveries in this status.")
@endpoint_option
@since_option
@click.option("--limit", default=50, show_default=True, help="At most this many, newest first.")
@gateway_option
@account_option
@identity_option
@json_option
def list_command(
    status: str | None,
    endpoint_id: str,
    since: str | None,
    limit: int,
    gateway: str,
    account: str | None,
    identity: str | None,
    as_json: bool,
) -> None:
    """Lists deliveries, newest first."""
    params = {"endpointId": endpoint_id, **_created_after(since)}
    if status:
        params["status"] = f"DELIVERY_STATUS_{status.upper()}"
    found = Gateway(gateway, account, identity).deliveries({k: v for k, v in params.items() if v}, limit)
    if as_json:
        for delivery in found:
            click.echo(json.dumps(delivery))
        return
    click.echo(f"{'ID':36}  {'STATUS':9}  {'ENDPOINT':36}  {'TRIES':>5}  {'CREATED (UTC)':19}  LAST ERROR")
    for d in found:
        click.echo(
            f"{d['id']:36}  {_status_name(d['status']):9}  {d['endpointId']:36}  {d.get('attemptCount', 0):>5}  "
            f"{_when(d.get('createTime', '')):19}  {d.get('lastError', '')[:80]}"
        )


@deliveries.command("get")
@click.argument("delivery_id")
@gateway_option
@account_option
@identity_option
@json_option
def get_command(delivery_id: str, gateway: str, account: str | None, identity: str | None, as_json: bool) -> None:
    """Shows one delivery and each of its attempts."""
    delivery = Gateway(gateway, account, identity).call("GET", f"/deliveries/{delivery_id}")
    if as_json:
        click.echo(json.dumps(delivery))
        return
    click.echo(f"delivery {delivery['id']}: {_status_name(delivery['status'])}, to endpoint {delivery['endpointId']}")
    click.echo(f"  event {delivery.get('event', {}).get('id', '')}, created {_when(delivery.get('createTime', ''))}")
    for attempt in delivery.get("attempts", []):
        outcome = "ok" if attempt.get("succeeded") else attempt.get("error", "") or "failed"
        click.echo(
            f"  attempt {attempt.get('number', '?')} at {_when(attempt.get('startTime', ''))}: "
            f"HTTP {attempt.get('httpStatus', '-')}, {attempt.get('latency', '')}, {outcome}"
        )


@deliveries.command("retry")
@click.argument("delivery_id", required=False)
@endpoint_option
@since_option
@click.option("--all", "everything", is_flag=True, help="Without an id: every failed one, however many calls it takes.")
@gateway_option
@account_option
@identity_option
@json_option
def retry_command(
    delivery_id: str | None,
    endpoint_id: str,
    since: str | None,
    everything: bool,
    gateway: str,
    account: str | None,
    identity: str | None,
    as_json: bool,
) -> None:
    """Queues a delivery again (DELIVERY_ID), or every FAILED one that --endpoint and --since select
    (10,000 per call; --all goes on until none is left)."""
    client = Gateway(gateway, account, identity)
    if delivery_id:
        if endpoint_id or since or everything:
            raise click.UsageError("give a delivery id, or --endpoint/--since/--all, not both")
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
        click.echo(json.dumps({"queued": total, "more": more}))
    elif not total:
        click.echo("no failed delivery matched")
