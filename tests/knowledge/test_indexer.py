from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from musubi.knowledge.embeddings.hashing import HashingEmbedder
from musubi.knowledge.files import list_files
from musubi.knowledge.indexer import blob_id, index_repository
from musubi.knowledge.store import KnowledgeIndex
from musubi.knowledge.vectorstores import NumpyVectorStore
from tests.knowledge.conftest import make_repo

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")

INDEXED = ["docs/guide.md", "gen.py", "latin1.py", "src/auth.go", "src/billing.py"]


def test_blob_id_is_gits(repo: Path) -> None:
    out = subprocess.run(
        ["git", "-C", str(repo), "hash-object", "src/billing.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert blob_id((repo / "src/billing.py").read_bytes()) == out


@pytest.mark.parametrize("use_git", [True, False])
def test_listing_skips_and_counts(tmp_path: Path, use_git: bool) -> None:
    root = make_repo(tmp_path / "r", use_git=use_git)
    listing = list_files(root)
    assert [f for f in listing.files if f != ".gitignore"] == [f for f in INDEXED if f != "gen.py"]
    assert listing.skipped["binary"] == 2
    assert listing.skipped["generated"] == 2  # app.min.js, the DO NOT EDIT header
    if not use_git:
        assert listing.skipped["vendored"] == 0  # node_modules is never walked


def test_index_counts_undecodable_and_searches(
    repo: Path, index: KnowledgeIndex, embedder: HashingEmbedder, store: NumpyVectorStore
) -> None:
    report = index_repository(repo, index, embedder, store)
    assert report.skipped["undecodable"] == 1
    assert any("latin1.py" in w for w in report.warnings)
    files = set(index.file_blobs())
    assert "src/billing.py" in files and "ignored.py" not in files
    assert len(store) == len(index.distinct_keys()) == report.embedded


def test_one_line_change_touches_only_that_file(
    repo: Path, index: KnowledgeIndex, embedder: HashingEmbedder, store: NumpyVectorStore
) -> None:
    index_repository(repo, index, embedder, store)
    before = {c.path: c.id for c in index.chunks()}
    embedder.calls = 0
    again = index_repository(repo, index, embedder, store)
    assert (again.indexed, again.embedded, embedder.calls) == (0, 0, 0)

    path = repo / "src" / "billing.py"
    path.write_text(path.read_text().replace("return 42", "return 43"))
    report = index_repository(repo, index, embedder, store)
    assert report.indexed == 1 and report.unchanged == report.files - 2  # latin1.py: skipped
    assert embedder.calls == 1  # only the changed method's text is new
    assert report.vectors_deleted == 1  # the old method's vector is gone
    after = {c.path: c.id for c in index.chunks()}
    assert after["src/auth.go"] == before["src/auth.go"]  # untouched rows
    assert any("return 43" in c.text for c in index.chunks() if c.path == "src/billing.py")


def test_removed_file_leaves_the_index(
    repo: Path, index: KnowledgeIndex, embedder: HashingEmbedder, store: NumpyVectorStore
) -> None:
    index_repository(repo, index, embedder, store)
    (repo / "src" / "auth.go").unlink()
    report = index_repository(repo, index, embedder, store)
    assert report.removed == 1
    assert not [c for c in index.chunks() if c.path == "src/auth.go"]
    assert report.vectors_deleted >= 1
    assert store.keys() == index.distinct_keys()


def test_interrupted_run_resumes(tmp_path: Path, repo: Path) -> None:
    db = tmp_path / "idx" / "index.sqlite"
    embedder = HashingEmbedder()

    def stop_after_two(phase: str, done: int, total: int) -> None:
        if phase == "chunk" and done == 3:
            raise KeyboardInterrupt

    index = KnowledgeIndex.open(db)
    with pytest.raises(KeyboardInterrupt):
        index_repository(
            repo, index, embedder, NumpyVectorStore(tmp_path / "v", 64), stop_after_two
        )
    index.close()
    index = KnowledgeIndex.open(db)
    assert len(index.file_blobs()) == 2  # the first two files were committed
    store = NumpyVectorStore(tmp_path / "v", 64)
    report = index_repository(repo, index, embedder, store)
    assert report.unchanged == 2 and report.indexed == report.files - 2 - 1  # latin1 skipped
    reopened = NumpyVectorStore(tmp_path / "v", 64)  # flushed to disk
    assert reopened.keys() == index.distinct_keys()


def test_grammar_crash_is_counted(
    repo: Path, index: KnowledgeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    from musubi.knowledge import indexer

    real = indexer.chunk_file

    def crashing(path: str, language: str, text: str, opts: object = None) -> object:
        if path.endswith(".go"):
            raise RuntimeError("grammar blew up")
        return real(path, language, text)

    monkeypatch.setattr(indexer, "chunk_file", crashing)
    report = index_repository(repo, index)
    assert report.skipped["grammar-error"] == 1
    assert "src/billing.py" in index.file_blobs()
