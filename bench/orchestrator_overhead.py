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

    PYTHONPATH=src .venv/bin/python bench/orchestrator_overhead.py [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from musubi.access.principal import Principal
from musubi.audit.signing import Signer
from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.pipeline import Gateway
from musubi.gateway.secrets import SecretBox
from musubi.gateway.service import set_credential
from musubi.gateway.tokens import count_request_tokens, count_text
from musubi.orchestrator.estimate import estimate_run
from musubi.orchestrator.llm import Completion
from musubi.orchestrator.runner import Orchestrator
from musubi.orchestrator.service import create_run, past_output
from musubi.orchestrator.steps import PLAN, StepInput
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.tenancy import service
from musubi.tenancy.context import bind_tenant, system_scope

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.orchestrator.conftest import good, stage_of


class Scripted:
    """Answers at once, reporting the answer's true token counts as a provider would;
    remembers each first prompt and its own CPU time (counting included)."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.prompts: dict[str, list[dict[str, str]]] = {}
        self.info: ModelInfo | None = None

    async def complete(
        self, model: str, messages: list[dict[str, str]], max_tokens: int, request_id: str
    ) -> Completion:
        t = time.process_time()
        stage = stage_of(messages)
        self.prompts.setdefault(stage, messages)
        text = good(messages)
        assert self.info is not None
        tokens_in = count_request_tokens({"model": model, "messages": messages}, self.info)
        tokens_out = count_text(text, self.info)
        self.cpu += time.process_time() - t
        return Completion(text, model, tokens_in, tokens_out, 0.0)


async def main(runs: int) -> None:
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
    first: dict[str, float] = {}
    with bind_tenant(tenant.id):
        async with db.transaction() as s:
            await set_credential(
                s, box, name="openai", provider="openai", known_providers={"openai"}
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
                if i == 0:
                    first[step["step"]] = error
                else:
                    errors[step["step"]].append(error)
    await gateway.close()
    await db.dispose()
    print(f"runs: {runs} (3 steps each; the first 2 runs not counted)")
    print(
        f"orchestration CPU per step, model excluded: mean {statistics.mean(cpu) * 1000:.1f} ms"
        f", median {statistics.median(cpu) * 1000:.1f} ms"
    )
    print(f"wall per step (model answers at once): mean {statistics.mean(wall) * 1000:.1f} ms")
    for name, errs in errors.items():
        print(
            f"input-token estimate error, {name}: first run (default output lengths) "
            f"{first[name] * 100:+.1f} %, later runs (this tenant's history) "
            f"{statistics.mean(errs) * 100:+.1f} %"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
