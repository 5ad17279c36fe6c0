"""Indexing a repository: list, hash, chunk, store, embed — incrementally.

A file is identified by its git blob id (``sha1("blob <size>\\0" + bytes)``, the same id git
gives it), so an unchanged file costs one hash. A changed file's chunks are replaced in one
transaction; embeddings are keyed by chunk content hash, so only chunks whose text is new
are embedded, and vectors no chunk uses any more are deleted. The vector store is flushed
every few seconds of embedding and when the run stops for any reason (Ctrl-C included), so
an interrupt loses nothing and a crash loses seconds of embeddings: the next run resumes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musubi.knowledge.chunking import ChunkOptions, chunk_file
from musubi.knowledge.files import list_files
from musubi.knowledge.languages import detect_language
from musubi.knowledge.store import KnowledgeIndex

if TYPE_CHECKING:
    from musubi.knowledge.embeddings import Embedder
    from musubi.knowledge.vectorstores import VectorStore

__all__ = ["IndexReport", "Progress", "blob_id", "index_repository"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (phase, done, total)
# Seconds of embedding between flushes of the vector store; a flush that itself takes long
# (a big matrix rewritten) waits FLUSH_COST_FACTOR times its own cost, so flushing stays a
# small share of the run.
FLUSH_SECONDS = 5.0
FLUSH_COST_FACTOR = 10.0


def blob_id(data: bytes) -> str:
    """Git's blob id of these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id


@dataclass
class IndexReport:
    files: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    embedded: int = 0
    vectors_deleted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["skipped"] = dict(self.skipped)
        out["warnings"] = self.warnings[:20]
        out["seconds"] = round(self.seconds, 3)
        return out


def _noop(phase: str, done: int, total: int) -> None:
    return None


def index_repository(
    root: Path,
    index: KnowledgeIndex,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    progress: Progress = _noop,
    opts: ChunkOptions | None = None,
) -> IndexReport:
    began = time.perf_counter()
    report = IndexReport()
    listing = list_files(root)
    report.skipped.update(listing.skipped)
    report.files = len(listing.files)
    known = index.file_blobs()
    for n, rel in enumerate(listing.files, 1):
        progress("chunk", n, len(listing.files))
        _index_file(root, rel, index, known, report, opts)
    for gone in sorted(set(known) - set(listing.files)):
        with index.transaction():
            index.remove_file(gone)
        report.removed += 1
    index.set_meta("root", str(root.resolve()))
    if embedder is not None and store is not None:
        index.set_meta("embedder", embedder.name)
        _embed(index, embedder, store, report, progress)
    report.seconds = time.perf_counter() - began
    return report


def _index_file(
    root: Path,
    rel: str,
    index: KnowledgeIndex,
    known: dict[str, str],
    report: IndexReport,
    opts: ChunkOptions | None,
) -> None:
    try:
        data = (root / rel).read_bytes()
    except OSError as exc:
        report.skipped["unreadable"] += 1
        report.warnings.append(f"{rel}: unreadable ({exc.strerror})")
        return
    blob = blob_id(data)
    if known.get(rel) == blob:
        report.unchanged += 1
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        report.skipped["undecodable"] += 1
        report.warnings.append(f"{rel}: not UTF-8")
        if rel in known:
            with index.transaction():
                index.remove_file(rel)
        return
    language = detect_language(rel)
    try:
        chunks = chunk_file(rel, language, text, opts)
    except (ValueError, RuntimeError, RecursionError) as exc:  # a grammar that chokes
        report.skipped["grammar-error"] += 1
        report.warnings.append(f"{rel}: {language} grammar failed ({exc})")
        log.warning("chunking %s failed: %s", rel, exc)
        return
    index.replace_file(rel, blob, language, chunks)
    report.indexed += 1
    report.chunks += len(chunks)


def _embed(
    index: KnowledgeIndex,
    embedder: Embedder,
    store: VectorStore,
    report: IndexReport,
    progress: Progress,
) -> None:
    wanted = index.distinct_keys()
    held = store.keys()
    stale = held - wanted
    if stale:
        store.delete(stale)
        report.vectors_deleted = len(stale)
    todo = sorted(wanted - held)
    with store.bulk_load(expected=len(todo)):  # pgvector: one index build after a big load
        wait = FLUSH_SECONDS
        last = time.monotonic()
        try:
            for start in range(0, len(todo), embedder.batch_size):
                keys = todo[start : start + embedder.batch_size]
                texts = index.texts_for(keys)
                keys = [k for k in keys if k in texts]
                store.upsert(keys, embedder.embed_documents([texts[k] for k in keys]))
                report.embedded += len(keys)
                progress("embed", min(start + embedder.batch_size, len(todo)), len(todo))
                if time.monotonic() - last >= wait:
                    began = time.monotonic()
                    store.flush()
                    last = time.monotonic()
                    wait = max(FLUSH_SECONDS, FLUSH_COST_FACTOR * (last - began))
        finally:  # an interrupt (KeyboardInterrupt) keeps every vector embedded so far
            store.flush()
