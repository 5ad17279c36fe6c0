"""``musubi index|search|context``: the knowledge engine on a local checkout.

The index of ``PATH`` lives under ``<home>/knowledge/local/``; nothing is written into the
repository. The embedder defaults to MiniLM (``--embedder none`` for lexical only).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from musubi.cli.output import emit, fail, json_option

__all__ = ["context", "index", "search"]

_EMBEDDERS = click.Choice(["minilm", "hashing", "none"])


def _workspace(repo: Path, embedder: str, create: bool) -> Any:
    from musubi.blas import set_blas_threads
    from musubi.knowledge.workspace import Workspace, local_dir
    from musubi.settings import Settings

    settings = Settings()
    set_blas_threads(settings.blas_threads)  # before the embedder imports numpy
    return Workspace.open(
        local_dir(settings.home, repo),
        None if embedder == "none" else embedder,
        create,
        vector_url=settings.knowledge_vector_url,
    )


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--embedder",
    type=_EMBEDDERS,
    default="minilm",
    show_default=True,
    help="Embedder for the dense vectors (none: lexical only).",
)
@json_option
def index(path: Path, embedder: str, as_json: bool) -> None:
    """Index the repository at PATH (incremental; an interrupted run resumes)."""
    from rich.progress import Progress

    from musubi.errors import MusubiError
    from musubi.knowledge.indexer import index_repository

    try:
        ws = _workspace(path, embedder, create=True)
    except MusubiError as exc:
        fail(exc.message)
    # A terminal gets a progress bar; anything else (CI, a log file) plain lines on stderr.
    terminal = sys.stderr.isatty()
    with Progress(disable=as_json or not terminal, transient=True) as bar:
        tasks: dict[str, Any] = {}
        plain = PlainProgress()

        def progress(phase: str, done: int, total: int) -> None:
            if not terminal:
                plain(phase, done, total)
                return
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        try:
            report = index_repository(path, ws.index, ws.embedder, ws.store, progress)
        except KeyboardInterrupt:
            ws.close()
            click.echo(
                "musubi index: interrupted; what was indexed and embedded is saved, "
                "run it again to resume",
                err=True,
            )
            raise SystemExit(130) from None
    out = report.as_dict()
    out["index"] = str(ws.path)
    ws.close()
    emit(out, as_json=as_json, title=f"indexed {path}")


class PlainProgress:
    """Progress as lines (``musubi index: embed 64/1200 (5%), 7.1/s``): the first and last
    of each phase, and one every ``every`` seconds between."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._phase = ""
        self._began = self._shown = 0.0
        self._from = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        first = phase != self._phase
        if first:
            self._phase, self._began, self._from = phase, now, done
        if not (first or done >= total or now - self._shown >= self.every):
            return
        self._shown = now
        pct = f" ({100 * done // total}%)" if total else ""
        rate = (done - self._from) / (now - self._began) if now > self._began else 0.0
        speed = f", {rate:.1f}/s" if rate else ""
        click.echo(f"musubi index: {phase} {done}/{total}{pct}{speed}", err=True)


def _search_opts(func: Any) -> Any:
    for option in (
        click.option(
            "--repo",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            default=Path("."),
            show_default=True,
            help="The indexed repository.",
        ),
        click.option(
            "--embedder",
            type=_EMBEDDERS,
            default="minilm",
            show_default=True,
            help="Embedder the index was built with.",
        ),
    ):
        func = option(func)
    return func


@click.command()
@click.argument("query")
@_search_opts
@click.option("-k", "--limit", default=10, show_default=True, help="Results to show.")
@click.option("--path", "path_glob", help="Only paths matching this glob, e.g. 'src/*.py'.")
@click.option("--language", help="Only this language (python, go, markdown …).")
@click.option("--kind", help="Only this kind: function, method, class, block, section, lines.")
@click.option("--files", "by_file", is_flag=True, help="Rank files instead of chunks.")
@click.option(
    "--dense-weight",
    type=click.FloatRange(0, 1),
    default=0.7,
    show_default=True,
    help="Share of the dense score in the fusion (0: BM25 only).",
)
@click.option(
    "--agent",
    is_flag=True,
    help="With --files: a model explores the repository with tools, through the gateway "
    "in this process as --key (needs models:use); the estimate is printed first.",
)
@click.option("--key", envvar="MUSUBI_API_KEY", default=None, help="--agent: the API key.")
@click.option("--model", default=None, help="--agent: model or alias (default: its routing).")
@click.option(
    "--max-steps",
    type=click.IntRange(1, 50),
    default=8,
    show_default=True,
    help="--agent: most model turns.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1000),
    default=60_000,
    show_default=True,
    help="--agent: most tokens, in and out, over all turns.",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(0),
    default=None,
    help="--agent: refuse when the estimated cost (USD) is above this.",
)
@click.option("--estimate", is_flag=True, help="--agent: print the estimate and stop.")
@json_option
def search(
    query: str,
    repo: Path,
    embedder: str,
    limit: int,
    path_glob: str | None,
    language: str | None,
    kind: str | None,
    by_file: bool,
    dense_weight: float,
    agent: bool,
    key: str | None,
    model: str | None,
    max_steps: int,
    max_tokens: int,
    max_cost: float | None,
    estimate: bool,
    as_json: bool,
) -> None:
    """Hybrid (BM25 + embeddings) search of an indexed repository.

    With --files, QUERY is read as an issue: files are ranked by the paths, stack-trace
    frames and defined names it mentions as well as by retrieval, each with the reasons.
    With --agent as well, a model explores the repository first (docs/knowledge.md)."""
    from musubi.errors import MusubiError
    from musubi.knowledge.localise import localise
    from musubi.knowledge.store import Filters

    if agent:
        if not by_file:
            raise click.UsageError("--agent localises files: add --files")
        if not key:
            raise click.UsageError("--agent needs an API key: --key or MUSUBI_API_KEY")
        from musubi.knowledge.agent import AgentLimits

        limits = AgentLimits(max_steps, max_tokens, max_cost)
        request = _AgentRun(repo, embedder, query, limit, Filters(path_glob, language, kind))
        try:
            out = asyncio.run(_agent_search(request, key, model, limits, dense_weight, estimate))
        except MusubiError as exc:
            fail(exc.message)
        info = out["agent"]
        est = info["estimate"]
        click.echo(
            f"agent {info['model']}: estimate in {est['input_tokens']} out "
            f"{est['output_tokens']} {est['cost']:.6f} USD; spent {info['steps']} step(s), "
            f"in {info['input_tokens']} out {info['output_tokens']} {info['cost']:.6f} USD; "
            f"stopped: {info['stopped']}",
            err=True,
        )
        files = out["files"]
        if as_json:
            emit(out, as_json=True)
            return
        files = [{**f, "why": "; ".join(f["why"])} for f in files]
        emit(files, as_json=False, columns=["path", "score", "why"])
        return

    try:
        ws = _workspace(repo, embedder, create=False)
    except MusubiError as exc:
        fail(exc.message)
    filters = Filters(path_glob, language, kind)
    try:
        if by_file:
            files = [
                f.as_dict() for f in localise(ws.retriever(dense_weight), query, limit, filters)
            ]
            if not as_json:
                files = [{**f, "why": "; ".join(f["why"])} for f in files]
            emit(files, as_json=as_json, columns=["path", "score", "why"])
            return
        hits = ws.retriever(dense_weight).search(query, limit, filters)
    finally:
        ws.close()
    emit(
        [h.as_dict(with_text=as_json) for h in hits],
        as_json=as_json,
        columns=["score", "path", "start", "end", "kind", "symbol"],
    )


@dataclass
class _AgentRun:
    repo: Path
    embedder: str
    query: str
    limit: int
    filters: Any


async def _agent_search(
    run: _AgentRun,
    key: str,
    model: str | None,
    limits: Any,
    dense_weight: float,
    estimate_only: bool,
) -> dict[str, Any]:
    from musubi.cli.local_gateway import local_model

    async with local_model(key, "localise", model) as lm:

        def work() -> dict[str, Any]:
            from musubi.knowledge.agent import agent_localise

            ws = _workspace(run.repo, run.embedder, create=False)
            try:
                result = agent_localise(
                    ws.retriever(dense_weight),
                    run.query,
                    lm.chat,
                    lm.model,
                    lm.count,
                    lm.price,
                    root=run.repo.resolve(),
                    k=run.limit,
                    filters=run.filters,
                    limits=limits,
                    estimate_only=estimate_only,
                )
            finally:
                ws.close()
            out = result.as_dict()
            out["agent"]["model"] = lm.model
            return out

        return await asyncio.to_thread(work)


@click.command()
@click.argument("task")
@_search_opts
@click.option("--model", default="gpt-4o", show_default=True, help="Whose tokenizer counts.")
@click.option("--budget", default=8000, show_default=True, help="Token budget.")
@json_option
def context(task: str, repo: Path, embedder: str, model: str, budget: int, as_json: bool) -> None:
    """Pack repo map, spec excerpts and code for TASK into a token budget."""
    from musubi.errors import MusubiError
    from musubi.knowledge.context import pack_context

    try:
        ws = _workspace(repo, embedder, create=False)
    except MusubiError as exc:
        fail(exc.message)
    pack = pack_context(ws.retriever(), task, model, budget)
    ws.close()
    if as_json:
        emit(pack.as_dict(), as_json=True)
        return
    click.echo(pack.render())
    click.echo(
        f"\n-- {pack.tokens}/{budget} tokens ({pack.encoding}), {len(pack.pieces)} pieces", err=True
    )
