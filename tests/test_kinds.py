"""The kinds registry: built-ins come from this package's own entry points, a plugin's
from its distribution's; a missing extra or a broken entry point says what to do."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from musubi.batch.queue import JOB_QUEUES
from musubi.cli.main import cli
from musubi.errors import InvalidInput, MissingExtra, PluginError
from musubi.gateway.cache import CACHES
from musubi.gateway.providers.base import PROVIDERS
from musubi.integrations.pipeline import PIPELINES
from musubi.kinds import Kind, entry_points, groups
from musubi.knowledge.embeddings.base import EMBEDDERS
from musubi.knowledge.vectorstores.base import VECTOR_STORES, StoreLocation
from musubi.orchestrator.steps import STEP_KINDS, STEPS, single_steps
from musubi.testing import (
    check_entry_point,
    check_provider_class,
    check_step,
    check_vector_store,
)

BUILTINS = {
    PROVIDERS: {"openai", "azure", "anthropic", "gemini", "bedrock", "ollama", "local"},
    EMBEDDERS: {"minilm", "hashing"},
    VECTOR_STORES: {"numpy", "pgvector", "memory"},
    CACHES: {"memory", "redis"},
    JOB_QUEUES: {"database", "redis"},
    PIPELINES: {"azure_pipelines", "gitlab"},
    STEP_KINDS: {
        *("requirements", "design", "tasks", "change", "reverse", "steering"),
        *("implement", "review"),
    },
}


@pytest.mark.parametrize("kind", list(BUILTINS), ids=lambda k: k.name)
def test_builtins_are_entry_points_of_this_distribution(kind: Kind[object]) -> None:
    for name in BUILTINS[kind]:
        check_entry_point(kind, name, "musubi-platform")


@pytest.mark.parametrize("name", sorted(BUILTINS[PROVIDERS]))
def test_builtin_providers_keep_the_contract(name: str) -> None:
    check_provider_class(PROVIDERS.load(name))


@pytest.mark.parametrize("name", sorted(BUILTINS[STEP_KINDS]))
def test_builtin_steps_keep_the_contract(name: str) -> None:
    check_step(STEP_KINDS.load(name))
    assert STEPS[name].name == name


def test_a_run_does_the_plan_in_order_or_any_other_step_alone() -> None:
    alone = BUILTINS[STEP_KINDS] - {"requirements", "design", "tasks"}
    assert alone <= set(single_steps()) and not {"requirements", "design", "tasks"} & set(
        single_steps()
    )


@pytest.mark.parametrize("name", ["memory", "numpy"])
def test_builtin_vector_stores_keep_the_contract(name: str, tmp_path: Path) -> None:
    check_vector_store(VECTOR_STORES.build(name, StoreLocation(4, tmp_path, "t", "p/e")))


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"unknown caches implementation 'nope'.*memory"):
        CACHES.load("nope")


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real installed distribution (a .dist-info on sys.path), for broken plugins."""
    site = tmp_path / "site"
    info = site / "musubi_broken-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: musubi-broken\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(
        "[musubi.caches]\n"
        "needs_extra = musubi_broken_needs:Cache [fancy]\n"
        "needs_module = musubi_broken_needs:Cache\n"
        "wrong_type = musubi_broken_ok:not_a_cache\n"
        "no_attr = musubi_broken_ok:missing\n"
    )
    (site / "musubi_broken_needs.py").write_text("import fancy_lib_not_installed\n")
    (site / "musubi_broken_ok.py").write_text("def not_a_cache(url):\n    return 'a string'\n")
    monkeypatch.syspath_prepend(str(site))
    entry_points.cache_clear()
    yield site
    entry_points.cache_clear()
    for mod in ("musubi_broken_needs", "musubi_broken_ok"):
        sys.modules.pop(mod, None)


def test_a_missing_extra_names_the_install_command(fake_dist: Path) -> None:
    caches: Kind[object] = Kind("caches", object)
    with pytest.raises(MissingExtra, match=r"fancy_lib_not_installed.*musubi-broken\[fancy\]"):
        caches.load("needs_extra")
    with pytest.raises(MissingExtra, match=r"pip install fancy_lib_not_installed"):
        caches.load("needs_module")


def test_a_broken_entry_point_is_named(fake_dist: Path) -> None:
    with pytest.raises(PluginError, match=r"'wrong_type' gave a str, not a ResponseCache"):
        CACHES.build("wrong_type", None)
    with pytest.raises(PluginError, match=r"'no_attr' \(musubi_broken_ok:missing\) does not load"):
        CACHES.load("no_attr")


def test_load_all_leaves_out_what_does_not_load_and_says_why(
    fake_dist: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = Kind("caches", object).load_all()
    assert "memory" in loaded and "wrong_type" in loaded  # its type is checked at build
    assert not {"needs_extra", "needs_module", "no_attr"} & set(loaded)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        "caches 'no_attr' is left out: musubi.caches entry point 'no_attr' "
        "(musubi_broken_ok:missing) does not load: module 'musubi_broken_ok' has no "
        "attribute 'missing'"
    ]


def test_plugins_list_shows_kinds_implementations_and_distributions(fake_dist: Path) -> None:
    result = CliRunner().invoke(cli, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.output)}
    openai = rows[("providers", "openai")]
    assert openai["distribution"] == "musubi-platform" and openai["version"] == "0.1.0"
    assert openai["target"] == "musubi.gateway.providers.openai_compat:OpenAI"
    assert openai["status"] == "ok"
    for kind in ("providers", "embedders", "vector_stores", "caches", "job_queues"):
        assert any(k == kind for k, _ in rows), kind
    broken = rows[("caches", "needs_extra")]
    assert (broken["distribution"], broken["version"]) == ("musubi-broken", "1.2.3")
    assert "musubi-broken[fancy]" in broken["status"]


def test_plugins_list_table_and_unknown_kind() -> None:
    result = CliRunner(env={"COLUMNS": "160"}).invoke(
        cli, ["plugins", "list", "--kind", "embedders"]
    )
    assert result.exit_code == 0, result.output
    assert "minilm" in result.output and "musubi-platform" in result.output
    bad = CliRunner().invoke(cli, ["plugins", "list", "--kind", "trackerz"])
    assert bad.exit_code == 2 and "installed kinds:" in bad.output


def test_the_plugin_guide_documents_every_kind() -> None:
    """docs/plugins.md's table has a row for every kind with an implementation installed."""
    doc = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    assert groups(), "no musubi.* entry points: reinstall with pip install -e ."
    for group in groups():
        assert f"| `{group}` |" in doc, f"docs/plugins.md does not describe the kind {group!r}"
