"""Agent mode of issue-to-file localisation: a model explores the repository with tools.

LocAgent-style localisation (the strongest published numbers on issue → file) lets a model
*look*: search the code, read the repository map, open a file, follow a name to where it is
defined and used, and only then name the files to change. :func:`agent_localise` runs that
loop over this index, with tools in the OpenAI ``tools`` format, through a ``chat``
callable that the caller binds to the gateway as the tenant (so its models, routing,
quotas, audit and usage ledger apply; :func:`musubi.orchestrator.llm.blocking_chat`).

The tools (:data:`TOOLS`), each answering plain text cut to :attr:`AgentLimits.tool_chars`:

``search(query)``
    The hybrid chunk search of :class:`~musubi.knowledge.retrieval.Retriever`: path, lines,
    symbol of the best chunks.
``repo_map(query, focus)``
    The ranked repository map (:mod:`musubi.knowledge.repomap`): signatures of the
    definitions that matter most for the query and the focus files.
``open_file(path, start, end)``
    Lines of an indexed file (a path that is not indexed is refused: nothing outside the
    index can be read).
``find_references(name)``
    Where a name is defined and which chunks use it.

Bounds, all enforced before a call is made: at most :attr:`AgentLimits.max_steps` model
turns; at most :attr:`AgentLimits.max_tokens` tokens in all (the next turn's prompt, as
counted, plus its answer cap must fit in what is left); and, with ``max_cost``, the cost
*estimate* (:func:`estimate_agent`: every turn used, one full tool answer per turn) must
be within it or the request is refused, and — the hard bound, whatever the model does —
the spent cost plus the next turn's worst case (its counted prompt, its answer cap) must
stay within it while running. A turn runs at most :attr:`AgentLimits.calls_per_turn` tool
calls; the others are answered with an error. A bad tool call (unknown tool, arguments
that are not the JSON the tool takes) is answered with an error message the model can
correct; an upstream failure ends the loop, and the answer is then the lexical ranking
alone (``stopped`` says why).

The answer is merged with :func:`~musubi.knowledge.localise.localise`: the files the agent
names come first, in its order, each with its reason; the lexical ranking fills the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from musubi.errors import InvalidInput, UpstreamError
from musubi.knowledge.localise import FileScore, _allowed, _Repo, localise
from musubi.knowledge.retrieval import Retriever
from musubi.knowledge.store import Filters

__all__ = [
    "TOOLS",
    "AgentLimits",
    "AgentResult",
    "AgentTools",
    "BudgetRefused",
    "agent_localise",
    "estimate_agent",
    "parse_answer",
]


class ChatReply(Protocol):
    """What a chat turn answers (:class:`musubi.orchestrator.llm.Reply` is one)."""

    message: dict[str, Any]
    input_tokens: int
    output_tokens: int
    cost: float

    @property
    def text(self) -> str: ...


Chat = Callable[[dict[str, Any]], ChatReply]
Count = Callable[[str], int]  # tokens of a text for the chosen model
Price = Callable[[int, int], float]  # cost of (input, output) tokens for the chosen model


class BudgetRefused(InvalidInput):
    """The estimated cost of the agent is above the budget the caller set."""


@dataclass(frozen=True)
class AgentLimits:
    max_steps: int = 8  # model turns
    max_tokens: int = 60_000  # input + output tokens over all turns
    max_cost: float | None = None  # USD; None: no budget
    answer_tokens: int = 800  # max_tokens of each turn
    tool_chars: int = 6000  # each tool's answer is cut to this many characters
    calls_per_turn: int = 4  # tool calls run per turn; the rest answered with an error
    candidates: int = 10  # lexical files shown to the model in the first message


SYSTEM = """You localise issues in a code repository: find the files that must be \
changed to resolve the issue. Explore with the tools (search the code, read the \
repository map, open files, find where names are defined and used). Open a file before \
you name it. When you know, answer without calling a tool, with JSON only:
{"files": [{"path": "<path as indexed>", "reason": "<one line>"}]}
best first, at most 5 files, source files that need editing (not tests unless the issue \
is about tests)."""


def _fn(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    params = {"type": "object", "properties": props, "required": required}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": params},
    }


_STR = {"type": "string"}
_INT = {"type": "integer"}
TOOLS: list[dict[str, Any]] = [
    _fn("search", "Hybrid code search; returns the best chunks", {"query": _STR}, ["query"]),
    _fn(
        "repo_map",
        "Signatures of the repository's most relevant definitions, grouped by file",
        {"query": _STR, "focus": {"type": "array", "items": _STR}},
        [],
    ),
    _fn(
        "open_file",
        "Lines of an indexed file (1-based, inclusive)",
        {"path": _STR, "start": _INT, "end": _INT},
        ["path"],
    ),
    _fn(
        "find_references",
        "Where a function, class or method name is defined and where it is used",
        {"name": _STR},
        ["name"],
    ),
]
_PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


class ToolError(ValueError):
    """A tool call the model can correct: its message goes back as the tool's answer."""


class AgentTools:
    """The tools, run against one index (and the repository's files, when ``root`` is
    given: otherwise a file is read back from its chunks)."""

    def __init__(self, retriever: Retriever, root: Path | None, limits: AgentLimits) -> None:
        self.retriever, self.root, self.limits = retriever, root, limits
        self.index = retriever.index
        self.repo = _Repo.load(self.index)
        self.known = set(self.repo.paths)
        self.opened: list[str] = []

    def run(self, name: str, arguments: str) -> str:
        """The tool's answer; :class:`ToolError` for a call the model got wrong."""
        if name not in _PARAMS:
            raise ToolError(f"unknown tool {name!r}; the tools are {', '.join(_PARAMS)}")
        try:
            args = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ToolError(f"arguments are not JSON: {exc.msg}") from None
        if not isinstance(args, dict):
            raise ToolError("arguments must be a JSON object")
        spec = _PARAMS[name]
        unknown = set(args) - set(spec["properties"])
        if unknown:
            raise ToolError(f"{name} takes no {', '.join(sorted(unknown))}")
        for key in spec["required"]:
            if key not in args:
                raise ToolError(f"{name} needs {key!r}")
        for key, value in args.items():
            kind = spec["properties"][key]["type"]
            ok = {
                "string": isinstance(value, str),
                "integer": isinstance(value, int) and not isinstance(value, bool),
                "array": isinstance(value, list) and all(isinstance(v, str) for v in value),
            }[kind]
            if not ok:
                raise ToolError(f"{name}: {key!r} must be a {kind}")
        out: str = getattr(self, f"_{name}")(**args)
        cap = self.limits.tool_chars
        return out if len(out) <= cap else out[:cap] + "\n… (cut)"

    def _search(self, query: str) -> str:
        if not query.strip():
            raise ToolError("search: query is empty")
        hits = self.retriever.search(query, 12)
        lines = [f"{h.path}:{h.start}-{h.end} {h.kind} {h.symbol}".rstrip() for h in hits]
        return "\n".join(lines) or "no match"

    def _repo_map(self, query: str = "", focus: list[str] | None = None) -> str:
        from musubi.knowledge.repomap import build_repo_map

        rmap = build_repo_map(self.index, query, [self._resolve(f) for f in focus or []])
        budget = self.limits.tool_chars // 4
        return rmap.render(budget, lambda s: len(s) // 4 + 1) or "the index has no definitions"

    def _resolve(self, written: str) -> str:
        path = written.strip().lstrip("./")
        if path in self.known:
            return path
        hits = self.repo.match_path(path, frame=False)
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise ToolError(f"{written!r} is ambiguous: {', '.join(hits[:8])}")
        raise ToolError(f"{written!r} is not an indexed file")

    def _open_file(self, path: str, start: int = 1, end: int = 0) -> str:
        path = self._resolve(path)
        lines = self._lines(path)
        start = max(1, start)
        end = len(lines) if end <= 0 else min(end, len(lines))
        if start > end:
            raise ToolError(f"{path} has {len(lines)} lines")
        self.opened.append(path)
        body = "\n".join(f"{n}: {lines[n - 1]}" for n in range(start, end + 1))
        return f"{path} (lines {start}-{end} of {len(lines)})\n{body}"

    def _lines(self, path: str) -> list[str]:
        if self.root is not None:
            file = self.root / path
            try:
                if file.resolve().is_relative_to(self.root.resolve()) and file.is_file():
                    return file.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                pass
        got: dict[int, str] = {}  # no checkout: the file as its chunks hold it
        for start, text in self.index.conn.execute(
            'SELECT start, text FROM chunks WHERE path = ? ORDER BY start, "end"', (path,)
        ):
            for i, line in enumerate(str(text).splitlines()):
                got.setdefault(int(start) + i, line)
        return [got.get(n, "") for n in range(1, max(got, default=0) + 1)]

    def _find_references(self, name: str) -> str:
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
            raise ToolError(f"find_references: {name!r} is not an identifier")
        short = name.rsplit(".", 1)[-1]
        defined = sorted(self.repo.definers.get(name, set()) | self.repo.definers.get(short, set()))
        word = re.compile(rf"\b{re.escape(short)}\b")
        used: list[str] = []
        rows = self.index.conn.execute(
            "SELECT path, start, symbol, text FROM chunks WHERE instr(text, ?) > 0 "
            "ORDER BY path, start",
            (short,),
        )
        for path, start, symbol, text in rows:
            for i, line in enumerate(str(text).splitlines()):
                if word.search(line):
                    used.append(f"{path}:{int(start) + i} {symbol} | {line.strip()[:120]}")
                    break
            if len(used) >= 30:
                break
        head = "defined in: " + (", ".join(defined) or "no indexed file")
        return head + "\nused in:\n" + ("\n".join(used) or "nowhere else")


@dataclass
class AgentResult:
    files: list[FileScore]
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    stopped: str = "answer"  # answer | steps | tokens | cost | upstream error: …
    estimate: dict[str, Any] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)  # tool, arguments, ok
    named: list[str] = field(default_factory=list)  # files the agent named, in its order

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [f.as_dict() for f in self.files],
            "agent": {
                "steps": self.steps,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cost": round(self.cost, 8),
                "stopped": self.stopped,
                "named": self.named,
                "tool_calls": self.calls,
                "estimate": self.estimate,
            },
        }


def _first_message(issue: str, lexical: list[FileScore]) -> str:
    shown = "\n".join(f"- {f.path}" for f in lexical) or "- (none)"
    return (
        f"Issue:\n{issue}\n\nFiles a lexical ranking suggests (may be wrong):\n{shown}\n\n"
        "Find the files to change."
    )


def estimate_agent(
    issue: str, lexical: list[FileScore], limits: AgentLimits, count: Count, price: Price
) -> dict[str, Any]:
    """The loop's cost before any call, if every turn is used: each answer at its cap, one
    full tool answer per turn (a turn with more calls costs more; the loop's own checks
    still stop it at ``max_tokens`` and ``max_cost``). Turn ``i``'s prompt is the first
    prompt plus ``i`` exchanges, and no turn runs past ``max_tokens`` in all."""
    first = count(SYSTEM) + count(_first_message(issue, lexical)) + count(json.dumps(TOOLS))
    exchange = limits.answer_tokens + limits.tool_chars // 3  # a tool answer: ≥ 3 chars/token
    tin = tout = 0
    for i in range(limits.max_steps):
        prompt = first + i * exchange
        if tin + tout + prompt + limits.answer_tokens > limits.max_tokens:
            break
        tin += prompt
        tout += limits.answer_tokens
    cost = price(tin, tout)
    return {
        "input_tokens": tin,
        "output_tokens": tout,
        "cost": round(cost, 8),
        "first_prompt_tokens": first,
        "max_steps": limits.max_steps,
        "max_tokens": limits.max_tokens,
        "currency": "USD",
    }


_JSON = re.compile(r"\{.*\}|\[.*\]", re.S)


def parse_answer(text: str, tools: AgentTools) -> list[tuple[str, str]]:
    """(indexed path, reason) named by the final answer, in order. JSON as asked first;
    failing that, any written path that matches an indexed file."""
    named: list[tuple[str, str]] = []
    found = _JSON.search(text)
    data: Any = None
    if found:
        try:
            data = json.loads(found.group(0))
        except json.JSONDecodeError:
            data = None
    items = data.get("files") if isinstance(data, dict) else data
    if isinstance(items, list):
        for item in items:
            path, reason = (item, "") if isinstance(item, str) else ("", "")
            if isinstance(item, dict):
                path, reason = str(item.get("path") or ""), str(item.get("reason") or "")
            named.append((path, reason))
    else:
        from musubi.knowledge.localise import extract_signals

        named = [(p, "") for p in extract_signals(text).paths]
    out: list[tuple[str, str]] = []
    for written, reason in named:
        try:
            path = tools._resolve(written)
        except ToolError:
            continue
        if path not in {p for p, _ in out}:
            out.append((path, reason))
    return out


def agent_localise(
    retriever: Retriever,
    issue: str,
    chat: Chat,
    model: str,
    count: Count,
    price: Price,
    *,
    root: Path | None = None,
    k: int = 10,
    filters: Filters | None = None,
    limits: AgentLimits | None = None,
    estimate_only: bool = False,
) -> AgentResult:
    """Localise ``issue`` with a model exploring the index through :data:`TOOLS`.

    ``chat`` sends one OpenAI chat request (as the tenant, through the gateway); ``count``
    and ``price`` are the chosen model's token counter and price. Raises
    :class:`BudgetRefused` when the estimate is above ``limits.max_cost``; with
    ``estimate_only`` returns the lexical ranking and the estimate, calling nothing.
    """
    limits = limits or AgentLimits()
    lexical = localise(retriever, issue, max(k, limits.candidates), filters)
    estimate = estimate_agent(issue, lexical[: limits.candidates], limits, count, price)
    result = AgentResult(lexical[:k], estimate=estimate, stopped="estimate only")
    if limits.max_cost is not None and estimate["cost"] > limits.max_cost:
        raise BudgetRefused(
            f"the agent's estimated cost {estimate['cost']:.6f} USD is above the budget "
            f"{limits.max_cost:.6f} USD; lower max_steps or max_tokens, or raise max_cost",
            field="max_cost",
        )
    if estimate_only:
        return result
    tools = AgentTools(retriever, root, limits)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": _first_message(issue, lexical[: limits.candidates])},
    ]
    answer: list[tuple[str, str]] = []
    result.stopped = "steps"
    while result.steps < limits.max_steps:
        prompt = sum(count(str(m.get("content") or "")) for m in messages)
        prompt += sum(count(json.dumps(m["tool_calls"])) for m in messages if "tool_calls" in m)
        prompt += count(json.dumps(TOOLS))
        used = result.input_tokens + result.output_tokens
        if used + prompt + limits.answer_tokens > limits.max_tokens:
            result.stopped = "tokens"
            break
        worst = result.cost + price(prompt, limits.answer_tokens)
        if limits.max_cost is not None and worst > limits.max_cost:
            result.stopped = "cost"
            break
        body = {
            "model": model,
            "messages": messages,
            "tools": TOOLS,
            "max_tokens": limits.answer_tokens,
            "temperature": 0,
        }
        try:
            reply = chat(body)
        except UpstreamError as exc:
            result.stopped = f"upstream error: {exc.message}"
            break
        result.steps += 1
        result.input_tokens += reply.input_tokens
        result.output_tokens += reply.output_tokens
        result.cost += reply.cost
        calls = [c for c in reply.message.get("tool_calls") or [] if isinstance(c, dict)]
        if not calls:
            answer = parse_answer(reply.text, tools)
            result.stopped = "answer"
            break
        messages.append(
            {"role": "assistant", "content": reply.message.get("content"), "tool_calls": calls}
        )
        for n, call in enumerate(calls):
            fn = call.get("function") or {}
            name, arguments = str(fn.get("name") or ""), str(fn.get("arguments") or "")
            try:
                if n >= limits.calls_per_turn:
                    raise ToolError(f"at most {limits.calls_per_turn} tool calls per turn")
                content, ok = tools.run(name, arguments), True
            except ToolError as exc:
                content, ok = f"error: {exc}", False
            result.calls.append({"tool": name, "arguments": arguments[:500], "ok": ok})
            messages.append(
                {"role": "tool", "tool_call_id": str(call.get("id") or ""), "content": content}
            )
    result.files = _merge(answer, lexical, k, filters, tools)
    result.named = [p for p, _ in answer]
    return result


def _merge(
    answer: list[tuple[str, str]],
    lexical: list[FileScore],
    k: int,
    filters: Filters | None,
    tools: AgentTools,
) -> list[FileScore]:
    """The agent's files first (scored above every lexical one), then the lexical rest;
    a file outside ``filters`` is not shown, whoever named it."""
    allowed = _allowed(tools.index, filters)
    answer = [(p, r) for p, r in answer if allowed is None or p in allowed]
    top = max((f.score for f in lexical), default=0.0)
    by_path = {f.path: f for f in lexical}
    out: list[FileScore] = []
    for rank, (path, reason) in enumerate(answer):
        own = by_path[path].why if path in by_path else ()
        why = (f"agent: {reason}" if reason else "agent", *own)
        out.append(FileScore(path, top + len(answer) - rank, why))
    named = {p for p, _ in answer}
    out += [f for f in lexical if f.path not in named]
    return out[:k]
