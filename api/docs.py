"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served from the installed packages: no CDN,
so the pages work offline and the docs CSP names no other host (``api.middleware.DOCS_CSP``).

The JavaScript and CSS come from the ``fastapi-offline`` distribution, which ships Swagger
UI's and ReDoc's release bundles as package data (we use its files only, not its app
class). FastAPI's documented way: ``docs_url=None``, ``redoc_url=None``, then our own
routes with local asset URLs. Swagger UI's bootstrap is a script file of ours
(``/docs/swagger-init.js``), not an inline script, so ``script-src 'self'`` suffices.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/docs/static"
SWAGGER_INIT = "/docs/swagger-init.js"

_SWAGGER_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link type="text/css" rel="stylesheet" href="{static}/swagger-ui.css">
<link rel="icon" type="image/png" href="{static}/favicon.png">
<title>{title}</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{init}"></script>
</body>
</html>
"""

_SWAGGER_INIT_JS = """// Swagger UI's bootstrap, a file of its own: the docs CSP allows no inline script.
window.ui = SwaggerUIBundle({
  url: "%s",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""


def asset_folder() -> Path:
    """The folder of Swagger UI's and ReDoc's bundles in the installed ``fastapi_offline``."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Serve ``/docs``, ``/redoc`` and their assets on ``app`` (built with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=asset_folder()), name="docs-static")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(_SWAGGER_PAGE.format(static=STATIC_PREFIX, init=SWAGGER_INIT, title=f"{title} - Swagger UI"))

    @app.get(SWAGGER_INIT, include_in_schema=False)
    async def swagger_init() -> Response:
        return Response(_SWAGGER_INIT_JS % openapi_url, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{title} - ReDoc",
                              redoc_js_url=f"{STATIC_PREFIX}/redoc.standalone.js",
                              redoc_favicon_url=f"{STATIC_PREFIX}/favicon.png", with_google_fonts=False)
