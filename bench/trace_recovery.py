"""Trace-link recovery benchmark: eTour and SMOS, beside the published F1 (LiSSA, ICSE 2025).

    .venv/bin/python bench/trace_recovery.py                # the table and timing
    .venv/bin/python bench/trace_recovery.py --sweep        # plus F1 for other thresholds
    .venv/bin/python bench/trace_recovery.py --dataset PATH # another gold set (UC/ CC/ answer.csv)

The gold sets are the copy vendored in ``tests/fixtures/datasets/traceability``.
The sweep shows how sensitive the result is to the one threshold; the default was chosen on
eTour alone and is *not* changed per dataset.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from musubi.sdd.recovery.datasets import find_datasets, load_dataset, locate_dataset_root
from musubi.sdd.recovery.evaluate import evaluate_paths, format_report, metrics
from musubi.sdd.recovery.recover import (
    RecoveryConfig,
    Requirement,
    SourceFile,
    recover,
)
from musubi.sdd.recovery.scoring import select

SWEEP = (1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5)


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
    if args.sweep:
        print(sweep(paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
