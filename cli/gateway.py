"""What the account admin's commands share (`hooks endpoints`, `hooks filters`, `hooks deliveries`): they
call the gateway's public HTTP API, exactly as a script or the console does (no back door).

- Which account: `--account` (HOOKS_ACCOUNT), sent as the platform proxy's `x-rh-identity` header; or
  `--identity` (HOOKS_IDENTITY), a whole header as the proxy would send it. Where: `--gateway`
  (HOOKS_GATEWAY_URL, default http://127.0.0.1:8080, as `make run` starts it). `with_gateway` adds the three
  options to a command and hands it a `Gateway`.
- `Gateway.call` answers the JSON of a call, or stops the command with the API's error as a person reads it:
  the HTTP status, the message, and each field violation (which field, why); never a traceback.
- `Gateway.pages` walks a list page after page; `Gateway.events` reads a Server-Sent Events stream.
- `Table` prints rows under a header in fixed columns, so a long list or a watch can print as it goes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
import httpx

from services.common.identity import IDENTITY_HEADER, encode_identity

API = "/api/hooks/v1"
#: The largest page every list of the API allows.
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


def with_gateway(function: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --gateway, --account and --identity to a command, which receives `client`, a Gateway."""

    @gateway_option
    @account_option
    @identity_option
    @functools.wraps(function)
    def command(*args: Any, gateway: str, account: str | None, identity: str | None, **kwargs: Any) -> Any:
        return function(*args, client=Gateway(gateway, account, identity), **kwargs)

    return command


class Unreachable(click.ClickException):
    """The gateway cannot be reached (refused, unknown host, timed out connecting)."""


class StreamDropped(Exception):
    """An event stream ended without the server saying why (the connection was lost, or closed)."""


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: its `event:` type ("message" when none), `data:` and `id:` (empty when none)."""

    type: str
    data: str
    id: str


class Gateway:
    """The gateway, as one account."""

    def __init__(self, url: str, account: str | None, identity: str | None):
        if not identity and not account:
            raise click.UsageError("say which account: --account (HOOKS_ACCOUNT) or --identity (HOOKS_IDENTITY)")
        header = identity or encode_identity(account or "")
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, headers={IDENTITY_HEADER: header}, timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of `method API+path`; a click.ClickException with the API's error otherwise."""
        try:
            response = self._client.request(method, API + path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise ApiError(response)
        try:
            return response.json()
        except ValueError:
            raise click.ClickException(f"the gateway answered {response.status_code} with no JSON") from None

    def pages(self, path: str, field: str, params: dict[str, Any], limit: int) -> Iterator[dict[str, Any]]:
        """The items (`field` of each page) of the list at `path` that `params` select, at most `limit`,
        page after page."""
        token, seen = "", 0
        while seen < limit:
            page = self.call(
                "GET", path, params={**params, "pageSize": min(PAGE_SIZE, limit - seen), "pageToken": token}
            )
            for item in page.get(field, [])[: limit - seen]:
                seen += 1
                yield item
            token = page.get("nextPageToken", "")
            if not token:
                return

    def events(
        self,
        path: str,
        params: dict[str, Any],
        *,
        last_event_id: str = "",
        opened: Callable[[], None] = lambda: None,
    ) -> Iterator[Event]:
        """The events of the stream at `path`, sent with Last-Event-ID when resuming one; `opened` is called
        once the gateway has accepted the stream. An error answered at once stops the command (as `call`);
        a stream that breaks or ends raises StreamDropped."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(30, read=None)  # a quiet stream is not a dead one (the gateway sends keep-alives)
        try:
            with self._client.stream("GET", API + path, params=params, headers=headers, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response)
                opened()
                yield from _parse_events(response.iter_lines())
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._unreachable(exc) from None
        except httpx.HTTPError as exc:
            raise StreamDropped(f"the connection to the gateway was lost ({exc or type(exc).__name__})") from None
        raise StreamDropped("the gateway closed the stream")

    def _unreachable(self, exc: httpx.HTTPError) -> Unreachable:
        return Unreachable(f"the gateway at {self.url} cannot be reached: {exc}")


def _parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Server-Sent Events (the WHATWG rules that matter here): fields until a blank line; `:` starts a comment;
    the last `id:` seen stays the stream's id."""
    kind, last_id, data = "", "", list[str]()
    for line in lines:
        if not line:
            if data:
                yield Event(kind or "message", "\n".join(data), last_id)
            kind, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            last_id = value


class ApiError(click.ClickException):
    """An error answer of the API, printed as a person reads it: `404 Not Found: endpoint 'x' not found`,
    then a line per field violation (`  endpoint.target: must be an http:// or https:// URL`); `status` and
    `violations` ((field, why) pairs) for a command that can do something about it."""

    def __init__(self, response: httpx.Response):
        message, violations = response.text.strip(), []
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict):
            message = problem.get("message") or message
            for detail in problem.get("details") or []:
                violations += [
                    (v.get("field", ""), v.get("description", "")) for v in detail.get("fieldViolations", [])
                ]
        if violations and all(why in message for _, why in violations):
            message = ""  # it only lists the violations, which follow one a line
        lines = [f"{response.status_code} {response.reason_phrase}: {message}".rstrip(": ")]
        lines += [f"  {field or '(request)'}: {why}" for field, why in violations]
        if response.status_code == 401:
            lines.append("  say which account: --account (HOOKS_ACCOUNT) or --identity (HOOKS_IDENTITY)")
        super().__init__("\n".join(lines))
        self.status = response.status_code
        self.violations: list[tuple[str, str]] = violations


def echo_json(document: Any) -> None:
    """One JSON document on one line, as every --json output is."""
    click.echo(json.dumps(document))


def when(text: str | None) -> str:
    """An RFC 3339 time of the API as `2026-12-08 01:02:03` (UTC); empty when there is none."""
    if not text:
        return ""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


def enum_name(value: str | None, prefix: str) -> str:
    """An enum value of the API as a person types it: `ENDPOINT_TYPE_GOOGLE_CHAT` -> `google-chat`."""
    return (value or "").removeprefix(prefix).lower().replace("_", "-")


class Table:
    """Rows in fixed columns under a header: each column a title and a format spec (`36`, `>5`); the last one
    takes what is left of the line. Values longer than their column push the line on rather than lose
    characters (an id must stay whole)."""

    def __init__(self, columns: Sequence[tuple[str, str]]):
        self.columns = columns

    def _line(self, values: Sequence[object]) -> str:
        cells = [f"{'' if v is None else v!s:{spec}}" for (_, spec), v in zip(self.columns[:-1], values, strict=False)]
        return "  ".join([*cells, str(values[-1] if values[-1] is not None else "")]).rstrip()

    def header(self) -> None:
        click.echo(self._line([title for title, _ in self.columns]))

    def row(self, *values: object) -> None:
        click.echo(self._line(values))

    def print(self, rows: Iterator[Sequence[object]] | Sequence[Sequence[object]]) -> None:
        self.header()
        for values in rows:
            self.row(*values)
