"""Bags of terms for requirements and code files, and the code dependency graph.

A bag maps a term to its weighted frequency. Terms are stems from :mod:`.text`; two stems
that follow each other in the text also form a bigram term (``cultur_heritag``), weighted
less, so "cultural heritage" in a requirement matches ``CulturalHeritageManager`` better than
a file that says "cultural" and "heritage" far apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from musubi.sdd.recovery.structure import PARTS, CodeStructure
from musubi.stopwords import STOP_WORDS
from musubi.text import Language, stem, words

__all__ = ["CodeDocument", "code_document", "dependency_graph", "term_bag", "term_sequence"]

_NAME = re.compile(r"[A-Za-z_]\w{3,}")


def term_sequence(text: str, language: Language) -> list[tuple[str, str] | None]:
    """``(stem, surface word)`` per kept word, ``None`` where a stop word broke the phrase."""
    out: list[tuple[str, str] | None] = []
    for word in words(text):
        if len(word) <= 1 or word.isdigit() or word in STOP_WORDS:
            out.append(None)
        else:
            out.append((stem(word, language), word))
    return out


def term_bag(
    text: str,
    language: Language,
    *,
    weight: float = 1.0,
    bigram_weight: float = 0.5,
    surface: dict[str, str] | None = None,
) -> dict[str, float]:
    """Weighted unigram and bigram terms of ``text``; fills ``surface`` (stem -> word)."""
    bag: dict[str, float] = {}
    previous: tuple[str, str] | None = None
    for item in term_sequence(text, language):
        if item is not None:
            term, word = item
            bag[term] = bag.get(term, 0.0) + weight
            if surface is not None:
                surface.setdefault(term, word)
            if previous is not None and bigram_weight > 0:
                bigram = f"{previous[0]}_{term}"
                bag[bigram] = bag.get(bigram, 0.0) + weight * bigram_weight
                if surface is not None:
                    surface.setdefault(bigram, f"{previous[1]} {word}")
        previous = item
    return bag


@dataclass
class CodeDocument:
    """One code file as index input: its bag, where each term came from, its names."""

    path: str
    bag: dict[str, float] = field(default_factory=dict)
    parts: dict[str, set[str]] = field(default_factory=dict)
    name_terms: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    references: set[str] = field(default_factory=set)


def code_document(
    path: str,
    structure: CodeStructure,
    language: Language,
    part_weights: Mapping[str, float],
    bigram_weight: float,
) -> CodeDocument:
    """Build the weighted bag of one parsed file (parts with weight 0 are left out)."""
    doc = CodeDocument(path=path, references={ref.lower() for ref in structure.references})
    for part in PARTS:
        weight = part_weights.get(part, 0.0)
        if weight <= 0:
            continue
        for text in structure.parts[part]:
            bag = term_bag(text, language, weight=weight, bigram_weight=bigram_weight)
            for term, value in bag.items():
                doc.bag[term] = doc.bag.get(term, 0.0) + value
                doc.parts.setdefault(term, set()).add(part)
    for text in structure.parts["name"]:
        doc.name_terms.update(item[0] for item in term_sequence(text, language) if item is not None)
    declared, file_stem = structure.parts["name"][1:], structure.parts["name"][0]
    doc.names = {name.lower() for name in declared if _NAME.fullmatch(name)}
    if _NAME.fullmatch(file_stem) and file_stem.lower() != file_stem:
        doc.names.add(file_stem.lower())
    return doc


def dependency_graph(documents: Iterable[CodeDocument]) -> dict[str, set[str]]:
    """Undirected "mentions by name" graph between files.

    File A and file B are neighbours when A's code uses an identifier that B declares as a
    class, interface, struct or enum (or B's CamelCase file name), or the other way round.
    """
    docs = list(documents)
    owner: dict[str, set[str]] = {}
    for doc in docs:
        for name in doc.names:
            owner.setdefault(name, set()).add(doc.path)
    graph: dict[str, set[str]] = {doc.path: set() for doc in docs}
    for doc in docs:
        for ref in doc.references:
            for other in owner.get(ref, ()):
                if other != doc.path:
                    graph[doc.path].add(other)
                    graph[other].add(doc.path)
    return graph
