"""`hooks listen`: a local webhook receiver that prints what arrives and checks its signature.

For trying hooks out and for debugging an endpoint: point a webhook endpoint at
http://127.0.0.1:PORT/ and watch deliveries come in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError


def make_app(secret: str | None, status: int, echo: Callable[[str], Any] = click.echo) -> web.Application:
    verifier = Webhook(secret) if secret else None

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if verifier is None:
            verdict = "signature not checked (no --secret)"
        else:
            try:
                verifier.verify(body, headers)
                verdict = "signature valid"
            except WebhookVerificationError as exc:
                verdict = f"SIGNATURE INVALID: {exc}"
        try:
            shown = json.dumps(json.loads(body), indent=2)
        except ValueError:
            shown = body.decode(errors="replace")
        echo(f"{request.method} {request.path_qs}  webhook-id={headers.get('webhook-id', '-')}  {verdict}\n{shown}\n")
        return web.Response(status=status, text="ok\n" if status < 300 else "refused\n")

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", "-p", default=9000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--secret",
    "-s",
    envvar="HOOKS_LISTEN_SECRET",
    help="The endpoint's signing secret (whsec_...): each delivery's Standard Webhooks signature is checked.",
)
@click.option(
    "--status",
    default=200,
    show_default=True,
    type=click.IntRange(100, 599),
    help="HTTP status to answer with (e.g. 503 to watch retries, 410 to watch the endpoint get disabled).",
)
def listen(host: str, port: int, secret: str | None, status: int) -> None:
    """A local webhook receiver: prints every request and whether its signature is valid.

    \b
    Example:
      hooks listen --port 9000 --secret whsec_...
    """
    click.echo(f"listening on http://{host}:{port}/ (answering {status}); Ctrl-C stops")
    web.run_app(make_app(secret, status), host=host, port=port, print=None)
