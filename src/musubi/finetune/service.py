"""Fine-tuning jobs as OpenAI's API shows them: create (files checked first), list,
retrieve, cancel, events and checkpoints.

A job goes ``validating_files`` → ``queued`` → ``running`` → ``succeeded`` | ``failed`` |
``cancelled``. The files are checked while the job is created (:mod:`musubi.finetune.chat`):
a bad file fails the job at once with the line and the reason, as OpenAI reports it, so
no worker is needed to learn that. Jobs belong to the creating key's project and user,
like files and batches (:mod:`musubi.batch.ownership`).

Hyperparameters are OpenAI's (``n_epochs``, ``batch_size``, ``learning_rate_multiplier``,
each a number or ``"auto"``, resolved here so that every attempt of a job trains the same
way); ``method`` is OpenAI's ``{"type": "supervised", "supervised": {...}}`` or MUSUBI's
``{"type": "lora" | "qlora", "lora" | "qlora": {...}}`` with ``rank``, ``alpha``,
``dropout``, ``target_modules``, ``gradient_checkpointing``, ``max_seq_len`` and
``packing`` beside ``hyperparameters``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from musubi.access.principal import Principal
from musubi.audit.service import record
from musubi.batch.files import get_file, iter_lines
from musubi.batch.ownership import check_after, check_manage, check_visible, visible_where
from musubi.errors import Conflict, InvalidInput
from musubi.finetune.chat import MIN_EXAMPLES, BadTrainingFile, read_chat_file
from musubi.finetune.models import TERMINAL, FineTuneCheckpoint, FineTuneEvent, FineTuneJob
from musubi.storage.base import new_id, utcnow
from musubi.storage.database import Database
from musubi.storage.queries import get_one, newest_first

__all__ = [
    "BASE_LEARNING_RATE",
    "add_event",
    "cancel_job",
    "checkpoint_json",
    "create_job",
    "event_json",
    "get_job",
    "job_json",
    "list_checkpoints",
    "list_events",
    "list_jobs",
    "model_name",
    "parse_method",
]

BASE_LEARNING_RATE = 2e-4  # x learning_rate_multiplier: a usual LoRA rate
DEFAULTS = {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 1.0}
LORA_DEFAULTS: dict[str, Any] = {
    "rank": 16,
    "alpha": 32,
    "dropout": 0.0,
    "target_modules": "all-linear",
    "gradient_checkpointing": False,
    "max_seq_len": 2048,
    "packing": True,
}
_SUFFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")


def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


def model_name(base: str, tenant_id: str, suffix: str) -> str:
    """The served name of an adapter: ``ft:<base>:<tenant>:<suffix>``."""
    return f"ft:{base}:{tenant_id}:{suffix}"


def _number(
    hp: dict[str, Any], key: str, kind: type, low: float, high: float, where: str
) -> int | float:
    value = hp.get(key, "auto")
    if value == "auto":
        return DEFAULTS[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or not low <= value <= high:
        raise InvalidInput(
            f"{where}.{key}: 'auto' or a {kind.__name__} from {low:g} to {high:g}",
            field=f"{where}.{key}",
        )
    return kind(value)  # type: ignore[no-any-return]


def _hyperparameters(hp: Any, where: str) -> dict[str, Any]:
    if hp is None:
        hp = {}
    if not isinstance(hp, dict):
        raise InvalidInput(f"{where}: an object", field=where)
    unknown = set(hp) - set(DEFAULTS)
    if unknown:
        raise InvalidInput(
            f"{where}: unknown key(s) {sorted(unknown)}; known: {', '.join(DEFAULTS)}", field=where
        )
    return {
        "n_epochs": _number(hp, "n_epochs", int, 1, 50, where),
        "batch_size": _number(hp, "batch_size", int, 1, 256, where),
        "learning_rate_multiplier": _number(
            hp, "learning_rate_multiplier", float, 1e-3, 100, where
        ),
    }


def _lora(section: dict[str, Any], where: str) -> dict[str, Any]:
    out = dict(LORA_DEFAULTS)
    checks: dict[str, tuple[type, float, float]] = {
        "rank": (int, 1, 256),
        "alpha": (int, 1, 1024),
        "dropout": (float, 0, 0.5),
        "max_seq_len": (int, 16, 32768),
    }
    for key, (kind, low, high) in checks.items():
        if key in section:
            value = section[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if (
                not ok
                or (kind is int and not float(value).is_integer())
                or not low <= value <= high
            ):
                raise InvalidInput(
                    f"{where}.{key}: a {kind.__name__} from {low:g} to {high:g}",
                    field=f"{where}.{key}",
                )
            out[key] = kind(value)
    for key in ("gradient_checkpointing", "packing"):
        if key in section:
            if not isinstance(section[key], bool):
                raise InvalidInput(f"{where}.{key}: true or false", field=f"{where}.{key}")
            out[key] = section[key]
    if "target_modules" in section:
        mods = section["target_modules"]
        if mods != "all-linear" and not (
            isinstance(mods, list)
            and 0 < len(mods) <= 32
            and all(isinstance(m, str) and _MODULE.match(m) for m in mods)
        ):
            raise InvalidInput(
                f"{where}.target_modules: 'all-linear' or a list of module names "
                "(e.g. ['q_proj', 'v_proj'])",
                field=f"{where}.target_modules",
            )
        out["target_modules"] = mods
    return out


def parse_method(method: Any, hyperparameters: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(method as stored and shown, resolved hyperparameters) from a create request."""
    if method is None:
        method = {"type": "supervised"}
    if not isinstance(method, dict) or not isinstance(method.get("type"), str):
        raise InvalidInput("method: an object with a 'type'", field="method")
    kind = method["type"]
    if kind in ("dpo", "reinforcement"):
        raise InvalidInput(
            f"method.type: {kind!r} is not supported here; use supervised, lora or qlora",
            field="method.type",
        )
    if kind not in ("supervised", "lora", "qlora"):
        raise InvalidInput("method.type: supervised, lora or qlora", field="method.type")
    section = method.get(kind) or {}
    if not isinstance(section, dict):
        raise InvalidInput(f"method.{kind}: an object", field=f"method.{kind}")
    known = {"hyperparameters", *LORA_DEFAULTS}
    unknown = set(section) - known
    if unknown:
        raise InvalidInput(
            f"method.{kind}: unknown key(s) {sorted(unknown)}; known: {', '.join(sorted(known))}",
            field=f"method.{kind}",
        )
    if section.get("hyperparameters") is not None and hyperparameters is not None:
        raise InvalidInput(
            "hyperparameters: give them in method only (OpenAI's rule)", field="hyperparameters"
        )
    hp = _hyperparameters(
        section.get("hyperparameters", hyperparameters), f"method.{kind}.hyperparameters"
    )
    lora = _lora(section, f"method.{kind}")
    return {"type": kind, kind: {"hyperparameters": hp, **lora}}, hp


async def create_job(
    db: Database,
    session: AsyncSession,
    principal: Principal,
    *,
    model: str,
    training_file: str,
    validation_file: str | None,
    suffix: str | None,
    seed: int | None,
    method: dict[str, Any],
    hyperparameters: dict[str, Any],
    metadata: dict[str, str] | None,
    check_base: Callable[[str], object],
) -> FineTuneJob:
    """Check the request and the files, then store the job: ``queued``, or ``failed`` with
    the bad line when a file cannot be used. ``check_base`` refuses an unknown base model
    (after the files: a caller learns nothing about a file it may not see)."""
    if suffix is not None and not _SUFFIX.match(suffix):
        raise InvalidInput(
            "suffix: 1 to 40 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="suffix",
        )
    files = {"training_file": training_file}
    if validation_file:
        files["validation_file"] = validation_file
    for field, file_id in files.items():
        stored = await get_file(session, principal, file_id)
        if stored.purpose != "fine-tune":
            raise InvalidInput(
                f"{field}: file {file_id!r} has purpose {stored.purpose!r}, not 'fine-tune'",
                field=field,
            )
    check_base(model)
    if suffix is not None:
        clash = await session.scalar(
            select(FineTuneJob.id).where(
                FineTuneJob.model == model,
                FineTuneJob.suffix == suffix,
                FineTuneJob.status.not_in(("failed", "cancelled")),
            )
        )
        if clash:
            made = model_name(model, principal.tenant_id, suffix)
            raise Conflict(f"suffix: job {clash!r} already makes {made!r}", field="suffix")
    problem = None
    for field, file_id in files.items():
        try:
            await read_chat_file(
                iter_lines(db, file_id),
                min_examples=MIN_EXAMPLES if field == "training_file" else 1,
            )
        except BadTrainingFile as exc:
            problem = {"code": f"invalid_{field}", "message": f"{file_id}: {exc}", "param": field}
            break
    job = FineTuneJob(
        id=new_id("ftjob"),
        model=model,
        training_file=training_file,
        validation_file=validation_file,
        suffix=suffix,
        seed=seed if seed is not None else 42,
        status="validating_files",
        hyperparameters=hyperparameters,
        method=method,
        meta=metadata or None,
        user_id=principal.user_id,
        project_id=principal.project_id,
        actor=principal.actor,
    )
    session.add(job)
    await session.flush()
    await add_event(session, job, f"Validating training file: {training_file}")
    if problem is not None:
        job.status, job.error, job.finished_at = "failed", problem, utcnow()
        await add_event(session, job, f"Validation failed: {problem['message']}", level="error")
    else:
        job.status = "queued"
        await add_event(session, job, "Files validated, moving job to queued state")
    await record(
        session, "fine_tuning.create", job.id, detail={"model": model, "status": job.status}
    )
    return job


async def get_job(session: AsyncSession, principal: Principal, job_id: str) -> FineTuneJob:
    job = await get_one(session, FineTuneJob, job_id, "fine-tuning job")
    await check_visible(session, principal, job, "fine-tuning job")
    return job


async def list_jobs(
    session: AsyncSession,
    principal: Principal,
    *,
    after: str | None,
    limit: int,
) -> tuple[list[FineTuneJob], bool]:
    """The jobs ``principal`` sees, newest first."""
    query = select(FineTuneJob)
    if (where := visible_where(principal, FineTuneJob)) is not None:
        query = query.where(where)
    await check_after(session, query, FineTuneJob, after)
    return await newest_first(session, query, FineTuneJob, after, limit)


async def cancel_job(session: AsyncSession, principal: Principal, job_id: str) -> FineTuneJob:
    """Cancel a job that has not finished; its worker stops at the next step."""
    job = await get_one(session, FineTuneJob, job_id, "fine-tuning job", lock=True)
    await check_manage(session, principal, job, "fine-tuning job", "cancel")
    if job.status == "cancelled":
        return job
    if job.status in TERMINAL:
        raise Conflict(f"fine-tuning job {job_id!r} has {job.status}; it cannot be cancelled")
    job.status, job.finished_at, job.lease_until = "cancelled", utcnow(), None
    await add_event(session, job, "Job was cancelled")
    await record(session, "fine_tuning.cancel", job.id)
    return job


async def add_event(
    session: AsyncSession,
    job: FineTuneJob,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> None:
    seq = await session.scalar(
        select(func.coalesce(func.max(FineTuneEvent.seq), 0)).where(FineTuneEvent.job_id == job.id)
    )
    session.add(
        FineTuneEvent(
            id=new_id("ftevent"),
            job_id=job.id,
            seq=int(seq or 0) + 1,
            level=level,
            type=type,
            message=message,
            data=data,
        )
    )
    await session.flush()


async def list_events(
    session: AsyncSession, principal: Principal, job_id: str, *, after: str | None, limit: int
) -> tuple[list[FineTuneEvent], bool]:
    await get_job(session, principal, job_id)
    query = select(FineTuneEvent).where(FineTuneEvent.job_id == job_id)
    if after:
        anchor = await session.get(FineTuneEvent, after)
        if anchor is None or anchor.job_id != job_id:
            raise InvalidInput(f"after: {after!r} is no event of this job", field="after")
        query = query.where(FineTuneEvent.seq < anchor.seq)
    rows = list(
        (await session.scalars(query.order_by(FineTuneEvent.seq.desc()).limit(limit + 1))).all()
    )
    return rows[:limit], len(rows) > limit


async def list_checkpoints(
    session: AsyncSession, principal: Principal, job_id: str, *, after: str | None, limit: int
) -> tuple[list[FineTuneCheckpoint], bool]:
    await get_job(session, principal, job_id)
    query = select(FineTuneCheckpoint).where(FineTuneCheckpoint.job_id == job_id)
    if after:
        anchor = await session.get(FineTuneCheckpoint, after)
        if anchor is None or anchor.job_id != job_id:
            raise InvalidInput(f"after: {after!r} is no checkpoint of this job", field="after")
        query = query.where(FineTuneCheckpoint.step < anchor.step)
    query = query.order_by(FineTuneCheckpoint.step.desc()).limit(limit + 1)
    rows = list((await session.scalars(query)).all())
    return rows[:limit], len(rows) > limit


def job_json(job: FineTuneJob) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": job.model,
        "created_at": _ts(job.created_at),
        "finished_at": _ts(job.finished_at),
        "fine_tuned_model": job.fine_tuned_model,
        "organization_id": job.tenant_id,
        "result_files": [],
        "status": job.status,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "hyperparameters": job.hyperparameters,
        "method": job.method,
        "trained_tokens": job.trained_tokens,
        "error": job.error,
        "seed": job.seed,
        "estimated_finish": None,
        "integrations": [],
        "metadata": job.meta,
        "user_provided_suffix": job.suffix,
    }


def event_json(e: FineTuneEvent) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": e.id,
        "created_at": _ts(e.created_at),
        "level": e.level,
        "message": e.message,
        "data": e.data or {},
        "type": e.type,
    }


def checkpoint_json(c: FineTuneCheckpoint, job: FineTuneJob) -> dict[str, Any]:
    name = model_name(job.model, job.tenant_id, job.suffix or job.id)
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": c.id,
        "created_at": _ts(c.created_at),
        "fine_tuned_model_checkpoint": f"{name}:ckpt-step-{c.step}",
        "step_number": c.step,
        "metrics": c.metrics,
        "fine_tuning_job_id": job.id,
    }
