"""MiniLM embedding throughput on every runtime, side by side in one run.

    .venv/bin/python bench/knowledge_embed.py [--chunks 96] [--threads 1] [--repo src/musubi]

Chunks are real: the first ``--chunks`` chunks of ``--repo`` as the indexer cuts them
(up to 256 tokens each). Every runtime embeds the same batches; the table gives chunks per
CPU-second of this process (``time.process_time``, so other load on a shared machine counts
less than in wall time) with ``--threads`` threads (1 = per core), the largest difference to
the numpy encoder's vectors, the lowest cosine to them, and what each runtime adds to an
install (site-packages folders of the runtime and the dependencies only it pulls).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path


def _size_mb(*packages: str) -> float:
    total = 0
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            total += sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    return total / 1e6


SIZES = {
    "numpy": (),  # in the knowledge extra already
    "torch": ("torch",),  # CPU wheel; the registry's default torch adds CUDA (GBs)
    "onnx": ("onnxruntime", "onnx", "ml_dtypes", "flatbuffers"),
    "onnx-int8": ("onnxruntime", "onnx", "ml_dtypes", "flatbuffers"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repo", type=Path, default=Path(__file__).parents[1] / "src" / "musubi")
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)

    import numpy as np

    from musubi.knowledge.chunking import chunk_file
    from musubi.knowledge.embeddings.minilm import MiniLMEmbedder, _installed

    texts: list[str] = []
    for path in sorted(args.repo.rglob("*.py")):
        for chunk in chunk_file(str(path.relative_to(args.repo)), "python", path.read_text()):
            texts.append(chunk.text)
        if len(texts) >= args.chunks:
            break
    texts = texts[: args.chunks]
    available = {
        "numpy": True,
        "torch": _installed("torch"),
        "onnx": _installed("onnxruntime", "onnx"),
        "onnx-int8": _installed("onnxruntime", "onnx"),
    }
    reference = None
    rows = []
    for runtime, ok in available.items():
        if not ok:
            rows.append(f"{runtime:<10} {'not installed':>12}")
            continue
        embedder = MiniLMEmbedder(runtime=runtime)
        embedder.embed_documents(texts[:2])  # load the runtime and build the graph
        started, wall = time.process_time(), time.perf_counter()
        vectors = embedder.embed_documents(texts)
        cpu, wall = time.process_time() - started, time.perf_counter() - wall
        if reference is None:
            reference = vectors
        diff = float(np.abs(vectors - reference).max())
        cosine = float((vectors * reference).sum(1).min())
        rows.append(
            f"{runtime:<10} {len(texts) / cpu:12.2f} {cpu / len(texts):10.3f} "
            f"{len(texts) / wall:9.2f} {diff:9.1e} {cosine:9.6f} {_size_mb(*SIZES[runtime]):9.0f}"
        )
    print(f"MiniLM on {len(texts)} chunks of {args.repo}, {args.threads} thread(s)")
    print(
        f"{'runtime':<10} {'chunks/cpu-s':>12} {'cpu-s/chk':>10} {'chunks/s':>9} "
        f"{'max|diff|':>9} {'min cos':>9} {'adds MB':>9}"
    )
    print("\n".join(rows))
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
        f"python {sys.version.split()[0]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
