"""``musubi plan``, ``musubi runs`` and ``musubi mcp``: orchestrator runs from the terminal.

``plan`` and ``runs`` talk to a MUSUBI server (``--url``/``MUSUBI_URL``) with an API key
(``--key``/``MUSUBI_API_KEY``): the estimate first, then the run, its events printed as
they arrive, and the approval gate asked on a terminal. ``mcp`` serves the MCP tools over
stdio for an agent on this machine, on the server's database, as the key it is given.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from musubi.cli.batch import Client
from musubi.cli.output import emit, json_option

__all__ = ["mcp", "plan", "run", "runs"]

_url = click.option(
    "--url",
    envvar="MUSUBI_URL",
    default="http://127.0.0.1:8000",
    help="The MUSUBI server (MUSUBI_URL).",
)
_key = click.option("--key", envvar="MUSUBI_API_KEY", default=None, help="API key")


def _events(client: Client, run_id: str, after: int) -> list[dict[str, Any]]:
    """Print the run's events until the stream ends (finished, or at a gate)."""
    out: list[dict[str, Any]] = []
    with client.http.stream(
        "GET", f"/v1/runs/{run_id}/events", params={"after": after}, timeout=None
    ) as r:
        if r.status_code >= 400:
            raise click.ClickException(f"{r.status_code}: {r.read().decode()}")
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            e = json.loads(line[6:])
            out.append(e)
            click.echo(_describe(e), err=True)
    return out


def _describe(e: dict[str, Any]) -> str:
    kind = e["type"]
    if kind == "step.started":
        return f"  {e['step']}: started on {e['model']}"
    if kind == "step.attempt":
        verdict = "valid" if e["valid"] else f"invalid ({len(e['errors'])} problems)"
        return f"  {e['step']}: attempt {e['attempt']} {verdict}"
    if kind == "step.done" and e.get("commit"):
        return f"  {e['step']}: committed {e['commit'][:12]} on {e['output_path']}"
    if kind == "step.done":
        return f"  {e['step']}: wrote {e['output_path']}"
    if kind == "step.failed":
        return f"  {e['step']}: failed: " + "; ".join(e.get("errors", [])[:5])
    if kind in ("run.succeeded", "run.failed", "run.cancelled"):
        tail = f": {e['error']}" if e.get("error") else ""
        return f"{kind.split('.')[1]} (spent {e.get('cost', 0):.6f} USD){tail}"
    if kind == "run.awaiting_approval":
        return f"waiting for approval before {e['next']}"
    return str(kind)


@click.command()
@click.argument("idea")
@click.option("--project", "project_id", required=True, help="Project id on the server")
@click.option("--feature", default=None, help="File name slug (default: from the idea)")
@click.option("--budget", type=float, default=None, help="USD; a larger estimate is refused")
@click.option("--auto-approve", is_flag=True, help="No approval gate between stages (CI)")
@click.option("--estimate-only", is_flag=True, help="Print the estimate; start nothing")
@_url
@_key
@json_option
def plan(
    idea: str,
    project_id: str,
    feature: str | None,
    budget: float | None,
    auto_approve: bool,
    estimate_only: bool,
    url: str,
    key: str | None,
    as_json: bool,
) -> None:
    """Requirements, design and tasks for IDEA, by models, validated, with approvals."""
    body = {"idea": idea, "feature": feature, "budget": budget, "auto_approve": auto_approve}
    _start(Client(url, key), project_id, body, estimate_only, as_json)


STEP_NAMES = (
    "requirements",
    "design",
    "tasks",
    "change",
    "reverse",
    "steering",
    "implement",
    "review",
)


@click.command()
@click.argument("step", type=click.Choice(STEP_NAMES))
@click.argument("arg", required=False, default="")
@click.option("--project", "project_id", required=True, help="Project id on the server")
@click.option("--feature", default=None, help="File name slug (default: from ARG)")
@click.option("--budget", type=float, default=None, help="USD; a larger estimate is refused")
@click.option("--estimate-only", is_flag=True, help="Print the estimate; start nothing")
@click.option(
    "--local",
    is_flag=True,
    help="Run here, on this machine's MUSUBI database, instead of on a server",
)
@click.option(
    "--tests",
    "run_tests",
    is_flag=True,
    help="implement --local: run the project's tests on each patch, unsandboxed (your "
    "own machine and code only)",
)
@_url
@_key
@json_option
def run(
    step: str,
    arg: str,
    project_id: str,
    feature: str | None,
    budget: float | None,
    estimate_only: bool,
    local: bool,
    run_tests: bool,
    url: str,
    key: str | None,
    as_json: bool,
) -> None:
    """One step by a model, validated and written into the project's repository.

    \b
    musubi run change "<request>" --project prj_...   a delta spec, storage/changes/
    musubi run reverse src/orders --project prj_...   requirements recovered from code
    musubi run steering --project prj_...             steering/product.md, tech.md, structure.md
    musubi run requirements|design|tasks "<idea>" --project prj_... --feature F
    musubi run implement "TASK-001 TASK-002" --project prj_...   a branch per task
    musubi run implement TASK-001 --project prj_... --local --tests   tests on your machine
    musubi run review musubi/run_.../TASK-001 --project prj_...   storage/reviews/
    """
    body = {"idea": arg, "feature": feature, "budget": budget, "steps": [step]}
    if run_tests and not (local and step == "implement"):
        raise click.UsageError("--tests is for `musubi run implement --local` only")
    if local:
        if not key:
            raise click.UsageError("an API key is required: --key or MUSUBI_API_KEY")
        import asyncio

        shown = asyncio.run(_run_here(key, project_id, body, estimate_only, run_tests))
        emit(shown if as_json or estimate_only else _row(shown), as_json=as_json)
        if shown.get("status") == "failed":
            sys.exit(1)
        return
    _start(Client(url, key), project_id, body, estimate_only, as_json)


async def _run_here(
    key: str, project_id: str, body: dict[str, Any], estimate_only: bool, tests: bool
) -> dict[str, Any]:
    """A run driven in this process as ``key``, on this machine's MUSUBI database; with
    ``tests``, implement runs the project's tests unsandboxed (refused on a server)."""
    from musubi.api.app import open_state
    from musubi.api.deps import Ctx
    from musubi.api.routers.runs import RunIn, estimate_as, show_as, start_as
    from musubi.context import Actor, bind_actor, bind_tenant
    from musubi.errors import MusubiError
    from musubi.orchestrator import service
    from musubi.orchestrator.llm import GatewayModel
    from musubi.orchestrator.runner import Orchestrator
    from musubi.runtime import open_gateway
    from musubi.settings import Settings

    settings = Settings()
    state = await open_state(settings, announce=False)
    gateway = open_gateway(state)
    state.gateway = gateway
    orch = Orchestrator(
        state.db,
        lambda p: GatewayModel(gateway, p, state.quotas, state.ledger),
        gateway.table,
        home=settings.home,
        tests="local" if tests else "off",
        parallel=settings.orchestrator_parallel,
        local=True,
    )
    try:
        principal = await state.auth.authenticate(key)
        ctx = Ctx(principal, state)
        with bind_tenant(ctx.tenant_id), bind_actor(Actor(principal.actor)):
            try:
                if estimate_only:
                    return await estimate_as(ctx, project_id, RunIn(**body))
                run_id = (await start_as(ctx, orch, project_id, RunIn(**body)))["id"]
                await orch.wait(run_id)
                async with state.db.read() as s:
                    for e in await service.events_after(s, run_id, 0):
                        click.echo(_describe({"type": e.type, **e.data}), err=True)
                return await show_as(ctx, run_id)
            except MusubiError as exc:
                raise click.ClickException(exc.message) from exc
    finally:
        await orch.close()
        await state.close()  # the gateway and the usage ledger with it


def _start(
    client: Client, project_id: str, body: dict[str, Any], estimate_only: bool, as_json: bool
) -> None:
    """Estimate, start, print the events (asking at a gate on a terminal), report."""
    base = f"/v1/projects/{project_id}/runs"
    est = client.call("POST", f"{base}/estimate", json=body).json()
    for s in est["steps"]:
        click.echo(
            f"  {s['step']:<13} {s['model']:<24} in {s['input_tokens']:>6}  "
            f"out ~{s['output_tokens']:>5}  {s['cost']:.6f} USD",
            err=True,
        )
    click.echo(f"estimate: {est['cost']:.6f} USD", err=True)
    if estimate_only:
        emit(est, as_json=as_json)
        return
    run = client.call("POST", base, json=body).json()
    click.echo(f"run {run['id']}", err=True)
    seen = 0
    while True:
        events = _events(client, run["id"], seen)
        seen = events[-1]["seq"] if events else seen
        last = events[-1]["type"] if events else ""
        if last != "run.awaiting_approval":
            break
        if not sys.stdin.isatty() or not click.confirm("approve and continue?", default=True):
            click.echo(f"approve later: musubi runs approve {run['id']}", err=True)
            break
        client.call("POST", f"/v1/runs/{run['id']}/approve")
    shown = client.call("GET", f"/v1/runs/{run['id']}").json()
    emit(shown if as_json else _row(shown), as_json=as_json)
    if shown["status"] == "failed":
        sys.exit(1)


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "status": r["status"],
        "feature": r["feature"],
        "estimate": (r.get("estimate") or {}).get("cost"),
        "cost": r["cost"],
        "error": r.get("error"),
    }


@click.group()
@_url
@_key
@click.pass_context
def runs(ctx: click.Context, url: str, key: str | None) -> None:
    """Orchestrator runs on a MUSUBI server: list, show, approve, cancel."""
    ctx.obj = (url, key)


def _client(ctx: click.Context) -> Client:
    url, key = ctx.obj
    return Client(url, key)


@runs.command("list")
@click.option("--project", "project_id", required=True, help="Project id on the server")
@json_option
@click.pass_context
def list_(ctx: click.Context, project_id: str, as_json: bool) -> None:
    """A project's runs, newest first."""
    items = _client(ctx).call("GET", f"/v1/projects/{project_id}/runs").json()["items"]
    emit(items if as_json else [_row(r) for r in items], as_json=as_json)


@runs.command()
@click.argument("run_id")
@json_option
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """A run with its steps (model, attempts, tokens, cost, findings)."""
    r = _client(ctx).call("GET", f"/v1/runs/{run_id}").json()
    if as_json:
        emit(r, as_json=True)
        return
    emit(_row(r), as_json=False)
    click.echo("estimate against actual, per answer (error: (estimate - actual) / actual):")
    for step in r["steps"]:
        click.echo(_against(step))


def _against(s: dict[str, Any]) -> str:
    est, n = s["estimated"], max(s["attempts"], 1)
    err = s.get("estimate_error") or {}

    def part(key: str, label: str, actual: float, fmt: str) -> str:
        e = f" ({err[key]:+.0%})" if key in err else ""
        return f"{label} {format(est.get(key) or 0, fmt)}/{format(actual, fmt)}{e}"

    return "  ".join(
        [
            f"  {s['name']}: {s['status']}, {s['attempts']} answers",
            part("input_tokens", "input", s["input_tokens"] // n, "d"),
            part("output_tokens", "output", s["output_tokens"] // n, "d"),
            part("cost", "cost", s["cost"] / n, ".6f"),
            s.get("output_path") or "",
        ]
    ).rstrip()


@runs.command()
@click.argument("run_id")
@click.option("--follow", is_flag=True, help="Print the events until the next gate or the end")
@click.pass_context
def approve(ctx: click.Context, run_id: str, follow: bool) -> None:
    """Approve the stage a run waits on; the next one starts."""
    client = _client(ctx)
    r = client.call("POST", f"/v1/runs/{run_id}/approve").json()
    click.echo(f"{r['id']}: {r['status']}")
    if follow:
        _events(client, run_id, 0)


@runs.command()
@click.argument("run_id")
@click.pass_context
def cancel(ctx: click.Context, run_id: str) -> None:
    """Cancel a run (the step in flight is abandoned; nothing more is written)."""
    r = _client(ctx).call("POST", f"/v1/runs/{run_id}/cancel").json()
    click.echo(f"{r['id']}: {r['status']}")


@click.command()
@_key
def mcp(key: str | None) -> None:
    """Serve MUSUBI's MCP tools over stdio, as KEY, on this machine's MUSUBI database."""
    import asyncio

    if not key:
        raise click.UsageError("an API key is required: --key or MUSUBI_API_KEY")
    asyncio.run(_serve_stdio(key))


async def _serve_stdio(key: str) -> None:
    from musubi.api.app import open_state
    from musubi.api.mcp.tools import build_server
    from musubi.orchestrator.runner import open_orchestrator
    from musubi.runtime import open_gateway
    from musubi.settings import Settings

    settings = Settings()
    state = await open_state(settings, announce=False)
    state.gateway = open_gateway(state, egress=False)
    orch = await open_orchestrator(state)
    try:
        principal = await state.auth.authenticate(key)
        server = build_server(lambda: state, lambda: orch, principal)
        await server.run_stdio_async()
    finally:
        await orch.close()
        await state.close()
