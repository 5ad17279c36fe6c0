"""A small in-memory term index: TF-IDF cosine (the vector space model).

Documents are bags of weighted terms (``{"heritag": 3.0, ...}``), so a term found in a class
name can count more than one found in a comment. Pure Python. (BM25 was tried as well and
ranked clearly worse on the eTour gold set, so it is not offered.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["TermIndex"]


class TermIndex:
    """Inverted index over weighted bags of terms.

    ``idf_documents`` (default: the indexed documents) are the bags the document frequency is
    counted on; passing the queries too makes a term common to every requirement (a template
    word such as "actor") weigh little even when code never uses it.
    """

    def __init__(
        self,
        documents: Mapping[str, Mapping[str, float]],
        *,
        idf_documents: list[Mapping[str, float]] | None = None,
    ) -> None:
        self.documents = {key: dict(bag) for key, bag in documents.items()}
        counted = idf_documents if idf_documents is not None else list(self.documents.values())
        df: dict[str, int] = {}
        for bag in counted:
            for term in bag:
                df[term] = df.get(term, 0) + 1
        n = max(len(counted), 1)
        self._idf = {term: math.log((n + 1) / (count + 0.5)) for term, count in df.items()}
        self._default_idf = math.log((n + 1) / 0.5)
        self._vectors = {key: self._weigh(bag) for key, bag in self.documents.items()}
        postings: dict[str, list[str]] = {}
        for key, bag in self.documents.items():
            for term in bag:
                postings.setdefault(term, []).append(key)
        self._postings = postings

    def idf(self, term: str) -> float:
        return self._idf.get(term, self._default_idf)

    def _weigh(self, bag: Mapping[str, float]) -> dict[str, float]:
        """Damped TF times IDF, L2-normalised."""
        vector = {term: _damp(tf) * self.idf(term) for term, tf in bag.items() if tf > 0}
        norm = math.sqrt(sum(value * value for value in vector.values())) or 1.0
        return {term: value / norm for term, value in vector.items()}

    def vector(self, key: str) -> dict[str, float]:
        return self._vectors[key]

    def query_vector(self, query: Mapping[str, float]) -> dict[str, float]:
        return self._weigh(query)

    def contributions(self, query: Mapping[str, float], key: str) -> dict[str, float]:
        """How much each shared term adds to the cosine of document ``key`` for ``query``."""
        qvec = self._weigh(query)
        dvec = self._vectors[key]
        return {term: weight * dvec[term] for term, weight in qvec.items() if term in dvec}

    def score(self, query: Mapping[str, float]) -> dict[str, float]:
        """Cosine of ``query`` with every document (documents sharing no term score 0)."""
        scores = dict.fromkeys(self.documents, 0.0)
        qvec = self._weigh(query)
        for term, weight in qvec.items():
            for key in self._postings.get(term, ()):
                scores[key] += weight * self._vectors[key][term]
        return scores


def _damp(tf: float) -> float:
    """Sublinear term frequency: ``1 + ln tf`` from 1 up, linear (so positive) below 1."""
    return 1.0 + math.log(tf) if tf >= 1.0 else tf
