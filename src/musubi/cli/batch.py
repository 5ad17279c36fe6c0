"""``musubi batch``: submit a JSONL file as a batch to a MUSUBI server, follow it, fetch
its results, cancel it. Talks to the API (``--url``/``MUSUBI_URL``) with an API key
(``--key``/``MUSUBI_API_KEY``), like the openai SDK would."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from musubi.cli.output import emit, json_option

__all__ = ["batch"]

DONE = ("completed", "failed", "cancelled", "expired")
COLUMNS = ("id", "status", "endpoint", "total", "completed", "failed", "output_file_id")


class Client:
    def __init__(self, url: str, key: str | None) -> None:
        if not key:
            raise click.UsageError("an API key is required: --key or MUSUBI_API_KEY")
        import httpx

        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=300
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            r = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach {self.http.base_url}: {exc}") from None
        if r.status_code >= 400:
            try:
                err = r.json().get("error", {})
                message = err.get("message") if isinstance(err, dict) else str(err)
            except ValueError:
                message = r.text
            raise click.ClickException(f"{r.status_code}: {message}")
        return r


def _row(b: dict[str, Any]) -> dict[str, Any]:
    counts = b.get("request_counts") or {}
    return {
        "id": b["id"],
        "status": b["status"],
        "endpoint": b["endpoint"],
        "total": counts.get("total", 0),
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "output_file_id": b.get("output_file_id"),
        "error_file_id": b.get("error_file_id"),
    }


def _follow(client: Client, batch_id: str, as_json: bool) -> dict[str, Any]:
    """Poll until the batch is done, with a progress bar on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    b: dict[str, Any] = client.call("GET", f"/v1/batches/{batch_id}").json()
    show = not as_json and sys.stderr.isatty()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task(batch_id, total=b["request_counts"]["total"])
        while b["status"] not in DONE:
            counts = b["request_counts"]
            bar.update(task, completed=counts["completed"] + counts["failed"])
            time.sleep(0.5)
            b = client.call("GET", f"/v1/batches/{batch_id}").json()
    return b


@click.group()
@click.option("--url", envvar="MUSUBI_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--key", envvar="MUSUBI_API_KEY", default=None, help="API key (MUSUBI_API_KEY).")
@click.pass_context
def batch(ctx: click.Context, url: str, key: str | None) -> None:
    """OpenAI-compatible batches: thousands of requests from one JSONL file."""
    ctx.obj = (url, key)


def _client(ctx: click.Context) -> Client:
    url, key = ctx.obj
    return Client(url, key)


@batch.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--endpoint",
    default="/v1/chat/completions",
    show_default=True,
    help="Endpoint every line calls.",
)
@click.option(
    "--priority",
    default=0,
    type=click.IntRange(-100, 100),
    show_default=True,
    help="Higher runs first among the tenant's batches.",
)
@click.option("--wait", is_flag=True, help="Follow progress until the batch is done.")
@json_option
@click.pass_context
def submit(
    ctx: click.Context, file: Path, endpoint: str, priority: int, wait: bool, as_json: bool
) -> None:
    """Upload FILE (JSONL: custom_id, method, url, body per line) and start a batch."""
    client = _client(ctx)
    with file.open("rb") as fh:
        uploaded = client.call(
            "POST", "/v1/files", files={"file": (file.name, fh)}, data={"purpose": "batch"}
        ).json()
    body = {
        "input_file_id": uploaded["id"],
        "endpoint": endpoint,
        "completion_window": "24h",
        "metadata": {"priority": str(priority)},
    }
    b = client.call("POST", "/v1/batches", json=body).json()
    if wait:
        b = _follow(client, b["id"], as_json)
    emit(b if as_json else _row(b), as_json=as_json)


@batch.command()
@click.argument("batch_id")
@click.option("--wait", is_flag=True, help="Follow progress until the batch is done.")
@json_option
@click.pass_context
def status(ctx: click.Context, batch_id: str, wait: bool, as_json: bool) -> None:
    """A batch's status and progress counts."""
    client = _client(ctx)
    b = (
        _follow(client, batch_id, as_json)
        if wait
        else client.call("GET", f"/v1/batches/{batch_id}").json()
    )
    emit(b if as_json else _row(b), as_json=as_json)


@batch.command("list")
@click.option(
    "--limit",
    default=20,
    type=click.IntRange(1, 100),
    show_default=True,
    help="Newest batches to show.",
)
@json_option
@click.pass_context
def list_(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Batches, newest first."""
    page = _client(ctx).call("GET", "/v1/batches", params={"limit": limit}).json()
    emit(
        page["data"] if as_json else [_row(b) for b in page["data"]],
        as_json=as_json,
        columns=COLUMNS,
    )


@batch.command()
@click.argument("batch_id")
@click.option("--errors", is_flag=True, help="The error file instead of the output file.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the results to FILE instead of standard output.",
)
@click.pass_context
def results(ctx: click.Context, batch_id: str, errors: bool, output: Path | None) -> None:
    """Stream a finished batch's output (or error) JSONL to stdout or a file."""
    client = _client(ctx)
    b = client.call("GET", f"/v1/batches/{batch_id}").json()
    file_id = b["error_file_id" if errors else "output_file_id"]
    if b["status"] not in DONE:
        raise click.ClickException(
            f"batch {batch_id} is {b['status']}; results come when it is done"
        )
    if file_id is None:
        if output:  # a script reading the file finds it, empty, rather than a stale one
            output.write_bytes(b"")
        click.echo("(no lines)", err=True)
        return
    with client.http.stream("GET", f"/v1/files/{file_id}/content") as r:
        if r.status_code >= 400:
            raise click.ClickException(f"{r.status_code}: cannot read file {file_id}")
        out = output.open("wb") if output else sys.stdout.buffer
        try:
            for chunk in r.iter_bytes():
                out.write(chunk)
        finally:
            if output:
                out.close()


@batch.command()
@click.argument("batch_id")
@json_option
@click.pass_context
def cancel(ctx: click.Context, batch_id: str, as_json: bool) -> None:
    """Stop a batch: lines not yet sent are cancelled; results so far are kept."""
    b = _client(ctx).call("POST", f"/v1/batches/{batch_id}/cancel").json()
    emit(b if as_json else _row(b), as_json=as_json)
