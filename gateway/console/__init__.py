"""The web console for account admins, served under /console/: static files (plain HTML, CSS and
JavaScript modules in static/, no build step) and /console/config.json, which tells the page what it
cannot know by itself.

The console calls the same public HTTP API a script would (/api/hooks/v1/...); the gateway gives it
nothing else. Who is calling is the `x-rh-identity` header: behind the platform's proxy it arrives
with each request and the page sends none itself; in development (`gateway_development`, which `hooks
run` turns on) the page offers a sign-in that picks an account and builds the header itself.

Only the files in static/ when the gateway starts are served (no path from a request ever reaches
the filesystem), each with a Content-Security-Policy that allows this origin alone: no CDN, no
inline script, no framing.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web

from gateway.json_render import json_body
from gateway.settings import GatewaySettings
from services.common.identity import IDENTITY_HEADER, IdentityError, parse_identity

PREFIX = "/console/"
CONFIG_PATH = PREFIX + "config.json"
STATIC = Path(__file__).parent / "static"

#: Headers of every console answer: what the page may load, and from where (only this origin).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on each load (ETag/Last-Modified answer 304), so a new release is seen at once.
    "Cache-Control": "no-cache",
}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
SETTINGS_KEY: web.AppKey[GatewaySettings] = web.AppKey("console_settings")


def asset_files() -> dict[str, Path]:
    """{name under /console/: file} of every file in static/."""
    return {path.relative_to(STATIC).as_posix(): path for path in sorted(STATIC.rglob("*")) if path.is_file()}


def add_routes(app: web.Application, settings: GatewaySettings) -> None:
    """/console (a redirect), /console/ (the page), /console/config.json and the static files."""
    app[SETTINGS_KEY] = settings
    files = asset_files()

    async def asset(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["name"] or "index.html")
        if path is None:
            raise web.HTTPNotFound()
        content_type = CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
        return web.FileResponse(path, headers={**SECURITY_HEADERS, "Content-Type": content_type})

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(PREFIX)

    app.router.add_get(PREFIX.rstrip("/"), redirect)
    app.router.add_get(CONFIG_PATH, config)
    app.router.add_get(PREFIX + "{name:.*}", asset)


async def config(request: web.Request) -> web.Response:
    """What the page needs to know first: whether the development sign-in is on, and the account of
    the identity this request carried (the proxy's), if any."""
    try:
        account: str | None = parse_identity(request.headers.get(IDENTITY_HEADER))
    except IdentityError:
        account = None
    document = {
        "development": request.app[SETTINGS_KEY].gateway_development,
        "account": account,
        "apiBase": "/api/hooks/v1",
    }
    return web.Response(body=json_body(document), content_type="application/json", headers=SECURITY_HEADERS)
