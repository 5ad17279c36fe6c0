"""The on-disk index of one repository: files, chunks and a BM25 full-text index.

One SQLite file (stdlib ``sqlite3``, FTS5). Chunk terms are produced by the same
identifier-splitting tokeniser and stemmer as trace recovery
(:func:`musubi.text.tokenize`), so ``getHTTPResponse`` matches "http response".
Each file's rows are written in one transaction together with its blob id, which is what
makes an interrupted run resume where it stopped.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from musubi.knowledge.chunking import Chunk
from musubi.knowledge.query import Concepts
from musubi.text import tokenize

__all__ = ["Filters", "KnowledgeIndex", "StoredChunk", "chunk_key", "terms_of"]

LEXICAL_POOL = 200  # BM25 candidates rescored by concept coverage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, blob TEXT NOT NULL, language TEXT NOT NULL, chunks INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, key TEXT NOT NULL, language TEXT NOT NULL,
    kind TEXT NOT NULL, symbol TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks (path);
CREATE INDEX IF NOT EXISTS chunks_key ON chunks (key);
CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5(body);
"""


def chunk_key(text: str) -> str:
    """Content hash of a chunk's text: the key of its embedding."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()  # noqa: S324 - an id


def terms_of(chunk: Chunk) -> str:
    """Index terms: path and symbol (identifier-split) and the text."""
    return " ".join(tokenize(f"{chunk.path} {chunk.symbol} {chunk.symbol} {chunk.text}"))


@dataclass(frozen=True)
class StoredChunk:
    id: int
    path: str
    key: str
    language: str
    kind: str
    symbol: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Filters:
    path_glob: str | None = None
    language: str | None = None
    kind: str | None = None

    def sql(self, alias: str = "c") -> tuple[str, list[str]]:
        parts, args = [], []
        if self.path_glob:
            parts.append(f"{alias}.path GLOB ?")
            args.append(self.path_glob)
        if self.language:
            parts.append(f"{alias}.language = ?")
            args.append(self.language)
        if self.kind:
            parts.append(f"{alias}.kind = ?")
            args.append(self.kind)
        return (" AND ".join(parts) or "1"), args

    @property
    def empty(self) -> bool:
        return not (self.path_glob or self.language or self.kind)


_COLS = 'c.id, c.path, c.key, c.language, c.kind, c.symbol, c.start, c."end", c.text'


class KnowledgeIndex:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.conn.executescript(_SCHEMA)

    @classmethod
    def open(cls, path: Path) -> KnowledgeIndex:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return cls(conn)

    @classmethod
    def memory(cls) -> KnowledgeIndex:
        return cls(sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None))

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------

    def add_chunks(self, chunks: Iterable[Chunk]) -> int:
        n = 0
        for c in chunks:
            cur = self.conn.execute(
                'INSERT INTO chunks (path, key, language, kind, symbol, start, "end", text) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (c.path, chunk_key(c.text), c.language, c.kind, c.symbol, c.start, c.end, c.text),
            )
            self.conn.execute(
                "INSERT INTO terms (rowid, body) VALUES (?, ?)", (cur.lastrowid, terms_of(c))
            )
            n += 1
        return n

    def remove_file(self, path: str) -> None:
        self.conn.execute(
            "DELETE FROM terms WHERE rowid IN (SELECT id FROM chunks WHERE path = ?)", (path,)
        )
        self.conn.execute("DELETE FROM chunks WHERE path = ?", (path,))
        self.conn.execute("DELETE FROM files WHERE path = ?", (path,))

    def replace_file(self, path: str, blob: str, language: str, chunks: list[Chunk]) -> None:
        """Swap one file's chunks in a single transaction (the unit of resumption)."""
        with self.transaction():
            self.remove_file(path)
            self.add_chunks(chunks)
            self.conn.execute(
                "INSERT INTO files (path, blob, language, chunks) VALUES (?, ?, ?, ?)",
                (path, blob, language, len(chunks)),
            )

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (key, value))

    # -- reading --------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def file_blobs(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT path, blob FROM files").fetchall())

    def keys_in_order(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT key FROM chunks ORDER BY id")]

    def distinct_keys(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT DISTINCT key FROM chunks")}

    def texts_for(self, keys: Iterable[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in keys:
            row = self.conn.execute("SELECT text FROM chunks WHERE key = ? LIMIT 1", (key,))
            found = row.fetchone()
            if found:
                out[key] = found[0]
        return out

    def counts(self) -> dict[str, int]:
        files = self.conn.execute("SELECT count(*) FROM files").fetchone()[0]
        chunks = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return {"files": int(files), "chunks": int(chunks)}

    def chunks(self, filters: Filters | None = None) -> list[StoredChunk]:
        where, args = (filters or Filters()).sql()
        rows = self.conn.execute(f"SELECT {_COLS} FROM chunks c WHERE {where} ORDER BY id", args)
        return [StoredChunk(*r) for r in rows]

    def by_keys(self, keys: Iterable[str], filters: Filters | None = None) -> list[StoredChunk]:
        where, args = (filters or Filters()).sql()
        keys = list(keys)
        out: list[StoredChunk] = []
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT {_COLS} FROM chunks c WHERE c.key IN ({marks}) AND {where}",
                [*part, *args],
            )
            out += [StoredChunk(*r) for r in rows]
        return out

    def lexical(
        self, query: str, k: int, filters: Filters | None = None
    ) -> list[tuple[StoredChunk, float]]:
        """BM25 (FTS5, k1=1.2, b=0.75) over identifier-split, stemmed terms, widened with code
        synonyms and rescored by concept coverage (:mod:`musubi.knowledge.query`); best first."""
        concepts = Concepts.of(query)
        if not concepts.terms:
            return []
        pool = max(k, LEXICAL_POOL)
        direct = self._bm25(concepts.terms, pool, filters)
        found = {cid: (c, score, 0.0) for cid, (c, score) in direct.items()}
        for cid, (c, score) in self._bm25(concepts.synonyms, pool, filters).items():
            found[cid] = (c, found[cid][1] if cid in found else 0.0, score)
        scored = [
            (c, concepts.rescore(s, syn, f"{c.path} {_own_name(c.symbol)}"))
            for c, s, syn in found.values()
        ]
        scored.sort(key=lambda cs: (-cs[1], cs[0].id))
        return scored[:k]

    def _bm25(
        self, terms: Sequence[str], k: int, filters: Filters | None
    ) -> dict[int, tuple[StoredChunk, float]]:
        if not terms:
            return {}
        match = " OR ".join(f'"{t}"' for t in terms)
        where, args = (filters or Filters()).sql()
        rows = self.conn.execute(
            f"SELECT {_COLS}, -bm25(terms) AS score FROM terms "
            f"JOIN chunks c ON c.id = terms.rowid "
            f"WHERE terms MATCH ? AND {where} ORDER BY bm25(terms) LIMIT ?",
            [match, *args, k],
        )
        return {r[0]: (StoredChunk(*r[:9]), float(r[9])) for r in rows}


def _own_name(symbol: str) -> str:
    """A Markdown section's own heading, not its ancestors' (the document title is in every
    section's symbol and would name them all alike)."""
    return symbol.rsplit(" > ", 1)[-1]
