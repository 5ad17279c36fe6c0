"""A fine-tuning dataset from a project's own repository, in OpenAI's chat format.

Four kinds of examples, each a user message and the answer to learn:

* ``requirement→design``: a requirement (EARS statement) and the design decision (ADR)
  that names it;
* ``task→change``: a task and the code change that the trace links tie to it: commits
  whose message names the task or one of its requirements (``git log``/``git show``
  through :func:`musubi.git.run_git`, hardened, no diff drivers);
* ``docstring→code`` and ``code→docstring``: Python functions and classes with a
  docstring (``ast``);
* ``fim``: fill-in-the-middle samples cut from code files (a prefix and a suffix in, the
  middle out), seeded.

Then: secrets are scrubbed (key shapes and ``password = "..."`` assignments become
``<REDACTED>``; an example holding a private key block is dropped); code whose licence is
declared (an ``SPDX-License-Identifier`` line, or the repository's LICENSE) and not in the
allowed set is left out, as are vendored folders; exact duplicates (after whitespace
folding) go; a seeded hash puts each example in train or validation. Token counts per
split use the gateway's estimator (:func:`musubi.gateway.tokens.estimate_text`).
The spec parsing and the trace links are the SDD core's (:mod:`musubi.sdd`); what is
here is only the pairing, cleaning and splitting.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musubi.git import run_git
from musubi.sdd.project import load_project
from musubi.sdd.trace.scan import EXCLUDED_DIRS, scan_commits

__all__ = [
    "PERMISSIVE",
    "Built",
    "DatasetOptions",
    "Example",
    "build_dataset",
    "detect_licence",
    "scrub",
    "write_dataset",
]

PERMISSIVE = frozenset(
    {"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "0BSD", "Unlicense", "CC0-1.0"}
)
VENDORED = frozenset({"vendor", "vendored", "third_party", "third-party", "node_modules"})
SYSTEM = "You are the engineering assistant of this project."
MAX_ANSWER_CHARS = 6000

_SECRETS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"),  # OpenAI-style and similar keys
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub tokens
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"\bmsk_[0-9a-f]{8}_[0-9a-f]{16,}"),  # MUSUBI keys
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # JWTs
]
_ASSIGNED = re.compile(
    r"""(?i)\b([A-Za-z0-9_]*(?:password|passwd|secret|token|api_?key)[A-Za-z0-9_]*)"""
    r"""(\s*[:=]\s*)(["'])(?!<REDACTED>)([^"'\s]{6,})\3"""
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_SPDX = re.compile(
    r"SPDX-License-Identifier:\s*([A-Za-z0-9.+-]+(?:\s+(?:OR|AND|WITH)\s+[A-Za-z0-9.+-]+)*)"
)
_LICENCE_TEXTS = [
    ("GNU AFFERO GENERAL PUBLIC LICENSE", "AGPL-3.0"),
    ("GNU LESSER GENERAL PUBLIC LICENSE", "LGPL-3.0"),
    ("GNU GENERAL PUBLIC LICENSE", "GPL-3.0"),
    ("Mozilla Public License", "MPL-2.0"),
    ("Apache License", "Apache-2.0"),
    ("Permission is hereby granted, free of charge", "MIT"),
    ("Redistribution and use in source and binary forms", "BSD-3-Clause"),
    ("Permission to use, copy, modify, and/or distribute", "ISC"),
    ("This is free and unencumbered software", "Unlicense"),
]
_CODE_SUFFIXES = {".py", ".js", ".ts", ".go", ".rs", ".java", ".kt", ".rb", ".c", ".cpp", ".cs"}


@dataclass
class DatasetOptions:
    valid_share: float = 0.1
    seed: int = 0
    fim: bool = True
    fim_per_file: int = 2
    allowed_licences: frozenset[str] = PERMISSIVE
    max_files: int = 2000


@dataclass(frozen=True)
class Example:
    kind: str
    prompt: str
    answer: str
    source: str  # where it came from: a file, a commit, an ADR

    def messages(self) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": self.prompt},
            {"role": "assistant", "content": self.answer},
        ]


@dataclass
class Built:
    train: list[Example] = field(default_factory=list)
    validation: list[Example] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    licence: str | None = None


def scrub(text: str) -> tuple[str, int]:
    """``text`` with secrets replaced by ``<REDACTED>``, and how many were."""
    count = 0
    for pattern in _SECRETS:
        text, n = pattern.subn("<REDACTED>", text)
        count += n
    text, n = _ASSIGNED.subn(lambda m: f"{m[1]}{m[2]}{m[3]}<REDACTED>{m[3]}", text)
    return text, count + n


def detect_licence(root: Path) -> str | None:
    """The repository's licence (an SPDX id) from its LICENSE/COPYING file; None: none
    declared (the organisation's own code)."""
    for name in ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "COPYING"):
        path = root / name
        if path.is_file():
            text = path.read_text("utf-8", "replace")[:4000]
            if m := _SPDX.search(text):
                return m[1]
            for marker, spdx in _LICENCE_TEXTS:
                if marker.lower() in text.lower():
                    return spdx
            return "LicenseRef-unknown"
    return None


def _allowed(licence: str | None, allowed: frozenset[str]) -> bool:
    if licence is None:
        return True
    ids = re.split(r"\s+(?:OR|AND|WITH)\s+", licence)
    return any(i in allowed for i in ids) if " OR " in licence else all(i in allowed for i in ids)


def _code_files(root: Path, options: DatasetOptions) -> list[Path]:
    listed = run_git(root, "ls-files", "-z")
    if listed is not None:
        names = [n for n in listed.decode("utf-8", "replace").split("\0") if n]
    else:
        names = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
    out = []
    for name in sorted(names):
        parts = Path(name).parts
        if any(p in EXCLUDED_DIRS or p in VENDORED or p.startswith(".") for p in parts[:-1]):
            continue
        if Path(name).suffix in _CODE_SUFFIXES and (root / name).is_file():
            out.append(root / name)
    return out[: options.max_files]


def _spec_examples(root: Path) -> list[Example]:
    project = load_project(root)
    requirements = {r.id: r for r in project.requirements}
    out = []
    for adr in project.adrs:
        design = "\n\n".join(
            f"{label}: {text.strip()}"
            for label, text in (
                ("Context", adr.context),
                ("Decision", adr.decision),
                ("Consequences", adr.consequences),
            )
            if text and text.strip()
        )
        if not design:
            continue
        for req_id in adr.requirements:
            req = requirements.get(req_id)
            if req is None or not req.statement:
                continue
            prompt = (
                f"Requirement {req.id}: {req.title}\n{req.statement}\n\n"
                "Write the design decision that addresses this requirement."
            )
            answer = f"{adr.id}: {adr.title}\n\n{design}"
            out.append(Example("requirement→design", prompt, answer, f"{adr.file}:{adr.line}"))
    for task in project.tasks:
        ids = {task.id, *task.requirements}
        commits = [link for link in scan_commits(root) if link.id in ids and link.sha]
        for link in {c.sha: c for c in commits}.values():
            assert link.sha is not None
            diff = run_git(root, "show", "--no-ext-diff", "--no-textconv", "--format=", link.sha)
            if not diff:
                continue
            text = diff.decode("utf-8", "replace").strip()
            if not text or len(text) > MAX_ANSWER_CHARS:
                continue
            reqs = f" (requirements: {', '.join(task.requirements)})" if task.requirements else ""
            prompt = (
                f"Task {task.id}: {task.title}{reqs}\n\nWrite the code change, as a unified diff."
            )
            out.append(Example("task→change", prompt, text, link.sha[:12]))
    return out


def _python_examples(path: Path, text: str, rel: str) -> list[Example]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines()
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        doc = ast.get_docstring(node)
        if not doc or len(doc) < 20 or node.end_lineno is None:
            continue
        code = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        if len(code) > MAX_ANSWER_CHARS:
            continue
        body = node.body[0]
        assert body.end_lineno is not None
        bare = "\n".join(
            lines[node.lineno - 1 : body.lineno - 1] + lines[body.end_lineno : node.end_lineno]
        )
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        out.append(
            Example(
                "docstring→code",
                f"Write the Python {kind} `{node.name}` ({rel}) that does this:\n\n{doc}",
                code,
                f"{rel}:{node.lineno}",
            )
        )
        out.append(
            Example(
                "code→docstring",
                f"Write the docstring of this Python {kind}:\n\n```python\n{bare}\n```",
                doc,
                f"{rel}:{node.lineno}",
            )
        )
    return out


def _fim_examples(text: str, rel: str, rng: random.Random, n: int) -> list[Example]:
    lines = text.splitlines(keepends=True)
    out: list[Example] = []
    if len(lines) < 8:
        return out
    for _ in range(n):
        start = rng.randrange(2, len(lines) - 4)
        end = min(len(lines) - 1, start + rng.randrange(1, 6))
        prefix = "".join(lines[max(0, start - 40) : start])
        middle = "".join(lines[start:end])
        suffix = "".join(lines[end : end + 20])
        if not middle.strip():
            continue
        prompt = (
            f"Fill in the missing lines of {rel}.\n\n<prefix>\n{prefix}</prefix>\n"
            f"<suffix>\n{suffix}</suffix>"
        )
        out.append(Example("fim", prompt, middle, f"{rel}:{start + 1}"))
    return out


def _key(e: Example) -> str:
    folded = " ".join(e.prompt.split()) + "\0" + " ".join(e.answer.split())
    return hashlib.sha256(folded.encode()).hexdigest()


def build_dataset(root: Path, options: DatasetOptions | None = None) -> Built:
    """Every example of the repository at ``root``, cleaned and split."""
    options = options or DatasetOptions()
    root = root.resolve()
    built = Built(licence=detect_licence(root))
    rng = random.Random(options.seed)
    raw = _spec_examples(root)
    repo_ok = _allowed(built.licence, options.allowed_licences)
    for path in _code_files(root, options):
        rel = str(path.relative_to(root))
        text = path.read_text("utf-8", "replace")
        spdx = _SPDX.search(text[:2000])
        licence = spdx[1] if spdx else None
        if not (_allowed(licence, options.allowed_licences) if licence else repo_ok):
            built.dropped["licence"] += 1
            continue
        if path.suffix == ".py":
            raw += _python_examples(path, text, rel)
        if options.fim:
            raw += _fim_examples(text, rel, rng, options.fim_per_file)
    seen: set[str] = set()
    for example in raw:
        if _PRIVATE_KEY.search(example.prompt) or _PRIVATE_KEY.search(example.answer):
            built.dropped["private key"] += 1
            continue
        prompt, n1 = scrub(example.prompt)
        answer, n2 = scrub(example.answer)
        if n1 + n2:
            built.dropped["secrets scrubbed (kept)"] += n1 + n2
        clean = Example(example.kind, prompt, answer, example.source)
        key = _key(clean)
        if key in seen:
            built.dropped["duplicate"] += 1
            continue
        seen.add(key)
        share = int(hashlib.sha256(f"{options.seed}:{key}".encode()).hexdigest()[:8], 16) / 2**32
        (built.validation if share < options.valid_share else built.train).append(clean)
    return built


def _stats(examples: list[Example]) -> dict[str, Any]:
    from musubi.gateway.tokens import estimate_text

    tokens = [sum(estimate_text(m["content"]) for m in e.messages()) for e in examples]
    return {
        "examples": len(examples),
        "tokens": sum(tokens),
        "mean_tokens": round(sum(tokens) / len(tokens), 1) if tokens else 0,
        "max_tokens": max(tokens, default=0),
    }


def write_dataset(built: Built, out: Path) -> dict[str, Any]:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``stats.json``; return the stats."""
    out.mkdir(parents=True, exist_ok=True)
    for name, examples in (("train", built.train), ("validation", built.validation)):
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for e in examples:
                fh.write(json.dumps({"messages": e.messages()}, ensure_ascii=False) + "\n")
    stats = {
        "licence": built.licence,
        "splits": {"train": _stats(built.train), "validation": _stats(built.validation)},
        "kinds": dict(Counter(e.kind for e in built.train + built.validation)),
        "dropped": dict(built.dropped),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    return stats
