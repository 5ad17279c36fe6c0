"""numpy's BLAS runs on a deliberate number of threads (``MUSUBI_BLAS_THREADS``), not
OpenBLAS's one per core: under load, MiniLM embedded 0.7 chunks/s with OpenBLAS's 2 threads
against 2.5 with one (docs/knowledge.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from musubi.blas import BLAS_VARIABLES, set_blas_threads
from musubi.settings import Settings
from tests.scaleout.cluster import musubi_command

# Prints the BLAS threads of a process after `musubi index` has run in it.
INDEX_THEN_REPORT = """
import json, sys
from musubi.cli.main import cli
try:
    cli(["index", sys.argv[1], "--embedder", "hashing", "--json"], standalone_mode=False)
finally:
    import numpy
    from threadpoolctl import threadpool_info
    print(json.dumps([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    env = {k: v for k, v in env.items() if not k.startswith("MUSUBI_")}
    return {**env, **extra}


@pytest.mark.parametrize(("setting", "expected"), [(None, 1), ("2", min(2, os.cpu_count() or 1))])
def test_index_runs_on_the_configured_blas_threads(
    tmp_path: Path, setting: str | None, expected: int
) -> None:
    """Before: OpenBLAS's default, one thread per core (2 on this machine)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("def a():\n    return 1\n")
    env = _clean_env(MUSUBI_HOME=str(tmp_path / "home"))
    if setting:
        env["MUSUBI_BLAS_THREADS"] = setting
    run = subprocess.run(
        [sys.executable, "-c", INDEX_THEN_REPORT, str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert set(json.loads(run.stdout.splitlines()[-1])) == {expected}


def test_an_explicit_openblas_variable_wins(tmp_path: Path) -> None:
    env = _clean_env(OPENBLAS_NUM_THREADS="1")
    code = (
        "from musubi.blas import set_blas_threads; set_blas_threads(2); import numpy; "
        "from threadpoolctl import threadpool_info; "
        "print({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'})"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "{1}"


def test_numpy_already_loaded_is_limited_too(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BLAS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    import numpy  # noqa: F401

    with threadpool_limits(limits=2, user_api="blas"):  # restores the suite's limit after
        set_blas_threads(1)
        assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {1}


def test_the_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_BLAS_THREADS", "0")
    with pytest.raises(ValueError, match="blas_threads"):
        Settings()
    assert musubi_command()  # the CLI the subprocess tests run is this environment's
