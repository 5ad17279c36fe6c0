"""Trace-link recovery benchmark: eTour and SMOS, held-out, beside VSM and the published F1.

    .venv/bin/python bench/trace_recovery.py                # all tables
    .venv/bin/python bench/trace_recovery.py --sweep        # plus F1 for other thresholds
    .venv/bin/python bench/trace_recovery.py --dataset PATH # other gold sets (UC/ CC/ answer.csv)

The gold sets are the copy vendored in ``tests/fixtures/datasets/traceability``. Tables:

1. the shipped default on each set beside the published F1 (LiSSA, ICSE 2025);
2. the held-out protocol: VSM's cosine threshold and MUSUBI's per-requirement cut-off
   (relative-to-best, z-score, at most N links) are each chosen by F1 on one set and scored on
   the other, both ways; the default was chosen on eTour, so only its SMOS row is held-out;
3. a stress test for project size: each set with the other set's classes added as
   distractors (the gold is unchanged). A cut that keeps a fixed share of the files (the
   previous z-score-only default) predicts more links per requirement as the project grows.

With ``--dense``, the held-out table gains the dense signal (:mod:`musubi.sdd.recovery.dense`,
the ``--embedder`` named, default the offline MiniLM): its weight is chosen with the cut on
the tuning set only, once with the shipped language gate (dense for English requirements
only; MiniLM reads English) and once whatever the language, beside the rows without it.

    .venv/bin/python bench/trace_recovery.py --dense

With ``--verify``, also the LLM verification pass (:mod:`musubi.sdd.recovery.verify`,
LiSSA's judge) through an in-process gateway (``bench/llm_gateway.py``) on the first
``--verify-max`` requirements of each set (sorted by id): the default cut beside the cut
plus the judge, with requests, tokens, cost and seconds per request. Nothing is tuned on
these sets: the judge's prompt and candidate count were fixed before running it.

    .venv/bin/python bench/trace_recovery.py --verify --verify-max 10          # offline model
    .venv/bin/python bench/trace_recovery.py --verify --llm-provider openai \
        --llm-model gpt-4o-mini --llm-key "$OPENAI_API_KEY"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from musubi.sdd.recovery.datasets import Dataset, find_datasets, load_dataset, locate_dataset_root
from musubi.sdd.recovery.evaluate import (
    evaluate_paths,
    format_held_out,
    format_report,
    held_out,
    metrics,
)
from musubi.sdd.recovery.recover import RecoveryConfig, Requirement, SourceFile, recover
from musubi.sdd.recovery.scoring import select

SWEEP = (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5)
# The default before issue 22: a z-score cut only, no per-requirement cap, no roles.
PREVIOUS = RecoveryConfig(relative=0.0, max_links=10**6, role_weights={})


def sweep(paths: list[Path]) -> str:
    lines = ["", "F1 by threshold (default marked *):"]
    lines.append("dataset   " + "  ".join(f"{t:>5}{'*' if t == 1.75 else ' '}" for t in SWEEP))
    for path in paths:
        dataset = load_dataset(path)
        result = recover(
            [Requirement(rid, text) for rid, text in dataset.requirements.items()],
            [SourceFile(name, text) for name, text in dataset.code.items()],
        )
        cells = []
        for threshold in SWEEP:
            chosen = select(result.standardised, result.combined, threshold)
            predicted = {(rid, dataset.code_id(path)) for rid, path in chosen}
            cells.append(f"{metrics(predicted, dataset.gold).f1:5.3f} ")
        lines.append(f"{dataset.name:<10}" + "  ".join(cells))
    return "\n".join(lines)


def stress(datasets: list[Dataset]) -> str:
    lines = [
        "",
        "Project-size stress: the other sets' classes added as distractors (gold unchanged)",
        f"{'dataset':<20} {'config':<9} {'P':>6} {'R':>6} {'F1':>6} {'links/req':>9}",
    ]
    for dataset in datasets:
        others = [d for d in datasets if d is not dataset]
        for label, extra in (("alone", []), ("+distract", others)):
            files = [SourceFile(name, text) for name, text in dataset.code.items()]
            for other in extra:
                files += [SourceFile(f"x-{other.name}/{n}", t) for n, t in other.code.items()]
            for name, config in (("previous", PREVIOUS), ("default", RecoveryConfig())):
                result = recover(
                    [Requirement(rid, text) for rid, text in dataset.requirements.items()],
                    files,
                    config,
                )
                predicted = {(s.requirement, dataset.code_id(s.path)) for s in result.suggestions}
                m = metrics(predicted, dataset.gold)
                lines.append(
                    f"{dataset.name + ' ' + label:<20} {name:<9} {m.precision:6.3f} "
                    f"{m.recall:6.3f} {m.f1:6.3f} {m.predicted / len(dataset.requirements):9.1f}"
                )
    return "\n".join(lines)


def ceiling(datasets: list[Dataset]) -> str:
    """What the judge can reach at most: with the ``k`` best files per requirement plus the
    cut's links (what :func:`musubi.sdd.recovery.verify.candidates` shows it), the share of
    gold links among them (recall ceiling), F1 of a perfect judge (keeps exactly the gold
    among them), and F1 of keeping them all. No model; nothing is chosen from it."""
    from musubi.sdd.recovery.verify import JudgeConfig, candidates

    lines = [
        "",
        "LLM judge ceiling: the k best files per requirement plus the cut's (default k 5)",
        f"{'dataset':<10} {'k':>3} {'shown/req':>9} {'gold shown':>10} {'perfect judge F1':>16} "
        f"{'keep all F1':>11}",
    ]
    for dataset in datasets:
        reqs = [Requirement(rid, text) for rid, text in dataset.requirements.items()]
        files = [SourceFile(name, text) for name, text in dataset.code.items()]
        result = recover(reqs, files)
        for k in (0, 3, 5, 10, 20):
            cfg = JudgeConfig(candidates=k)
            top = {
                (r.id, dataset.code_id(path))
                for r in reqs
                for path in candidates(result, r.id, cfg)
            }
            perfect = metrics(top & dataset.gold, dataset.gold)
            everything = metrics(top, dataset.gold)
            lines.append(
                f"{dataset.name:<10} {k:>3} {len(top) / len(reqs):>9.1f} {perfect.recall:>10.3f} "
                f"{perfect.f1:>16.3f} {everything.f1:>11.3f}"
            )
    return "\n".join(lines)


def verified(datasets: list[Dataset], args: argparse.Namespace) -> str:
    """The default cut and the cut plus the LLM judge, on a subset of each set."""
    from llm_gateway import from_arguments
    from musubi.sdd.recovery.verify import JudgeConfig, verify

    gw = from_arguments(args)
    lines = [
        "",
        f"LLM verification pass (model {gw.model} via the gateway, "
        f"{args.candidates} candidates per requirement)",
        f"{'dataset':<8} {'reqs':>4} {'method':<12} {'P':>6} {'R':>6} {'F1':>6} "
        f"{'links/req':>9} {'requests':>8} {'tok in':>7} {'tok out':>7} {'USD':>8} {'s/req':>6}",
    ]
    try:
        for dataset in datasets:
            ids = sorted(dataset.requirements)[: args.verify_max]
            reqs = [Requirement(rid, dataset.requirements[rid]) for rid in ids]
            files = [SourceFile(name, text) for name, text in dataset.code.items()]
            result = recover(reqs, files)
            gold = {(r, c) for r, c in dataset.gold if r in set(ids)}
            cut = {(s.requirement, dataset.code_id(s.path)) for s in result.suggestions}
            began = time.perf_counter()
            out = verify(
                result,
                reqs,
                dataset.code,
                gw.chat,
                gw.model,
                gw.count,
                gw.price,
                JudgeConfig(candidates=args.candidates),
            )
            took = time.perf_counter() - began
            judged = {(s.requirement, dataset.code_id(s.path)) for s in out.suggestions}
            for name, predicted in (("default cut", cut), ("cut + judge", judged)):
                m = metrics(predicted, gold)
                extra = (
                    f"{out.requests:>8} {out.input_tokens:>7} {out.output_tokens:>7} "
                    f"{out.cost:>8.4f} {took / max(out.requests, 1):>6.1f}"
                    if name == "cut + judge"
                    else ""
                )
                lines.append(
                    f"{dataset.name:<8} {len(ids):>4} {name:<12} {m.precision:6.3f} "
                    f"{m.recall:6.3f} {m.f1:6.3f} {m.predicted / len(ids):9.1f} {extra}"
                )
            if out.fallback:
                lines.append(f"  {len(out.fallback)} answer(s) unread: the cut kept; {out.stopped}")
    finally:
        gw.close()
    return "\n".join(lines)


def dense_matrices(datasets: list[Dataset], name: str) -> dict[str, dict[str, dict[str, float]]]:
    """Each set's requirement x class cosine matrix from the embedder ``name``."""
    from musubi.knowledge.embeddings import make_embedder
    from musubi.sdd.recovery.dense import dense_similarity

    embedder = make_embedder(name)
    out = {}
    for dataset in datasets:
        began = time.perf_counter()
        out[dataset.name] = dense_similarity(embedder, dataset.requirements, dataset.code)
        texts = len(dataset.requirements) + len(dataset.code)
        print(
            f"dense {dataset.name}: {texts} texts embedded by {embedder.name} "
            f"({getattr(embedder, 'runtime', '-')}) in {time.perf_counter() - began:.1f}s"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from llm_gateway import add_llm_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--dense", action="store_true", help="also the dense signal")
    parser.add_argument("--embedder", default="minilm", help="--dense: the embedder")
    parser.add_argument("--verify", action="store_true", help="also the LLM judge")
    parser.add_argument("--verify-max", type=int, default=10, help="requirements per set")
    parser.add_argument("--candidates", type=int, default=5, help="files judged per requirement")
    add_llm_arguments(parser)
    args = parser.parse_args(argv)
    root = args.dataset or locate_dataset_root(Path(__file__).resolve().parent)
    if root is None:
        print("no gold sets found; pass --dataset PATH", file=sys.stderr)
        return 2
    paths = find_datasets(root)
    started = time.perf_counter()
    reports = evaluate_paths(paths, RecoveryConfig())
    print(format_report(reports, RecoveryConfig().threshold))
    print(f"wall time {time.perf_counter() - started:.2f}s (load + recover + score)")
    datasets = [load_dataset(path) for path in paths]
    dense = dense_matrices(datasets, args.embedder) if args.dense else None
    print()
    print(format_held_out(held_out(datasets, dense)))
    if len(datasets) > 1:
        print(stress(datasets))
    if args.sweep:
        print(sweep(paths))
    print(ceiling(datasets))
    if args.verify:
        print(verified(datasets, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
