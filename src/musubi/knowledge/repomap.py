"""A ranked map of a repository's symbols, rendered to fit a token budget.

Definitions are the named units the chunker found (functions, methods, classes, with their
first line as signature). A file *references* a definition when one of its chunks uses the
name. Files are ranked by PageRank over that reference graph, personalised towards the
files in hand and the files the query hits, and definitions inherit their file's rank
(boosted when the query names them) — the idea behind Aider's repo map.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from musubi.knowledge.store import KnowledgeIndex
from musubi.text import tokenize

__all__ = ["Definition", "RepoMap", "build_repo_map", "pagerank"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


@dataclass(frozen=True)
class Definition:
    path: str
    name: str
    symbol: str
    kind: str
    line: int
    signature: str


def pagerank(
    edges: dict[str, Counter[str]],
    nodes: Iterable[str],
    personal: dict[str, float] | None = None,
    damping: float = 0.85,
    iterations: int = 40,
) -> dict[str, float]:
    """Weighted, personalised PageRank by power iteration (dangling mass to the prior)."""
    nodes = sorted(set(nodes))
    if not nodes:
        return {}
    total = sum((personal or {}).get(n, 0.0) for n in nodes)
    prior = {n: (personal or {}).get(n, 0.0) / total if total else 1 / len(nodes) for n in nodes}
    rank = dict(prior)
    out_weight = {n: sum(edges.get(n, Counter()).values()) for n in nodes}
    for _ in range(iterations):
        nxt = {n: (1 - damping) * prior[n] for n in nodes}
        dangling = sum(rank[n] for n in nodes if not out_weight[n])
        for n in nodes:
            nxt[n] += damping * dangling * prior[n]
        for src, targets in edges.items():
            if out_weight.get(src):
                share = damping * rank[src] / out_weight[src]
                for dst, w in targets.items():
                    nxt[dst] += share * w
        rank = nxt
    return rank


@dataclass
class RepoMap:
    definitions: list[Definition]
    file_rank: dict[str, float]
    scores: dict[Definition, float]

    def ranked(self) -> list[Definition]:
        return sorted(self.definitions, key=lambda d: (-self.scores[d], d.path, d.line))

    def render(self, budget: int, count: Callable[[str], int]) -> str:
        """Top definitions grouped by file, as many as fit in ``budget`` tokens."""
        chosen: list[Definition] = []
        used = 0
        for d in self.ranked():
            cost = (
                count(f"  {d.line}: {d.signature}\n")
                + (2 if not any(c.path == d.path for c in chosen) else 0)
                + (count(d.path) if not any(c.path == d.path for c in chosen) else 0)
            )
            if used + cost > budget:
                continue
            chosen.append(d)
            used += cost
        by_file: dict[str, list[Definition]] = defaultdict(list)
        for d in chosen:
            by_file[d.path].append(d)
        order = sorted(by_file, key=lambda p: -self.file_rank.get(p, 0.0))
        lines: list[str] = []
        for path in order:
            lines.append(f"{path}:")
            lines += [
                f"  {d.line}: {d.signature}" for d in sorted(by_file[path], key=lambda d: d.line)
            ]
        return "\n".join(lines)


def build_repo_map(index: KnowledgeIndex, query: str = "", focus: Iterable[str] = ()) -> RepoMap:
    chunks = index.chunks()
    defs: list[Definition] = []
    defined_in: dict[str, set[str]] = defaultdict(set)
    for c in chunks:
        if c.kind in ("function", "method", "class") and c.symbol:
            name = c.symbol.rsplit(".", 1)[-1]
            sig = _signature(c.text, skip_header=c.kind == "method")
            defs.append(Definition(c.path, name, c.symbol, c.kind, c.start, sig))
            defined_in[name].add(c.path)
    edges: dict[str, Counter[str]] = defaultdict(Counter)
    for c in chunks:
        for ident in set(_IDENT.findall(c.text)):
            targets = defined_in.get(ident)
            if not targets or len(targets) > 8:  # too common a name to say much
                continue
            for dst in targets:
                if dst != c.path:
                    edges[c.path][dst] += 1
    files = {c.path for c in chunks}
    personal: dict[str, float] = {f: 1.0 for f in focus if f in files}
    if query:
        for c, score in index.lexical(query, 50):
            personal[c.path] = personal.get(c.path, 0.0) + score
    rank = pagerank(edges, files, personal or None)
    terms = set(tokenize(query))
    scores = {}
    for d in defs:
        boost = 1.0 + 2.0 * len(terms & set(tokenize(d.symbol)))
        scores[d] = rank.get(d.path, 0.0) * boost
    return RepoMap(defs, rank, scores)


def _signature(text: str, skip_header: bool) -> str:
    """The unit's first line that is not a decorator/attribute (a method chunk starts with
    its class header, which is skipped)."""
    lines = text.splitlines()[1:] if skip_header else text.splitlines()
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith(("@", "#[", "[", "//", "#", "/*", "*")):
            return stripped[:160]
    return lines[0].strip()[:160] if lines else ""
