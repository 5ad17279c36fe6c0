from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from musubi.cli.main import cli
from musubi.knowledge.context import pack_context, token_counter
from musubi.knowledge.embeddings.hashing import HashingEmbedder
from musubi.knowledge.indexer import index_repository
from musubi.knowledge.repomap import build_repo_map, pagerank
from musubi.knowledge.retrieval import Retriever, fuse, rank_files
from musubi.knowledge.store import Filters, KnowledgeIndex
from musubi.knowledge.vectorstores import MemoryVectorStore

pytest.importorskip("tree_sitter", reason="the knowledge extra is not installed")


@pytest.fixture
def retriever(repo: Path, index: KnowledgeIndex) -> Retriever:
    embedder = HashingEmbedder()
    store = MemoryVectorStore(embedder.dim)
    (repo / "src" / "mailer.py").write_text(
        "from billing import send_reminder\n\n\ndef notify(invoice):\n"
        "    return send_reminder(invoice)\n"
    )
    (repo / "steering").mkdir()
    (repo / "steering" / "product.md").write_text("# Product\nInvoices get a total amount.\n")
    index_repository(repo, index, embedder, store)
    return Retriever(index, embedder, store)


def test_fusion_is_weighted_and_normalised() -> None:
    lexical = [("a", 10.0), ("b", 5.0), ("c", 0.0)]
    dense = [("b", 0.9), ("c", 0.8), ("d", 0.1)]
    assert [k for k, _ in fuse(lexical, dense, 0.0)][:1] == ["a"]
    assert [k for k, _ in fuse(lexical, dense, 1.0)][:1] == ["b"]
    fused = dict(fuse(lexical, dense, 0.5))
    assert fused["b"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert fused["d"] == 0.0  # dense floor, absent lexically


def test_search_identifier_split_filters_and_ranges(retriever: Retriever) -> None:
    hits = retriever.search("total amount of an invoice", 5)
    assert hits[0].symbol == "Invoice.total_amount"
    assert (hits[0].path, hits[0].start, hits[0].end) == ("src/billing.py", 2, 3)
    assert hits == sorted(hits, key=lambda h: -h.score)
    go = retriever.search("check password", 5, Filters(language="go"))
    assert {h.path for h in go} == {"src/auth.go"}
    only_md = retriever.search("invoice", 10, Filters(path_glob="docs/*"))
    assert only_md and {h.path for h in only_md} == {"docs/guide.md"}
    classes = retriever.search("invoice", 10, Filters(kind="class"))
    assert [h.symbol for h in classes] == ["Invoice"]


def test_lexical_only_while_embeddings_are_pending(repo: Path) -> None:
    index = KnowledgeIndex.memory()
    index_repository(repo, index)  # no embedder: nothing embedded yet
    hits = Retriever(index, HashingEmbedder(), MemoryVectorStore(64)).search("CheckPassword")
    assert hits[0].path == "src/auth.go"


def test_rank_files_aggregates_chunks(retriever: Retriever) -> None:
    files = rank_files(retriever.search("send reminder invoice", 30), 3)
    assert files[0][0] in {"src/billing.py", "src/mailer.py"}
    assert len({p for p, _ in files}) == len(files)


def test_pagerank_personalised() -> None:
    edges = {"a": Counter({"c": 1}), "b": Counter({"c": 1}), "c": Counter({"a": 1})}
    plain = pagerank(edges, "abc")
    assert plain["c"] > plain["b"]
    towards_b = pagerank(edges, "abc", {"b": 1.0})
    assert towards_b["b"] > plain["b"]
    assert sum(plain.values()) == pytest.approx(1.0)


def test_repo_map_ranks_referenced_definitions(retriever: Retriever) -> None:
    repo_map = build_repo_map(retriever.index, "reminder")
    top = repo_map.ranked()[0]
    assert top.name == "send_reminder" and top.signature == "def send_reminder(invoice):"
    count, _ = token_counter("gpt-4o")
    text = repo_map.render(40, count)
    assert count(text) <= 40 and "src/billing.py:" in text


def test_context_pack_fits_budget_with_provenance(retriever: Retriever) -> None:
    pack = pack_context(retriever, "change the invoice total amount", "gpt-4o", 400)
    assert pack.encoding == "o200k_base" and 0 < pack.tokens <= 400
    sources = {p.source for p in pack.pieces}
    assert {"repo-map", "code", "spec"} <= sources
    spans = [(p.path, p.start, p.end) for p in pack.pieces if p.source != "repo-map"]
    for path, start, end in spans:  # no two pieces overlap
        assert not any(
            q == path and s <= end and start <= e and (s, e) != (start, end) for q, s, e in spans
        )
    count, _ = token_counter("gpt-4")
    assert count("hello world") == 2  # cl100k for GPT-4


def test_cli_index_search_context(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSUBI_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    out = runner.invoke(cli, ["index", str(repo), "--embedder", "hashing", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["indexed"] == 4 and report["skipped"]["undecodable"] == 1
    args = ["--repo", str(repo), "--embedder", "hashing", "--json"]
    out = runner.invoke(cli, ["search", "invoice total", *args, "--kind", "method"])
    hits = json.loads(out.stdout)
    assert hits[0]["symbol"] == "Invoice.total_amount" and hits[0]["start"] == 2
    lexical = runner.invoke(cli, ["search", "CheckPassword", *args, "--dense-weight", "0"])
    assert json.loads(lexical.stdout)[0]["path"] == "src/auth.go"
    out = runner.invoke(cli, ["search", "invoice", *args, "--files", "-k", "2"])
    assert json.loads(out.stdout)[0]["path"] == "src/billing.py"
    out = runner.invoke(cli, ["context", "fix invoice total", *args, "--budget", "300"])
    assert json.loads(out.stdout)["tokens"] <= 300
    again = runner.invoke(cli, ["index", str(repo), "--embedder", "hashing", "--json"])
    assert json.loads(again.stdout)["unchanged"] == 4
    missing = runner.invoke(cli, ["search", "x", "--repo", str(tmp_path)])
    assert missing.exit_code == 1 and "not been indexed" in missing.output


def test_lexical_search_speaks_the_code_s_words(repo: Path, index: KnowledgeIndex) -> None:
    """A question in a user's words ("verified") finds code that says "matches"/"check" and
    names the thing asked about in its path, ahead of a test that repeats the user's word."""
    (repo / "src" / "tokens.py").write_text(
        "def matches(token, stored):\n    # constant-time check of the secret\n"
        "    return compare(token, stored)\n"
    )
    (repo / "tests").mkdir()
    (repo / "tests" / "test_signing.py").write_text(
        "def test_token_is_verified():\n    assert verify(token)  # verified, verify, verify\n"
    )
    index_repository(repo, index)
    question = [(c.path, c.symbol) for c, _ in index.lexical("where are tokens verified", 5)]
    assert question[0] == ("src/tokens.py", "matches")
    assert ("tests/test_signing.py", "test_token_is_verified") in question
    about_tests = [c.path for c, _ in index.lexical("tests where tokens are verified", 5)]
    assert about_tests[0] == "tests/test_signing.py"
