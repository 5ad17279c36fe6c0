"""Files for the OpenAI-compatible Files API, stored in the database in 1 MiB parts.

Stored in the database (not on one host's disk) so that every API process and worker
sees them. Each file belongs to a project and a creator, and every lookup here checks what
the caller may see (:mod:`musubi.batch.ownership`). Nothing here holds a whole file in
memory: uploads are written part by part, and reads are async iterators over parts or
lines.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.principal import Principal
from musubi.audit.service import record
from musubi.batch.models import FilePart, StoredFile
from musubi.batch.ownership import check_after, check_manage, check_visible, visible_where
from musubi.errors import InvalidInput, PayloadTooLarge
from musubi.storage.base import new_id
from musubi.storage.database import Database
from musubi.storage.queries import get_one, newest_first

__all__ = [
    "PART_BYTES",
    "PURPOSES",
    "delete_file",
    "file_json",
    "get_file",
    "iter_bytes",
    "iter_lines",
    "list_files",
    "save_file",
]

PART_BYTES = 1 << 20
PURPOSES = ("batch", "batch_output", "fine-tune", "assistants", "user_data", "evals")


def file_json(f: StoredFile) -> dict[str, Any]:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": int(f.created_at.timestamp()),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


async def save_file(
    session: AsyncSession,
    chunks: AsyncIterable[bytes],
    *,
    filename: str,
    purpose: str,
    max_bytes: int,
    project_id: str | None,
    user_id: str | None,
    audit: bool = True,
) -> StoredFile:
    """Write ``chunks`` as a new file of ``project_id`` (None: the tenant) created by
    ``user_id``, part by part. Over ``max_bytes`` raises :class:`PayloadTooLarge` and the
    caller's transaction rolls the parts back."""
    if purpose not in PURPOSES:
        raise InvalidInput(f"purpose: must be one of {', '.join(PURPOSES)}", field="purpose")
    stored = StoredFile(
        id=new_id("file"),
        purpose=purpose,
        filename=filename[:255],
        bytes=0,
        project_id=project_id,
        user_id=user_id,
    )
    session.add(stored)
    await session.flush()
    size, seq, buf = 0, 0, bytearray()
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the file exceeds the limit of {max_bytes} bytes")
        buf += chunk
        while len(buf) >= PART_BYTES:
            part = FilePart(file_id=stored.id, seq=seq, data=bytes(buf[:PART_BYTES]))
            del buf[:PART_BYTES]
            seq += 1
            session.add(part)
            await session.flush()
            session.expunge(part)  # written: don't keep it in the session's memory
    if buf:
        session.add(FilePart(file_id=stored.id, seq=seq, data=bytes(buf)))
    stored.bytes = size
    await session.flush()
    if audit:
        await record(session, "file.create", stored.id, detail={"purpose": purpose, "bytes": size})
    return stored


async def get_file(session: AsyncSession, principal: Principal, file_id: str) -> StoredFile:
    """The file, if ``principal`` may see it; else :class:`NotFound`."""
    stored = await get_one(session, StoredFile, file_id, "file")
    await check_visible(session, principal, stored, "file")
    return stored


async def list_files(
    session: AsyncSession,
    principal: Principal,
    *,
    purpose: str | None,
    after: str | None,
    limit: int,
) -> tuple[list[StoredFile], bool]:
    """The files ``principal`` sees, newest first; ``after`` is the last id of the
    previous page."""
    query = select(StoredFile)
    if (where := visible_where(principal, StoredFile)) is not None:
        query = query.where(where)
    await check_after(session, query, StoredFile, after)
    if purpose:
        query = query.where(StoredFile.purpose == purpose)
    return await newest_first(session, query, StoredFile, after, limit)


async def delete_file(session: AsyncSession, principal: Principal, file_id: str) -> None:
    """Delete the file: its creator may, or a holder of ``projects:write`` for its project."""
    stored = await get_one(session, StoredFile, file_id, "file")
    await check_manage(session, principal, stored, "file", "delete")
    await session.execute(delete(FilePart).where(FilePart.file_id == file_id))
    await session.delete(stored)
    await record(session, "file.delete", file_id)


async def iter_bytes(db: Database, file_id: str) -> AsyncIterator[bytes]:
    """The file's content, one part (one short read transaction) at a time."""
    seq = 0
    while True:
        async with db.read() as s:
            data = await s.scalar(
                select(FilePart.data).where(FilePart.file_id == file_id, FilePart.seq == seq)
            )
        if data is None:
            return
        yield bytes(data)
        seq += 1


async def iter_lines(db: Database, file_id: str) -> AsyncIterator[tuple[int, bytes]]:
    """(1-based line number, line without its newline), across part boundaries."""
    number, rest = 0, b""
    async for part in iter_bytes(db, file_id):
        pieces = (rest + part).split(b"\n")
        rest = pieces.pop()
        for piece in pieces:
            number += 1
            yield number, piece.rstrip(b"\r")
    if rest:
        yield number + 1, rest.rstrip(b"\r")
