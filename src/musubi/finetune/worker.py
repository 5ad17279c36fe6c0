"""``musubi worker --queue finetune``: claim fine-tuning jobs from the database and train.

The job rows are the queue (like the batch queue's database kind, :mod:`musubi.batch.queue`,
with one job at a time per worker: a GPU trains one adapter at a time). A worker claims a
``queued`` job, or a ``running`` one whose lease ran out (its worker died: SIGKILL, a lost
host), and renews the lease every third of ``MUSUBI_FINETUNE_LEASE_SECONDS`` while it
trains (:class:`musubi.storage.leases.Leases`, with the worker's name as the holder). A
job taken over resumes from its newest checkpoint (optimizer, schedule and RNG
states included, so the data order is the one the first attempt would have followed).
A job cancelled through the API is seen at the next renewal and stops between steps.

Training runs in a thread (:mod:`musubi.finetune.trainer`); its hooks write events and
checkpoints through this event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, select, update

from musubi.batch.files import iter_lines
from musubi.context import bind_tenant, system_scope
from musubi.errors import InvalidInput
from musubi.finetune.bases import resolve_base
from musubi.finetune.chat import BadTrainingFile, read_chat_file
from musubi.finetune.models import FineTuneCheckpoint, FineTuneJob
from musubi.finetune.service import BASE_LEARNING_RATE, add_event, model_name
from musubi.settings import Settings
from musubi.storage.base import new_id, utcnow
from musubi.storage.database import Database
from musubi.storage.leases import Leases

__all__ = ["FineTuneWorker", "load_lora_on_vllm"]

log = logging.getLogger("musubi.finetune")
MAX_ATTEMPTS = 5  # a job whose workers keep dying (killed for memory...) fails after this
KEEP_CHECKPOINTS = 3  # the trainer's save_total_limit (and OpenAI's: the last three)


@dataclass(frozen=True)
class _Claim:
    tenant_id: str
    job_id: str


class FineTuneWorker:
    def __init__(self, db: Database, settings: Settings, *, name: str | None = None) -> None:
        self.db, self.settings = db, settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.leases = Leases(FineTuneJob, settings.finetune_lease_seconds, holder=self.name)

    async def run_forever(self, poll_s: float = 1.0) -> None:
        while True:
            try:
                ran = await self.run_once()
            except Exception:  # a database hiccup must not stop the worker
                log.exception("fine-tuning worker: claiming or running a job failed")
                ran = False
            if not ran:
                await asyncio.sleep(poll_s)

    async def run_once(self) -> bool:
        """Claim one job and run it to its end; False when there was none."""
        claim = await self._claim()
        if claim is None:
            return False
        with bind_tenant(claim.tenant_id):
            await self._run(claim)
        return True

    async def _claim(self) -> _Claim | None:
        now = utcnow()
        with system_scope():
            async with self.db.transaction() as s:
                query = (
                    select(FineTuneJob.tenant_id, FineTuneJob.id)
                    .where(self.leases.due(now))
                    .order_by(FineTuneJob.created_at, FineTuneJob.id)
                    .limit(1)
                )
                row = (await s.execute(Leases.lock(query, self.db))).first()
                if row is None:
                    return None
                await self.leases.take(s, [row[1]], now)
        return _Claim(row[0], row[1])

    async def _event(self, job_id: str, message: str, **kw: Any) -> None:
        async with self.db.transaction() as s:
            job = await s.get(FineTuneJob, job_id)
            if job is not None:
                await add_event(s, job, message, **kw)

    async def _renew(self, job_id: str, stop: threading.Event) -> None:
        """Keep the lease; stop the training when the job was cancelled or taken over."""
        while not stop.is_set():
            await asyncio.sleep(self.leases.lease_s / 3)
            async with self.db.transaction() as s:
                renewed = await self.leases.renew(s, [job_id])
            if renewed == 0:
                log.info("fine-tuning job %s was cancelled or taken over: stopping", job_id)
                stop.set()

    async def _run(self, claim: _Claim) -> None:
        async with self.db.read() as s:
            job = await s.get(FineTuneJob, claim.job_id)
        assert job is not None
        if job.started_at is None:
            async with self.db.transaction() as s:
                await s.execute(
                    update(FineTuneJob)
                    .where(FineTuneJob.id == job.id)
                    .values(started_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        if job.attempts > MAX_ATTEMPTS:
            reason = f"its worker stopped {MAX_ATTEMPTS} times without finishing (killed?)"
            await self._finish(job, {"status": "failed", "code": "worker_lost", "message": reason})
            return
        attempt = "" if job.attempts <= 1 else f" (attempt {job.attempts})"
        await self._event(job.id, f"Fine-tuning job started on {self.name}{attempt}")
        stop = threading.Event()
        renew = asyncio.create_task(self._renew(job.id, stop))
        try:
            outcome = await self._train(job, stop)
        except asyncio.CancelledError:  # the worker is stopping: let another take it over
            stop.set()
            await self._release(job.id)
            raise
        finally:
            stop.set()
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
        await self._finish(job, outcome)

    async def _release(self, job_id: str) -> None:
        with contextlib.suppress(Exception):
            async with self.db.transaction() as s:
                await self.leases.release(s, [job_id], requeue=True)

    async def _train(self, job: FineTuneJob, stop: threading.Event) -> dict[str, Any]:
        """What happened: ``{"status": ..., ...}`` for :meth:`_finish`."""
        try:
            base = resolve_base(self.settings, job.model)
            train_set = (await read_chat_file(iter_lines(self.db, job.training_file))).examples
            valid_set: list[list[dict[str, str]]] = []
            if job.validation_file:
                lines = iter_lines(self.db, job.validation_file)
                valid_set = (await read_chat_file(lines, min_examples=1)).examples
        except (InvalidInput, BadTrainingFile) as exc:
            return {"status": "failed", "code": "invalid_request", "message": str(exc)}
        from musubi.finetune.trainer import BaseLoadError, TrainSpec, train

        kind = job.method["type"]
        cfg = job.method[kind]
        hp = job.hyperparameters
        out = self.settings.effective_finetune_dir / job.tenant_id / job.id
        spec = TrainSpec(
            base=base,
            output_dir=out,
            method="qlora" if kind == "qlora" else "lora",
            rank=cfg["rank"],
            alpha=cfg["alpha"],
            dropout=cfg["dropout"],
            target_modules=cfg["target_modules"],
            n_epochs=hp["n_epochs"],
            batch_size=hp["batch_size"],
            learning_rate=BASE_LEARNING_RATE * hp["learning_rate_multiplier"],
            seed=job.seed,
            max_seq_len=cfg["max_seq_len"],
            gradient_checkpointing=cfg["gradient_checkpointing"],
            packing=cfg["packing"],
        )
        hooks = _Hooks(self, job, asyncio.get_running_loop(), stop)
        try:
            result = await asyncio.to_thread(train, spec, train_set, valid_set, hooks)
        except BaseLoadError as exc:
            return {"status": "failed", "code": "invalid_base_model", "message": str(exc)}
        except MemoryError as exc:
            return {"status": "failed", "code": "out_of_memory", "message": str(exc)}
        except ValueError as exc:
            return {"status": "failed", "code": "invalid_training_data", "message": str(exc)}
        except Exception as exc:  # the job fails with the reason; the trace goes to the log
            log.exception("fine-tuning job %s failed", job.id)
            return {"status": "failed", "code": "training_error", "message": repr(exc)}
        if result.stopped:
            return {"status": "stopped"}
        assert result.adapter_dir is not None
        return {
            "status": "succeeded",
            "adapter": str(result.adapter_dir),
            "base": str(base),
            "tokens": result.trained_tokens,
            "loss": result.final_loss,
        }

    async def _finish(self, job: FineTuneJob, outcome: dict[str, Any]) -> None:
        if outcome["status"] == "stopped":
            return  # cancelled (the API wrote it) or taken over (the new worker will)
        values: dict[str, Any] = {"finished_at": utcnow(), "lease_until": None}
        messages: list[tuple[str, str]] = []
        if outcome["status"] == "failed":
            values |= {
                "status": "failed",
                "error": {"code": outcome["code"], "message": outcome["message"], "param": None},
            }
            messages.append((f"Fine-tuning job failed: {outcome['message']}", "error"))
        else:
            name = model_name(job.model, job.tenant_id, job.suffix or job.id)
            serving = "local"
            if self.settings.finetune_vllm_url:
                try:
                    await load_lora_on_vllm(
                        self.settings.finetune_vllm_url, name, outcome["adapter"]
                    )
                    serving = self.settings.finetune_vllm_url
                except (httpx.HTTPError, RuntimeError) as exc:
                    messages.append(
                        (f"vLLM did not load the adapter ({exc}); served locally", "warn")
                    )
            values |= {
                "status": "succeeded",
                "fine_tuned_model": name,
                "trained_tokens": outcome["tokens"],
                "adapter_path": outcome["adapter"],
                "base_path": outcome["base"],
                "serving": serving,
            }
            messages += [(f"New fine-tuned model created: {name}", "info")]
            messages += [("The job has successfully completed", "info")]
        async with self.db.transaction() as s:
            done = await s.execute(
                update(FineTuneJob)
                .where(
                    FineTuneJob.id == job.id,
                    FineTuneJob.worker == self.name,
                    FineTuneJob.status == "running",
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                fresh = await s.get(FineTuneJob, job.id)
                assert fresh is not None
                for message, level in messages:
                    await add_event(s, fresh, message, level=level)


class _Hooks:
    """The trainer's hooks, called in the training thread, run on the worker's loop."""

    def __init__(
        self,
        worker: FineTuneWorker,
        job: FineTuneJob,
        loop: asyncio.AbstractEventLoop,
        stop: threading.Event,
    ) -> None:
        self.worker, self.job, self.loop, self.stop = worker, job, loop, stop
        self.tenant_id = job.tenant_id

    def _call(self, coro: Any) -> None:
        async def scoped() -> None:
            with bind_tenant(self.tenant_id):
                await coro

        asyncio.run_coroutine_threadsafe(scoped(), self.loop).result(timeout=60)

    def event(self, message: str, data: dict[str, Any] | None = None) -> None:
        self._call(self.worker._event(self.job.id, message, data=data))

    def step(self, step: int, loss: float, samples: list[int], metrics: dict[str, Any]) -> None:
        message = f"Step {step}: training loss={loss:.4f}"
        data = {**metrics, "samples": samples}
        self._call(self.worker._event(self.job.id, message, type="metrics", data=data))

    def checkpoint(self, step: int, path: Path, metrics: dict[str, Any]) -> None:
        async def write() -> None:
            async with self.worker.db.transaction() as s:
                s.add(
                    FineTuneCheckpoint(
                        id=new_id("ftckpt"),
                        job_id=self.job.id,
                        step=step,
                        path=str(path),
                        metrics=metrics,
                    )
                )
                await s.flush()
                # the trainer keeps the newest KEEP_CHECKPOINTS on disk: so do the rows
                old = select(FineTuneCheckpoint.id).where(FineTuneCheckpoint.job_id == self.job.id)
                old = old.order_by(FineTuneCheckpoint.step.desc()).offset(KEEP_CHECKPOINTS)
                await s.execute(delete(FineTuneCheckpoint).where(FineTuneCheckpoint.id.in_(old)))
                job = await s.get(FineTuneJob, self.job.id)
                assert job is not None
                await add_event(s, job, f"Checkpoint saved at step {step}", data={"step": step})

        self._call(write())

    def should_stop(self) -> bool:
        return self.stop.is_set()


async def load_lora_on_vllm(base_url: str, name: str, adapter_dir: str) -> None:
    """Ask a vLLM server (``--enable-lora``, runtime LoRA updating on) to load an adapter
    under ``name``. The URL is the operator's own setting, trusted like the server's other
    own endpoints; the adapter folder must be on storage that vLLM sees at the same path."""
    root = base_url.rstrip("/").removesuffix("/v1")
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(
            f"{root}/v1/load_lora_adapter", json={"lora_name": name, "lora_path": adapter_dir}
        )
    if r.status_code >= 400 and "already" not in r.text:
        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
