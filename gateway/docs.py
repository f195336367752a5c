"""The API's reference page, /api/hooks/v1/docs: Swagger UI rendering the OpenAPI document the gateway
serves, from the files of the `swagger-ui-bundle-v2` package (no CDN: the page works offline and
behind a proxy, every URL in it relative to the page).

The page and its assets need no identity (a browser opening it sends none); "Authorize" in it takes
an `x-rh-identity` for "Try it out", which calls the API as any client does.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/api/hooks/v1/docs"
#: Swagger UI's files (swagger-ui-bundle.js, swagger-ui.css...), served as the package has them.
ASSETS_PATH = DOCS_PATH + "/assets"
ASSETS = Path(str(swagger_ui_path))

# Relative URLs: the page is /api/hooks/v1/docs, so "docs/assets/..." and "openapi.json" are beside it.
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>hooks API reference</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      validatorUrl: null,
    });
  </script>
</body>
</html>
"""


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", charset="utf-8")


def add_docs_routes(app: web.Application) -> None:
    """The page and its assets (before the API's catch-all route)."""
    app.router.add_get(DOCS_PATH, docs_page)
    app.router.add_static(ASSETS_PATH, ASSETS)
