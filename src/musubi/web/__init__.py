"""The web dashboard, served by ``musubi serve`` under ``/ui/``.

Server-rendered HTML (Jinja2) with htmx for the parts that change in place (a run's
panel, approve and reject, forms) and uPlot for the usage chart. Both are vendored from
npm at pinned versions into ``static/vendor`` (``scripts/vendor-web``) and ship in the
wheel: nothing is loaded from elsewhere at run time. Chosen over a single-page app
because every page is a view of one REST route's data and the permission checks stay
in one place (the server); the whole client is two small vendored libraries and one
page script.

The dashboard is a sub-application sharing the API's state (``app.state``) and routes
its pages through the same services and permission checks (``auth.py``).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from musubi.web.render import HERE, SecurityHeaders, install_handlers

__all__ = ["dashboard_app"]


def dashboard_app(parent: FastAPI) -> FastAPI:
    """The dashboard, to mount at ``/ui`` on ``parent`` (whose routes it binds to)."""
    from musubi.api.app import api_routes
    from musubi.web import admin, pages
    from musubi.web.auth import PageRequire, bind_pages

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state = parent.state  # the API's AppState and orchestrator, set by its lifespan
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(admin.router)
    install_handlers(app)
    app.add_middleware(SecurityHeaders)
    bind_pages(api_routes(parent.routes), PageRequire.pages)
    return app
