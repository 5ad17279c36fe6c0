"""``musubi providers`` and ``musubi models`` against a real SQLite database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from musubi.cli.main import cli


def test_providers_set_list_delete_and_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSUBI_HOME", str(tmp_path))
    run = CliRunner().invoke
    r = run(
        cli,
        [
            "providers",
            "set",
            "oa",
            "--provider",
            "openai",
            "--api-key",
            "sk-secret-abcdefgh",
            "--option",
            "organization=o1",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["api_key"] == "…efgh"
    rows = json.loads(run(cli, ["providers", "list", "--json"]).stdout)
    assert [x["name"] for x in rows] == ["oa"] and "sk-secret" not in json.dumps(rows)
    stored = (
        sqlite3.connect(tmp_path / "musubi.db")
        .execute("select secret from gateway_credentials")
        .fetchone()[0]
    )
    assert "sk-secret" not in stored  # encrypted at rest
    usable = json.loads(run(cli, ["models", "list", "--json"]).stdout)
    assert {m["name"] for m in usable} >= {"gpt-4o", "text-embedding-3-small"}
    assert all(m["provider"] == "openai" for m in usable)
    assert run(cli, ["providers", "set", "x", "--provider", "nope"]).exit_code != 0
    assert run(cli, ["providers", "delete", "oa"]).exit_code == 0
    assert json.loads(run(cli, ["providers", "list", "--json"]).stdout) == []
