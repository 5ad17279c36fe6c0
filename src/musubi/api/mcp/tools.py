"""MUSUBI as an MCP server (the official ``mcp`` SDK), for Claude Code, Copilot, Cursor.

Tools: projects, requirements list and validation, trace gaps and impact, code search and
issue→file localisation, context packing, the cost estimate of a run, and starting, showing
and approving a run (any step kind). Each
tool calls the same function as the REST route, as the caller: over HTTP (mounted at
``/mcp/`` by ``musubi serve``, :mod:`musubi.api.mcp.server`) the caller is the
MUSUBI key of the request; over stdio (``musubi mcp``) or in-process it is the principal
given to :func:`build_server`. Permissions, the tenant and a key's project restriction
apply exactly as on the REST routes. Imported only when MCP is first used (the SDK is
heavy).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request

from musubi.access.principal import Principal
from musubi.api.deps import Ctx
from musubi.api.mcp.server import principal_of
from musubi.context import Actor, bind_actor, bind_tenant
from musubi.errors import MusubiError, Unauthenticated

if TYPE_CHECKING:
    from musubi.orchestrator.runner import Orchestrator
    from musubi.runtime import AppState

__all__ = ["build_server"]


def build_server(
    state: Callable[[], AppState],
    orchestrator: Callable[[], Orchestrator],
    principal: Principal | None = None,
) -> MCPServer:
    """The MCP server; ``principal`` fixes the caller (stdio, in-process), else each
    request's key is the caller (HTTP)."""
    server: MCPServer = MCPServer(
        "musubi",
        instructions="MUSUBI spec-driven development: requirements, traceability, code search, "
        "and orchestrator runs (requirements -> design -> tasks) with cost estimates.",
    )

    async def caller(ctx: Context) -> Ctx:
        if principal is not None:
            return Ctx(principal, state())
        request = ctx.request_context.request
        if not isinstance(request, Request):
            raise Unauthenticated("no MUSUBI key: call over HTTP with a bearer key")
        return Ctx(await principal_of(request, state()), state())

    async def call(ctx: Context, perm: str, fn: Callable[[Ctx], Awaitable[Any]]) -> Any:
        try:
            c = await caller(ctx)
            if not c.principal.holds_anywhere(perm):
                raise ToolError(f"missing permission {perm!r}")
            with bind_tenant(c.tenant_id), bind_actor(Actor(c.principal.actor)):
                return await fn(c)
        except MusubiError as exc:  # the tool's error text, as the REST body says it
            raise ToolError(exc.message) from exc

    @server.tool(description="Projects this key can see (id, name, repository)")
    async def list_projects(ctx: Context) -> list[dict[str, Any]]:
        from musubi.api.routers.projects import list_projects as route

        async def run(c: Ctx) -> list[dict[str, Any]]:
            page = await route(c)
            return [p.model_dump(mode="json") for p in page.items]

        result: list[dict[str, Any]] = await call(ctx, "projects:read", run)
        return result

    @server.tool(description="A project's requirements with their EARS and quality findings")
    async def requirements(project_id: str, ctx: Context) -> dict[str, Any]:
        from musubi.api.routers.sdd import requirements as route

        result: dict[str, Any] = await call(ctx, "projects:read", lambda c: route(project_id, c))
        return result

    @server.tool(description="Validate a requirements document (Markdown): EARS, quality, IDs")
    async def validate_requirements(text: str, ctx: Context) -> list[dict[str, Any]]:
        from musubi.orchestrator.steps import STEPS, StepInput

        async def run(c: Ctx) -> list[dict[str, Any]]:
            checked = STEPS["requirements"].check(text, StepInput(idea="", feature="doc"))
            return [d.model_dump(mode="json") for d in checked.diagnostics]

        result: list[dict[str, Any]] = await call(ctx, "projects:read", run)
        return result

    @server.tool(description="Traceability gaps: requirements without design, code or tests")
    async def trace_gaps(project_id: str, ctx: Context) -> dict[str, Any]:
        from musubi.api.routers.sdd import trace as route

        async def run(c: Ctx) -> dict[str, Any]:
            out = await route(project_id, c, commits=False, require_="design,code,tests")
            return {"gaps": out["gaps"], "coverage": out["coverage"]}

        result: dict[str, Any] = await call(ctx, "projects:read", run)
        return result

    @server.tool(
        description="Search a project's indexed code; files=true reads the query as an issue "
        "and ranks the files to change (localisation)"
    )
    async def search_code(
        project_id: str, query: str, ctx: Context, k: int = 10, files: bool = False
    ) -> dict[str, Any]:
        from musubi.api.routers.knowledge import SearchIn
        from musubi.api.routers.knowledge import search as route

        body = SearchIn(query=query, k=k, files=files)
        result: dict[str, Any] = await call(
            ctx, "knowledge:read", lambda c: route(project_id, body, c)
        )
        return result

    @server.tool(
        description="Pack a task's context into a token budget: the repository map, spec "
        "excerpts and code chunks, each with its path and lines (the project must be indexed)"
    )
    async def pack_context(
        project_id: str, task: str, ctx: Context, model: str = "gpt-4o", budget: int = 8000
    ) -> dict[str, Any]:
        from pydantic import ValidationError

        from musubi.api.routers.knowledge import ContextIn
        from musubi.api.routers.knowledge import context as route

        try:
            body = ContextIn(task=task, model=model, budget=budget)
        except ValidationError as exc:
            raise ToolError(str(exc)) from exc
        result: dict[str, Any] = await call(
            ctx, "knowledge:read", lambda c: route(project_id, body, c)
        )
        return result

    @server.tool(
        description="What a change to a requirement touches: design, ADRs, tasks and their "
        "dependents, code, tests, and requirements implemented in the same files"
    )
    async def trace_impact(project_id: str, requirement_id: str, ctx: Context) -> dict[str, Any]:
        from musubi.api.routers.sdd import impact_as

        result: dict[str, Any] = await call(
            ctx, "projects:read", lambda c: impact_as(c, project_id, requirement_id)
        )
        return result

    @server.tool(
        description="Tokens and cost of a run before it (requirements, design, tasks; or "
        "steps=['change'|'reverse'|'steering'])"
    )
    async def estimate_run(
        project_id: str,
        ctx: Context,
        idea: str = "",
        feature: str | None = None,
        steps: list[str] | None = None,
    ) -> dict[str, Any]:
        from musubi.api.routers.runs import estimate_as

        body = _run_in(idea=idea, feature=feature, steps=steps)
        result: dict[str, Any] = await call(
            ctx, "runs:read", lambda c: estimate_as(c, project_id, body)
        )
        return result

    @server.tool(
        description="Start a run: requirements -> design -> tasks, gated by approvals; or one "
        "step of steps=['change'] (idea: the change request), ['reverse'] (idea: a module "
        "path), ['steering']"
    )
    async def start_run(
        project_id: str,
        ctx: Context,
        idea: str = "",
        feature: str | None = None,
        budget: float | None = None,
        auto_approve: bool = False,
        steps: list[str] | None = None,
    ) -> dict[str, Any]:
        from musubi.api.routers.runs import start_as

        body = _run_in(
            idea=idea, feature=feature, budget=budget, auto_approve=auto_approve, steps=steps
        )
        result: dict[str, Any] = await call(
            ctx, "runs:write", lambda c: start_as(c, orchestrator(), project_id, body)
        )
        return result

    @server.tool(description="A run with its steps, models, tokens, cost and findings")
    async def get_run(run_id: str, ctx: Context) -> dict[str, Any]:
        from musubi.api.routers.runs import show_as

        result: dict[str, Any] = await call(ctx, "runs:read", lambda c: show_as(c, run_id))
        return result

    @server.tool(description="Approve the stage a run waits on; the next one starts")
    async def approve_run(run_id: str, ctx: Context) -> dict[str, Any]:
        from musubi.api.routers.runs import approve_as

        result: dict[str, Any] = await call(
            ctx, "runs:write", lambda c: approve_as(c, orchestrator(), run_id)
        )
        return result

    return server


def _run_in(**values: Any) -> Any:
    """A run's body from a tool's arguments (pydantic's messages become the tool's error)."""
    from pydantic import ValidationError

    from musubi.api.routers.runs import RunIn

    if values.get("steps") is None:
        values.pop("steps", None)
    try:
        return RunIn(**values)
    except ValidationError as exc:
        raise ToolError(str(exc)) from exc
