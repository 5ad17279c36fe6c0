"""Apply the items of an import one by one, each in its own transaction, and report.

Every item goes through the area's service functions, so validation, the no-escalation
rule and the audit event are those of the single call. A failed item rolls back alone;
the others land. As with the API's single calls, a refused item (a missing permission,
an id not found) is also recorded in the caller's audit log, the same way whether or not
the id is another tenant's (:mod:`musubi.tenancy.crossing`).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError

from musubi.audit.service import record
from musubi.bulk.base import Caller, Kind, Status
from musubi.bulk.formats import RawItem
from musubi.errors import InvalidInput, MusubiError, NotFound, PermissionDenied
from musubi.storage.database import Database
from musubi.tenancy.crossing import NOT_FOUND, missing_object

__all__ = ["ItemResult", "Report", "export_rows", "import_items"]

log = logging.getLogger("musubi.bulk")


class ItemResult(BaseModel):
    index: int  # 0-based position of the item
    line: int | None = None  # CSV: the line the row starts on
    status: Status
    id: str | None = None
    token: str | None = None  # a new key's secret: shown in this report only
    error: str | None = None
    field: str | None = None


class Report(BaseModel):
    kind: str
    total: int
    succeeded: int
    failed: int
    results: list[ItemResult]


async def import_items(
    db: Database, caller: Caller, kind: Kind[Any], items: list[RawItem]
) -> Report:
    if kind.tenant_wide_write:
        caller.check(kind.write)  # as the single routes do, once for the whole import
    results = [await _one(db, caller, kind, raw) for raw in items]
    failed = sum(r.status == "failed" for r in results)
    report = Report(
        kind=kind.name,
        total=len(results),
        succeeded=len(results) - failed,
        failed=failed,
        results=results,
    )
    async with db.transaction() as s:
        detail = {"total": report.total, "succeeded": report.succeeded, "failed": failed}
        await record(s, "bulk.import", kind.name, detail=detail)
    return report


async def export_rows(db: Database, caller: Caller, kind: Kind[Any]) -> list[dict[str, Any]]:
    async with db.read() as s:
        return await kind.export(s, caller)


async def _one(db: Database, caller: Caller, kind: Kind[Any], raw: RawItem) -> ItemResult:
    where: dict[str, Any] = {"index": raw.index, "line": raw.line}
    if raw.error is not None:
        return ItemResult(**where, status="failed", error=raw.error)
    try:
        item = _validate(kind, raw.data)
        async with db.transaction() as s:
            out = await kind.apply(s, caller, item)
    except MusubiError as exc:
        if caller.principal is not None:
            await _audit_refusal(db, caller, exc, kind, raw)
        field = exc.field if isinstance(exc, InvalidInput) else exc.detail.get("field")
        return ItemResult(**where, status="failed", error=exc.message, field=field)
    except Exception:  # one item's bug must not lose the report of the others
        log.exception("bulk %s: item %d failed unexpectedly", kind.name, raw.index)
        return ItemResult(**where, status="failed", error="internal error; see the server log")
    return ItemResult(**where, status=out.status, id=out.id, token=out.token)


_MESSAGES = {"extra_forbidden": "unknown column", "missing": "required"}


def _validate(kind: Kind[Any], data: dict[str, Any]) -> BaseModel:
    data = {k: v for k, v in data.items() if k not in kind.read_only}
    for key, value in data.items():
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput(f"{key}: contains a NUL character", field=key)
    try:
        item: BaseModel = kind.item.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = _MESSAGES.get(err["type"], err["msg"].removeprefix("Value error, "))
            problems.append(f"{loc}: {msg}" if loc else msg)
        first = exc.errors()[0]["loc"]
        raise InvalidInput("; ".join(problems), field=str(first[0]) if first else None) from exc
    return item


async def _audit_refusal(
    db: Database, caller: Caller, exc: MusubiError, kind: Kind[Any], raw: RawItem
) -> None:
    detail = {"bulk": kind.name, "index": raw.index, "line": raw.line, "message": exc.message}
    missing = missing_object(exc) if isinstance(exc, NotFound) else None
    if isinstance(exc, PermissionDenied):
        action, target = "access.denied", ""
    elif missing is not None:  # the same event whether or not it is another tenant's id
        action, target = NOT_FOUND, missing[1]
    else:
        return
    async with db.transaction() as s:
        await record(s, action, target, outcome="denied", detail=detail)
    if missing is not None:
        caller.missing.append((*missing, detail))
