"""``musubi serve``: run the API server with uvicorn."""

from __future__ import annotations

import os

import click

__all__ = ["serve"]


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1, MUSUBI_HOST).")
@click.option("--port", default=None, type=int, help="Port (default 8000, MUSUBI_PORT).")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Run the API server (migrates and bootstraps the database first)."""
    import uvicorn

    from musubi.api.logs import configure_logging
    from musubi.api.protocol import http_protocol
    from musubi.settings import Settings

    # A long-running server: tune the garbage collector (see Settings.server_gc); the
    # workers inherit the environment.
    os.environ.setdefault("MUSUBI_SERVER_GC", "1")
    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    configure_logging(settings.log_level)
    click.echo(
        f"musubi: data in {settings.home}; database {_redact(settings.effective_database_url)}",
        err=True,
    )
    click.echo(f"musubi: listening on http://{host}:{port} (API docs at /docs)", err=True)
    uvicorn.run(
        "musubi.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=http_protocol(),  # request heads over MUSUBI_MAX_HEADER_BYTES get 431
        h11_max_incomplete_event_size=settings.max_header_bytes,
        access_log=False,
        log_config=None,
        log_level=settings.log_level,
    )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
