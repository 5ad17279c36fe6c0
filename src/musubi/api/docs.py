"""Interactive API docs served from the ``swagger-ui-bundle`` package: no CDN needed."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["DOCS_PATHS", "install_docs"]

DOCS_PATHS = ("/docs", "/docs/static")


def install_docs(app: FastAPI) -> None:
    assets = Path(swagger_ui_bundle.swagger_ui_path)
    app.mount("/docs/static", StaticFiles(directory=assets), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="MUSUBI API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )
