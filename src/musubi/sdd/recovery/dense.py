"""Dense similarity: a sentence embedder's cosine between a requirement and a code file.

Lexical recovery (:mod:`.index`) finds a file only when it shares words with the
requirement; "sign in" never meets ``LoginView`` there. A sentence embedder places texts
that *mean* the same near each other, so it can. This module turns an embedder into a
score matrix ``{requirement: {file: cosine}}`` that :func:`~.recover.recover` mixes into the
lexical one (``RecoveryConfig.dense_weight``), and :func:`dense_rows` rescales each row so
the two are on one scale before they are mixed.

The embedder is passed in (anything with ``embed_documents(texts)`` returning one vector
per text, e.g. :class:`musubi.knowledge.embeddings.Embedder`): the SDD toolchain does not
import the knowledge engine, and recovery works with no embedder installed at all.

A code file is embedded as a short *description* (:func:`describe`), not its raw text: the
embedders at hand read a few hundred tokens at most, and the first few hundred tokens of a
Java class are its imports. The description is its declared names and method names split
into words, then its comments, which is what says what the file is about.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from musubi.sdd.recovery.structure import parse_code
from musubi.text import split_identifier

__all__ = ["TextEmbedder", "dense_rows", "dense_similarity", "describe"]

Matrix = dict[str, dict[str, float]]

_DESCRIPTION_CHARS = 1200
_COMMENT_NOISE = re.compile(r"/\*+|\*+/|^\s*\*|//+|#|@\w+|\"\"\"|'''", re.M)
_SPACE = re.compile(r"\s+")


class TextEmbedder(Protocol):
    """What recovery needs of an embedder: one unit (or any) vector per text, in order."""

    def embed_documents(self, texts: Sequence[str]) -> Any: ...


def _phrase(identifier: str) -> str:
    return " ".join(split_identifier(identifier))


def describe(path: str, text: str, limit: int = _DESCRIPTION_CHARS) -> str:
    """A file as its names and methods in words, then its comments, cut to ``limit``."""
    structure = parse_code(path, text)
    names = list(dict.fromkeys(_phrase(n) for n in structure.parts["name"] if n))
    methods = list(dict.fromkeys(_phrase(m) for m in structure.parts["method"] if m))
    comments = [
        _SPACE.sub(" ", _COMMENT_NOISE.sub(" ", c)).strip() for c in structure.parts["comment"]
    ]
    pieces = [
        ". ".join(n for n in names if n),
        ", ".join(m for m in methods if m),
        " ".join(c for c in dict.fromkeys(comments) if c),
    ]
    out = ". ".join(p for p in pieces if p)
    return out[:limit]


def _unit(vector: Sequence[float]) -> list[float]:
    values = [float(x) for x in vector]
    norm = math.sqrt(sum(x * x for x in values)) or 1.0
    return [x / norm for x in values]


def dense_similarity(
    embedder: TextEmbedder,
    requirements: Mapping[str, str],
    files: Mapping[str, str],
) -> Matrix:
    """Cosine of every requirement text with every file's :func:`describe` text."""
    rids, paths = list(requirements), list(files)
    if not rids or not paths:
        return {rid: dict.fromkeys(paths, 0.0) for rid in rids}
    req = embedder.embed_documents([requirements[r] for r in rids])
    code = embedder.embed_documents([describe(path, files[path]) for path in paths])
    if hasattr(req, "__matmul__") and hasattr(req, "tolist"):  # an array: one product
        req = req / ((req * req).sum(1, keepdims=True) ** 0.5 + 1e-12)
        code = code / ((code * code).sum(1, keepdims=True) ** 0.5 + 1e-12)
        rows: list[list[float]] = (req @ code.T).tolist()
    else:
        code_units = [_unit(v) for v in code]
        rows = [
            [sum(a * b for a, b in zip(r, c, strict=True)) for c in code_units]
            for r in map(_unit, req)
        ]
    return {
        rid: {path: float(value) for path, value in zip(paths, row, strict=True)}
        for rid, row in zip(rids, rows, strict=True)
    }


def dense_rows(matrix: Mapping[str, Mapping[str, float]]) -> Matrix:
    """Each row rescaled to ``(cos - mean) / (max - mean)``, floored at 0.

    Cosines of a sentence embedder sit in a narrow band well above 0 for *any* pair of
    texts of one domain, so their raw values cannot be mixed with a lexical score that is 0
    for unrelated files. Measured from the row's mean, only the files that stand out keep a
    share: the best gets 1, an average one 0.
    """
    out: Matrix = {}
    for rid, cells in matrix.items():
        values = list(cells.values())
        if not values:
            out[rid] = {}
            continue
        mean, top = sum(values) / len(values), max(values)
        span = top - mean
        out[rid] = {
            path: (max(value - mean, 0.0) / span if span > 0 else 0.0)
            for path, value in cells.items()
        }
    return out
