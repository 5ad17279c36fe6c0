"""``musubi ci report github|gitlab|azure_devops``: run the review gates in a pipeline and
post the result as a check (GitHub check run, GitLab commit status, Azure DevOps pull
request status). Exits 1 when a blocking check fails, like ``musubi validate``.

Runs in the pipeline, not on the server: the token comes from ``MUSUBI_CI_TOKEN`` (or the
platform's own variable, see deploy/ci-templates/), and nothing else is needed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

__all__ = ["ci"]

DEFAULT_URLS = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com",
    "azure_devops": "",
}


@click.group()
def ci() -> None:
    """Report the review gates to a CI platform."""


@ci.command("report")
@click.argument("platform", type=click.Choice(sorted(DEFAULT_URLS)))
@click.option(
    "--path",
    "root",
    type=click.Path(path_type=Path),
    default=Path("."),
    help="Project root (the folder holding steering/ and storage/).",
)
@click.option("--stage", default=None, help="Only the gates of this workflow stage.")
@click.option(
    "--trace",
    default="",
    help="Also `musubi trace check` for these links, e.g. design,code,tests (empty: skip).",
)
@click.option("--repo", required=True, help="owner/repo, group/project, or the ADO repository.")
@click.option("--sha", default=None, help="Commit (GitHub, GitLab).")
@click.option("--project", default=None, help="Azure DevOps project.")
@click.option("--pr", "pull_request", type=int, default=None, help="Azure DevOps pull request id.")
@click.option(
    "--mr",
    "merge_request",
    type=int,
    default=None,
    help="GitLab merge request IID: also post (or update) a note with the gate table.",
)
@click.option("--base-url", default=None, help="API root (GitHub Enterprise, self-managed …).")
@click.option("--token", envvar="MUSUBI_CI_TOKEN", required=True, help="Or MUSUBI_CI_TOKEN.")
def report(
    platform: str,
    root: Path,
    stage: str | None,
    trace: str,
    repo: str,
    sha: str | None,
    project: str | None,
    pull_request: int | None,
    merge_request: int | None,
    base_url: str | None,
    token: str,
) -> None:
    """Run the gates on PATH and post the result to PLATFORM."""
    import httpx

    from musubi.integrations import checks
    from musubi.integrations.tracker import TrackerError

    base = base_url or DEFAULT_URLS[platform]
    if merge_request is not None and platform != "gitlab":
        raise click.UsageError("--mr is GitLab's merge request; use --pr for Azure DevOps")
    if platform in ("github", "gitlab") and not sha:
        raise click.UsageError(f"{platform} needs --sha")
    if platform == "azure_devops" and not (project and pull_request and base):
        raise click.UsageError("azure_devops needs --base-url, --project and --pr")
    from musubi.sdd.trace.matrix import DIMENSIONS

    dims = tuple(d.strip() for d in trace.split(",") if d.strip())
    unknown = set(dims) - set(DIMENSIONS)
    if unknown:
        raise click.BadParameter(
            f"unknown link kind(s) {sorted(unknown)}; use {', '.join(DIMENSIONS)}",
            param_hint="--trace",
        )
    result = checks.gate_result(root, stage, dims)

    async def post() -> str:
        async with httpx.AsyncClient(timeout=30) as client:
            if platform == "github":
                return await checks.post_github_check(
                    client,
                    base_url=base,
                    repository=repo,
                    sha=sha or "",
                    token=token,
                    result=result,
                )
            if platform == "gitlab":
                where = await checks.post_gitlab_status(
                    client,
                    base_url=base,
                    project=repo,
                    sha=sha or "",
                    token=token,
                    result=result,
                )
                if merge_request is not None:
                    note = await checks.post_gitlab_mr_note(
                        client,
                        base_url=base,
                        project=repo,
                        merge_request=merge_request,
                        token=token,
                        result=result,
                    )
                    where += f", note {note} on !{merge_request}"
                return where
            return await checks.post_ado_status(
                client,
                base_url=base,
                project=project or "",
                repository=repo,
                pull_request=pull_request or 0,
                token=token,
                result=result,
            )

    try:
        where = asyncio.run(post())
    except (TrackerError, httpx.HTTPError) as exc:
        raise click.ClickException(f"posting the check failed: {exc}") from exc
    click.echo(f"{result.title} (posted to {platform}{': ' + where if where else ''})")
    if not result.passed:
        raise SystemExit(1)
