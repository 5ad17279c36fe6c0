"""``musubi trace recover`` and ``musubi trace evaluate``: trace-link recovery.

Two plain click commands; the ``trace`` group adds them lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from musubi.cli.output import emit, fail, json_option
from musubi.cli.sdd_common import handle_errors, path_option

__all__ = ["evaluate", "recover"]


def _evidence_text(evidence: list[dict[str, object]]) -> str:
    items = []
    for e in evidence:
        parts = e["parts"]
        where = "/".join(str(p) for p in parts) if isinstance(parts, list) and parts else "?"
        items.append(f"{e['term']} ({where})")
    return ", ".join(items)


@click.command("recover")
@path_option
@click.option(
    "--requirement",
    "-r",
    "requirement_ids",
    multiple=True,
    help="Only this requirement ID (repeatable).",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Standardised score a link must reach (default 1.75; lower finds more).",
)
@click.option("--top", type=click.IntRange(min=1), default=None, help="At most N per requirement.")
@click.option(
    "--dense",
    is_flag=True,
    help="Mix in a sentence embedder's similarity (English requirements only; embeds every "
    "requirement and file first).",
)
@click.option(
    "--embedder",
    default="minilm",
    show_default=True,
    help="--dense: the embedder (an entry point of musubi.embedders).",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Let a model judge each requirement's best candidates (LiSSA), through the gateway "
    "in this process as --key (needs models:use); the estimate is printed first.",
)
@click.option("--key", envvar="MUSUBI_API_KEY", default=None, help="--verify: the API key.")
@click.option("--model", default=None, help="--verify: model or alias (default: its routing).")
@click.option(
    "--candidates",
    type=click.IntRange(1, 20),
    default=5,
    show_default=True,
    help="--verify: files judged per requirement.",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(0),
    default=None,
    help="--verify: refuse when the estimated cost (USD) is above this.",
)
@json_option
@handle_errors
def recover(
    root: Path,
    requirement_ids: tuple[str, ...],
    threshold: float | None,
    top: int | None,
    dense: bool,
    embedder: str,
    verify: bool,
    key: str | None,
    model: str | None,
    candidates: int,
    max_cost: float | None,
    as_json: bool,
) -> None:
    """Suggest requirement -> code links where no ID was written, with evidence."""
    from musubi.sdd.recovery.project import recover_project
    from musubi.sdd.recovery.recover import RecoveryConfig

    config = RecoveryConfig() if threshold is None else RecoveryConfig(threshold=threshold)
    text_embedder = None
    if dense:
        from musubi.knowledge.embeddings import make_embedder

        text_embedder = make_embedder(embedder)
    result, requirements = recover_project(root.resolve(), config, requirement_ids, text_embedder)
    known = {r.id for r in requirements}
    missing = [rid for rid in requirement_ids if rid not in known]
    if missing:
        fail(f"unknown requirement(s): {', '.join(missing)}")
    if verify:
        if not key:
            raise click.UsageError("--verify needs an API key: --key or MUSUBI_API_KEY")
        wanted = [r for r in requirements if not requirement_ids or r.id in requirement_ids]
        result.suggestions = _verified(
            root.resolve(), result, wanted, key, model, candidates, max_cost
        )
    shown: dict[str, int] = {}
    rows = []
    for suggestion in result.suggestions:
        count = shown.get(suggestion.requirement, 0)
        if top is not None and count >= top:
            continue
        shown[suggestion.requirement] = count + 1
        rows.append(suggestion.to_dict())
    if as_json:
        emit(rows, as_json=True)
        return
    table = [
        {
            "requirement": row["requirement"],
            "file": row["path"],
            "score": f"{row['score']:.2f}",
            "evidence": _evidence_text(row["evidence"])
            + (f"; via {row['via']}" if row["via"] else ""),
        }
        for row in rows
    ]
    emit(table, as_json=False, columns=["requirement", "file", "score", "evidence"])
    click.echo(
        f"{len(rows)} suggestion(s) for {len(requirements)} requirement(s) "
        f"({result.language} stemming"
        + (f", dense {config.dense_weight}" if result.dense_used else "")
        + (
            f"; --dense not used for {result.language} text"
            if dense and not result.dense_used
            else ""
        )
        + ")",
        err=True,
    )


def _verified(
    root: Path,
    result: Any,
    requirements: list[Any],
    key: str,
    model: str | None,
    candidates: int,
    max_cost: float | None,
) -> list[Any]:
    """The suggestions the model's judgement keeps (musubi.sdd.recovery.verify)."""
    import asyncio

    from musubi.cli.local_gateway import local_model
    from musubi.sdd.recovery.project import code_files
    from musubi.sdd.recovery.verify import JudgeConfig, verify

    texts = {f.path: f.text for f in code_files(root)}
    cfg = JudgeConfig(candidates=candidates, max_cost=max_cost)

    async def run() -> Any:
        async with local_model(key, "trace-verify", model) as lm:
            args = (result, requirements, texts, lm.chat, lm.model, lm.count, lm.price, cfg)
            return lm.model, await asyncio.to_thread(verify, *args)

    name, out = asyncio.run(run())
    est = out.estimate
    click.echo(
        f"verify {name}: estimate {est['requests']} request(s), in {est['input_tokens']} "
        f"out {est['output_tokens']} {est['cost']:.6f} USD; spent {out.requests}, in "
        f"{out.input_tokens} out {out.output_tokens} {out.cost:.6f} USD; dropped "
        f"{len(out.dropped)}, added {len(out.added)}"
        + (f"; unjudged (the cut kept): {', '.join(out.fallback)}" if out.fallback else "")
        + (f"; {out.stopped}" if out.stopped else ""),
        err=True,
    )
    return list(out.suggestions)


def _default_dataset_root() -> Path | None:
    from musubi.sdd.recovery.datasets import locate_dataset_root

    return locate_dataset_root(Path.cwd()) or locate_dataset_root(Path(__file__).parent)


@click.command("evaluate")
@click.option(
    "--dataset",
    "dataset",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A gold set (UC/, CC/, answer.csv) or a folder of them "
    "(default: the copy in the checkout, tests/fixtures/datasets/traceability).",
)
@click.option("--threshold", type=float, default=None, help="Override the standardised threshold.")
@json_option
@handle_errors
def evaluate(dataset: Path | None, threshold: float | None, as_json: bool) -> None:
    """Score recovered links against gold links: P, R, F1, F2 beside published F1."""
    from musubi.sdd.recovery.datasets import find_datasets
    from musubi.sdd.recovery.evaluate import evaluate_paths, format_report
    from musubi.sdd.recovery.recover import RecoveryConfig

    root = dataset or _default_dataset_root()
    if root is None:
        fail("no gold sets found; pass --dataset PATH (a folder with UC/, CC/ and answer.csv)")
        return
    paths = find_datasets(root)
    if not paths:
        fail(f"no gold sets (UC/, CC/, answer.csv) in {root}")
    config = RecoveryConfig() if threshold is None else RecoveryConfig(threshold=threshold)
    reports = evaluate_paths(paths, config)
    if as_json:
        emit(
            {"threshold": config.threshold, "datasets": [r.to_dict() for r in reports]},
            as_json=True,
        )
        return
    click.echo(format_report(reports, config.threshold))
