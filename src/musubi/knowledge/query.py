"""Query terms for lexical search: code synonyms, names, and tests kept in their place.

A question is asked in a user's words ("where are API keys *verified*") and answered in the
code's (``keys.matches``, "constant-time *check*", ``authenticate``). BM25 over the raw terms
ranks by whichever term is rarest and most repeated, so one word can pull in a whole package
that matches nothing else (the audit log's ``verify``, and its tests first, for that question).
Three corrections, applied to BM25's own candidates (:meth:`KnowledgeIndex.lexical`):

* **Synonyms**: each query term is widened with the few words code uses for the same idea
  (:data:`SYNONYMS`, stemmed like the index); matches through a synonym add
  :data:`SYNONYM_WEIGHT` times their BM25 score.
* **Names**: each *concept* (a query term with its synonyms) found in the chunk's path or
  symbol (``identity/keys.py``, ``matches``) raises its score by up to :data:`NAME_BOOST`:
  that is what the code is *about*, not what it mentions.
* **Tests**: a chunk from a test file counts :data:`TEST_WEIGHT` of its score unless the
  question mentions tests; a test names the thing it checks in every line and would otherwise
  outrank the code itself.

Measured and left out: scaling by the share of concepts a chunk's *text* covers (it ignores
IDF, and cost 1 point of BM25 NDCG@10 on CoSQA).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from musubi.text import tokenize

__all__ = ["SYNONYMS", "SYNONYM_NAMED", "SYNONYM_WEIGHT", "Concepts"]

SYNONYM_WEIGHT = 0.25  # a synonym only in the text
SYNONYM_NAMED = 1.0  # a synonym in the path or symbol: the code is about that idea
TEST_WEIGHT = 0.5  # a test chunk, unless the question is about tests
NAME_BOOST = 0.5  # every concept in the path or symbol: x1.5

# Groups of words code and its users use for one idea; every word maps to the others.
_GROUPS = (
    "verify check match authenticate",
    "delete remove drop",
    "create add new insert",
    "find search lookup query",
    "error exception failure",
    "config settings options",
    "start launch spawn",
    "stop shutdown terminate",
    "permission role scope",
    "login signin authenticate",
)


def _synonyms() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for group in _GROUPS:
        stems = {s for word in group.split() for s in tokenize(word)}
        for s in stems:
            table.setdefault(s, set()).update(stems - {s})
    return {s: frozenset(others) for s, others in table.items()}


SYNONYMS = _synonyms()
_TEST_STEMS = frozenset(tokenize("test tests"))


@lru_cache(maxsize=65536)
def _name_terms(names: str) -> frozenset[str]:
    return frozenset(tokenize(names))


@dataclass(frozen=True)
class Concepts:
    """The query's terms, each with its synonyms."""

    terms: tuple[str, ...]
    groups: tuple[frozenset[str], ...]
    expansion: frozenset[str]  # synonyms that are not themselves query terms

    @classmethod
    def of(cls, query: str) -> Concepts:
        terms = tuple(sorted(set(tokenize(query))))
        groups = tuple(frozenset({t, *SYNONYMS.get(t, ())}) for t in terms)
        return cls(terms, groups, frozenset().union(*groups) - set(terms))

    @property
    def synonyms(self) -> list[str]:
        return sorted(self.expansion)

    def covered(self, terms: Iterable[str]) -> float:
        """Share of concepts with at least one of their words among ``terms``."""
        if not self.groups:
            return 0.0
        have = set(terms)
        return sum(1 for g in self.groups if g & have) / len(self.groups)

    def rescore(self, bm25: float, synonyms: float, names: str) -> float:
        """BM25 of the query terms plus that of their synonyms, scaled by the concepts named
        in ``names`` (the chunk's path and symbol); tests demoted."""
        named = _name_terms(names)
        score = bm25 + (SYNONYM_NAMED if named & self.expansion else SYNONYM_WEIGHT) * synonyms
        if _TEST_STEMS & named and not _TEST_STEMS.intersection(self.terms):
            score *= TEST_WEIGHT
        return score * (1 + NAME_BOOST * self.covered(named))
