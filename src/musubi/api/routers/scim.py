"""SCIM 2.0 endpoints (``/scim/v2``) for the IdP's provisioning client.

The bearer token is a key of a service account holding ``scim:provision`` in the tenant
(the built-in role ``provisioner``); it only ever sees its own tenant's human users.
Errors here use SCIM's error body (RFC 7644 §3.12); authentication failures keep the
platform's body and audit trail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from musubi.api.deps import Ctx, require
from musubi.api.errors import audit_refusal, cross_tenant_check
from musubi.errors import InvalidInput, MusubiError, NotFound, PermissionDenied
from musubi.sso import scim
from musubi.tenancy.crossing import NOT_FOUND, missing_object

router = APIRouter(prefix="/scim/v2", tags=["scim"])

MEDIA = "application/scim+json"
Auth = Annotated[Ctx, Depends(require("scim:provision", "tenant"))]
Json = Annotated[dict[str, Any], Body()]
Work = Callable[[], Awaitable[tuple[int, dict[str, Any] | None]]]


def _error(status: int, detail: str, scim_type: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"schemas": [scim.ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return JSONResponse(body, status, media_type=MEDIA)


async def _run(request: Request, ctx: Ctx, work: Work, *, invalidate: bool = False) -> Response:
    try:
        status, body = await work()
    except NotFound as exc:
        missing = missing_object(exc)
        response = _error(404, exc.message)
        if missing is not None:  # as the API's handler does (see tenancy.crossing)
            await audit_refusal(request, NOT_FOUND, missing[1])
            response.background = cross_tenant_check(request, exc)
        return response
    except scim.ScimError as exc:
        await audit_refusal(request, "request.invalid_input", detail={"message": exc.message})
        status = 409 if exc.scim_type == "uniqueness" else 400
        return _error(status, exc.message, exc.scim_type)
    except InvalidInput as exc:
        return _error(400, exc.message, "invalidValue")
    except PermissionDenied as exc:
        await audit_refusal(request, "access.denied", detail={"permission": exc.permission})
        return _error(403, exc.message)
    except MusubiError as exc:
        return _error(409, exc.message)
    if invalidate:  # deprovisioning: keys and sessions stop working before we answer
        ctx.auth.invalidate(ctx.tenant_id)
    if body is None:
        return Response(status_code=status)
    return JSONResponse(body, status, media_type=MEDIA)


def _page(resources: list[dict[str, Any]], start: int, count: int) -> dict[str, Any]:
    window = resources[start - 1 : start - 1 + count]
    return {
        "schemas": [scim.LIST_SCHEMA],
        "totalResults": len(resources),
        "startIndex": start,
        "itemsPerPage": len(window),
        "Resources": window,
    }


Start = Annotated[int, Query(alias="startIndex", ge=1)]
Count = Annotated[int, Query(ge=0, le=1000)]
Filter = Annotated[str | None, Query(alias="filter", max_length=500)]


@router.get("/Users", summary='SCIM: list users (filter: userName eq "x")')
async def list_users(
    request: Request, ctx: Auth, filter_: Filter = None, start: Start = 1, count: Count = 100
) -> Response:
    async def work() -> tuple[int, dict[str, Any]]:
        async with ctx.db.read() as s:
            users = [scim.user_resource(u) for u in await scim.list_users(s, filter_)]
        return 200, _page(users, start, count)

    return await _run(request, ctx, work)


@router.post("/Users", summary="SCIM: provision a user")
async def create_user(request: Request, ctx: Auth, body: Json) -> Response:
    async def work() -> tuple[int, dict[str, Any]]:
        async with ctx.db.transaction() as s:
            return 201, scim.user_resource(await scim.create_user(s, body))

    return await _run(request, ctx, work)


@router.get("/Users/{user_id}", summary="SCIM: show a user")
async def get_user(user_id: str, request: Request, ctx: Auth) -> Response:
    async def work() -> tuple[int, dict[str, Any]]:
        async with ctx.db.read() as s:
            return 200, scim.user_resource(await scim.get_user(s, user_id))

    return await _run(request, ctx, work)


@router.put("/Users/{user_id}", summary="SCIM: replace a user")
async def replace_user(user_id: str, request: Request, ctx: Auth, body: Json) -> Response:
    async def work() -> tuple[int, dict[str, Any]]:
        async with ctx.db.transaction() as s:
            return 200, scim.user_resource(await scim.replace_user(s, user_id, body))

    return await _run(request, ctx, work, invalidate=True)


@router.patch("/Users/{user_id}", summary="SCIM: change a user (active: false deprovisions)")
async def patch_user(user_id: str, request: Request, ctx: Auth, body: Json) -> Response:
    async def work() -> tuple[int, dict[str, Any]]:
        async with ctx.db.transaction() as s:
            return 200, scim.user_resource(await scim.patch_user(s, user_id, body))

    return await _run(request, ctx, work, invalidate=True)


@router.delete("/Users/{user_id}", status_code=204, summary="SCIM: delete a user")
async def delete_user(user_id: str, request: Request, ctx: Auth) -> Response:
    async def work() -> tuple[int, None]:
        async with ctx.db.transaction() as s:
            await scim.delete_user(s, user_id)
        return 204, None

    return await _run(request, ctx, work, invalidate=True)


@router.get("/Groups", summary='SCIM: list groups (filter: displayName eq "x")')
async def list_groups(
    request: Request, ctx: Auth, filter_: Filter = None, start: Start = 1, count: Count = 100
) -> Response:
    async def work() -> tuple[int, dict[str, Any]]:
        async with ctx.db.read() as s:
            groups = [await scim.group_resource(s, g) for g in await scim.list_groups(s, filter_)]
        return 200, _page(groups, start, count)

    return await _run(request, ctx, work)


@router.post("/Groups", summary="SCIM: create a group")
async def create_group(request: Request, ctx: Auth, body: Json) -> Response:
    async def work() -> tuple[int, dict[str, Any]]:
        async with ctx.db.transaction() as s:
            return 201, await scim.group_resource(s, await scim.create_group(s, body))

    return await _run(request, ctx, work)


@router.get("/Groups/{group_id}", summary="SCIM: show a group")
async def get_group(group_id: str, request: Request, ctx: Auth) -> Response:
    async def work() -> tuple[int, dict[str, Any]]:
        async with ctx.db.read() as s:
            return 200, await scim.group_resource(s, await scim.get_group(s, group_id))

    return await _run(request, ctx, work)


@router.patch("/Groups/{group_id}", summary="SCIM: change a group's name or members")
async def patch_group(group_id: str, request: Request, ctx: Auth, body: Json) -> Response:
    async def work() -> tuple[int, dict[str, Any]]:
        async with ctx.db.transaction() as s:
            return 200, await scim.group_resource(s, await scim.patch_group(s, group_id, body))

    return await _run(request, ctx, work, invalidate=True)


@router.delete("/Groups/{group_id}", status_code=204, summary="SCIM: delete a group")
async def delete_group(group_id: str, request: Request, ctx: Auth) -> Response:
    async def work() -> tuple[int, None]:
        async with ctx.db.transaction() as s:
            await scim.delete_group(s, group_id)
        return 204, None

    return await _run(request, ctx, work, invalidate=True)
