"""Precision, recall, F1 and F2 of recovered links against a gold set, beside published F1.

Links are compared at file level: a predicted ``(requirement, class)`` pair is a true
positive when ``answer.csv`` lists it. Counts are pooled over all requirements of a dataset
(micro-averaged), as in the LiSSA paper.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musubi.sdd.recovery.corpus import term_bag
from musubi.sdd.recovery.datasets import Dataset, load_dataset
from musubi.sdd.recovery.index import TermIndex
from musubi.sdd.recovery.recover import (
    RecoveryConfig,
    RecoveryResult,
    Requirement,
    SourceFile,
    recover,
)
from musubi.sdd.recovery.scoring import select
from musubi.text import detect_language

__all__ = [
    "CUT_GRID",
    "DENSE_WEIGHTS",
    "PUBLISHED_F1",
    "REPORT_COLUMNS",
    "VSM_THRESHOLDS",
    "DatasetReport",
    "HeldOutRow",
    "Metrics",
    "evaluate_dataset",
    "evaluate_paths",
    "format_held_out",
    "format_report",
    "held_out",
    "metrics",
    "report_rows",
    "vsm_similarity",
]

# LiSSA (Fuchß et al., ICSE 2025), Table III, F1. VSM/LSI/FTLR are the "OPT" rows, whose
# threshold was tuned per project; LiSSA is the best LLM configuration.
PUBLISHED_F1: Mapping[str, Mapping[str, float]] = {
    "etour": {"VSM": 0.483, "LSI": 0.453, "FTLR": 0.548, "LiSSA": 0.526},
    "smos": {"VSM": 0.422, "LSI": 0.422, "FTLR": 0.409, "LiSSA": 0.294},
}


Link = tuple[str, str]


@dataclass(frozen=True)
class Metrics:
    true_positives: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.gold if self.gold else 0.0

    def f_beta(self, beta: float) -> float:
        p, r = self.precision, self.recall
        if p + r == 0:
            return 0.0
        b2 = beta * beta
        return (1 + b2) * p * r / (b2 * p + r)

    @property
    def f1(self) -> float:
        return self.f_beta(1.0)

    @property
    def f2(self) -> float:
        return self.f_beta(2.0)


def metrics(predicted: Iterable[tuple[str, str]], gold: Iterable[tuple[str, str]]) -> Metrics:
    """Pooled counts of ``predicted`` links against ``gold`` links (duplicates ignored)."""
    pred, truth = set(predicted), set(gold)
    return Metrics(len(pred & truth), len(pred), len(truth))


@dataclass(frozen=True)
class DatasetReport:
    name: str
    requirements: int
    files: int
    metrics: Metrics
    seconds: float

    def published(self) -> Mapping[str, float]:
        key = self.name.lower().split("_")[0]
        return PUBLISHED_F1.get(key, {})

    def to_dict(self) -> dict[str, Any]:
        m = self.metrics
        return {
            "dataset": self.name,
            "requirements": self.requirements,
            "files": self.files,
            "gold_links": m.gold,
            "predicted_links": m.predicted,
            "true_positives": m.true_positives,
            "precision": round(m.precision, 3),
            "recall": round(m.recall, 3),
            "f1": round(m.f1, 3),
            "f2": round(m.f2, 3),
            "seconds": round(self.seconds, 2),
            "published_f1": dict(self.published()),
        }


def evaluate_dataset(dataset: Dataset, config: RecoveryConfig | None = None) -> DatasetReport:
    """Recover links for every requirement of ``dataset`` and score them against its gold."""
    started = time.perf_counter()
    result = recover(
        [Requirement(rid, text) for rid, text in dataset.requirements.items()],
        [SourceFile(name, text) for name, text in dataset.code.items()],
        config,
    )
    predicted = {(s.requirement, dataset.code_id(s.path)) for s in result.suggestions}
    return DatasetReport(
        name=dataset.name,
        requirements=len(dataset.requirements),
        files=len(dataset.code),
        metrics=metrics(predicted, dataset.gold),
        seconds=time.perf_counter() - started,
    )


def evaluate_paths(
    paths: Iterable[Path], config: RecoveryConfig | None = None
) -> list[DatasetReport]:
    return [evaluate_dataset(load_dataset(path), config) for path in paths]


REPORT_COLUMNS = ("dataset", "P", "R", "F1", "F2", "TP/pred/gold", "VSM", "LSI", "FTLR", "LiSSA")


def report_rows(reports: Iterable[DatasetReport]) -> list[dict[str, str]]:
    """One row per dataset: our P/R/F1/F2 and link counts, then the published F1 values."""
    rows: list[dict[str, str]] = []
    for report in reports:
        m = report.metrics
        row = {
            "dataset": report.name,
            "P": f"{m.precision:.3f}",
            "R": f"{m.recall:.3f}",
            "F1": f"{m.f1:.3f}",
            "F2": f"{m.f2:.3f}",
            "TP/pred/gold": f"{m.true_positives}/{m.predicted}/{m.gold}",
        }
        published = report.published()
        for method in ("VSM", "LSI", "FTLR", "LiSSA"):
            row[method] = f"{published[method]:.3f}" if method in published else "-"
        rows.append(row)
    return rows


def format_report(reports: Iterable[DatasetReport], threshold: float) -> str:
    """The table as plain fixed-width text (for terminals, logs and the bench script)."""
    reports = list(reports)
    rows = report_rows(reports)
    widths = {
        col: max(len(col) + (1 if col in _TUNED else 0), *(len(r[col]) for r in rows))
        for col in REPORT_COLUMNS
    }
    ours = REPORT_COLUMNS[:6]

    def line(cells: Mapping[str, str]) -> str:
        left = "  ".join(cells[c].ljust(widths[c]) for c in ours)
        right = "  ".join(cells[c].ljust(widths[c]) for c in REPORT_COLUMNS[6:])
        return f"{left}  |  {right}".rstrip()

    header = {c: c + ("*" if c in _TUNED else "") for c in REPORT_COLUMNS}
    seconds = sum(r.seconds for r in reports)
    return "\n".join(
        [
            "Trace-link recovery, file level: ours (P, R, F1, F2) | published F1",
            line(header),
            *(line(row) for row in rows),
            f"Ours: one threshold ({threshold}) for every project, chosen on eTour only; "
            f"{seconds:.1f}s in all.",
            "Published: LiSSA (ICSE 2025) Table III. * OPT rows: threshold tuned per project.",
        ]
    )


_TUNED = frozenset({"VSM", "LSI", "FTLR"})


# --- held-out protocol: VSM baseline and the method's cut-offs, tuned on one set only -------

VSM_THRESHOLDS = (0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
Cut = tuple[float, float, int | None]  # (relative, threshold, max_links)
CUT_GRID: tuple[Cut, ...] = tuple(
    (relative, threshold, max_links)
    for relative in (0.0, 0.3, 0.5, 0.7)
    for threshold in (1.0, 1.5, 1.75, 2.0)
    for max_links in (3, 5, 8, 12, None)
)


def vsm_similarity(dataset: Dataset) -> dict[str, dict[str, float]]:
    """Plain VSM (the classic baseline): TF-IDF cosine of the whole requirement text with
    the whole code text; no structure weights, bigrams, propagation or roles."""
    language = detect_language(dataset.requirements.values())
    bags = {
        dataset.code_id(name): term_bag(text, language, bigram_weight=0.0)
        for name, text in dataset.code.items()
    }
    index = TermIndex(bags)
    return {
        rid: index.score(term_bag(text, language, bigram_weight=0.0))
        for rid, text in dataset.requirements.items()
    }


def vsm_links(similarity: Mapping[str, Mapping[str, float]], threshold: float) -> set[Link]:
    return {(r, c) for r, row in similarity.items() for c, v in row.items() if v >= threshold}


def cut_links(result: RecoveryResult, dataset: Dataset, cut: Cut) -> set[Link]:
    relative, threshold, max_links = cut
    chosen = select(
        result.standardised, result.combined, threshold, relative=relative, max_links=max_links
    )
    return {(r, dataset.code_id(path)) for r, path in chosen}


@dataclass(frozen=True)
class HeldOutRow:
    """One method, its knobs chosen on ``tuned_on``, scored on ``reported_on``."""

    method: str
    tuned_on: str
    reported_on: str
    setting: str
    metrics: Metrics
    requirements: int

    @property
    def held_out(self) -> bool:
        return self.tuned_on != self.reported_on


def _recover_dataset(
    dataset: Dataset,
    config: RecoveryConfig | None = None,
    dense: Mapping[str, Mapping[str, float]] | None = None,
) -> RecoveryResult:
    return recover(
        [Requirement(rid, text) for rid, text in dataset.requirements.items()],
        [SourceFile(name, text) for name, text in dataset.code.items()],
        config,
        dense,
    )


# Shares of the dense signal tried on the tuning set (0 = lexical only, also a candidate).
DENSE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
Dense = Mapping[str, Mapping[str, Mapping[str, float]]]  # dataset name -> dense matrix


def _dense_rows(
    datasets: Sequence[Dataset], dense: Dense, label: str, languages: frozenset[str]
) -> list[HeldOutRow]:
    """Dense weight and cut chosen together on ``tune`` by F1, scored on every set.

    ``languages`` is where dense applies (``RecoveryConfig.dense_languages``): the shipped
    gate, or every language to see what the embedder does outside it."""
    results = {
        (d.name, w): _recover_dataset(
            d, RecoveryConfig(dense_weight=w, dense_languages=languages), dense.get(d.name)
        )
        for d in datasets
        for w in DENSE_WEIGHTS
    }
    rows: list[HeldOutRow] = []
    for tune in datasets:
        weight, cut = max(
            ((w, c) for w in DENSE_WEIGHTS for c in CUT_GRID),
            key=lambda wc: (
                metrics(cut_links(results[tune.name, wc[0]], tune, wc[1]), tune.gold).f1,
                -wc[0],
            ),
        )
        for report in datasets:
            result = results[report.name, weight]
            applied = "" if result.dense_used or weight == 0 else " (off: language)"
            rows.append(
                HeldOutRow(
                    label,
                    tune.name,
                    report.name,
                    f"dense={weight}{applied} rel={cut[0]} z={cut[1]} max={cut[2]}",
                    metrics(cut_links(result, report, cut), report.gold),
                    len(report.requirements),
                )
            )
    return rows


def held_out(datasets: Sequence[Dataset], dense: Dense | None = None) -> list[HeldOutRow]:
    """For every (tune, report) pair: VSM's threshold and our cut chosen on ``tune`` by F1,
    then scored on both sets; plus the shipped default (chosen on eTour) on every set.

    With ``dense`` (each set's :func:`~.dense.dense_similarity`), two more methods: the
    dense weight chosen with the cut on ``tune``, once with the shipped language gate and
    once applied whatever the language."""
    results = {d.name: _recover_dataset(d) for d in datasets}
    vsm = {d.name: vsm_similarity(d) for d in datasets}
    rows: list[HeldOutRow] = []
    for tune in datasets:
        t_vsm = max(
            VSM_THRESHOLDS, key=lambda t: metrics(vsm_links(vsm[tune.name], t), tune.gold).f1
        )
        cut = max(
            CUT_GRID,
            key=lambda c: metrics(cut_links(results[tune.name], tune, c), tune.gold).f1,
        )
        for report in datasets:
            rows.append(
                HeldOutRow(
                    "VSM",
                    tune.name,
                    report.name,
                    f"cosine>={t_vsm}",
                    metrics(vsm_links(vsm[report.name], t_vsm), report.gold),
                    len(report.requirements),
                )
            )
            rows.append(
                HeldOutRow(
                    "MUSUBI",
                    tune.name,
                    report.name,
                    f"rel={cut[0]} z={cut[1]} max={cut[2]}",
                    metrics(cut_links(results[report.name], report, cut), report.gold),
                    len(report.requirements),
                )
            )
    default = RecoveryConfig()
    for report in datasets:
        rows.append(
            HeldOutRow(
                "MUSUBI default",
                "eTour_en",
                report.name,
                f"rel={default.relative} z={default.threshold} max={default.max_links}",
                metrics(cut_links(results[report.name], report, _cut(default)), report.gold),
                len(report.requirements),
            )
        )
    if dense is not None:
        rows += _dense_rows(datasets, dense, "MUSUBI+dense", default.dense_languages)
        rows += _dense_rows(datasets, dense, "+dense anylang", frozenset({"en", "it"}))
    return rows


def _cut(config: RecoveryConfig) -> Cut:
    return (config.relative, config.threshold, config.max_links)


def format_held_out(rows: Iterable[HeldOutRow]) -> str:
    lines = [
        "Held-out protocol: knobs chosen by F1 on 'tuned on', scored on 'reported on'",
        f"{'method':<15} {'tuned on':<9} {'reported on':<12} {'split':<9} "
        f"{'P':>6} {'R':>6} {'F1':>6} {'links/req':>9}  setting",
    ]
    for row in rows:
        m = row.metrics
        split = "held-out" if row.held_out else "tuned"
        lines.append(
            f"{row.method:<15} {row.tuned_on:<9} {row.reported_on:<12} {split:<9} "
            f"{m.precision:6.3f} {m.recall:6.3f} {m.f1:6.3f} "
            f"{m.predicted / max(row.requirements, 1):9.1f}  {row.setting}"
        )
    return "\n".join(lines)
