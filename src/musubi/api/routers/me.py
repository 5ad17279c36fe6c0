"""Who the caller is and what it may do."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from musubi.api.deps import Ctx, require

router = APIRouter(prefix="/v1", tags=["me"])


@router.get("/me", summary="The calling key, its user, tenant and permissions")
async def me(ctx: Annotated[Ctx, Depends(require(None, "own"))]) -> dict[str, Any]:
    p = ctx.principal
    return {
        "tenant_id": p.tenant_id,
        "user_id": p.user_id,
        "key_id": p.key_id,
        "project_id": p.project_id,
        "permissions": sorted(p.tenant_perms),
        "team_permissions": {k: sorted(v) for k, v in p.team_perms.items()},
        "project_permissions": {k: sorted(v) for k, v in p.project_perms.items()},
    }
