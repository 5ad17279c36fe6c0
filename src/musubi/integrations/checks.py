"""The review gates as pipeline checks: ``musubi validate``'s result posted where the
pipeline's platform shows it.

* GitHub: a check run (``POST /repos/{owner}/{repo}/check-runs``, completed, conclusion
  ``success``/``failure``, the gate table as its summary). GitHub lets only a GitHub App
  create check runs: use the App's installation token (in Actions, ``GITHUB_TOKEN`` has
  ``checks: write``).
* GitLab: a commit status (``POST /projects/:id/statuses/:sha``, ``success``/``failed``)
  and, given the merge request, a note on it with the gate table (``POST /projects/:id/
  merge_requests/:iid/notes``; the note MUSUBI posted before is edited instead, so a
  pipeline run per push leaves one note, not one per push).
* Azure DevOps: a pull request status (``POST …/git/repositories/{repo}/pullRequests/
  {id}/statuses``, ``succeeded``/``failed``, context ``musubi/gates``).

The calls go through the egress policy like every other integration request.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from musubi.integrations.tracker import raise_for_status

if TYPE_CHECKING:
    import httpx

__all__ = [
    "GateResult",
    "gate_result",
    "post_ado_status",
    "post_github_check",
    "post_gitlab_mr_note",
    "post_gitlab_status",
]

CHECK_NAME = "musubi/gates"
NOTE_MARKER = "<!-- musubi/gates -->"


@dataclass(frozen=True)
class GateResult:
    passed: bool
    title: str
    summary: str  # Markdown: one row per check


def gate_result(root: Path, stage: str | None = None, trace: tuple[str, ...] = ()) -> GateResult:
    """The review gates of ``root``; with ``trace`` (e.g. ``("design", "code", "tests")``),
    also ``musubi trace check``: a requirement with a gap in those fails the check."""
    from musubi.sdd.gates import run_gates
    from musubi.sdd.project import load_project

    project = load_project(root)
    report = run_gates(project, stage=stage)
    rows = ["| gate | check | level | outcome | message |", "|---|---|---|---|---|"]
    for c in report.checks:
        message = c.message.replace("|", "\\|")
        rows.append(f"| {c.gate} | {c.name} | {c.level} | {c.outcome} | {message} |")
    blocking = sum(1 for c in report.checks if c.outcome == "block")
    gaps = 0
    if trace:
        from musubi.sdd.trace.matrix import build_matrix, collect_links, find_gaps

        matrix = build_matrix(project, collect_links(project, commits=False))
        found = find_gaps(matrix, trace)
        gaps = len(found)
        rows.append(
            f"| trace | {', '.join(trace)} | critical | {'block' if found else 'pass'} | "
            f"{len(matrix.entries)} requirement(s), {gaps} gap(s) |"
        )
        rows += [f"| trace | gap | critical | block | {g.message} |" for g in found[:50]]
    passed = not report.blocking and not gaps
    if passed:
        title = "Review gates passed"
    else:
        parts = [f"{blocking} blocking check(s) failed"] if report.blocking else []
        parts += [f"{gaps} trace gap(s)"] if gaps else []
        title = "Review gates: " + ", ".join(parts)
    return GateResult(passed, title, "\n".join(rows))


async def post_github_check(
    client: httpx.AsyncClient,
    *,
    base_url: str,
    repository: str,
    sha: str,
    token: str,
    result: GateResult,
) -> str:
    body = {
        "name": CHECK_NAME,
        "head_sha": sha,
        "status": "completed",
        "conclusion": "success" if result.passed else "failure",
        "output": {"title": result.title, "summary": result.summary[:65535]},
    }
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    url = f"{base_url.rstrip('/')}/repos/{repository}/check-runs"
    r = await client.post(url, json=body, headers=headers)
    raise_for_status("github", r, "create check run")
    return str(r.json().get("html_url", ""))


async def post_gitlab_status(
    client: httpx.AsyncClient,
    *,
    base_url: str,
    project: str,
    sha: str,
    token: str,
    result: GateResult,
    target_url: str | None = None,
) -> str:
    body = {
        "state": "success" if result.passed else "failed",
        "name": CHECK_NAME,
        "description": result.title[:255],
    }
    if target_url:
        body["target_url"] = target_url
    url = f"{base_url.rstrip('/')}/api/v4/projects/{quote(project, safe='')}/statuses/{sha}"
    r = await client.post(url, json=body, headers={"PRIVATE-TOKEN": token})
    raise_for_status("gitlab", r, "create commit status")
    return str(r.json().get("id", ""))


def mr_note_body(result: GateResult) -> str:
    """The merge-request note: a marker (to find it again), the verdict, the table."""
    mark = "✅" if result.passed else "❌"
    return f"{NOTE_MARKER}\n### {mark} {result.title}\n\n{result.summary}"[:1_000_000]


async def post_gitlab_mr_note(
    client: httpx.AsyncClient,
    *,
    base_url: str,
    project: str,
    merge_request: int,
    token: str,
    result: GateResult,
) -> str:
    """Post the gate table on merge request ``merge_request`` (its IID), or edit the
    note MUSUBI posted there before; returns the note's id."""
    notes = (
        f"{base_url.rstrip('/')}/api/v4/projects/{quote(project, safe='')}"
        f"/merge_requests/{merge_request}/notes"
    )
    headers = {"PRIVATE-TOKEN": token}
    r = await client.get(
        notes,
        params={"sort": "desc", "order_by": "updated_at", "per_page": "100"},
        headers=headers,
    )
    raise_for_status("gitlab", r, "list merge request notes")
    body = {"body": mr_note_body(result)}
    mine = [n for n in r.json() if str(n.get("body", "")).startswith(NOTE_MARKER)]
    if mine:
        r = await client.put(f"{notes}/{mine[0]['id']}", json=body, headers=headers)
        raise_for_status("gitlab", r, "edit merge request note")
    else:
        r = await client.post(notes, json=body, headers=headers)
        raise_for_status("gitlab", r, "create merge request note")
    return str(r.json().get("id", ""))


async def post_ado_status(
    client: httpx.AsyncClient,
    *,
    base_url: str,
    project: str,
    repository: str,
    pull_request: int,
    token: str,
    result: GateResult,
) -> str:
    body = {
        "state": "succeeded" if result.passed else "failed",
        "description": result.title[:255],
        "context": {"name": "gates", "genre": "musubi"},
    }
    basic = base64.b64encode(f":{token}".encode()).decode()
    url = (
        f"{base_url.rstrip('/')}/{quote(project)}/_apis/git/repositories/{quote(repository)}"
        f"/pullRequests/{pull_request}/statuses"
    )
    r = await client.post(
        url, json=body, params={"api-version": "7.1"}, headers={"Authorization": f"Basic {basic}"}
    )
    raise_for_status("azure_devops", r, "create pull request status")
    return str(r.json().get("id", ""))
