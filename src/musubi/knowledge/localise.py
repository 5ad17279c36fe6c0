"""Issue-to-file localisation: given an issue's text, which files of the repository to change.

Retrieval alone (BM25 and embeddings over chunks, :mod:`musubi.knowledge.retrieval`) reads an
issue as a bag of words. Issues carry sharper evidence, and the file-localisation literature
on SWE-bench-style tasks (Agentless, LocAgent, SweRank and the BM25/embedding baselines they
report) leans on it: a named file, a stack trace, the name of a class the reporter is
calling. :func:`localise` scores every candidate file with one weighted sum of these signals
(each in [0, 1], weights named below) and then demotes files that are not source. Headings
are the labels of ``why``:

``code match`` (:data:`W_CHUNKS`)
    The hybrid chunk ranking of :meth:`~musubi.knowledge.retrieval.Retriever.search` over
    function-, method- and class-level units (each chunk's terms carry its path and
    qualified symbol), aggregated per file as the best chunk plus :data:`CHUNK_REST` of
    the next two, divided by the best file's: where the code that reads like the issue is.
``file text`` (:data:`W_FILE_TEXT`)
    BM25 over each *whole file's* terms (FTS5, the same identifier-split, stemmed terms as
    the chunks), min-max normalised over the top candidates. A file whose parts each match a
    little (the issue's words spread over several functions) scores here and not per chunk;
    BM25's length normalisation keeps big files from winning by size.
``mentioned`` (:data:`W_PATH`)
    A path the issue writes out (``requests/sessions.py``, ``sessions.py``), matched onto
    indexed paths by the longest common component suffix; a bare name shared by several
    files splits its weight among them.
``traceback`` (:data:`W_FRAME`)
    Files in stack-trace frames: Python ``File ".../x.py", line N, in f``, Java/Kotlin
    ``at com.foo.Bar.m(Bar.java:12)``, JavaScript ``at f (/app/x.js:3:9)``, and the
    ``path:line`` of Go, Rust and compilers. The innermost frame that lands in the
    repository counts 1, the others ½ (every Django traceback passes through the same
    handler files). Absolute paths are matched by suffix; under ``site-packages`` the whole
    package path must match, so a frame in another library's ``core/__init__.py`` does not
    land on ours.
``module`` (:data:`W_MODULE`)
    A dotted name that is a module path of the repository (``django.db.models.query``,
    ``from requests.sessions import …``, ``com.foo.Bar``): the longest dotted prefix (at
    least two parts) that ends an indexed module path. Package ``__init__`` files get half,
    since an import names the public package rather than the file that defines the thing.
``path words`` (:data:`W_PATH_WORDS`)
    The issue's words that name the file's module path without writing it: "the gateway
    cache drops entries" and ``src/musubi/gateway/cache.py``. The share of the path's words
    (identifier-split and stemmed like the text, each weighted by its IDF over the
    repository's paths, so ``src`` and the package's own name count for little) that the
    issue uses; nothing unless a word of the file's own name is among them. Package
    ``__init__`` files get half.
``defines`` (:data:`W_DEFINES`)
    Identifiers of the issue — CamelCase, snake_case, names called with ``(``, everything
    inside backticks, the functions of traceback frames, the parts of dotted names, and
    capitalised words mid-sentence that are class names — that a file *defines* (the
    function, method and class symbols of its chunks). An identifier defined in ``n`` files
    gives each ``1/n`` (none past :data:`MAX_DEFINERS`: too common a name to say where); a
    file's sum is divided by the best file's, so the file defining most of what the issue
    names gets 1.

``imports`` / ``imported by`` (:data:`W_IMPORTS`, :data:`W_IMPORTERS`)
    After the sum above, the files each of the :data:`IMPORT_TOP` best candidates imports,
    and the files importing it, get that share of its score (the best one when several
    point at a file), divided by the number of such neighbours to the power
    :data:`IMPORT_FANOUT` so a module everything imports spreads thin
    (:mod:`musubi.knowledge.imports`; Python only).

Test files, documentation and examples are multiplied by :data:`NON_SOURCE` (in SWE-bench
the gold patch almost never touches tests: the test patch is separate). An issue whose
title (its first line) is about them ("test", "docs", "example", …) lifts
:data:`ABOUT_LIFT` of that demotion: fitted to 0, since on this repository's history such
titles still mean a source file to change (and it lets their whole-file text count).

Every result carries ``why``: the signals that fired, so a user sees the reason.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from musubi.knowledge.imports import ImportGraph
from musubi.knowledge.languages import detect_language
from musubi.knowledge.retrieval import CANDIDATES, Retriever
from musubi.knowledge.store import Filters, KnowledgeIndex
from musubi.text import stem, tokenize
from musubi.text import words as text_words

__all__ = [
    "Evidence",
    "FileScore",
    "IssueSignals",
    "extract_signals",
    "file_lexical",
    "file_role",
    "gather_evidence",
    "localise",
    "rank_evidence",
]

# -- weights: fitted on the tuning part of this repository's history (issue 22, part 2:
# bench/localisation.py --fit, coordinate ascent; docs/knowledge.md). Only ratios matter;
# W_FRAME and W_MODULE keep their earlier ratio to W_CHUNKS (no commit message here has a
# traceback or a module path to fit them on); W_IMPORTERS moved no tuning Acc@k: off --
W_CHUNKS = 2.0  # hybrid chunk ranking, per file (0..1)
W_FILE_TEXT = 1.0  # whole-file BM25 (0..1)
W_PATH = 3.0  # the issue writes the file's path or name
W_FRAME = 3.0  # the file is in a stack-trace frame
W_MODULE = 2.0  # a dotted name of the issue is the file's module path
W_DEFINES = 1.0  # the file defines identifiers the issue uses
W_PATH_WORDS = 1.0  # the issue's words name the file's module path (0..1)
W_IMPORTS = 0.3  # share of a top candidate's score for the files it imports
W_IMPORTERS = 0.0  # share of a top candidate's score for the files importing it
IMPORT_TOP = 10  # candidates whose score spreads along imports
IMPORT_FANOUT = 0.5  # a share is divided by (number of neighbours) ** this
CHUNK_REST = 0.3  # code match: best chunk + this share of the next two
NON_SOURCE = 0.5  # factor for tests, docs and examples unless the issue is about them
ABOUT_LIFT = 0.0  # how much of that demotion an issue about them lifts (1: all of it)
TEXT_SOURCE_ONLY = 1.0  # 1: whole-file BM25 scaled over the files that can win (issue 22)
MAX_DEFINERS = 8  # an identifier defined in more files than this says nothing
CHUNK_HITS = CANDIDATES  # chunk hits aggregated per file
FILE_CANDIDATES = CANDIDATES  # files taken from the whole-file BM25


@dataclass(frozen=True)
class FileScore:
    path: str
    score: float
    why: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "score": round(self.score, 4), "why": list(self.why)}


# -- signals in the issue's text ------------------------------------------------------------


@dataclass(frozen=True)
class IssueSignals:
    paths: tuple[str, ...]  # file paths as written: relative, absolute or a bare name
    frames: tuple[str, ...]  # file paths of stack-trace frames, innermost first
    modules: tuple[str, ...]  # dotted names: module paths, qualified names
    identifiers: tuple[str, ...]  # code identifiers
    capitalised: tuple[str, ...]  # plain capitalised words (matched to class names only)


_PY_FRAME = re.compile(r'File "([^"\n]+)", line \d+(?:, in ([\w<>.]+))?')
_JVM_FRAME = re.compile(r"\bat\s+([\w$.]+)\(([\w$]+\.(?:java|kt|scala|groovy)):\d+\)")
_JS_FRAME = re.compile(
    r"\bat\s+(?:(?:async\s+)?([\w$.<>]+)\s+\()?(?:file://|webpack:///)?([^\s()]+?):\d+:\d+\)?"
)
_LINE_REF = re.compile(r"((?:[\w.@~+-]+/|/)*[\w.@+-]*[\w@+-]\.[A-Za-z]\w{0,9}):\d+")
_PATH = re.compile(
    r"(?<![\w/.\\-])((?:[\w.@~+-]+[/\\]|[/\\])*[\w@+-][\w.@+-]*\.[A-Za-z]\w{0,9})(?![\w/\\-])"
)
_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_BACKTICKS = re.compile(r"`([^`\n]{1,300})`")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")  # code style: "word (aside)" is prose
_CAMEL = re.compile(
    r"\b(?:[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+|[A-Z]{2,}[a-z][A-Za-z0-9]*|[a-z]+[A-Z]\w*)\b"
)
_SNAKE = re.compile(r"\b_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+_*\b")
_CAPITAL = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]{2,}\b")  # mid-sentence: not "When …"
_NAME = re.compile(r"[A-Za-z_]\w*")
_QUALIFIED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?")
_IGNORED_WORDS = """self cls this super print len str int float bool list dict set tuple type
object None True False isinstance issubclass range open return import from def class lambda if
else for while try except raise with assert async await new null true false var let const
function main init Traceback __init__ __call__ __repr__ __str__ __eq__ __name__ __main__ module"""
_IGNORED = frozenset(_IGNORED_WORDS.split())


def _ordered(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def extract_signals(text: str) -> IssueSignals:
    """Paths, frames, dotted names and identifiers of an issue, each list de-duplicated."""
    frames: list[str] = []
    idents: list[str] = []
    modules: list[str] = []
    spans: list[tuple[int, int]] = []  # text already read as a frame
    for m in reversed(list(_PY_FRAME.finditer(text))):  # Python prints the innermost last
        frames.append(m.group(1))
        spans.append(m.span())
        if m.group(2):
            idents.append(m.group(2).rsplit(".", 1)[-1])
    for m in _JVM_FRAME.finditer(text):
        qualified, filename = m.group(1), m.group(2)
        parts = qualified.split(".")
        stem = filename.rsplit(".", 1)[0]
        owners = [i for i, p in enumerate(parts) if p.split("$", 1)[0] == stem]
        if owners:
            frames.append("/".join([*parts[: owners[0]], filename]))
            modules.append(".".join([*parts[: owners[0]], stem]))
        else:
            frames.append(filename)
        idents.append(parts[-1])
        spans.append(m.span())
    for m in _JS_FRAME.finditer(text):
        if "." in PurePosixPath(m.group(2)).name:
            frames.append(m.group(2))
            spans.append(m.span())
            if m.group(1):
                idents.append(m.group(1).rsplit(".", 1)[-1])
    for m in _LINE_REF.finditer(text):
        if not any(a <= m.start() < b for a, b in spans):
            frames.append(m.group(1))
            spans.append(m.span())
    frames_t = _ordered(f.replace("\\", "/") for f in frames)
    paths = [
        m.group(1).replace("\\", "/")
        for m in _PATH.finditer(text)
        if not any(a <= m.start() < b for a, b in spans)
    ]
    paths = [p for p in paths if "/" in p or _known_file_name(p)]
    for m in _DOTTED.finditer(text):
        parts = m.group(0).split(".")
        if _known_file_name(m.group(0)) or max(map(len, parts)) <= 2:  # sessions.py, e.g
            continue
        modules.append(m.group(0))
        idents += [p for p in parts[:-1] if p[:1].isupper() or "_" in p.strip("_")]
        idents.append(parts[-1])
        if parts[-2][:1].isupper():  # Class.method: looked up as a qualified symbol
            idents.append(".".join(parts[-2:]))
    for m in _BACKTICKS.finditer(text):
        idents += _NAME.findall(m.group(1))
    idents += _CALL.findall(text)
    idents += _CAMEL.findall(text)
    idents += _SNAKE.findall(text)
    return IssueSignals(
        paths=_ordered(paths),
        frames=frames_t,
        modules=_ordered(modules),
        identifiers=_ordered(
            i for i in idents if len(i) > 2 and i not in _IGNORED and _QUALIFIED.fullmatch(i)
        ),
        capitalised=_ordered(w for w in _CAPITAL.findall(text) if w not in _IGNORED),
    )


def _known_file_name(name: str) -> bool:
    """``sessions.py``, ``setup.cfg``: a file name, not a dotted module path or ``e.g``."""
    suffix = PurePosixPath(name).suffix
    return bool(suffix) and (detect_language(name) != "text" or suffix == ".txt")


# -- the repository side --------------------------------------------------------------------

_TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "spec", "specs", "e2e"})
_DOC_DIRS = frozenset({"doc", "docs", "documentation", "site"})
_EXAMPLE_DIRS = frozenset(
    {"example", "examples", "sample", "samples", "demo", "demos", "bench", "benchmarks"}
)
_DOC_EXT = frozenset({".md", ".markdown", ".mdx", ".rst", ".txt", ".adoc"})
_TEST_NAME = re.compile(
    r"^(test_.*|.*_test|.*_tests|tests?|conftest|.*Tests?|.*\.(test|spec))\.\w+$"
)
_ABOUT = {
    "test": re.compile(r"\b(tests?|testing|pytest|unittest|flaky|fixtures?)\b", re.I),
    "doc": re.compile(r"\b(docs?|documentation|readme|tutorial|changelog)\b", re.I),
    "example": re.compile(r"\b(examples?|demos?|samples?|benchmarks?)\b", re.I),
}


def file_role(path: str) -> str:
    """``test``, ``doc``, ``example`` or ``source``, from the path alone."""
    p = PurePosixPath(path)
    dirs = {d.lower() for d in p.parts[:-1]}
    if dirs & _TEST_DIRS or _TEST_NAME.match(p.name):
        return "test"
    if dirs & _DOC_DIRS or p.suffix.lower() in _DOC_EXT:
        return "doc"
    if dirs & _EXAMPLE_DIRS:
        return "example"
    return "source"


def _module_parts(path: str) -> tuple[str, ...]:
    """``django/db/models/__init__.py`` -> ``(django, db, models)``."""
    p = PurePosixPath(path)
    parts = [*p.parts[:-1], p.stem]
    if parts[-1] in {"__init__", "index", "mod"} and len(parts) > 1:
        parts.pop()
    return tuple(parts)


@dataclass
class _Repo:
    """What the index knows about files: paths, module names, definitions and imports."""

    paths: list[str]
    by_name: dict[str, list[str]]  # file name -> paths
    by_module_tail: dict[str, list[tuple[tuple[str, ...], str]]]  # last module part -> paths
    definers: dict[str, set[str]]  # name or qualified symbol -> files defining it
    classes: dict[str, set[str]]  # class name -> files defining it
    path_words: dict[str, tuple[frozenset[str], frozenset[str]]]  # (all words, own name's)
    word_idf: dict[str, float]  # path word -> IDF over the repository's paths
    imports: ImportGraph
    roles: dict[str, str]  # path -> file_role(path)
    spelt: dict[str, str]  # a path word's stem -> the word as a path spells it (for why)

    @classmethod
    def load(cls, index: KnowledgeIndex) -> _Repo:
        """What the index holds now; read once per state of the index (0.3-0.6 s on this
        repository's 8,000 chunks under load, most of it the import graph), then reused."""
        files = index.conn.execute("SELECT path, blob FROM files ORDER BY path").fetchall()
        chunks = index.conn.execute("SELECT count(*), max(id) FROM chunks").fetchone()
        key = hashlib.sha1(repr((files, chunks)).encode()).hexdigest()  # noqa: S324 - an id
        if key in _LOADED:
            return _LOADED[key]
        repo = cls._read(index, [str(r[0]) for r in files])
        while len(_LOADED) >= _LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = repo
        return repo

    @classmethod
    def _read(cls, index: KnowledgeIndex, paths: list[str]) -> _Repo:
        by_name: dict[str, list[str]] = defaultdict(list)
        by_tail: dict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        path_words: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        df: dict[str, int] = defaultdict(int)
        spelt: dict[str, str] = {}
        for path in paths:
            by_name[PurePosixPath(path).name].append(path)
            parts = _module_parts(path)
            by_tail[parts[-1]].append((parts, path))
            for word in text_words(" ".join(parts)):
                spelt.setdefault(stem(word, "en"), word)
            words = frozenset(tokenize(" ".join(parts)))
            path_words[path] = (words, frozenset(tokenize(parts[-1])))
            for w in words:
                df[w] += 1
        idf = {w: math.log(1 + len(paths) / n) for w, n in df.items()}
        definers: dict[str, set[str]] = defaultdict(set)
        classes: dict[str, set[str]] = defaultdict(set)
        rows = index.conn.execute(
            "SELECT DISTINCT path, kind, symbol FROM chunks "
            "WHERE kind IN ('function', 'method', 'class') AND symbol != ''"
        )
        for path, kind, symbol in rows:
            name = symbol.rsplit(".", 1)[-1]
            definers[name].add(path)
            if "." in symbol:
                definers[symbol].add(path)
            if kind == "class":
                classes[name].add(path)
        roles = {path: file_role(path) for path in paths}
        repo = cls(
            paths, by_name, by_tail, definers, classes, path_words, idf, ImportGraph(), roles, spelt
        )
        texts = index.conn.execute(
            "SELECT path, text FROM chunks WHERE language = 'python' AND instr(text, 'import')"
        )
        repo.imports = ImportGraph.build(texts, _package_of, lambda d: repo.match_module(d)[0])
        return repo

    def match_path(self, written: str, frame: bool) -> list[str]:
        """Indexed paths a written path most likely means (longest common suffix)."""
        parts = [p for p in written.strip("/").split("/") if p not in ("", ".")]
        if not parts:
            return []
        need = min(2, len(parts))
        if frame and "site-packages" in parts:  # the installed package's path must match
            need = len(parts) - parts.index("site-packages") - 1
        best: list[str] = []
        best_len = 0
        for path in self.by_name.get(parts[-1], []):
            mine = path.split("/")
            common = 0
            while common < min(len(mine), len(parts)) and mine[-1 - common] == parts[-1 - common]:
                common += 1
            if common < need and common < len(mine):
                continue
            if common > best_len:
                best, best_len = [path], common
            elif common == best_len:
                best.append(path)
        return best

    def match_module(self, dotted: str) -> tuple[list[str], str]:
        """Files whose module path ends with the longest (≥ 2 parts) prefix of ``dotted``."""
        parts = tuple(dotted.split("."))
        for n in range(len(parts), 1, -1):
            prefix = parts[:n]
            hits = [
                path
                for module, path in self.by_module_tail.get(prefix[-1], [])
                if module[-n:] == prefix
            ]
            if hits:
                return hits, ".".join(prefix)
        return [], ""


# Repositories already read, by the state of their index (files and their blobs, chunk ids):
# the same content gives the same _Repo, whichever index holds it; a few are kept.
_LOADED: dict[str, _Repo] = {}
_LOADED_MAX = 8


# -- whole-file BM25 ------------------------------------------------------------------------

_FILE_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS file_terms USING fts5(body);
CREATE TABLE IF NOT EXISTS file_terms_src (
    path TEXT PRIMARY KEY, blob TEXT NOT NULL, rid INTEGER NOT NULL);
"""


def _sync_file_terms(index: KnowledgeIndex) -> None:
    """Keep one FTS5 row per file (its chunks' terms, the path once) in step with ``files``.

    A derived cache in the index's own database, refreshed by blob id: only files that
    changed since the last search are rebuilt, from the terms the chunks already hold (no
    re-tokenising).
    """
    conn = index.conn
    conn.executescript(_FILE_SCHEMA)
    files = dict(conn.execute("SELECT path, blob FROM files").fetchall())
    have = {p: b for p, b in conn.execute("SELECT path, blob FROM file_terms_src")}
    if files == have:
        return
    with index.transaction():
        files = dict(conn.execute("SELECT path, blob FROM files").fetchall())
        rows = conn.execute("SELECT path, blob, rid FROM file_terms_src").fetchall()
        for path, blob, rid in rows:
            if files.get(path) != blob:
                conn.execute("DELETE FROM file_terms WHERE rowid = ?", (rid,))
                conn.execute("DELETE FROM file_terms_src WHERE path = ?", (path,))
        kept = {p for p, b, _ in rows if files.get(p) == b}
        for path, blob in files.items():
            if path in kept:
                continue
            head = tokenize(path)
            bodies = conn.execute(
                "SELECT t.body FROM chunks c JOIN terms t ON t.rowid = c.id "
                "WHERE c.path = ? ORDER BY c.id",
                (path,),
            )
            terms = list(head)
            for (body,) in bodies:
                terms += body.split()[len(head) :]  # each chunk's terms start with the path's
            cur = conn.execute("INSERT INTO file_terms (body) VALUES (?)", (" ".join(terms),))
            conn.execute(
                "INSERT INTO file_terms_src (path, blob, rid) VALUES (?, ?, ?)",
                (path, blob, cur.lastrowid),
            )


def file_lexical(
    index: KnowledgeIndex, query: str, k: int = FILE_CANDIDATES, filters: Filters | None = None
) -> list[tuple[str, float]]:
    """Files ranked by BM25 over their whole text's terms; best first."""
    terms = sorted(set(tokenize(query)))
    if not terms:
        return []
    _sync_file_terms(index)
    where, args = _file_filter(filters)
    rows = index.conn.execute(
        "SELECT s.path, -bm25(file_terms) FROM file_terms "
        "JOIN file_terms_src s ON s.rid = file_terms.rowid JOIN files f ON f.path = s.path "
        f"WHERE file_terms MATCH ? AND {where} ORDER BY bm25(file_terms) LIMIT ?",
        [" OR ".join(f'"{t}"' for t in terms), *args, k],
    )
    return [(str(p), float(s)) for p, s in rows]


def _file_filter(filters: Filters | None) -> tuple[str, list[str]]:
    """The path and language parts of ``filters`` over the ``files`` table (alias ``f``)."""
    parts, args = [], []
    if filters is not None and filters.path_glob:
        parts.append("f.path GLOB ?")
        args.append(filters.path_glob)
    if filters is not None and filters.language:
        parts.append("f.language = ?")
        args.append(filters.language)
    return " AND ".join(parts) or "1", args


# -- scoring --------------------------------------------------------------------------------


@dataclass
class _Evidence:
    chunks: tuple[float, ...] = ()  # the file's best three chunk scores, best first
    text: float = 0.0
    mentioned: float = 0.0
    frame: float = 0.0
    module: float = 0.0
    defines: float = 0.0
    path_words: float = 0.0
    mention_as: str = ""
    module_as: str = ""
    defined: tuple[str, ...] = ()
    named_by: tuple[str, ...] = ()


@dataclass
class Evidence:
    """Every signal of every candidate file for one issue, before the weights are applied.

    :func:`gather_evidence` reads the index once; :func:`rank_evidence` weighs it, so
    weights can be fitted on a data set without searching again (``bench/localisation.py
    --fit``).
    """

    files: dict[str, _Evidence]
    roles: dict[str, str]  # path -> role, for every file that may score
    about: set[str]  # the non-source roles the issue is about
    imports: ImportGraph
    allowed: set[str] | None


def localise(
    retriever: Retriever, issue: str, k: int = 10, filters: Filters | None = None
) -> list[FileScore]:
    """The ``k`` files most likely to need changing for ``issue``, best first.

    ``score = W_CHUNKS·chunks + W_FILE_TEXT·text + W_PATH·mentioned + W_FRAME·traceback
    + W_MODULE·module + W_DEFINES·defines + W_PATH_WORDS·path words``, times
    :data:`NON_SOURCE` for tests, docs and examples the issue is not about, then spread
    along imports from the best candidates (see the module docstring for each signal).
    """
    return rank_evidence(gather_evidence(retriever, issue, filters), k)


def gather_evidence(retriever: Retriever, issue: str, filters: Filters | None = None) -> Evidence:
    """Each signal of :func:`localise`, per candidate file, each in [0, 1]."""
    index = retriever.index
    repo = _Repo.load(index)
    allowed = _allowed(index, filters)
    signals = extract_signals(issue)
    ev: dict[str, _Evidence] = defaultdict(_Evidence)

    per_file: dict[str, list[float]] = defaultdict(list)
    for hit in retriever.search(issue, CHUNK_HITS, filters):
        per_file[hit.path].append(hit.score)
    for path, scores in per_file.items():
        ev[path].chunks = tuple(sorted(scores, reverse=True)[:3])
    # Whole-file BM25 over the files that can win: tests, docs and examples the issue is not
    # about are left out *before* scaling, so a long doc page at the top no longer squeezes
    # every source file's text score (issue 22: BM25 over source files is the stronger one).
    about = _about(issue)
    roles = repo.roles
    candidates = [
        (path, score)
        for path, score in file_lexical(index, issue, FILE_CANDIDATES, filters)
        if not TEXT_SOURCE_ONLY or roles.get(path, "source") == "source" or roles[path] in about
    ]
    for path, score in _minmax(candidates):
        ev[path].text = score

    for written in signals.paths:
        hits = repo.match_path(written, frame=False)
        for path in hits:
            if 1 / len(hits) > ev[path].mentioned:
                ev[path].mentioned, ev[path].mention_as = 1 / len(hits), written
    innermost = True  # the innermost frame in the repository counts fully, the rest half
    for written in signals.frames:
        hits = repo.match_path(written, frame=True)
        for path in hits:
            ev[path].frame = max(ev[path].frame, (1.0 if innermost else 0.5) / len(hits))
        innermost = innermost and not hits
    for dotted in signals.modules:
        hits, prefix = repo.match_module(dotted)
        for path in hits:
            weight = (0.5 if _module_is_package(path) else 1.0) / len(hits)
            if weight > ev[path].module:
                ev[path].module, ev[path].module_as = weight, prefix

    defined: dict[str, float] = defaultdict(float)  # Σ 1/n per file
    names: dict[str, list[str]] = defaultdict(list)
    wanted = [(i, repo.definers) for i in signals.identifiers]
    wanted += [(w, repo.classes) for w in signals.capitalised if w not in signals.identifiers]
    for ident, table in wanted:
        files = table.get(ident, set())
        if not files or len(files) > MAX_DEFINERS:
            continue
        for path in files:
            defined[path] += 1 / len(files)
            names[path].append(ident)
    most = max(defined.values(), default=1.0)
    for path, total in defined.items():
        ev[path].defines, ev[path].defined = total / most, tuple(names[path])

    words = set(tokenize(issue))
    for path, (mine, own) in repo.path_words.items():
        said = mine & words
        if not said & own:
            continue
        share = sum(repo.word_idf[w] for w in said) / sum(repo.word_idf[w] for w in mine)
        ev[path].path_words = share * (0.5 if _module_is_package(path) else 1.0)
        ev[path].named_by = tuple(sorted(repo.spelt.get(w, w) for w in said))

    return Evidence(dict(ev), roles, about, repo.imports, allowed)


def rank_evidence(evidence: Evidence, k: int = 10) -> list[FileScore]:
    """The ``k`` best files of ``evidence`` under the module's current weights."""
    code = _code_match(evidence)
    base: dict[str, float] = {}
    for path, e in evidence.files.items():
        if evidence.allowed is not None and path not in evidence.allowed:
            continue
        score = (
            W_CHUNKS * code.get(path, 0.0)
            + W_FILE_TEXT * e.text
            + W_PATH * e.mentioned
            + W_FRAME * e.frame
            + W_MODULE * e.module
            + W_DEFINES * e.defines
            + W_PATH_WORDS * e.path_words
        )
        if score > 0:
            base[path] = score * _factor(evidence, path)
    spread = _spread(evidence, base)
    out: list[FileScore] = []
    for path in base.keys() | spread.keys():
        score = base.get(path, 0.0) + spread.get(path, (0.0, ""))[0]
        if score <= 0:
            continue
        e = evidence.files.get(path, _Evidence())
        role = evidence.roles.get(path) or file_role(path)
        demoted = role if _factor(evidence, path) < 1 else ""
        linked = spread.get(path, (0.0, ""))[1]
        out.append(FileScore(path, score, _why(e, code.get(path, 0.0), linked, demoted)))
    out.sort(key=lambda f: (-f.score, f.path))
    return out[:k]


def _factor(evidence: Evidence, path: str) -> float:
    role = evidence.roles.get(path) or file_role(path)
    if role == "source":
        return 1.0
    if role in evidence.about:
        return NON_SOURCE + ABOUT_LIFT * (1 - NON_SOURCE)
    return NON_SOURCE


def _spread(evidence: Evidence, base: dict[str, float]) -> dict[str, tuple[float, str]]:
    """Shares of the best candidates' scores for the files they import or are imported by."""
    if not (W_IMPORTS or W_IMPORTERS):
        return {}
    out: dict[str, tuple[float, str]] = {}
    top = sorted(base.items(), key=lambda kv: (-kv[1], kv[0]))[: int(IMPORT_TOP)]
    graph = evidence.imports
    for source, score in top:
        for weight, label, table in (
            (W_IMPORTS, "imported by", graph.imports),
            (W_IMPORTERS, "imports", graph.importers),
        ):
            near = table.get(source, set())
            if not weight or not near:
                continue
            share = weight * score / len(near) ** IMPORT_FANOUT
            for path in near:
                if evidence.allowed is not None and path not in evidence.allowed:
                    continue
                gain = share * _factor(evidence, path)
                if gain > out.get(path, (0.0, ""))[0]:
                    out[path] = (gain, f"{label} {source}")
    return out


def _code_match(evidence: Evidence) -> dict[str, float]:
    """Per file: best chunk plus :data:`CHUNK_REST` of the next two, over the best file's."""
    scored = {
        path: e.chunks[0] + CHUNK_REST * sum(e.chunks[1:])
        for path, e in evidence.files.items()
        if e.chunks
    }
    top = max(scored.values(), default=1.0)
    top = top if top > 0 else 1.0
    return {path: score / top for path, score in scored.items()}


def _package_of(path: str) -> tuple[str, ...]:
    """The package a Python file's relative imports start from."""
    parts = _module_parts(path)
    return parts if _module_is_package(path) else parts[:-1]


def _module_is_package(path: str) -> bool:
    return PurePosixPath(path).stem in {"__init__", "index", "mod"}


def _minmax(scored: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    if not scored:
        return []
    hi, lo = scored[0][1], scored[-1][1]
    span = hi - lo
    return [(p, (s - lo) / span if span > 0 else 1.0) for p, s in scored]


def _allowed(index: KnowledgeIndex, filters: Filters | None) -> set[str] | None:
    if filters is None or not (filters.path_glob or filters.language):
        return None
    where, args = _file_filter(filters)
    return {r[0] for r in index.conn.execute(f"SELECT f.path FROM files f WHERE {where}", args)}


def _about(issue: str) -> set[str]:
    """The non-source roles the issue's title is about."""
    title = issue.strip().split("\n", 1)[0]
    return {role for role, pattern in _ABOUT.items() if pattern.search(title)}


def _why(e: _Evidence, code: float, linked: str, demoted: str) -> tuple[str, ...]:
    why: list[str] = []
    if e.mentioned:
        why.append(f"mentioned: {e.mention_as}")
    if e.frame:
        why.append("traceback")
    if e.module:
        why.append(f"module: {e.module_as}")
    if e.defines:
        shown = ", ".join(e.defined[:3]) + (" …" if len(e.defined) > 3 else "")
        why.append(f"defines: {shown}")
    if code:
        why.append(f"code match {code:.2f}")
    if e.text:
        why.append(f"file text {e.text:.2f}")
    if e.path_words and W_PATH_WORDS:
        why.append(f"path words: {', '.join(e.named_by)}")
    if linked:
        why.append(linked)
    if demoted:
        why.append(f"{demoted} file (demoted)")
    return tuple(why)
