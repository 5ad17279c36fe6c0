"""Contract checks, one per kind: plain functions that raise AssertionError, so they run
under pytest or anything else. MUSUBI's own tests run them on the built-ins too."""

from __future__ import annotations

from typing import Any

from musubi.kinds import Kind

__all__ = [
    "check_embedder",
    "check_entry_point",
    "check_provider_class",
    "check_step",
    "check_vector_store",
]


def check_entry_point(kind: Kind[Any], name: str, distribution: str) -> None:
    """``name`` is installed as an implementation of ``kind``, from ``distribution``, and
    loads."""
    found = {i.name: i for i in kind.implementations()}
    assert name in found, f"{kind.group} has no entry point {name!r} (found {sorted(found)})"
    assert found[name].distribution == distribution, found[name]
    kind.load(name)


def check_provider_class(cls: type[Any]) -> None:
    """A provider class: a :class:`Provider` with a name, buildable from a credential."""
    from musubi.gateway.providers.base import ClientPool, Credential, Provider

    assert isinstance(cls, type) and issubclass(cls, Provider), f"{cls!r} is not a Provider"
    assert cls.name, "a provider sets its name (the entry point's name)"
    base_url = cls.default_base_url or "https://contract.example"  # Azure has no default
    provider = cls(Credential(name="contract", provider=cls.name, base_url=base_url), ClientPool())
    assert provider.credential.provider == cls.name
    destination = provider.destination()
    assert destination is None or destination.startswith(("http://", "https://")), destination


def check_embedder(embedder: Any) -> None:
    """Unit float32 rows of ``dim`` columns, deterministic, one per text, empty for none;
    related texts closer than unrelated ones."""
    import numpy as np

    from musubi.knowledge.embeddings.base import Embedder

    assert isinstance(embedder, Embedder), f"{embedder!r} is not an Embedder"
    assert embedder.name and embedder.dim > 0
    texts = ["def add(a, b): return a + b", "read a json file"]
    vecs = embedder.embed_documents(texts)
    assert vecs.shape == (2, embedder.dim) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_documents([]).shape == (0, embedder.dim)
    assert np.allclose(embedder.embed_query(texts[0]), vecs[0], atol=1e-4)
    q = embedder.embed_query("parse json config file")
    near, far = embedder.embed_documents(
        ["def load_json_config(path): return json.load(open(path))", "draw a red circle"]
    )
    assert float(q @ near) > float(q @ far)


def check_vector_store(store: Any) -> None:
    """Upsert, search best-first, restrict, delete, keys (an empty store of ``dim`` 4)."""
    import numpy as np

    from musubi.knowledge.vectorstores.base import VectorStore

    assert isinstance(store, VectorStore) and store.dim == 4
    eye = np.eye(4, dtype=np.float32)
    store.upsert(["a", "b", "c"], eye[:3])
    store.flush()
    assert store.keys() == {"a", "b", "c"}
    hits = store.search(eye[1], 2)
    assert hits[0][0] == "b" and abs(hits[0][1] - 1.0) < 1e-5
    assert [k for k, _ in store.search(eye[1], 3, restrict={"a", "c"})] in (["a", "c"], ["c", "a"])
    store.delete({"b", "unknown"})
    assert store.keys() == {"a", "c"}


def check_step(cls: type[Any]) -> None:
    """An orchestrator step class: a :class:`Step` with a name, a routing task, an output
    folder and an expected answer length; it writes a prompt for an idea, and its
    validator refuses an empty answer (a step that accepts anything checks nothing)."""
    from musubi.orchestrator.steps import Step, StepInput

    assert isinstance(cls, type) and issubclass(cls, Step), f"{cls!r} is not a Step"
    step = cls()
    assert step.name and step.task and step.folder, "a step sets name, task and folder"
    assert step.output_tokens > 0, "a step expects some output (for the cost estimate)"
    messages = step.messages(None, StepInput(idea="an idea", feature="contract"))
    assert messages and all(m["content"] for m in messages), messages
    assert messages[-1]["role"] == "user", "the prompt ends with the user's message"
    checked = step.check("", StepInput(idea="", feature="contract"))
    assert checked.errors, f"step {step.name!r} accepts an empty answer"
