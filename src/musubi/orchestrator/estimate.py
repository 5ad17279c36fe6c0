"""The cost of a run before any call: per step and in total.

Input tokens are counted on the packed prompt with the gateway's counter (exact where the
model has a tokenizer). A later step's prompt holds the earlier steps' answers, which do
not exist yet: each is stood in for by text as long as that step's expected output.
Expected output tokens are the mean output of that step's last successful attempts in this
tenant (:func:`musubi.orchestrator.service.past_output`), else the step's documented default
(``Step.output_tokens``); cost is the catalogue's price of the chosen model.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from musubi.gateway.catalogue import ModelInfo
from musubi.gateway.router import RoutingTable
from musubi.gateway.tokens import count_request_tokens, count_text, method_for
from musubi.orchestrator.llm import choose_model
from musubi.orchestrator.steps import StepInput, step_of

__all__ = ["estimate_run"]

_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "


def _stand_in(tokens: int, info: ModelInfo) -> str:
    """Text of about ``tokens`` tokens for ``info``'s tokenizer (its own count of the filler)."""
    per = max(count_text(_FILLER * 8, info) / 8, 1.0)
    return _FILLER * max(1, round(tokens / per))


def _estimate(
    table: RoutingTable,
    root: Path | None,
    inp: StepInput,
    steps: tuple[str, ...],
    models: dict[str, str],
    cap: int | None,
    past: dict[str, int],
) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    total_cost = 0.0
    for name in steps:
        step, arg = step_of(name)
        info = choose_model(table, step.task, models.get(step.name))
        if step.name == "implement":
            from musubi.orchestrator.implement import implement_values

            inp.task_id, inp.context_tokens = implement_values(arg, info)
            inp.model = info.name
        if root is not None:
            step.prepare(root, inp)  # the code or specs it packs into its prompt
        body = {"model": info.name, "messages": step.messages(root, inp)}
        tokens_in = count_request_tokens(body, info)
        expected = past.get(step.name) or step.output_tokens
        tokens_out = min(expected, cap) if cap else expected
        cost = info.cost(tokens_in, tokens_out)
        total_cost += cost
        out.append(
            {
                "step": name,
                "model": info.name,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "output_basis": "history" if step.name in past else "default",
                "cost": round(cost, 8),
                "method": method_for(info),
                "fits": info.context == 0 or tokens_in + tokens_out <= info.context,
            }
        )
        if name == "requirements":
            inp.requirements = inp.requirements or _stand_in(tokens_out, info)
        elif name == "design":
            inp.design = inp.design or _stand_in(tokens_out, info)
    return {
        "steps": out,
        "input_tokens": sum(s["input_tokens"] for s in out),
        "output_tokens": sum(s["output_tokens"] for s in out),
        "cost": round(total_cost, 8),
        "currency": "USD",
    }


async def estimate_run(
    table: RoutingTable,
    root: Path | None,
    inp: StepInput,
    steps: tuple[str, ...],
    models: dict[str, str] | None = None,
    max_output_tokens: int | None = None,
    past: dict[str, int] | None = None,
) -> dict[str, Any]:
    """``max_output_tokens`` caps each step's expected answer (a run's cap); ``past`` is the
    tenant's mean output per step, where it has history."""
    # a tokenizer's first load takes seconds: not on the event loop
    return await asyncio.to_thread(
        _estimate, table, root, inp, steps, models or {}, max_output_tokens, past or {}
    )
