"""Administration: teams, projects, users, roles, keys, SSO and provider configuration.

The page needs ``users:write`` on the tenant (what ``POST /v1/users`` needs): someone
who can only read sees the refusal, named, not a page of disabled buttons. Each section
is read with the REST route's own function; a section the caller may not read shows the
missing permission. Creating a team posts the same body as ``POST /v1/teams``; a refused
body is shown on the field the API names.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from musubi.api.deps import Ctx
from musubi.api.routers import keys as keys_api
from musubi.api.routers import projects as projects_api
from musubi.api.routers import providers as providers_api
from musubi.api.routers import roles as roles_api
from musubi.api.routers import sso as sso_api
from musubi.api.routers import teams as teams_api
from musubi.api.routers import users as users_api
from musubi.errors import Conflict, InvalidInput, PermissionDenied
from musubi.web.auth import page
from musubi.web.render import html

__all__ = ["router"]

router = APIRouter()

Admin = Annotated[Ctx, Depends(page("POST /v1/users"))]
TeamsWrite = Annotated[Ctx, Depends(page("POST /v1/teams"))]


async def _section(ctx: Ctx, perm: str, read: Any) -> Any:
    if not ctx.principal.can(perm):
        return {"missing": perm}
    try:
        return await read
    except PermissionDenied as exc:
        return {"missing": exc.permission}


async def _sections(ctx: Ctx) -> dict[str, Any]:
    def items(x: Any) -> Any:
        return x if isinstance(x, dict) and "missing" in x else getattr(x, "items", x)

    return {
        "teams": items(await _section(ctx, "teams:read", teams_api.list_teams(ctx))),
        "projects": items(await _section(ctx, "projects:read", projects_api.list_projects(ctx))),
        "users": items(await _section(ctx, "users:read", users_api.list_users(ctx))),
        "roles": items(await _section(ctx, "roles:read", roles_api.list_roles(ctx))),
        "assignments": items(
            await _section(ctx, "roles:read", roles_api.list_assignments(ctx, None))
        ),
        "keys": items(await _section(ctx, "keys:read", keys_api.list_keys(ctx))),
        "idps": items(await _section(ctx, "sso:read", sso_api.list_idps(ctx))),
        "policy": await _section(ctx, "sso:read", sso_api.get_policy(ctx)),
        "providers": await _section(ctx, "providers:read", providers_api.list_providers(ctx)),
    }


@router.get("/admin")
async def admin(request: Request, ctx: Admin) -> Response:
    return html(request, "admin.html", **await _sections(ctx), form={}, errors={})


@router.post("/admin/teams")
async def create_team(
    request: Request,
    ctx: TeamsWrite,
    name: Annotated[str, Form(max_length=1000)] = "",
    description: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    form = {"name": name, "description": description}
    errors: dict[str, str] = {}
    try:
        body = teams_api.TeamIn(name=name, description=description)
        created = await teams_api.create_team(body, ctx)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "name"
            errors.setdefault(field, f"{field}: {err['msg']}")
    except (InvalidInput, Conflict) as exc:
        field = getattr(exc, "field", None) or str(exc.detail.get("field") or "name")
        errors[field] = exc.message
    if errors:
        return html(request, "team_form.html", 422, form=form, errors=errors, created=None)
    listed = (await teams_api.list_teams(ctx)).items
    return html(request, "team_form.html", form={}, errors={}, created=created, teams=listed)
