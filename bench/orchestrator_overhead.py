"""Orchestration overhead per step, model time excluded, and the input-token estimate's error.

Drives ``--runs`` plan runs (requirements, design, tasks; auto-approved) through
:class:`musubi.orchestrator.runner.Orchestrator` on SQLite in a temporary directory, with a
model that answers the test suite's scripted documents at once. What is timed is all the
orchestrator does around the model call: prompt packing, validation by the SDD core, the
run's rows and events, the conflict check and the atomic write. The answer function's own
CPU is subtracted. The routing table is the real one (an OpenAI credential: gpt-4.1, counted
with tiktoken), so the estimate's input tokens are compared with the exact count of the
prompt each step really sent (the later steps' prompts hold the earlier answers, which the
estimate stands in for with text of the expected length: the documented default on the
first run, the tenant's history of that step afterwards).

Then one implement run of ``--tasks`` independent tasks on a git repository (worktree,
code context from an in-memory index, ``git apply --check``, commit), with the CPU of the
git children counted.

    PYTHONPATH=src .venv/bin/python bench/orchestrator_overhead.py [--runs 20] [--tasks 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from musubi.access.principal import Principal
from musubi.audit.signing import Signer
from musubi.context import bind_tenant, system_scope
from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.pipeline import Gateway
from musubi.gateway.providers.registry import ProviderRegistry
from musubi.gateway.secrets import SecretBox
from musubi.gateway.service import set_credential
from musubi.gateway.tokens import count_request_tokens, count_text
from musubi.orchestrator.estimate import estimate_run
from musubi.orchestrator.llm import Completion
from musubi.orchestrator.runner import Orchestrator
from musubi.orchestrator.service import create_run, past_output
from musubi.orchestrator.steps import PLAN, StepInput
from musubi.settings import Settings
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.tenancy import service

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.orchestrator.conftest import good, stage_of


def _stage(messages: list[dict[str, str]]) -> str:
    from tests.orchestrator.test_implement import task_of

    task = task_of(messages)
    return f"implement:{task}" if task else stage_of(messages)


def _cpu() -> float:
    """CPU of this process and of the children it waited for (git)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Scripted:
    """Answers at once, reporting the answer's true token counts as a provider would;
    remembers each first prompt and its own CPU time (counting included)."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.prompts: dict[str, list[dict[str, str]]] = {}
        self.outputs: dict[str, int] = {}
        self.info: ModelInfo | None = None
        self.answer = good  # messages -> the answer

    async def complete(
        self, model: str, messages: list[dict[str, str]], max_tokens: int, request_id: str
    ) -> Completion:
        t = time.process_time()
        stage = _stage(messages)
        self.prompts.setdefault(stage, messages)
        text = self.answer(messages)
        assert self.info is not None
        tokens_in = count_request_tokens({"model": model, "messages": messages}, self.info)
        tokens_out = count_text(text, self.info)
        self.outputs.setdefault(stage, tokens_out)
        self.cpu += time.process_time() - t
        return Completion(text, model, tokens_in, tokens_out, 0.0)


async def main(runs: int, tasks: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="musubi-orch-bench-"))
    db = Database(f"sqlite+aiosqlite:///{home}/bench.db", audit_signer=Signer.generate())
    await upgrade(db)
    box = SecretBox.load(home)
    gateway = Gateway(db, box)
    with system_scope():
        async with db.transaction() as s:
            tenant = await service.create_tenant(s, "bench")
    model = Scripted()
    principal = Principal(tenant_id=tenant.id, user_id="usr_bench", actor="bench")
    orch = Orchestrator(db, lambda p: model, gateway.table)
    cpu: list[float] = []
    wall: list[float] = []
    errors: dict[str, list[float]] = {name: [] for name in PLAN}
    out_errors: dict[str, list[float]] = {name: [] for name in PLAN}
    first: dict[str, float] = {}
    first_out: dict[str, float] = {}
    with bind_tenant(tenant.id):
        async with db.transaction() as s:
            await set_credential(
                s,
                box,
                name="openai",
                provider="openai",
                registry=ProviderRegistry(),
                egress=Settings().egress_rules.for_tenant(tenant.id),
            )
        table = await gateway.table(tenant.id)
        model.info = table.plan("gpt-4.1").groups[0][0]
        for i in range(runs):
            repo = home / "repos" / f"p{i}"
            repo.mkdir(parents=True)
            async with db.transaction() as s:
                project = await service.create_project(s, f"p{i}", repo_path=str(repo))
            inp = StepInput(idea="Export orders as CSV", feature="export")
            async with db.read() as s:
                past = await past_output(s, PLAN)  # empty for the first run only
            est = await estimate_run(table, repo, inp, PLAN, past=past)
            async with db.transaction() as s:
                run = await create_run(
                    s,
                    principal,
                    project_id=project.id,
                    idea="Export orders as CSV",
                    feature="export",
                    steps=PLAN,
                    estimate=est,
                    budget=None,
                    auto_approve=True,
                    models={},
                )
                run_id = run.id
            model.prompts.clear()
            model.outputs.clear()
            before_model = model.cpu
            t_cpu, t_wall = time.process_time(), time.perf_counter()
            orch.submit(tenant.id, run_id)
            await orch.wait(run_id)
            spent = time.process_time() - t_cpu - (model.cpu - before_model)
            if i >= 2:  # the first runs warm caches (tokenizer, SQL compilation)
                cpu.append(spent / len(PLAN))
                wall.append((time.perf_counter() - t_wall) / len(PLAN))
            info = table.plan("gpt-4.1").groups[0][0]
            for step in est["steps"]:
                body = {"model": info.name, "messages": model.prompts[step["step"]]}
                exact = count_request_tokens(body, info)
                error = (step["input_tokens"] - exact) / exact
                actual = model.outputs[step["step"]]
                out_error = (step["output_tokens"] - actual) / actual
                if i == 0:
                    first[step["step"]] = error
                    first_out[step["step"]] = out_error
                else:
                    errors[step["step"]].append(error)
                    out_errors[step["step"]].append(out_error)
        impl = await _implement(db, home, tenant.id, principal, table, model, tasks)
    await gateway.close()
    await db.dispose()
    print(f"runs: {runs} (3 steps each; the first 2 runs not counted)")
    print(
        f"orchestration CPU per step, model excluded: mean {statistics.mean(cpu) * 1000:.1f} ms"
        f", median {statistics.median(cpu) * 1000:.1f} ms"
    )
    print(f"wall per step (model answers at once): mean {statistics.mean(wall) * 1000:.1f} ms")
    print()
    print(
        "| step | input error, first run | input error, later | output error, first run "
        "| output error, later |"
    )
    print("|---|---|---|---|---|")
    for name, errs in errors.items():
        print(
            f"| {name} | {first[name] * 100:+.1f} % | {statistics.mean(errs) * 100:+.1f} % "
            f"| {first_out[name] * 100:+.1f} % | {statistics.mean(out_errors[name]) * 100:+.1f} % |"
        )
    if impl:
        print()
        print(f"implement, {tasks} tasks of one run (parallel 2), git included (children's CPU):")
        for key, value in impl.items():
            print(f"  {key}: {value}")


async def _implement(
    db: Database,
    home: Path,
    tenant_id: str,
    principal: Principal,
    table: object,
    model: Scripted,
    tasks: int,
) -> dict[str, str]:
    """One implement run of ``tasks`` independent tasks on a git repository: the overhead
    per task (worktree, context packing, git apply --check, commit, rows), the model
    excluded, and the estimate's error of each task's input and output tokens."""
    if tasks == 0:
        return {}
    from tests.orchestrator.test_implement import implementer, make_repo

    repo = home / "repos" / "impl"
    repo.mkdir(parents=True)
    ids = [f"TASK-{n:03d}" for n in range(1, tasks + 1)]
    make_repo(repo)
    text = "# export tasks\n\n" + "".join(
        f"### {t}: Part {t}\n\n**Requirements**: REQ-EXPORT-001\n**Depends on**: None\n\n"
        for t in ids
    )
    (repo / "storage/tasks/export-tasks.md").write_text(text)
    from tests.orchestrator.test_implement import git

    git(repo, "commit", "-qam", "tasks")
    async with db.transaction() as s:
        project = await service.create_project(s, "impl", repo_path=str(repo))
    steps = tuple(f"implement:{t}" for t in ids)
    inp = StepInput(idea=" ".join(ids), feature="impl")
    est = await estimate_run(table, repo, inp, steps)  # type: ignore[arg-type]
    async with db.transaction() as s:
        run = await create_run(
            s,
            principal,
            project_id=project.id,
            idea=" ".join(ids),
            feature="impl",
            steps=steps,
            estimate=est,
            budget=None,
            auto_approve=True,
            models={},
        )
        run_id = run.id
    orch = Orchestrator(db, lambda p: model, lambda t: _table(table), home=home)
    model.answer, model.prompts, model.outputs = implementer, {}, {}
    before_model = model.cpu
    t_cpu, t_wall = _cpu(), time.perf_counter()
    orch.submit(tenant_id, run_id)
    await orch.wait(run_id)
    spent = _cpu() - t_cpu - (model.cpu - before_model)
    wall = time.perf_counter() - t_wall
    async with db.read() as s:
        from musubi.orchestrator.service import get_run

        status = (await get_run(s, run_id)).status
    info = model.info
    assert info is not None
    ins, outs = [], []
    for step in est["steps"]:
        exact = count_request_tokens(
            {"model": info.name, "messages": model.prompts[step["step"]]}, info
        )
        ins.append((step["input_tokens"] - exact) / exact)
        actual = model.outputs[step["step"]]
        outs.append((step["output_tokens"] - actual) / actual)
    return {
        "run": status,
        "orchestration CPU per task, model excluded": f"{spent / tasks * 1000:.0f} ms",
        "wall per task (model answers at once)": f"{wall / tasks * 1000:.0f} ms",
        "input-token estimate error per task": f"{statistics.mean(ins) * 100:+.1f} %",
        "output-token estimate error per task (default 2000)": (
            f"{statistics.mean(outs) * 100:+.0f} %"
        ),
    }


async def _table(table: object) -> object:
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=6, help="tasks of the implement run")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.tasks))
