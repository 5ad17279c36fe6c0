"""The ``implement`` step: a patch for one task, made on its own branch in a git worktree.

The model gets the task's block, the requirements it cites (EARS statements), the ADRs
that cite those requirements, and code context packed by the knowledge engine
(:func:`musubi.knowledge.context.pack_context`: repo map, spec excerpts and the code
chunks that match the task) into the token budget the model leaves (its context window
less the prompt's fixed part and the expected answer, at most :data:`CONTEXT_TOKENS`).
It answers one unified diff. The diff is read leniently (a fence or chatter dropped;
hunk line counts recounted, ``git apply --recount``) and validated: paths stay inside the
repository and out of ``.git``; ``git apply --check`` in the task's worktree; and, where
the operator allows it (:mod:`musubi.orchestrator.sandbox`), the project's tests pass on
the patched worktree.

Git: the repository must be a git repository with a clean working tree (tracked changes
and untracked files both refuse, so the task is done against what is committed). The
step makes a worktree under MUSUBI's home (never inside the user's tree) on a new branch
``musubi/<run>/<TASK>`` from ``HEAD``, commits the valid patch there (hooks off) and
removes the worktree; the branch stays for the user to review, merge or delete. The
user's working tree, index and current branch are never touched. Every git call goes
through :func:`musubi.git.run_git`.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from musubi.errors import Conflict
from musubi.git import git_outcome, run_git
from musubi.orchestrator.steps import Checked, Step, StepInput, _error, repo_file
from musubi.sdd.diagnostics import Diagnostic

__all__ = [
    "CONTEXT_TOKENS",
    "ImplementStep",
    "NotGit",
    "branch_name",
    "commit_patch",
    "extract_patch",
    "git_refusal",
    "open_worktree",
    "remove_worktree",
    "task_block",
]

CONTEXT_TOKENS = 6000  # code context at most, whatever the model's window
DEFAULT_TEST_COMMAND = "python3 -m pytest -q"
_FENCE = re.compile(r"```[ \t]*(?:diff|patch|udiff)?[ \t]*\n(?P<body>.*?)\n```", re.S)
_START = re.compile(r"^(?:diff --git |--- (?:a/|/dev/null))", re.M)
_PATHS = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(?P<path>\S+)", re.M)
_GIT_ID = ("-c", "user.name=MUSUBI", "-c", "user.email=musubi@localhost")
_NO_SIGN = ("-c", "commit.gpgSign=false", "-c", "tag.gpgSign=false")


class NotGit(Conflict):
    """The repository cannot be used for ``implement``: not git, or not clean."""


def git_refusal(root: Path) -> str | None:
    """Why ``implement`` must not start on ``root``: not a git repository, no commit, or
    uncommitted changes (named); None when it may."""
    if run_git(root, "rev-parse", "--is-inside-work-tree") is None:
        return (
            f"{root.name} is not a git repository (or git refuses it): implement works on a "
            "branch of the project's git repository; run `git init` and commit first"
        )
    if run_git(root, "rev-parse", "--verify", "--quiet", "HEAD") is None:
        return "the repository has no commit yet: commit first; implement branches from HEAD"
    status = run_git(root, "status", "--porcelain=v1", "-z", "--untracked-files=normal")
    if status is None:
        return "git could not read the repository's status"
    dirty = [e[3:] for e in status.decode("utf-8", "replace").split("\0") if len(e) > 3]
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        return (
            f"the working tree is not clean ({shown}): commit or remove the changes first; "
            "implement branches from HEAD and never touches your working tree"
        )
    return None


def branch_name(run_id: str, task_id: str) -> str:
    return f"musubi/{run_id}/{task_id}"


def worktree_dir(home: Path | None, run_id: str, task_id: str) -> Path:
    base = home / "worktrees" if home else Path(tempfile.gettempdir()) / "musubi-worktrees"
    return base / run_id / task_id


def _must(root: Path, *args: str) -> bytes:
    done = git_outcome(root, *args)
    if done is None or done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip() if done is not None else ""
        raise Conflict(f"git {args[0]} failed: {err or 'git refused the repository'}")
    return done.stdout


def branch_head(root: Path, branch: str) -> str | None:
    out = run_git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    return out.decode().strip() if out else None


def open_worktree(root: Path, path: Path, branch: str, base: str) -> None:
    """A fresh worktree at ``path`` on a new ``branch`` from commit ``base`` (an earlier,
    unfinished one of the same name is removed first)."""
    remove_worktree(root, path)
    if branch_head(root, branch) is not None:
        _must(root, "branch", "-D", "-q", branch)
    path.parent.mkdir(parents=True, exist_ok=True)
    _must(root, "worktree", "add", "-q", "--no-track", "-b", branch, str(path), base)


def remove_worktree(root: Path, path: Path) -> None:
    if path.exists():
        run_git(root, "worktree", "remove", "--force", str(path))
    run_git(root, "worktree", "prune")


def _patch_file(workdir: Path, patch: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="musubi-", suffix=".patch")
    with open(fd, "w", encoding="utf-8") as f:
        f.write(patch)
    return Path(name)


def apply_patch(workdir: Path, patch: str, check: bool) -> str | None:
    """``git apply [--check] --recount`` of ``patch`` in ``workdir``; git's message on failure."""
    tmp = _patch_file(workdir, patch)
    try:
        args = ["apply", "--recount", "--whitespace=nowarn"] + (["--check"] if check else [])
        done = git_outcome(workdir, *args, str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    if done is None:
        return "git refused the worktree"
    if done.returncode != 0:
        return done.stderr.decode("utf-8", "replace").strip() or "git apply failed"
    return None


def commit_patch(workdir: Path, patch: str, message: str) -> str:
    """Apply and commit ``patch`` in the worktree; the commit's id."""
    problem = apply_patch(workdir, patch, check=False)
    if problem:
        raise Conflict(f"the patch no longer applies: {problem}")
    _must(workdir, "add", "-A")
    _must(workdir, *_GIT_ID, *_NO_SIGN, "commit", "-q", "--no-verify", "-m", message)
    return _must(workdir, "rev-parse", "HEAD").decode().strip()


def _reset(workdir: Path) -> None:
    run_git(workdir, "reset", "-q", "--hard")
    run_git(workdir, "clean", "-fdq")


def extract_patch(raw: str) -> str:
    """The unified diff in a model's answer: inside a code fence, or from its first
    ``diff --git``/``--- a/`` line on; with a final newline."""
    text = raw.replace("\r\n", "\n")
    for m in _FENCE.finditer(text):
        if _START.search(m["body"]):
            text = m["body"]
            break
    start = _START.search(text)
    if start is None:
        return ""
    body = text[start.start() :]
    end = body.find("\n```")
    if end >= 0:
        body = body[:end]
    return body.rstrip("\n") + "\n"


def task_block(root: Path, file: str, line: int) -> str:
    """The text of a task's block in its document (its heading to the next one)."""
    lines = repo_file(root, file).read_text("utf-8").splitlines()
    start = max(line - 1, 0)
    out = [lines[start]] if start < len(lines) else []
    for text in lines[start + 1 :]:
        if re.match(r"^#{1,3} ", text):
            break
        out.append(text)
    return "\n".join(out).strip()


def test_command(root: Path) -> str:
    """``test_command`` of ``steering/project.yml``, else ``python3 -m pytest -q``."""
    import yaml

    path = repo_file(root, "steering/project.yml")
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text("utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            data = {}
        if isinstance(data, dict) and isinstance(data.get("test_command"), str):
            return str(data["test_command"])
    return DEFAULT_TEST_COMMAND


def code_context(root: Path, query: str, model: str, budget: int, index_db: Path | None) -> str:
    """The knowledge engine's context pack for ``query`` in ``budget`` tokens: from the
    project's index where it has one, else an in-memory lexical index of the repository."""
    from musubi.knowledge.context import pack_context
    from musubi.knowledge.indexer import index_repository
    from musubi.knowledge.retrieval import Retriever
    from musubi.knowledge.store import KnowledgeIndex

    stored = index_db is not None and index_db.is_file()
    index = KnowledgeIndex.open(index_db) if stored and index_db else KnowledgeIndex.memory()
    try:
        if not stored:
            index_repository(root, index)
        return pack_context(Retriever(index), query, model, budget).render()
    finally:
        index.close()


class ImplementStep(Step):
    name = "implement"
    task = "code"
    folder = "implement"
    output_tokens = 2000
    system = (
        "You are a software engineer implementing one task of a spec-driven project. "
        "Answer with one unified diff in git format only."
    )

    def paths(self, feature: str) -> list[str]:
        return []  # writes a branch, never a file of the working tree

    def prepare(self, root: Path, inp: StepInput) -> None:
        from musubi.sdd.project import load_project

        super().prepare(root, inp)
        project = load_project(root)
        task = next((t for t in project.tasks if t.id == inp.task_id), None)
        if task is None:
            raise Conflict(f"{inp.task_id} is no task of the project's task documents")
        inp.task_text = task_block(root, task.file, task.line)
        reqs = [r for r in project.requirements if r.id in task.requirements]
        inp.requirements = "\n\n".join(f"### {r.id}: {r.title}\n{r.statement}" for r in reqs)
        adrs = [a for a in project.adrs if set(a.requirements) & set(task.requirements)]
        inp.design = "\n\n".join(
            f"### {a.id}: {a.title}\nDecision: {a.decision or ''}" for a in adrs
        )
        query = f"{task.title}\n{inp.task_text}\n{inp.requirements}"
        inp.context = code_context(root, query, inp.model, inp.context_tokens, inp.index_db)

    def values(self, inp: StepInput) -> dict[str, str]:
        return {
            "task": inp.task_text,
            "task_id": inp.task_id,
            "requirements": inp.requirements or "(none cited)",
            "design": inp.design or "(no ADR cites these requirements)",
            "context": inp.context or "(no matching code)",
        }

    def repair(self, raw: str, errors: list[Diagnostic]) -> list[dict[str, str]]:
        problems = "\n".join(f"- {d.message}" for d in errors)
        return [
            {"role": "assistant", "content": raw},
            {
                "role": "user",
                "content": f"The patch is not valid:\n{problems}\n\nWrite the whole corrected "
                "patch again, as one unified diff against the files as shown, and nothing else.",
            },
        ]

    def check(self, raw: str, inp: StepInput) -> Checked:
        patch = extract_patch(raw)
        return Checked(patch, self.validate(patch, inp))

    def validate(self, text: str, inp: StepInput) -> list[Diagnostic]:
        where = f"patch of {inp.task_id}"
        if not text.strip():
            return [_error(where, "step.empty", "no unified diff found (expected 'diff --git')")]
        out: list[Diagnostic] = []
        for m in _PATHS.finditer(text):
            path = m["path"]
            parts = Path(path).parts
            if path == "/dev/null":
                continue
            if path.startswith("/") or ".." in parts or ".git" in parts:
                out.append(_error(where, "step.path", f"{path}: outside the repository"))
        if out or inp.workdir is None:
            return out
        problem = apply_patch(inp.workdir, text, check=True)
        if problem:
            return [_error(where, "step.apply", f"the patch does not apply: {problem}")]
        if inp.tests != "off":
            out += self._tests(text, inp, where)
        return out

    @staticmethod
    def _tests(text: str, inp: StepInput, where: str) -> list[Diagnostic]:
        from musubi.orchestrator.sandbox import run_tests

        assert inp.workdir is not None
        apply_patch(inp.workdir, text, check=False)
        try:
            result = run_tests(inp.workdir, inp.test_command or DEFAULT_TEST_COMMAND, inp.tests)
        except ValueError as exc:
            return [_error(where, "step.tests", str(exc))]
        finally:
            _reset(inp.workdir)
        inp.test_output = result.output
        if result.ok:
            return []
        return [
            _error(
                where,
                "step.tests",
                f"the tests fail with the patch (exit {result.returncode}):\n{result.output}",
            )
        ]


def implement_values(task_id: str, info: Any) -> tuple[str, int]:
    """The step's task ID and its code-context budget for model ``info``."""
    budget = CONTEXT_TOKENS
    if getattr(info, "context", 0):
        budget = max(256, min(budget, info.context - 2 * ImplementStep.output_tokens - 1500))
    return task_id, budget
