"""Contract checks, one per kind: plain functions that raise AssertionError, so they run
under pytest or anything else. MUSUBI's own tests run them on the built-ins too."""

from __future__ import annotations

from typing import Any, Protocol

from musubi.kinds import Kind

__all__ = [
    "PipelineSide",
    "TrackerSide",
    "check_embedder",
    "check_entry_point",
    "check_pipeline",
    "check_provider_class",
    "check_step",
    "check_tracker",
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


class TrackerSide(Protocol):
    """The tracker's own side of :func:`check_tracker`, read *without* the tracker class
    (a vendor's fake, the files a file-based tracker writes, a test project on a real
    tracker), so the contract checks what the tracker did, not what it says it did.

    Two optional members widen the check: ``fail_next(status, retry_after) -> bool``
    makes the next request the tracker sends fail with that HTTP status (``False``: this
    side cannot, and the error-translation steps are skipped); ``violations``, a list of
    the requests that broke the vendor's API description, must stay empty.
    """

    def labelled(self, label: str) -> int:
        """How many issues carry ``label`` (open or closed)."""
        ...

    def issue(self, key: str) -> tuple[str, bool]:
        """The (title, closed) of issue ``key`` as the tracker holds it."""
        ...


async def check_tracker(tracker: Any, side: TrackerSide, *, missing_key: str = "404") -> None:
    """A tracker against its side: the class answers what configuring it asks (a vendor
    name, a rate, a target check that refuses a blank one, a reference naming the key);
    an issue is created labelled with its item's ID (once), read, found by that ID,
    edited, closed, reopened, created closed; errors are translated at the boundary
    (5xx → ``TrackerUnavailable``, 429 → ``TrackerRateLimited`` with its
    ``retry_after``, an unknown issue ``missing_key`` → ``TrackerRefused``).

    Use a fresh, empty project on the tracker: the check creates issues for
    ``REQ-C-001`` and ``REQ-C-002``.
    """
    from musubi.errors import InvalidInput
    from musubi.integrations.tracker import (
        IssueDraft,
        Tracker,
        TrackerRateLimited,
        TrackerRefused,
        TrackerUnavailable,
        label_for,
    )

    cls = type(tracker)
    assert isinstance(tracker, Tracker), f"{tracker!r} is not a Tracker"
    assert cls.vendor, "a tracker sets vendor (its entry point's name)"
    assert cls.default_rate >= 0, "default_rate is requests a second (0: no limit)"
    try:
        cls.check_target("")
    except InvalidInput as exc:
        assert exc.field == "target", exc.field
    else:
        raise AssertionError(f"{cls.__name__}.check_target accepts a blank target")
    assert "12" in cls.reference("target", "12"), "the reference names the issue's key"

    draft = IssueDraft("REQ-C-001", "REQ-C-001: Login", "The system shall log users in.")
    assert await tracker.find_issue("REQ-C-001") is None, "check_tracker needs an empty project"

    created = await tracker.create_issue(draft)
    assert created.item_id == "REQ-C-001", f"the issue is not labelled: {created.labels}"
    assert side.labelled(label_for("REQ-C-001")) == 1

    read = await tracker.get_issue(created.key)
    assert (read.title, read.body, read.closed) == (draft.title, draft.body, False), read
    found = await tracker.find_issue("REQ-C-001")
    assert found is not None and found.key == created.key, found

    edited = IssueDraft(draft.item_id, "REQ-C-001: Log in", draft.body)
    updated = await tracker.update_issue(read, edited)
    assert updated.title == "REQ-C-001: Log in", updated
    assert side.issue(created.key) == ("REQ-C-001: Log in", False)

    closed = await tracker.close_issue(await tracker.get_issue(created.key))
    assert closed.closed and side.issue(created.key)[1], "close_issue did not close it"
    reopened = await tracker.update_issue(await tracker.get_issue(created.key), edited)
    assert not reopened.closed and not side.issue(created.key)[1], "not reopened"

    born_closed = await tracker.create_issue(IssueDraft("REQ-C-002", "t", "b", closed=True))
    assert side.issue(born_closed.key)[1], "a closed item is created closed"
    assert side.labelled(label_for("REQ-C-001")) == 1, "an issue was created twice"

    fail_next = getattr(side, "fail_next", None)
    if fail_next is not None and fail_next(503, None):
        try:
            await tracker.get_issue(created.key)
        except TrackerUnavailable:
            pass
        else:
            raise AssertionError("a 503 is not a TrackerUnavailable")
        assert fail_next(429, "7")
        try:
            await tracker.get_issue(created.key)
        except TrackerRateLimited as exc:
            assert exc.retry_after == 7.0, exc.retry_after
        else:
            raise AssertionError("a 429 is not a TrackerRateLimited")
        tracker.limiter.pause(-7.0)  # give the tokens back: the check does not wait
    try:
        await tracker.get_issue(missing_key)
    except TrackerRefused:
        pass
    else:
        raise AssertionError(f"reading the unknown issue {missing_key!r} is not refused")
    violations = getattr(side, "violations", [])
    assert violations == [], violations


class PipelineSide(Protocol):
    """The CI/CD service's own side of :func:`check_pipeline`, read *without* the
    pipeline class (a vendor's fake, a scratch project on the real service).

    Two optional members widen the check, as :class:`TrackerSide`'s do:
    ``fail_next(status, retry_after) -> bool`` makes the next request fail with that HTTP
    status (``False``: this side cannot); ``violations`` must stay empty.
    """

    def held(self, external_id: str) -> dict[str, Any]:
        """The run as the service holds it: ``{"ref": ..., "variables": {...}}`` (the
        ref as the service names it: ``main`` or ``refs/heads/main``)."""
        ...

    def finish(self, external_id: str, result: str) -> None:
        """Complete the run with ``result`` (``succeeded`` or ``failed``)."""
        ...


async def check_pipeline(
    pipeline: Any,
    side: PipelineSide,
    *,
    missing_id: str = "999999",
    refused: Any = None,
) -> None:
    """A pipeline against its side: the class answers what configuring it asks (a vendor
    name, a target check that refuses a blank one, the secrets it needs among the ones a
    configuration holds); a run is triggered on ``main`` with a variable the service
    holds, read back while it runs, followed to ``failed``, a second one to
    ``succeeded``; errors are translated at the boundary (an unknown run ``missing_id``
    → ``TrackerRefused``, a 503 → ``TrackerUnavailable``). ``refused``, when given, is
    the same pipeline built with a token the service refuses: reading a run through it
    must be a ``TrackerRefused``.

    The check triggers two runs of the pipeline.
    """
    from musubi.errors import InvalidInput
    from musubi.integrations.pipeline import RESULTS, SECRETS, STATES, Pipeline
    from musubi.integrations.tracker import TrackerRefused, TrackerUnavailable

    cls = type(pipeline)
    assert isinstance(pipeline, Pipeline), f"{pipeline!r} is not a Pipeline"
    assert cls.vendor, "a pipeline sets vendor (its entry point's name)"
    assert set(cls.secrets) <= set(SECRETS), f"secrets must be among {SECRETS}: {cls.secrets}"
    try:
        cls.check_target("")
    except InvalidInput as exc:
        assert exc.field == "target", exc.field
    else:
        raise AssertionError(f"{cls.__name__}.check_target accepts a blank target")

    started = await pipeline.trigger("main", {"MUSUBI_RUN": "run_contract"})
    assert started.state in ("queued", "running") and not started.done, started
    assert started.external_id, "trigger answers the service's run id"
    held = side.held(started.external_id)
    assert held["variables"] == {"MUSUBI_RUN": "run_contract"}, held
    assert str(held["ref"]).removeprefix("refs/heads/") == "main", held
    again = await pipeline.status(started.external_id)
    assert again.external_id == started.external_id and not again.done, again
    assert again.state in STATES, again.state

    side.finish(started.external_id, "failed")
    done = await pipeline.status(started.external_id)
    assert done.done and done.result == "failed", done
    assert done.web_url == started.web_url or not started.web_url, "the run's URL changed"
    second = await pipeline.trigger("main", {})
    assert second.external_id != started.external_id, "a second trigger is a second run"
    side.finish(second.external_id, "succeeded")
    succeeded = await pipeline.status(second.external_id)
    assert succeeded.result == "succeeded" and succeeded.result in RESULTS, succeeded

    try:
        await pipeline.status(missing_id)
    except TrackerRefused:
        pass
    else:
        raise AssertionError(f"reading the unknown run {missing_id!r} is not refused")
    fail_next = getattr(side, "fail_next", None)
    if fail_next is not None and fail_next(503, None):
        try:
            await pipeline.status(second.external_id)
        except TrackerUnavailable:
            pass
        else:
            raise AssertionError("a 503 is not a TrackerUnavailable")
    if refused is not None:
        try:
            await refused.status(second.external_id)
        except TrackerRefused:
            pass
        else:
            raise AssertionError("a refused token is not a TrackerRefused")
    violations = getattr(side, "violations", [])
    assert violations == [], violations
