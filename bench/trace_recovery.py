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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--sweep", action="store_true")
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
    print()
    print(format_held_out(held_out(datasets)))
    if len(datasets) > 1:
        print(stress(datasets))
    if args.sweep:
        print(sweep(paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
