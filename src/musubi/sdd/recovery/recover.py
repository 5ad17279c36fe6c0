"""Suggest requirement -> code links where nobody wrote an ID, with a score and evidence.

::

    result = recover(
        [Requirement("REQ-AUTH-001", "WHEN a user logs in with a password ...")],
        [SourceFile("src/auth/login.py", "...")],
    )
    for s in result.suggestions:
        print(s.requirement, s.path, s.score, [e.term for e in s.evidence])

The method (see ``docs/trace-recovery.md``): TF-IDF cosine between the requirement and a
structure-weighted bag of each code file (class and file names count more than identifiers,
comments more than code), plus a small bonus for covering a file's *name*; optionally
mixed with a sentence embedder's cosine (:mod:`.dense`, ``dense_weight``, only for the
``dense_languages`` the embedder reads, passed in as a precomputed matrix); generic
exception and enum classes are down-weighted (:mod:`.roles`); each requirement's scores are
scaled to its best one, mixed with the best score of the file's structural neighbours,
standardised per requirement and per file, and cut per requirement: a file must stand out
(standardised score over ``threshold``), reach ``relative`` of the requirement's best score,
and be among its ``max_links`` best. The last two keep the number of links per requirement
from growing with the size of the project, which a z-score cut alone does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from musubi.sdd.recovery.corpus import CodeDocument, code_document, dependency_graph, term_bag
from musubi.sdd.recovery.dense import dense_rows
from musubi.sdd.recovery.index import TermIndex
from musubi.sdd.recovery.roles import role_weights
from musubi.sdd.recovery.scoring import Matrix, normalise_rows, propagate, select, standardise
from musubi.sdd.recovery.structure import PARTS, parse_code
from musubi.text import Language, detect_language

__all__ = [
    "DEFAULT_PART_WEIGHTS",
    "Evidence",
    "RecoveryConfig",
    "RecoveryResult",
    "Requirement",
    "SourceFile",
    "Suggestion",
    "recover",
]

DEFAULT_PART_WEIGHTS: Mapping[str, float] = {
    "name": 4.0,
    "method": 1.0,
    "field": 0.0,
    "type": 1.0,
    "comment": 2.0,
    "string": 1.0,
    "code": 1.0,
}


@dataclass(frozen=True)
class Requirement:
    id: str
    text: str


@dataclass(frozen=True)
class SourceFile:
    path: str
    text: str


@dataclass(frozen=True)
class Evidence:
    """A term shared by the requirement and the file, and where in the file it was found."""

    term: str
    parts: tuple[str, ...]
    weight: float


@dataclass(frozen=True)
class Suggestion:
    requirement: str
    path: str
    score: float
    similarity: float
    evidence: tuple[Evidence, ...]
    via: str | None = None
    dense: float | None = None  # the embedder's cosine, where the dense signal was used

    def to_dict(self) -> dict[str, Any]:
        return {
            "requirement": self.requirement,
            "path": self.path,
            "score": round(self.score, 4),
            "similarity": round(self.similarity, 4),
            "evidence": [
                {"term": e.term, "parts": list(e.parts), "weight": round(e.weight, 4)}
                for e in self.evidence
            ],
            "via": self.via,
            "dense": None if self.dense is None else round(self.dense, 4),
        }


@dataclass(frozen=True)
class RecoveryConfig:
    """Every knob of the method. The defaults were chosen on eTour only (see the docs)."""

    part_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PART_WEIGHTS))
    bigram_weight: float = 0.5
    name_weight: float = 0.05
    propagation: float = 0.3
    column_weight: float = 0.5
    threshold: float = 1.75
    relative: float = 0.3
    max_links: int = 12
    role_weights: Mapping[str, float] = field(
        default_factory=lambda: {"exception": 0.5, "enum": 0.5}
    )
    generic_share: float = 0.1
    evidence_terms: int = 5
    language: Language | None = None
    # Share of the dense signal in the similarity (0: lexical only), chosen on eTour with the
    # cut (bench/trace_recovery.py --dense). It applies only when a dense matrix is passed to
    # recover() and the requirements' language is one of dense_languages (the shipped
    # embedder, all-MiniLM-L6-v2, reads English; on Italian SMOS it lowered F1).
    dense_weight: float = 0.4
    dense_languages: frozenset[str] = frozenset({"en"})


@dataclass
class RecoveryResult:
    """Suggestions plus the score matrices behind them (for evaluation and debugging)."""

    language: Language
    similarity: Matrix
    combined: Matrix
    standardised: Matrix
    suggestions: list[Suggestion]
    dense: Matrix = field(default_factory=dict)  # the cosines mixed in; empty when unused

    @property
    def dense_used(self) -> bool:
        return bool(self.dense)

    def ranked(self, requirement: str) -> list[tuple[str, float]]:
        """All files for one requirement, best first, by standardised score."""
        cells = self.standardised.get(requirement, {})
        return sorted(cells.items(), key=lambda item: (-item[1], item[0]))


def _evidence(
    index: TermIndex,
    query: Mapping[str, float],
    doc: CodeDocument,
    surface: Mapping[str, str],
    limit: int,
) -> tuple[Evidence, ...]:
    shares = index.contributions(query, doc.path)
    total = sum(shares.values()) or 1.0
    top = sorted(shares.items(), key=lambda item: (-item[1], item[0]))[:limit]
    out = []
    for term, share in top:
        parts = [part for part in PARTS if part in doc.parts.get(term, ())]
        if len(parts) > 1 and "code" in parts:
            parts.remove("code")
        out.append(Evidence(surface.get(term, term), tuple(parts), share / total))
    return tuple(out)


def recover(
    requirements: Sequence[Requirement],
    files: Iterable[SourceFile],
    config: RecoveryConfig | None = None,
    dense: Mapping[str, Mapping[str, float]] | None = None,
) -> RecoveryResult:
    """Score every requirement against every file and suggest the links that stand out.

    ``dense`` is :func:`.dense.dense_similarity` of the same requirements and files (or
    None); it is mixed in with ``config.dense_weight`` where the language allows."""
    config = config or RecoveryConfig()
    files = list(files)
    language = config.language or detect_language(r.text for r in requirements)
    docs = {
        f.path: code_document(
            f.path,
            parse_code(f.path, f.text),
            language,
            config.part_weights,
            config.bigram_weight,
        )
        for f in files
    }
    surface: dict[str, str] = {}
    queries = {
        r.id: term_bag(r.text, language, bigram_weight=config.bigram_weight, surface=surface)
        for r in requirements
    }
    bags = {path: doc.bag for path, doc in docs.items()}
    index = TermIndex(bags, idf_documents=[*bags.values(), *queries.values()])

    similarity: Matrix = {}
    for rid, query in queries.items():
        scores = index.score(query)
        if config.name_weight > 0:
            for path, doc in docs.items():
                total = sum(index.idf(t) for t in doc.name_terms)
                if total > 0:
                    covered = sum(index.idf(t) for t in doc.name_terms if t in query)
                    scores[path] += config.name_weight * covered / total
        similarity[rid] = scores

    used: Matrix = {}
    if dense is not None and config.dense_weight > 0 and language in config.dense_languages:
        used = {rid: dict(dense.get(rid, {})) for rid in similarity}
        similarity = _mix(normalise_rows(similarity), dense_rows(used), config.dense_weight)

    graph = dependency_graph(docs.values())
    if config.role_weights:
        factors = role_weights(
            {f.path: f.text for f in files}, graph, config.role_weights, config.generic_share
        )
        similarity = {
            rid: {path: value * factors[path] for path, value in row.items()}
            for rid, row in similarity.items()
        }
    normalised = normalise_rows(similarity)
    combined, via = propagate(normalised, graph, config.propagation)
    standardised = standardise(combined, config.column_weight)
    suggestions = [
        Suggestion(
            requirement=rid,
            path=path,
            score=standardised[rid][path],
            similarity=normalised[rid][path],
            evidence=_evidence(index, queries[rid], docs[path], surface, config.evidence_terms),
            via=via[rid].get(path),
            dense=used[rid].get(path) if used else None,
        )
        for rid, path in select(
            standardised,
            combined,
            config.threshold,
            relative=config.relative,
            max_links=config.max_links,
        )
    ]
    suggestions.sort(key=lambda s: (s.requirement, -s.score, s.path))
    return RecoveryResult(language, similarity, combined, standardised, suggestions, used)


def _mix(lexical: Matrix, dense: Matrix, weight: float) -> Matrix:
    """``(1 - w)·lexical + w·dense`` per cell (both rows already on a 0..1 scale)."""
    return {
        rid: {
            path: (1.0 - weight) * value + weight * dense.get(rid, {}).get(path, 0.0)
            for path, value in row.items()
        }
        for rid, row in lexical.items()
    }
