"""Issue-to-file localisation: BM25, dense, hybrid and ``localise``, one command.

    # SWE-bench-format rows; DIR/<owner>__<name> is a full git clone of each repository
    .venv/bin/python bench/localisation.py --swebench lite.jsonl --repos DIR [--max N]
    # a local repository's own history: commit message -> the source files it modified
    .venv/bin/python bench/localisation.py --git /work/main --max 40

Each instance is indexed at its base commit (``git archive`` into a temporary directory; the
clone is only read). One index per repository lives under ``--cache`` and is moved commit
to commit incrementally (only changed files are re-chunked); embeddings are cached there by
chunk content hash, so consecutive commits and reruns embed only chunks never seen before.

Gold files: SWE-bench — the ``--- a/`` paths of ``patch`` (the test patch is separate);
``--git`` — the files a non-merge commit modified that are neither tests nor docs (commits
touching none or more than five are skipped), indexed at the commit's parent.

With ``--agent``, also agent mode (:mod:`musubi.knowledge.agent`: a model explores the
index with tools) through an in-process gateway (``bench/llm_gateway.py``; a model with
tool calling is needed, so not the offline one):

    .venv/bin/python bench/localisation.py --git /work/main --max 20 --agent \
        --llm-provider openai --llm-model gpt-4o-mini --llm-key "$OPENAI_API_KEY"

Metrics over files ranked by each method (top 10): Acc@k — all gold files in the top k (the
convention of the LocAgent / SWE-bench localisation papers); Recall@10 — share of gold files
in the top 10, averaged; MRR@10 — reciprocal rank of the first gold file.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from musubi.git import run_git
from musubi.knowledge import localise as loc
from musubi.knowledge.embeddings import Embedder, make_embedder
from musubi.knowledge.indexer import index_repository
from musubi.knowledge.retrieval import Retriever, rank_files
from musubi.knowledge.store import KnowledgeIndex, chunk_key
from musubi.knowledge.vectorstores import NumpyVectorStore

if TYPE_CHECKING:
    from musubi.knowledge.vectorstores import VectorStore

K = 10
MAX_GOLD = 5
SIGNALS = [
    "W_CHUNKS",
    "W_FILE_TEXT",
    "W_PATH",
    "W_FRAME",
    "W_MODULE",
    "W_DEFINES",
    "W_PATH_WORDS",
    "W_IMPORTS",
    "W_IMPORTERS",
]
# --fit: the values each knob of musubi.knowledge.localise may take (coordinate ascent)
GRID: dict[str, list[float]] = {
    "W_CHUNKS": [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0],
    "W_FILE_TEXT": [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0],
    "W_PATH": [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
    "W_DEFINES": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
    "W_PATH_WORDS": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0],
    "W_IMPORTS": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5],
    "W_IMPORTERS": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5],
    "IMPORT_TOP": [1, 2, 3, 5, 10],
    "IMPORT_FANOUT": [0.0, 0.5, 1.0],
    "CHUNK_REST": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5],
    "NON_SOURCE": [0.1, 0.2, 0.3, 0.5, 0.7, 1.0],
    "ABOUT_LIFT": [0.0, 0.25, 0.5, 0.75, 1.0],
}


@dataclass
class Instance:
    id: str
    repo: Path
    commit: str  # the tree to index
    issue: str
    gold: list[str]
    when: int = 0  # commit time, for ordering
    part: str = ""  # --git: "tune" or "held-out" (see in_part)


@dataclass
class Tally:
    ranks: list[list[str]] = field(default_factory=list)
    golds: list[list[str]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, ranked: list[str], gold: list[str], seconds: float) -> None:
        self.ranks.append(ranked[:K])
        self.golds.append(gold)
        self.seconds.append(seconds)

    def subset(self, rows: Sequence[int]) -> Tally:
        return Tally(
            [self.ranks[i] for i in rows],
            [self.golds[i] for i in rows],
            [self.seconds[i] for i in rows],
        )

    def metrics(self) -> dict[str, float]:
        n = len(self.ranks) or 1
        out: dict[str, float] = {}
        for k in (1, 5, 10):
            out[f"Acc@{k}"] = (
                sum(set(g) <= set(r[:k]) for r, g in zip(self.ranks, self.golds, strict=True)) / n
            )
        out["Recall@10"] = (
            sum(len(set(g) & set(r)) / len(g) for r, g in zip(self.ranks, self.golds, strict=True))
            / n
        )
        mrr = 0.0
        for r, g in zip(self.ranks, self.golds, strict=True):
            first = next((i for i, p in enumerate(r) if p in g), None)
            mrr += 0.0 if first is None else 1 / (first + 1)
        out["MRR@10"] = mrr / n
        out["ms"] = 1000 * statistics.median(self.seconds) if self.seconds else 0.0
        return out


def print_table(tallies: dict[str, Tally]) -> None:
    cols = ["Acc@1", "Acc@5", "Acc@10", "Recall@10", "MRR@10", "ms"]
    width = max(len(n) for n in tallies)
    print(f"| {'method':<{width}} | " + " | ".join(cols) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(c) + 2) for c in cols) + "|")
    for name, tally in tallies.items():
        m = tally.metrics()
        cells = [f"{m[c]:.3f}".lstrip("0") if c != "ms" else f"{m[c]:.0f}" for c in cols]
        print(
            f"| {name:<{width}} | "
            + " | ".join(f"{v:>{len(c)}}" for v, c in zip(cells, cols, strict=True))
            + " |"
        )


# -- instances ------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return git_bytes(repo, *args).decode()


def git_bytes(repo: Path, *args: str) -> bytes:
    """``git <args>`` in ``repo``, hardened like every git call (musubi.git)."""
    out = run_git(repo, *args)
    if out is None:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}")
    return out


def swebench_instances(path: Path, repos: Path, limit: int | None) -> list[Instance]:
    text = path.read_text("utf-8")
    rows = (
        json.loads(text)
        if text.lstrip().startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    out: list[Instance] = []
    for row in rows[:limit]:
        repo = repos / row["repo"].replace("/", "__")
        gold = sorted(set(re.findall(r"^--- a/(\S+)", row["patch"], re.M)))
        when = int(git(repo, "show", "-s", "--format=%ct", row["base_commit"]).strip())
        out.append(
            Instance(
                row["instance_id"], repo, row["base_commit"], row["problem_statement"], gold, when
            )
        )
    return out


def in_part(commit: str, part: str) -> bool:
    """A fixed split by commit id: ``tune`` (ids ending in 0-7) or ``held-out`` (8-f).

    Weights are only ever chosen on the ``tune`` part; ``held-out`` is reported as is.
    """
    if part == "all":
        return True
    return (int(commit[-1], 16) < 8) == (part == "tune")


def history_instances(repo: Path, limit: int | None, part: str = "all") -> list[Instance]:
    """Newest first: each non-merge commit's message as the issue, at its parent commit."""
    out: list[Instance] = []
    for commit in git(repo, "rev-list", "--no-merges", "HEAD").split():
        if not in_part(commit, part):
            continue
        parents = git(repo, "show", "-s", "--format=%P", commit).split()
        if len(parents) != 1:
            continue  # the root commit has nothing to index
        changed = git(
            repo, "diff-tree", "-r", "--no-commit-id", "--name-status", parents[0], commit
        )
        modified = [ln.split("\t", 1)[1] for ln in changed.splitlines() if ln.startswith("M\t")]
        gold = [p for p in modified if loc.file_role(p) not in ("test", "doc")]
        if not gold or len(gold) > MAX_GOLD:
            continue
        message = git(repo, "show", "-s", "--format=%B", commit).strip()
        when = int(git(repo, "show", "-s", "--format=%ct", commit).strip())
        split = "tune" if in_part(commit, "tune") else "held-out"
        out.append(Instance(commit[:10], repo, parents[0], message, gold, when, split))
        if limit and len(out) >= limit:
            break
    return out


# -- indexes --------------------------------------------------------------------------------


class CachedEmbedder(Embedder):
    """Vectors by chunk content hash, kept in ``.npz`` parts across commits and runs."""

    def __init__(self, inner: Embedder, cache: Path) -> None:
        self.inner, self.cache = inner, cache
        self.name, self.dim, self.batch_size = inner.name, inner.dim, inner.batch_size
        cache.mkdir(parents=True, exist_ok=True)
        self.known: dict[str, npt.NDArray[np.float32]] = {}
        for part in sorted(cache.glob("part-*.npz")):
            data = np.load(part)
            self.known.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
        self.fresh: dict[str, npt.NDArray[np.float32]] = {}
        self.computed = 0

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        keys = [chunk_key(t) for t in texts]
        todo = [i for i, k in enumerate(keys) if k not in self.known]
        if todo:
            vectors = self.inner.embed_documents([texts[i] for i in todo])
            for i, vec in zip(todo, vectors, strict=True):
                self.known[keys[i]] = self.fresh[keys[i]] = vec
            self.computed += len(todo)
            if len(self.fresh) >= 1024:
                self.save()
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.known[k] for k in keys]).astype(np.float32)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return self.inner.embed_query(text)

    def save(self) -> None:
        if self.fresh:
            np.savez(
                self.cache / f"part-{time.time_ns()}.npz",
                keys=np.array(list(self.fresh)),
                vectors=np.stack(list(self.fresh.values())),
            )
            self.fresh = {}


@dataclass
class RepoIndex:
    index: KnowledgeIndex
    store: VectorStore | None
    commit: str = ""


def checkout(
    inst: Instance, cache: Path, embedder: Embedder | None, open_indexes: dict[Path, RepoIndex]
) -> tuple[RepoIndex, float]:
    """The repository's index moved to ``inst.commit`` (seconds spent)."""
    held = open_indexes.get(inst.repo)
    if held is None:
        where = cache / "repos" / inst.repo.resolve().name
        index = KnowledgeIndex.open(where / "index.sqlite")
        store = (
            None
            if embedder is None
            else NumpyVectorStore(where / "vectors" / embedder.name, embedder.dim)
        )
        held = open_indexes[inst.repo] = RepoIndex(index, store)
    if held.commit == inst.commit:
        return held, 0.0
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="musubi-loc-") as tmp:
        archive = git_bytes(inst.repo, "archive", "--format=tar", inst.commit)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        index_repository(Path(tmp), held.index, embedder, held.store)
    held.commit = inst.commit
    return held, time.perf_counter() - began


# -- methods --------------------------------------------------------------------------------

Method = Callable[[RepoIndex, Embedder | None, str], list[str]]


def by_chunks(weight: float | None) -> Method:
    """Today's ``rank_files`` over the chunk search (as ``musubi search --files -k 10``)."""

    def run(ri: RepoIndex, emb: Embedder | None, issue: str) -> list[str]:
        if weight is None:  # BM25 only: no dense side at all
            retriever = Retriever(ri.index)
        else:
            retriever = Retriever(ri.index, emb, ri.store, weight=weight)
        return [p for p, _ in rank_files(retriever.search(issue, K * 5), K)]

    return run


def whole_file_bm25(ri: RepoIndex, emb: Embedder | None, issue: str) -> list[str]:
    return [p for p, _ in loc.file_lexical(ri.index, issue, K)]


def source_file_bm25(ri: RepoIndex, emb: Embedder | None, issue: str) -> list[str]:
    """The plain baseline of the localisation papers: BM25 over source files only."""
    ranked = loc.file_lexical(ri.index, issue, K * 20)
    return [p for p, _ in ranked if loc.file_role(p) == "source"][:K]


def localised(overrides: dict[str, float] | None = None) -> Method:
    def run(ri: RepoIndex, emb: Embedder | None, issue: str) -> list[str]:
        saved = {name: getattr(loc, name) for name in overrides or {}}
        for name, value in (overrides or {}).items():
            setattr(loc, name, value)
        try:
            retriever = Retriever(ri.index, emb, ri.store)
            return [f.path for f in loc.localise(retriever, issue, K)]
        finally:
            for name, value in saved.items():
                setattr(loc, name, value)

    return run


def agent_method(gw: Any, max_steps: int, spent: dict[str, Any]) -> Method:
    """``localise`` in agent mode; ``spent`` adds up its requests, tokens and cost."""
    from musubi.errors import MusubiError
    from musubi.knowledge.agent import AgentLimits, agent_localise

    def run(ri: RepoIndex, emb: Embedder | None, issue: str) -> list[str]:
        retriever = Retriever(ri.index, emb, ri.store)
        try:
            out = agent_localise(
                retriever,
                issue,
                gw.chat,
                gw.model,
                gw.count,
                gw.price,
                k=K,
                limits=AgentLimits(max_steps=max_steps),
            )
        except MusubiError as exc:  # e.g. a model without tool calling: lexical, counted
            spent["refused"] = spent.get("refused", 0) + 1
            spent.setdefault("error", exc.message)
            return [f.path for f in loc.localise(retriever, issue, K)]
        for key in ("steps", "input_tokens", "output_tokens", "cost"):
            spent[key] = spent.get(key, 0) + getattr(out, key)
        spent["answered"] = spent.get("answered", 0) + (out.stopped == "answer")
        return [f.path for f in out.files]

    return run


def methods(dense: bool, ablate: bool) -> dict[str, Method]:
    out: dict[str, Method] = {
        "BM25 (chunks -> files)": by_chunks(None),
        "BM25 (whole files)": whole_file_bm25,
        "BM25 (whole source files)": source_file_bm25,
    }
    if dense:
        out["dense (chunks -> files)"] = by_chunks(1.0)
        out["hybrid (rank_files, w=0.7)"] = by_chunks(0.7)
    out["localise"] = localised()
    out["localise, issue-22 weights (before)"] = localised(BEFORE)
    if ablate:
        for name in SIGNALS:
            out[f"  localise without {name}"] = localised({name: 0.0})
        out["  localise, no non-source demotion"] = localised({"NON_SOURCE": 1.0})
    return out


# -- fitting the weights --------------------------------------------------------------------


def fit_objective(ranks: list[list[str]], golds: list[list[str]]) -> float:
    """What --fit maximises: Acc@5 first (the issue's target), then Acc@1, Acc@10, MRR@10."""
    tally = Tally(ranks, golds, [0.0] * len(ranks))
    m = tally.metrics()
    return 2 * m["Acc@5"] + m["Acc@1"] + m["Acc@10"] + m["MRR@10"]


def fit(
    cases: list[tuple[loc.Evidence, list[str]]], rounds: int = 4
) -> tuple[dict[str, float], float]:
    """Coordinate ascent over :data:`GRID` from the module's current values.

    Each knob in turn takes the grid value that scores best with the others fixed (ties keep
    the current value, then the smaller one); rounds repeat until nothing moves. Only the
    weighing is redone per value: the evidence was gathered once.
    """

    def score() -> float:
        ranks = [[f.path for f in loc.rank_evidence(ev, K)] for ev, _ in cases]
        return fit_objective(ranks, [g for _, g in cases])

    best = score()
    for _ in range(rounds):
        moved = False
        for name, values in GRID.items():
            current = getattr(loc, name)
            choice, choice_score = current, best
            for value in values:
                setattr(loc, name, value)
                got = score()
                if got > choice_score + 1e-9:
                    choice, choice_score = value, got
            setattr(loc, name, choice)
            moved = moved or choice != current
            best = choice_score
        if not moved:
            break
    return {name: getattr(loc, name) for name in GRID}, best


# localise's knobs before they were fitted (issue 22, part 2): the round numbers
BEFORE = {
    "W_CHUNKS": 1.0,
    "W_FILE_TEXT": 1.0,
    "W_PATH": 2.0,
    "W_FRAME": 1.5,
    "W_MODULE": 1.0,
    "W_DEFINES": 1.0,
    "W_PATH_WORDS": 0.0,
    "W_IMPORTS": 0.0,
    "W_IMPORTERS": 0.0,
    "CHUNK_REST": 0.1,
    "NON_SOURCE": 0.3,
    "ABOUT_LIFT": 1.0,
}


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--swebench", type=Path, help="SWE-bench rows (.jsonl or a .json list)")
    src.add_argument("--git", type=Path, help="a repository whose history gives the instances")
    ap.add_argument("--repos", type=Path, help="with --swebench: DIR/<owner>__<name> clones")
    ap.add_argument("--max", type=int, default=None, help="at most this many instances")
    ap.add_argument(
        "--part",
        choices=["all", "tune", "held-out"],
        default="all",
        help="with --git: the commits of one part of a fixed split by commit id",
    )
    ap.add_argument("--embedder", choices=["minilm", "hashing", "none"], default="minilm")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/musubi-localisation-cache"))
    ap.add_argument("--ablate", action="store_true", help="also localise with each signal off")
    ap.add_argument("--json", type=Path, help="write per-instance rankings here")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a weight of musubi.knowledge.localise, e.g. --set W_DEFINES=0.5",
    )
    ap.add_argument(
        "--fit",
        type=Path,
        metavar="FILE",
        help="with --part tune: fit localise's weights on these instances, write them to FILE",
    )
    ap.add_argument(
        "--evidence",
        type=Path,
        metavar="FILE",
        help="pickle each instance's (id, part, localise evidence, gold) here, to fit offline",
    )
    ap.add_argument("--agent", action="store_true", help="also localise in agent mode")
    ap.add_argument("--agent-steps", type=int, default=8, help="agent: most model turns")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from llm_gateway import add_llm_arguments, from_arguments

    add_llm_arguments(ap)
    args = ap.parse_args(argv)
    for item in args.set:
        name, _, value = item.partition("=")
        if not hasattr(loc, name):
            ap.error(f"musubi.knowledge.localise has no {name}")
        setattr(loc, name, float(value))

    if args.swebench:
        if args.repos is None:
            ap.error("--swebench needs --repos")
        instances = swebench_instances(args.swebench, args.repos, args.max)
    else:
        instances = history_instances(args.git, args.max, args.part)
    if args.fit and (args.swebench or args.part != "tune"):
        ap.error("--fit only on --git ... --part tune: weights are never chosen on held-out data")
    instances.sort(key=lambda i: (str(i.repo), i.when))  # consecutive commits: cheap re-index
    embedder = None
    if args.embedder != "none":
        embedder = CachedEmbedder(
            make_embedder(args.embedder), args.cache / "embeddings" / args.embedder
        )
    table = methods(embedder is not None, args.ablate)
    usage: dict[str, Any] = {}
    gw = from_arguments(args) if args.agent else None
    if gw is not None:
        table[f"localise --agent ({gw.model})"] = agent_method(gw, args.agent_steps, usage)
    tallies = {name: Tally() for name in table}
    open_indexes: dict[Path, RepoIndex] = {}
    per_instance: list[dict[str, Any]] = []
    cases: list[tuple[loc.Evidence, list[str]]] = []
    index_seconds = 0.0
    unreachable = 0
    for n, inst in enumerate(instances, 1):
        ri, spent = checkout(inst, args.cache, embedder, open_indexes)
        index_seconds += spent
        indexed = set(ri.index.file_blobs())
        unreachable += not set(inst.gold) <= indexed
        row: dict[str, Any] = {"id": inst.id, "gold": inst.gold, "ranked": {}}
        for name, method in table.items():
            began = time.perf_counter()
            ranked = method(ri, embedder, inst.issue)
            tallies[name].add(ranked, inst.gold, time.perf_counter() - began)
            row["ranked"][name] = ranked
        per_instance.append(row)
        if args.fit or args.evidence:
            retriever = Retriever(ri.index, embedder, ri.store)
            cases.append((loc.gather_evidence(retriever, inst.issue), inst.gold))
        print(f"  [{n}/{len(instances)}] {inst.id} indexed in {spent:.1f}s", file=sys.stderr)
        if embedder is not None:
            embedder.save()
    for ri in open_indexes.values():
        ri.index.close()

    print(
        f"\n{len(instances)} instances (part {args.part}); embedder {args.embedder}; "
        f"{unreachable} with a gold file not in the index; indexing {index_seconds:.0f}s"
        + (f", {embedder.computed} chunks embedded" if embedder is not None else "")
    )
    parts = sorted({i.part for i in instances}, reverse=True)
    for part in parts if len(parts) > 1 else [""]:
        rows = [n for n, i in enumerate(instances) if not part or i.part == part]
        if part:
            print(f"\npart {part}: {len(rows)} instances")
        print_table({name: t.subset(rows) for name, t in tallies.items()})
        single = [n for n in rows if len(instances[n].gold) == 1]
        print(f"\n{len(single)} of them with one gold file (as the issue's held-out judge):")
        print_table({name: t.subset(single) for name, t in tallies.items()})
    if args.evidence:
        with args.evidence.open("wb") as out:
            rows_out = [(i.id, i.part, ev, g) for i, (ev, g) in zip(instances, cases, strict=True)]
            pickle.dump(rows_out, out)
    if args.fit:
        weights, objective = fit(cases)
        print(f"\nfitted on {len(cases)} instances (objective {objective:.3f}): {weights}")
        args.fit.write_text(json.dumps(weights, indent=1) + "\n")
    if gw is not None:
        gw.close()
        print(f"agent: {usage}")
    if args.json:
        args.json.write_text(json.dumps(per_instance, indent=1))


if __name__ == "__main__":
    main()
