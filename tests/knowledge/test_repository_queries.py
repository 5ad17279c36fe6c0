"""Questions a new user asked of this repository (issue 15), on a lexical index of it
(BM25 only: seconds to build, and what every index answers while embeddings are pending)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from musubi.knowledge.context import pack_context
from musubi.knowledge.indexer import index_repository
from musubi.knowledge.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def this_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace.open(tmp_path_factory.mktemp("index"), None)
    index_repository(ROOT, ws.index)
    try:
        yield ws
    finally:
        ws.close()


def test_context_for_a_code_question_is_not_mostly_docs(this_repository: Workspace) -> None:
    """Before: the four best Markdown sections of docs/ were packed ahead of any code,
    relevant or not: 37% of an 8,000-token budget (43% with the README) for "where are API
    keys verified", whose answer is in src/musubi/identity/ — which, until search learnt the
    code's words for it (``matches``, ``authenticate``), was not in the pack at all."""
    budget = 8000
    pack = pack_context(
        this_repository.retriever(), "where are API keys verified", "gpt-4o", budget
    )
    spec = sum(p.tokens for p in pack.pieces if p.source == "spec")
    code = sum(p.tokens for p in pack.pieces if p.source == "code")
    assert spec <= 0.2 * budget
    assert code > spec and pack.tokens <= budget
    code_paths = {p.path for p in pack.pieces if p.source == "code"}
    assert {"src/musubi/identity/keys.py", "src/musubi/identity/auth.py"} <= code_paths


def test_where_api_keys_are_verified_finds_the_key_check(this_repository: Workspace) -> None:
    """Before: the top ten were all the audit log's ``verify`` (tests first), because
    "verified" stems to the audit code's word; the key check says "matches", "check" and
    "authenticate" and lives in identity/keys.py and identity/auth.py."""
    hits = this_repository.retriever().search("where are API keys verified", 10)
    found = {(h.path, h.symbol) for h in hits}
    assert ("src/musubi/identity/keys.py", "matches") in found
    assert ("src/musubi/identity/auth.py", "Authenticator.authenticate") in found
