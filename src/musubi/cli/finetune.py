"""``musubi finetune``: build a training set from a project, start fine-tuning jobs on a
MUSUBI server, follow and cancel them.

``dataset`` works on a repository here (no server); the other commands talk to the API
(``--url``/``MUSUBI_URL``, ``--key``/``MUSUBI_API_KEY``) as the ``openai`` SDK would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from musubi.cli.batch import Client
from musubi.cli.output import emit, json_option

__all__ = ["finetune"]

DONE = ("succeeded", "failed", "cancelled")
COLUMNS = ("id", "status", "model", "fine_tuned_model", "trained_tokens", "error")


def _row(j: dict[str, Any]) -> dict[str, Any]:
    error = j.get("error") or {}
    return {
        "id": j["id"],
        "status": j["status"],
        "model": j["model"],
        "fine_tuned_model": j.get("fine_tuned_model"),
        "trained_tokens": j.get("trained_tokens"),
        "error": error.get("message") if error else None,
    }


@click.group()
@click.option("--url", envvar="MUSUBI_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--key", envvar="MUSUBI_API_KEY", default=None, help="API key (MUSUBI_API_KEY).")
@click.pass_context
def finetune(ctx: click.Context, url: str, key: str | None) -> None:
    """Fine-tune LoRA/QLoRA adapters on your own code and specs, and serve them."""
    ctx.obj = (url, key)


def _client(ctx: click.Context) -> Client:
    url, key = ctx.obj
    return Client(url, key)


@finetune.command()
@click.argument(
    "repo", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path(".")
)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("finetune-data"),
    help="Folder for train.jsonl, validation.jsonl and stats.json.",
)
@click.option(
    "--valid-share",
    default=0.1,
    type=click.FloatRange(0, 0.5),
    show_default=True,
    help="Share of the samples kept for validation.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the train/validation split.")
@click.option("--no-fim", is_flag=True, help="Leave out fill-in-the-middle samples.")
@click.option(
    "--allow-licence",
    "allow",
    multiple=True,
    help="Licences (SPDX ids) whose code may be trained on; default: permissive ones.",
)
@json_option
def dataset(
    repo: Path,
    out: Path,
    valid_share: float,
    seed: int,
    no_fim: bool,
    allow: tuple[str, ...],
    as_json: bool,
) -> None:
    """Build train.jsonl and validation.jsonl (chat format) from the repository REPO."""
    from musubi.finetune.dataset import DatasetOptions, build_dataset, write_dataset

    options = DatasetOptions(valid_share=valid_share, seed=seed, fim=not no_fim)
    if allow:
        options.allowed_licences = frozenset(allow)
    built = build_dataset(repo, options)
    stats = write_dataset(built, out)
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    rows = [{"split": k, **v} for k, v in stats["splits"].items()]
    emit(rows, as_json=False, columns=("split", "examples", "tokens", "mean_tokens", "max_tokens"))
    click.echo(f"kinds: {stats['kinds']}", err=True)
    click.echo(f"dropped: {stats['dropped']}", err=True)
    click.echo(f"written to {out}/", err=True)


@finetune.command()
@click.argument("train", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", required=True, help="Base model (see MUSUBI_FINETUNE_MODELS).")
@click.option(
    "--validation",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Validation file (chat-format JSONL).",
)
@click.option(
    "--suffix",
    default=None,
    help="Suffix of the fine-tuned model's name (ft:<base>:<tenant>:<suffix>).",
)
@click.option(
    "--method",
    type=click.Choice(["lora", "qlora"]),
    default="lora",
    show_default=True,
    help="LoRA, or QLoRA (4-bit base; needs a GPU host).",
)
@click.option("--rank", default=16, show_default=True, help="LoRA rank.")
@click.option("--alpha", default=32, show_default=True, help="LoRA alpha (scaling).")
@click.option(
    "--epochs",
    default=None,
    type=int,
    help="Passes over the training file (default 3).",
)
@click.option("--batch-size", default=None, type=int, help="Samples per step (default 4).")
@click.option(
    "--lr-multiplier", default=None, type=float, help="Learning rate multiplier (default 1.0)."
)
@click.option(
    "--seed",
    default=None,
    type=int,
    help="Seed of the run (data order and adapter initialisation).",
)
@click.option("--wait", is_flag=True, help="Follow the job until it ends.")
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    train: Path,
    model: str,
    validation: Path | None,
    suffix: str | None,
    method: str,
    rank: int,
    alpha: int,
    epochs: int | None,
    batch_size: int | None,
    lr_multiplier: float | None,
    seed: int | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Upload TRAIN (chat JSONL) and start a fine-tuning job."""
    client = _client(ctx)

    def upload(path: Path) -> str:
        with path.open("rb") as fh:
            r = client.call(
                "POST", "/v1/files", files={"file": (path.name, fh)}, data={"purpose": "fine-tune"}
            )
        return str(r.json()["id"])

    hp: dict[str, Any] = {}
    for key, value in (
        ("n_epochs", epochs),
        ("batch_size", batch_size),
        ("learning_rate_multiplier", lr_multiplier),
    ):
        if value is not None:
            hp[key] = value
    body: dict[str, Any] = {
        "model": model,
        "training_file": upload(train),
        "method": {"type": method, method: {"rank": rank, "alpha": alpha, "hyperparameters": hp}},
    }
    if validation:
        body["validation_file"] = upload(validation)
    if suffix:
        body["suffix"] = suffix
    if seed is not None:
        body["seed"] = seed
    job = client.call("POST", "/v1/fine_tuning/jobs", json=body).json()
    if wait:
        job = _follow(client, job["id"], as_json)
    emit(job if as_json else _row(job), as_json=as_json)


def _follow(client: Client, job_id: str, as_json: bool) -> dict[str, Any]:
    seen: set[str] = set()
    while True:
        job: dict[str, Any] = client.call("GET", f"/v1/fine_tuning/jobs/{job_id}").json()
        events = client.call("GET", f"/v1/fine_tuning/jobs/{job_id}/events?limit=100").json()
        for e in reversed(events["data"]):
            if e["id"] not in seen:
                seen.add(e["id"])
                if not as_json:
                    click.echo(e["message"], err=True)
        if job["status"] in DONE:
            return job
        time.sleep(2)


@finetune.command("list")
@click.option(
    "--limit",
    default=20,
    type=click.IntRange(1, 100),
    show_default=True,
    help="Newest jobs to show.",
)
@json_option
@click.pass_context
def list_(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Fine-tuning jobs, newest first."""
    page = _client(ctx).call("GET", "/v1/fine_tuning/jobs", params={"limit": limit}).json()
    emit(
        page["data"] if as_json else [_row(j) for j in page["data"]],
        as_json=as_json,
        columns=COLUMNS,
    )


@finetune.command()
@click.argument("job_id")
@click.option("--events", "n_events", default=10, show_default=True, help="Latest events shown.")
@click.option("--wait", is_flag=True, help="Follow the job until it ends.")
@json_option
@click.pass_context
def show(ctx: click.Context, job_id: str, n_events: int, wait: bool, as_json: bool) -> None:
    """A job, its latest events and its checkpoints."""
    client = _client(ctx)
    if wait:
        _follow(client, job_id, as_json)
    job = client.call("GET", f"/v1/fine_tuning/jobs/{job_id}").json()
    events = client.call(
        "GET", f"/v1/fine_tuning/jobs/{job_id}/events", params={"limit": n_events}
    ).json()["data"]
    checkpoints = client.call("GET", f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
    if as_json:
        click.echo(json.dumps({**job, "events": events, "checkpoints": checkpoints}, indent=2))
        return
    emit(_row(job), as_json=False)
    for e in reversed(events):
        click.echo(f"  {e['level']:5} {e['message']}")
    for c in checkpoints:
        click.echo(f"  checkpoint {c['step_number']}: {c['fine_tuned_model_checkpoint']}")


@finetune.command()
@click.argument("job_id")
@json_option
@click.pass_context
def cancel(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Cancel a job; its worker stops at the next step."""
    job = _client(ctx).call("POST", f"/v1/fine_tuning/jobs/{job_id}/cancel").json()
    emit(job if as_json else _row(job), as_json=as_json)
