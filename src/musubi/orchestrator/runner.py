"""Drive runs: each step through the model, validated, repaired, written; gates between.

:class:`Orchestrator` is owned by the app (built in the lifespan) and runs each run as a
task in this process. Everything a run needs is in its rows, so a run survives its process:
the process driving a run holds a lease on it (renewed while it works, released at a gate
or the end), and every process looks every ``sweep_s`` for queued or running runs whose
lease is free or ran out, and takes them over. A ``done`` step is never called again; an
interrupted step is retried from its start. With several server workers, exactly one drives
a run at a time (the claim is one conditional UPDATE: :mod:`musubi.storage.leases`). The
file a step writes is hashed when the step reads it; if it changed by the time the answer
is valid, the step fails with a conflict and the user's file is left as it is. The expected
hash of the output is stored before the file is written, so a worker that died between the
two does not take its own output for the user's change.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from musubi.access.principal import Principal
from musubi.context import Actor, bind_actor, bind_tenant, system_scope
from musubi.errors import MusubiError
from musubi.gateway.tokens import count_request_tokens
from musubi.git import run_git
from musubi.identity.models import ApiKey
from musubi.orchestrator.llm import ChatModel, choose_model
from musubi.orchestrator.models import Run, RunStep
from musubi.orchestrator.service import add_event, get_run, steps_of
from musubi.orchestrator.steps import (
    PLAN,
    STEPS,
    Checked,
    OutsideRepo,
    Step,
    StepInput,
    repo_file,
    step_of,
)
from musubi.sdd.files import atomic_write, read_text
from musubi.sdd.ids import IdLocation
from musubi.storage.base import utcnow
from musubi.storage.database import Database
from musubi.storage.leases import Leases
from musubi.tenancy.models import Project

__all__ = [
    "MAX_REPAIRS",
    "PARALLEL",
    "Orchestrator",
    "knowledge_db",
    "open_orchestrator",
    "principal_of",
]

log = logging.getLogger("musubi.orchestrator")

MAX_REPAIRS = 2  # answers sent back with the validator's messages before a step fails
LEASE_S = 10.0  # a run whose driver stopped renewing for this long is taken over
SWEEP_S = 2.0  # how often a process looks for runs to take over
PARALLEL = 2  # implement steps of one process's run at the same time
_STEERING = ("product.md", "tech.md", "structure.md")
_STEERING_CHARS = 6000


def principal_of(run: Run) -> Principal:
    return Principal(
        tenant_id=run.tenant_id,
        user_id=run.user_id,
        actor=run.actor,
        key_id=run.key_id,
        project_id=run.key_project_id,
        project_team_id=run.team_id,
    )


def _sha(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read(path: Path) -> str | None:
    return read_text(path) if path.is_file() else None


def _text(path: Path) -> str:
    return _read(path) or ""


def knowledge_db(home: Path | None, tenant_id: str, project_id: str) -> Path | None:
    """The project's knowledge index (its repo map serves the brownfield steps)."""
    if home is None:
        return None
    from musubi.knowledge.workspace import project_dir

    return project_dir(home, tenant_id, project_id) / "index.sqlite"


def _inputs(
    root: Path,
    run: Run,
    step: Step,
    done: dict[str, str],
    home: Path | None = None,
    **extra: Any,
) -> StepInput:
    steering = []
    for name in _STEERING:
        text = _read(repo_file(root, f"steering/{name}"))
        if text:
            steering.append(text.strip())
    from musubi.sdd.project import load_project  # reads YAML: not at server start

    own = {STEPS[n].path(run.feature) for n in PLAN}
    project = load_project(root)
    existing = [
        IdLocation(i.id, i.file, i.line)
        for doc in project.documents
        if doc.path not in own
        for i in doc.items
    ]
    inp = StepInput(
        idea=run.idea,
        feature=run.feature,
        steering="\n\n".join(steering)[:_STEERING_CHARS],
        requirements=done.get("requirements", ""),
        design=done.get("design", ""),
        existing_ids=existing,
        index_db=knowledge_db(home, run.tenant_id, run.project_id),
        **extra,
    )
    step.prepare(root, inp)
    return inp


def _state(root: Path, rels: list[str]) -> str | None:
    """The hash of a step's output files as they are now (one file: its text's hash)."""
    return _combined({rel: _read(repo_file(root, rel)) for rel in rels})


def _combined(texts: Mapping[str, str | None]) -> str | None:
    if len(texts) == 1:
        return _sha(next(iter(texts.values())))
    return _sha(json.dumps({rel: _sha(text) for rel, text in sorted(texts.items())}))


class _Stop(Exception):
    """The run must stop here (failed step, budget, revoked key): its message says why."""


class Orchestrator:
    def __init__(
        self,
        db: Database,
        model_for: Callable[[Principal], ChatModel],
        table_for: Callable[[str], Any],
        *,
        max_repairs: int = MAX_REPAIRS,
        lease_s: float = LEASE_S,
        sweep_s: float = SWEEP_S,
        home: Path | None = None,
        tests: str = "off",
        parallel: int = PARALLEL,
        local: bool = False,
        drive: bool = True,
    ) -> None:
        self.db = db
        # False: this process only creates runs; `musubi worker` processes drive them
        self.drive = drive
        self.tests = tests  # sandbox.MODES: whether implement runs the project's tests
        self.local = local  # the developer's own machine (the CLI), not a server
        self.parallel = max(1, parallel)
        self._git = asyncio.Lock()  # worktree and ref changes of this process, one at a time
        self.home = home  # MUSUBI's home: where the projects' knowledge indexes are
        self.model_for = model_for
        self.table_for = table_for  # tenant id -> awaitable RoutingTable
        self.max_repairs = max_repairs
        self.lease_s, self.sweep_s = lease_s, sweep_s
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.leases = Leases(Run, lease_s, holder=self.worker)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.calls = 0  # model calls made by this process

    def submit(self, tenant_id: str, run_id: str) -> None:
        if not self.drive:
            return  # queued in the runs table: a worker's sweep takes it up
        if run_id in self._tasks and not self._tasks[run_id].done():
            return
        task = asyncio.create_task(self._drive(tenant_id, run_id))
        self._tasks[run_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run_id, None))

    def interrupt(self, run_id: str) -> None:
        task = self._tasks.get(run_id)
        if task is not None:
            task.cancel()

    async def resume(self) -> None:
        """Take up the queued or running runs that no live process holds."""
        with system_scope():
            async with self.db.read() as s:
                rows = (
                    await s.execute(
                        select(Run.tenant_id, Run.id).where(
                            Run.status.in_(("queued", "running")),
                            self.leases.lapsed(utcnow()),
                        )
                    )
                ).all()
        for tenant_id, run_id in rows:
            self.submit(tenant_id, run_id)

    async def start(self) -> None:
        await self.resume()
        self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                await self.resume()
                await self._renew()
            except Exception:  # a database hiccup must not stop the sweeps
                log.exception("orchestrator: sweeping runs failed")

    async def _claim(self, run_id: str) -> bool:
        with system_scope():
            async with self.db.transaction() as s:
                return await self.leases.claim(s, run_id, Run.status.in_(("queued", "running")))

    async def _renew(self) -> None:
        mine = list(self._tasks)
        if not mine:
            return
        with system_scope():
            async with self.db.read() as s:  # cancelled through another process
                cancelled = (
                    await s.scalars(
                        select(Run.id).where(Run.id.in_(mine), Run.status == "cancelled")
                    )
                ).all()
        for run_id in cancelled:
            self.interrupt(run_id)
        with system_scope():
            async with self.db.transaction() as s:
                await self.leases.renew(s, mine, running_only=False)  # queued runs too

    async def _release(self, run_ids: list[str]) -> None:
        if not run_ids:
            return
        with system_scope():
            async with self.db.transaction() as s:
                await self.leases.release(s, run_ids, requeue=False)  # the status stays

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        tasks = list(self._tasks.items())
        for _, task in tasks:
            task.cancel()  # the run stays running: taken up again by the next process
        for _, task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._release([run_id for run_id, _ in tasks])

    async def wait(self, run_id: str) -> None:
        """Until this process stops driving the run (for tests and the CLI's local mode)."""
        task = self._tasks.get(run_id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- driving a run -------------------------------------------------------------------
    async def _drive(self, tenant_id: str, run_id: str) -> None:
        if not await self._claim(run_id):
            return  # another live process drives it
        with bind_tenant(tenant_id):
            async with self.db.read() as s:
                actor = (await get_run(s, run_id)).actor
            with bind_actor(Actor(actor)):
                try:
                    await self._advance(run_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug or a database failure: the run says so
                    log.exception("run %s failed", run_id)
                    await self._finish(run_id, "failed", f"internal error: {exc}")
        await self._release([run_id])

    async def _advance(self, run_id: str) -> None:
        while True:
            async with self.db.transaction() as s:
                run = await get_run(s, run_id, lock=True)
                if run.status not in ("queued", "running"):
                    return
                if run.status == "queued":
                    run.status = "running"
                    await add_event(s, run.id, "run.started")
                steps = await steps_of(s, run_id)
                project = await s.get(Project, run.project_id)
                key_ok = await self._key_usable(s, run)
            todo = [st for st in steps if st.status != "done"]
            if not todo:
                await self._finish(run_id, "succeeded")
                return
            if project is None or not project.repo_path:
                await self._finish(run_id, "failed", "the project has no repository")
                return
            if not key_ok:
                await self._finish(run_id, "failed", "the run's API key was revoked or expired")
                return
            if run.budget is not None and run.cost >= run.budget:
                await self._finish(
                    run_id,
                    "failed",
                    f"budget reached: spent {run.cost:.6f} of {run.budget:.6f} USD",
                )
                return
            root = Path(project.repo_path)
            if todo[0].name.startswith("implement:"):
                try:
                    await self._implement_all(run, steps, root)
                except _Stop as stop:
                    await self._finish(run_id, "failed", str(stop))
                    return
                await self._finish(run_id, "succeeded")
                return
            done = {
                st.name: st.output_path or ""
                for st in steps
                if st.status == "done" and st.name in PLAN  # what later stages read
            }
            try:
                texts = {
                    name: await asyncio.to_thread(_text, repo_file(root, p))
                    for name, p in done.items()
                }
                await self._run_step(run, todo[0], root, texts)
            except _Stop as stop:
                await self._finish(run_id, "failed", str(stop))
                return
            except OutsideRepo as exc:
                await self._finish(run_id, "failed", exc.message)
                return
            if len(todo) == 1:
                await self._finish(run_id, "succeeded")
                return
            if not run.auto_approve:
                async with self.db.transaction() as s:
                    fresh = await get_run(s, run_id, lock=True)
                    if fresh.status != "running":
                        return
                    fresh.status = "awaiting_approval"
                    await add_event(s, run_id, "run.awaiting_approval", next=todo[1].name)
                return

    async def _key_usable(self, s: Any, run: Run) -> bool:
        if run.key_id is None:
            return True
        key = await s.get(ApiKey, run.key_id)
        return bool(
            key is not None
            and key.revoked_at is None
            and (key.expires_at is None or key.expires_at > utcnow())
        )

    async def _finish(self, run_id: str, status: str, error: str | None = None) -> None:
        async with self.db.transaction() as s:
            run = await get_run(s, run_id, lock=True)
            if run.status in ("succeeded", "failed", "cancelled"):
                return
            run.status, run.error = status, error
            data: dict[str, Any] = {"cost": round(run.cost, 8)}
            if error:
                data["error"] = error
            await add_event(s, run_id, f"run.{status}", **data)

    async def _update(self, run_id: str, seq: int, **values: Any) -> None:
        async with self.db.transaction() as s:
            step = await s.get(RunStep, (run_id, seq))
            assert step is not None
            for name, value in values.items():
                setattr(step, name, value)

    async def _run_step(
        self, run: Run, step_row: RunStep, root: Path, texts: dict[str, str]
    ) -> None:
        step, _ = step_of(step_row.name)
        rels = step.paths(run.feature)
        rel = ", ".join(rels)
        current = await asyncio.to_thread(_state, root, rels)
        if step_row.output_sha is not None and current == step_row.output_sha:
            # written by this step before its worker died, never marked done: done now
            await self._step_event(run.id, step_row, "done", "step.done", output_path=rel)
            return
        refused = await asyncio.to_thread(step.refuse, root, run.feature)
        if refused:
            await self._fail_step(run.id, step_row.seq, None, [], refused)
            raise _Stop(f"conflict: {refused}")
        table = await self.table_for(run.tenant_id)
        info = choose_model(table, step.task, (run.models or {}).get(step.name))
        inp = await self._prepare(run, step_row, step, root, texts, model=info.name)
        base = step_row.base_sha if step_row.status == "running" else current
        checked, answer = await self._call(run, step_row, step, inp, info, base)
        if await asyncio.to_thread(_state, root, rels) != base:
            await self._fail_step(
                run.id, step_row.seq, answer.text, [], f"{rel} changed since the step read it"
            )
            raise _Stop(f"conflict: {rel} changed since the step read it; it was not overwritten")
        files = step.outputs(checked.text, run.feature)
        await self._update(run.id, step_row.seq, output_sha=_combined(files))
        for out_rel, text in files.items():
            path = repo_file(root, out_rel)  # again: a link may have appeared meanwhile
            await asyncio.to_thread(atomic_write, path, text)
        await self._step_event(
            run.id,
            step_row,
            "done",
            "step.done",
            output_path=rel,
            diagnostics=[d.model_dump(mode="json") for d in checked.diagnostics],
        )

    async def _prepare(
        self,
        run: Run,
        step_row: RunStep,
        step: Step,
        root: Path,
        texts: dict[str, str],
        **extra: Any,
    ) -> StepInput:
        """The step's input read from the repository; a step that cannot start (its task
        or branch is gone) fails here, before any call."""
        try:
            return await asyncio.to_thread(_inputs, root, run, step, texts, self.home, **extra)
        except OutsideRepo:
            raise
        except MusubiError as exc:
            await self._fail_step(run.id, step_row.seq, None, [], exc.message)
            raise _Stop(f"step {step_row.name}: {exc.message}") from exc

    async def _call(
        self, run: Run, step_row: RunStep, step: Step, inp: StepInput, info: Any, base: str | None
    ) -> tuple[Checked, Any]:
        """The model's answers until one is valid, within the repairs and the budget."""
        root = inp.root
        messages = await asyncio.to_thread(step.messages, root, inp)
        prompt_hash = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        async with self.db.transaction() as s:
            row = await s.get(RunStep, (run.id, step_row.seq))
            assert row is not None
            row.status, row.model, row.prompt_hash = "running", info.name, prompt_hash
            row.base_sha, row.started_at = base, utcnow()
            await add_event(s, run.id, "step.started", step=step_row.name, model=info.name)
        model = self.model_for(principal_of(run))
        limit = run.max_output_tokens or step.output_tokens * 2
        body = {"model": info.name, "messages": messages}
        prompt_tokens = await asyncio.to_thread(count_request_tokens, body, info)
        if info.context and prompt_tokens + min(limit, step.output_tokens) > info.context:
            message = (
                f"the {step.name} prompt ({prompt_tokens} tokens) does not fit the context "
                f"window of {info.name} ({info.context}); nothing was sent"
            )
            await self._fail_step(run.id, step_row.seq, None, [], message)
            raise _Stop(message)
        checked = None
        for attempt in range(1, self.max_repairs + 2):
            try:
                self.calls += 1
                answer = await model.complete(
                    info.name, messages, limit, f"{run.id}:{step_row.name}:{attempt}"
                )
            except MusubiError as exc:
                await self._fail_step(run.id, step_row.seq, None, [], exc.message)
                raise _Stop(f"step {step_row.name}: the model call failed: {exc.message}") from exc
            checked = await asyncio.to_thread(step.check, answer.text, inp)
            spent = await self._spend(run.id, step_row.seq, attempt, answer, checked)
            if checked.ok:
                break
            messages = [*messages, *step.repair(answer.text, checked.errors)]
            if run.budget is not None and spent >= run.budget:
                await self._fail_step(run.id, step_row.seq, answer.text, checked.diagnostics)
                raise _Stop(f"budget reached: spent {spent:.6f} of {run.budget:.6f} USD")
        assert checked is not None
        if not checked.ok:
            await self._fail_step(run.id, step_row.seq, answer.text, checked.diagnostics)
            raise _Stop(
                f"step {step_row.name} produced no valid "
                f"{'patch' if step.name == 'implement' else 'document'} after {attempt} "
                "attempts: " + "; ".join(d.message for d in checked.errors[:5])
            )
        return checked, answer

    # -- implement: tasks on their own branches, independent ones at the same time --------
    async def _implement_all(self, run: Run, steps: list[RunStep], root: Path) -> None:
        """Every task of the run, wave by wave: a wave is the tasks whose dependencies in
        the run are done (the task graph's parallel groups), run at most ``parallel`` at
        a time. A task whose dependency failed is not started."""
        from musubi.sdd.project import load_project

        rows = {step_of(r.name)[1]: r for r in steps}
        project = await asyncio.to_thread(load_project, root)
        deps = {t.id: [d for d in t.depends_on if d in rows] for t in project.tasks if t.id in rows}
        commits = {tid: r.output_sha or "" for tid, r in rows.items() if r.status == "done"}
        pending = {tid for tid, r in rows.items() if r.status != "done"}
        gate = asyncio.Semaphore(self.parallel)
        errors: list[str] = []

        async def one(task_id: str) -> str:
            async with gate:
                await self._check_budget(run.id)
                mine = deps.get(task_id, [])
                base = commits[mine[0]] if len(mine) == 1 else None
                return await self._run_implement(run, rows[task_id], root, task_id, base)

        while pending:
            wave = sorted(t for t in pending if all(d in commits for d in deps.get(t, [])))
            if not wave:
                blocked = ", ".join(sorted(pending))
                errors.append(f"{blocked} not started: a task they depend on failed")
                break
            results = await asyncio.gather(*(one(t) for t in wave), return_exceptions=True)
            for task_id, result in zip(wave, results, strict=True):
                pending.discard(task_id)
                if isinstance(result, _Stop | OutsideRepo | MusubiError):
                    errors.append(str(result))
                elif isinstance(result, BaseException):
                    raise result
                else:
                    commits[task_id] = result
            if errors and any(e.startswith("budget reached") for e in errors):
                break
        if errors:
            raise _Stop("; ".join(errors))

    async def _check_budget(self, run_id: str) -> None:
        async with self.db.read() as s:
            run = await get_run(s, run_id)
        if run.budget is not None and run.cost >= run.budget:
            raise _Stop(f"budget reached: spent {run.cost:.6f} of {run.budget:.6f} USD")

    async def _locked(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._git:
            return await asyncio.to_thread(fn, *args)

    async def _run_implement(
        self, run: Run, step_row: RunStep, root: Path, task_id: str, base: str | None
    ) -> str:
        """One task: a worktree on its own branch (from ``base``, the branch of its one
        dependency in the run, else HEAD), the model's patch validated there, committed;
        the commit id."""
        from musubi.orchestrator import implement as impl
        from musubi.orchestrator.sandbox import refusal

        step = STEPS["implement"]
        branch = impl.branch_name(run.id, task_id)
        started = step_row.base_sha if step_row.status == "running" else None
        head = await asyncio.to_thread(impl.branch_head, root, branch)
        if started and head and head != started:
            # committed before its worker died, never marked done: done now
            await self._update(run.id, step_row.seq, output_sha=head)
            await self._step_event(
                run.id, step_row, "done", "step.done", output_path=branch, commit=head
            )
            return head
        why = await asyncio.to_thread(impl.git_refusal, root)
        if why is None and self.tests == "local" and not self.local:
            why = (
                "MUSUBI_ORCHESTRATOR_TESTS=local runs a tenant's tests without a sandbox: only "
                "`musubi run implement --local` on the developer's own machine may; the server "
                "refuses it (use sandbox, with bubblewrap installed, or off)"
            )
        if why is None and self.tests != "off":
            why = refusal(self.tests)
        if why:
            await self._fail_step(run.id, step_row.seq, None, [], why)
            raise _Stop(f"{task_id}: {why}")
        if base is None:
            out = await asyncio.to_thread(run_git, root, "rev-parse", "HEAD")
            base = (out or b"").decode().strip()
        workdir = impl.worktree_dir(self.home, run.id, task_id)
        await self._locked(impl.open_worktree, root, workdir, branch, base)
        committed = False
        try:
            table = await self.table_for(run.tenant_id)
            info = choose_model(table, step.task, (run.models or {}).get(step.name))
            _, budget = impl.implement_values(task_id, info)
            test_command = (
                await asyncio.to_thread(impl.test_command, root) if self.tests != "off" else ""
            )
            inp = await self._prepare(
                run,
                step_row,
                step,
                root,
                {},
                task_id=task_id,
                model=info.name,
                context_tokens=budget,
                workdir=workdir,
                tests=self.tests,
                test_command=test_command,
            )
            checked, _ = await self._call(run, step_row, step, inp, info, base)
            title = inp.task_text.splitlines()[0].lstrip("# ").strip() if inp.task_text else ""
            message = f"{title or task_id}\n\nMUSUBI run {run.id}, {task_id}\n"
            try:
                commit = await self._locked(impl.commit_patch, workdir, checked.text, message)
            except MusubiError as exc:
                await self._fail_step(run.id, step_row.seq, None, [], exc.message)
                raise _Stop(f"{task_id}: {exc.message}") from exc
            committed = True
            await self._update(run.id, step_row.seq, output_sha=commit)
            await self._step_event(
                run.id,
                step_row,
                "done",
                "step.done",
                output_path=branch,
                commit=commit,
                tests="passed" if self.tests != "off" else "not run",
            )
            return str(commit)
        finally:
            await self._locked(impl.remove_worktree, root, workdir)
            if not committed:  # nothing of a failed task stays behind
                await self._locked(run_git, root, "branch", "-D", "-q", branch)

    async def _spend(self, run_id: str, seq: int, attempt: int, answer: Any, checked: Any) -> float:
        async with self.db.transaction() as s:
            run = await get_run(s, run_id, lock=True)
            row = await s.get(RunStep, (run_id, seq))
            assert row is not None
            row.attempts = attempt
            row.input_tokens += answer.input_tokens
            row.output_tokens += answer.output_tokens
            row.cost += answer.cost
            row.raw = answer.text
            run.cost += answer.cost
            await add_event(
                s,
                run_id,
                "step.attempt",
                step=row.name,
                attempt=attempt,
                valid=checked.ok,
                errors=[d.message for d in checked.errors],
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
            )
            return float(run.cost)

    async def _step_event(
        self, run_id: str, step_row: RunStep, status: str, event: str, **values: Any
    ) -> None:
        async with self.db.transaction() as s:
            row = await s.get(RunStep, (run_id, step_row.seq))
            assert row is not None
            row.status, row.finished_at = status, utcnow()
            if "output_path" in values:
                row.output_path = values["output_path"]
            if "diagnostics" in values:
                row.diagnostics = values["diagnostics"]
            await add_event(s, run_id, event, step=row.name, **values)

    async def _fail_step(
        self,
        run_id: str,
        seq: int,
        raw: str | None,
        diagnostics: list[Any],
        message: str | None = None,
    ) -> None:
        diags = [d.model_dump(mode="json") for d in diagnostics]
        if message:
            diags.append({"code": "step.error", "severity": "error", "message": message})
        async with self.db.transaction() as s:
            row = await s.get(RunStep, (run_id, seq))
            assert row is not None
            row.status, row.finished_at, row.diagnostics = "failed", utcnow(), diags
            if raw is not None:
                row.raw = raw
            await add_event(
                s, run_id, "step.failed", step=row.name, errors=[d["message"] for d in diags]
            )


async def open_orchestrator(state: Any, *, drive: bool | None = None) -> Orchestrator:
    """The process's orchestrator, on its gateway, quotas and ledger. Where it drives runs
    (``drive``; default: API processes unless ``MUSUBI_ORCHESTRATOR_RUNS_IN=worker``) it
    resumes unfinished runs and sweeps for runs to take up."""
    from musubi.orchestrator.llm import GatewayModel

    gateway = state.gateway
    if drive is None:
        drive = state.settings.orchestrator_runs_in == "api"
    orch = Orchestrator(
        state.db,
        lambda p: GatewayModel(gateway, p, state.quotas, state.ledger),
        gateway.table,
        home=state.settings.home,
        tests=state.settings.orchestrator_tests,
        parallel=state.settings.orchestrator_parallel,
        drive=drive,
    )
    if drive:
        await orch.start()
    if state.orchestrator is None:
        state.orchestrator = orch  # the process's own (tests reach it here)
    return orch
