"""An LLM verification pass over recovered links (LiSSA's method: retrieval, then a judge).

LiSSA (Fuchß et al., ICSE 2025) retrieves candidate code for each requirement and asks a
language model, for each candidate, whether the two are related; the model's answer keeps
or drops the link. :func:`verify` does the same over :func:`~.recover.recover`'s ranking:
for each requirement, its :attr:`JudgeConfig.candidates` best files (by standardised
score, whether or not they passed the cut) and every link of the cut besides (so no link
is dropped without being judged) are shown to the model in *one* request, each
as a short outline (:func:`outline`: declarations and comments, no method bodies), and the
model answers which of them implement the requirement. The links kept are the verified
ones; a requirement whose answer cannot be read keeps the cut's suggestions (``fallback``).

The model is reached through a ``chat`` callable that sends one OpenAI chat request; a
server binds it to the gateway as the tenant (:func:`musubi.orchestrator.llm.blocking_chat`),
so the tenant's models, quotas and usage ledger apply. :func:`estimate_verify` prices the
pass before any call (every prompt counted, every answer at its cap); with ``max_cost`` the
pass is refused when the estimate is above it. Stdlib only, like the rest of the package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from musubi.errors import InvalidInput, UpstreamError
from musubi.sdd.recovery.recover import RecoveryResult, Requirement, Suggestion

__all__ = [
    "JudgeConfig",
    "VerifyRefused",
    "VerifyResult",
    "candidates",
    "estimate_verify",
    "judge_messages",
    "outline",
    "verify",
]


class ChatReply(Protocol):
    """What a chat turn answers (:class:`musubi.orchestrator.llm.Reply` is one)."""

    input_tokens: int
    output_tokens: int
    cost: float

    @property
    def text(self) -> str: ...


Chat = Callable[[dict[str, Any]], ChatReply]
Count = Callable[[str], int]
Price = Callable[[int, int], float]


class VerifyRefused(InvalidInput):
    """The verification pass's estimated cost is above the budget."""


@dataclass(frozen=True)
class JudgeConfig:
    candidates: int = 5  # files per requirement shown to the judge (its best, by score)
    outline_chars: int = 1500  # each file's outline is cut to this
    answer_tokens: int = 150
    max_cost: float | None = None  # USD; refused above


SYSTEM = """You verify trace links between a software requirement and source files. \
A file is linked when its code takes part in implementing the requirement (the classes \
that carry out the described behaviour), not merely because it shares words with it. \
Answer with JSON only: {"links": [<numbers of the linked files>]} (an empty list when \
none is)."""

_COMMENT = re.compile(r"^\s*(//|/\*|\*|#|\"\"\"|''')")
_PY_DECL = re.compile(r"^\s*(class|def|async def)\s")


def outline(text: str, limit: int = JudgeConfig.outline_chars) -> str:
    """A file as its declarations and comments: for brace languages, the lines at class
    level (depth ≤ 1: the class, its fields, method signatures, Javadoc); otherwise class
    and function lines and comments. Cut to ``limit`` characters."""
    lines: list[str] = []
    if "{" in text:
        depth = 0
        for line in text.splitlines():
            stripped = line.strip()
            if stripped and depth <= 1 and not stripped.startswith(("import ", "package ")):
                lines.append(stripped)
            depth += line.count("{") - line.count("}")
            depth = max(depth, 0)
    else:
        lines = [
            ln.strip()
            for ln in text.splitlines()
            if ln.strip() and (_PY_DECL.match(ln) or _COMMENT.match(ln))
        ]
    out = "\n".join(lines)
    return out if len(out) <= limit else out[:limit] + "\n…"


def judge_messages(
    requirement: Requirement, paths: Sequence[str], texts: Mapping[str, str], cfg: JudgeConfig
) -> list[dict[str, str]]:
    parts = [f"Requirement {requirement.id}:\n{requirement.text.strip()}\n\nFiles:"]
    for n, path in enumerate(paths, 1):
        parts.append(f"[{n}] {path}\n{outline(texts.get(path, ''), cfg.outline_chars)}")
    parts.append('Which files implement the requirement? JSON: {"links": [numbers]}')
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def candidates(result: RecoveryResult, rid: str, cfg: JudgeConfig) -> list[str]:
    """The files the judge sees for ``rid``: its ``cfg.candidates`` best by standardised
    score, and every link of the cut besides (a link is never dropped unseen), best first."""
    ranked = [path for path, _ in result.ranked(rid)]
    cut = {s.path for s in result.suggestions if s.requirement == rid}
    return [p for i, p in enumerate(ranked) if i < cfg.candidates or p in cut]


def estimate_verify(
    result: RecoveryResult,
    requirements: Sequence[Requirement],
    texts: Mapping[str, str],
    count: Count,
    price: Price,
    cfg: JudgeConfig | None = None,
) -> dict[str, Any]:
    """Tokens and cost of the pass before any call: each prompt counted, answers at cap."""
    cfg = cfg or JudgeConfig()
    tin = calls = 0
    for r in requirements:
        paths = candidates(result, r.id, cfg)
        if paths:
            calls += 1
            tin += sum(count(m["content"]) for m in judge_messages(r, paths, texts, cfg))
    tout = calls * cfg.answer_tokens
    return {
        "requests": calls,
        "input_tokens": tin,
        "output_tokens": tout,
        "cost": round(price(tin, tout), 8),
        "currency": "USD",
    }


@dataclass
class VerifyResult:
    suggestions: list[Suggestion]  # the links kept
    dropped: list[tuple[str, str]] = field(default_factory=list)  # cut's links the judge dropped
    added: list[tuple[str, str]] = field(default_factory=list)  # links below the cut it kept
    fallback: list[str] = field(default_factory=list)  # requirements whose answer was unread
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    estimate: dict[str, Any] = field(default_factory=dict)
    stopped: str = ""  # "" or why the pass ended early ("upstream error: …")


_NUMBERS = re.compile(r"\{[^{}]*\}")


def _chosen(text: str, n: int) -> list[int] | None:
    """The 1-based numbers the judge kept, or None if the answer cannot be read."""
    for found in reversed(_NUMBERS.findall(text)):
        try:
            data = json.loads(found)
        except json.JSONDecodeError:
            continue
        links = data.get("links") if isinstance(data, dict) else None
        if isinstance(links, list) and all(isinstance(x, int) for x in links):
            return [x for x in links if 1 <= x <= n]
    return None


def verify(
    result: RecoveryResult,
    requirements: Sequence[Requirement],
    texts: Mapping[str, str],
    chat: Chat,
    model: str,
    count: Count,
    price: Price,
    cfg: JudgeConfig | None = None,
) -> VerifyResult:
    """Keep the links the judge confirms among each requirement's best candidates.

    ``texts`` maps each file's path to its text. Raises :class:`VerifyRefused` when the
    estimate is above ``cfg.max_cost``. An upstream failure ends the pass: requirements
    not judged yet keep the cut's suggestions (listed in ``fallback``)."""
    cfg = cfg or JudgeConfig()
    estimate = estimate_verify(result, requirements, texts, count, price, cfg)
    if cfg.max_cost is not None and estimate["cost"] > cfg.max_cost:
        raise VerifyRefused(
            f"the verification pass's estimated cost {estimate['cost']:.6f} USD is above "
            f"the budget {cfg.max_cost:.6f} USD; judge fewer candidates or raise the budget",
            field="max_cost",
        )
    out = VerifyResult([], estimate=estimate)
    by_req: dict[str, list[Suggestion]] = {}
    for s in result.suggestions:
        by_req.setdefault(s.requirement, []).append(s)
    for r in requirements:
        cut = by_req.get(r.id, [])
        paths = candidates(result, r.id, cfg)
        if not paths:
            continue
        if out.stopped:
            out.suggestions += cut
            out.fallback.append(r.id)
            continue
        body = {
            "model": model,
            "messages": judge_messages(r, paths, texts, cfg),
            "max_tokens": cfg.answer_tokens,
            "temperature": 0,
        }
        try:
            reply = chat(body)
        except UpstreamError as exc:
            out.stopped = f"upstream error: {exc.message}"
            out.suggestions += cut
            out.fallback.append(r.id)
            continue
        out.requests += 1
        out.input_tokens += reply.input_tokens
        out.output_tokens += reply.output_tokens
        out.cost += reply.cost
        chosen = _chosen(reply.text, len(paths))
        if chosen is None:
            out.suggestions += cut
            out.fallback.append(r.id)
            continue
        kept = {paths[i - 1] for i in chosen}
        cut_paths = {s.path for s in cut}
        out.dropped += [(r.id, s.path) for s in cut if s.path not in kept]
        out.suggestions += [s for s in cut if s.path in kept]
        for path in paths:
            if path in kept and path not in cut_paths:
                out.added.append((r.id, path))
                score = result.standardised.get(r.id, {}).get(path, 0.0)
                sim = result.similarity.get(r.id, {}).get(path, 0.0)
                out.suggestions.append(Suggestion(r.id, path, score, sim, ()))
    out.suggestions.sort(key=lambda s: (s.requirement, -s.score, s.path))
    return out
