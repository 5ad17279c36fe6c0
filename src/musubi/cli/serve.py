"""``musubi serve``: run the API server with uvicorn.

The port is bound before anything else happens: a port that is taken ends the command
with a clear message before the database is touched, so the first start's owner key is
only created (and printed, once) by a server that is really listening.
"""

from __future__ import annotations

import os
import socket
import sys

import click

__all__ = ["serve"]

BIND_FAILED = 3  # uvicorn's exit status for a server that could not start


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1, MUSUBI_HOST).")
@click.option("--port", default=None, type=int, help="Port (default 8000, MUSUBI_PORT).")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Run the API server (migrates and bootstraps the database first)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from musubi.api.logs import configure_logging
    from musubi.api.protocol import http_protocol
    from musubi.blas import set_blas_threads
    from musubi.settings import Settings

    # A long-running server: tune the garbage collector (see Settings.server_gc); the
    # workers inherit the environment.
    os.environ.setdefault("MUSUBI_SERVER_GC", "1")
    settings = Settings()
    set_blas_threads(settings.blas_threads)  # before numpy loads; the workers inherit it
    host = host or settings.host
    port = settings.port if port is None else port
    configure_logging(settings.log_level)
    sock = _bind(host, port)
    click.echo(
        f"musubi: data in {settings.home}; database {_redact(settings.effective_database_url)}",
        err=True,
    )
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"musubi: listening on http://{shown}:{sock.getsockname()[1]} (API docs at /docs)",
        err=True,
    )
    config = uvicorn.Config(
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
    server = uvicorn.Server(config)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    if workers == 1 and not server.started:
        sys.exit(BIND_FAILED)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket (as uvicorn binds it), or exit with the reason it failed."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        click.echo(
            f"musubi: cannot listen on {host}:{port}: {exc.strerror or exc}. Nothing was "
            "changed: stop what uses the port or choose another (--port, MUSUBI_PORT).",
            err=True,
        )
        sys.exit(BIND_FAILED)
    sock.set_inheritable(True)
    return sock


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
