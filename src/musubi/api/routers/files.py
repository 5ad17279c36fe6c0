"""OpenAI-compatible Files API (``/v1/files``): upload JSONL for batches, read results.

Files belong to the caller's tenant, and inside it to the uploading key's project (none:
the tenant) and user: a caller sees the files of the projects where it may use models, and
its own; any other id is 404 (:mod:`musubi.batch.ownership`). An upload is
streamed into the database part by part; one over ``MUSUBI_MAX_FILE_BYTES`` is refused
with 413 while it arrives, and nothing of it is kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse

from musubi.api.deps import Ctx, require
from musubi.batch.files import delete_file, file_json, get_file, iter_bytes, list_files, save_file
from musubi.context import bind_tenant

router = APIRouter(prefix="/v1/files", tags=["batch"])

Use = Annotated[Ctx, Depends(require("models:use", "project"))]


def list_json(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    """OpenAI's cursor page: the SDKs page on with ``after=last_id`` while ``has_more``."""
    return {
        "object": "list",
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1 << 20):
        yield chunk


@router.post("", summary="Upload a file (OpenAI-compatible; purpose 'batch' for batches)")
async def upload_file(
    ctx: Use,
    file: Annotated[UploadFile, File(description="the file, e.g. JSONL batch requests")],
    purpose: Annotated[str, Form(description="batch, batch_output, fine-tune, ...")],
) -> dict[str, Any]:
    async with ctx.db.transaction() as s:
        stored = await save_file(
            s,
            _chunks(file),
            filename=file.filename or "upload",
            purpose=purpose,
            max_bytes=ctx.state.settings.max_file_bytes,
            project_id=ctx.principal.project_id,
            user_id=ctx.principal.user_id,
        )
        return file_json(stored)


@router.get("", summary="List files, newest first (OpenAI-compatible)")
async def files_list(
    ctx: Use,
    purpose: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> dict[str, Any]:
    async with ctx.db.read() as s:
        rows, more = await list_files(s, ctx.principal, purpose=purpose, after=after, limit=limit)
    return list_json([file_json(f) for f in rows], more)


@router.get("/{file_id}", summary="A file's description (OpenAI-compatible)")
async def file_get(file_id: str, ctx: Use) -> dict[str, Any]:
    async with ctx.db.read() as s:
        return file_json(await get_file(s, ctx.principal, file_id))


@router.delete("/{file_id}", summary="Delete a file (OpenAI-compatible)")
async def file_delete(file_id: str, ctx: Use) -> dict[str, Any]:
    async with ctx.db.transaction() as s:
        await delete_file(s, ctx.principal, file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/{file_id}/content", summary="A file's content, streamed (OpenAI-compatible)")
async def file_content(file_id: str, ctx: Use) -> StreamingResponse:
    async with ctx.db.read() as s:
        stored = await get_file(s, ctx.principal, file_id)
    tenant_id, db = ctx.tenant_id, ctx.db

    async def body() -> AsyncIterator[bytes]:
        with bind_tenant(tenant_id):  # the response streams after the route returned
            async for part in iter_bytes(db, file_id):
                yield part

    headers = {
        "content-length": str(stored.bytes),
        "content-disposition": f'attachment; filename="{stored.filename}"',
    }
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)
