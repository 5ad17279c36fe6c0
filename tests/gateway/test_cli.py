"""``musubi providers`` and ``musubi models`` against a real SQLite database."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from musubi.cli.main import cli
from musubi.gateway.providers.local import INSTALL, MODEL_NAME, model_path
from musubi.settings import Settings
from tests.api.helpers import ok
from tests.conftest import Api


def test_providers_set_list_delete_and_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSUBI_HOME", str(tmp_path))
    monkeypatch.setenv("MUSUBI_GATEWAY_LOCAL_MODEL", "0")  # only the stored credential
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
    # catalogue models of the credential, and the musubi/<task> names routed to them
    assert {m["provider"] for m in usable} == {"openai", "musubi"}
    assert all(m["name"].startswith("musubi/") for m in usable if m["provider"] == "musubi")
    assert run(cli, ["providers", "set", "x", "--provider", "nope"]).exit_code != 0
    assert run(cli, ["providers", "delete", "oa"]).exit_code == 0
    assert json.loads(run(cli, ["providers", "list", "--json"]).stdout) == []


def _cli_models(settings: Settings, *args: str) -> list[dict[str, object]]:
    """``musubi models list --json ARGS`` on the server's home and database."""
    env = {"MUSUBI_HOME": str(settings.home), "MUSUBI_DATABASE_URL": settings.database_url}
    r = CliRunner().invoke(cli, ["models", "list", "--json", *args], env=env)
    assert r.exit_code == 0, r.output
    rows: list[dict[str, object]] = json.loads(r.stdout)
    return rows


async def test_cli_and_v1_models_list_the_same_models(api: Api, settings: Settings) -> None:
    """Before: the offline model answered calls and /v1/models listed it, while
    ``musubi models list`` showed nothing and ``--all`` called it not usable."""
    if model_path() is None or os.environ.get("MUSUBI_GATEWAY_LOCAL_MODEL") == "0":
        pytest.skip(f"the offline model is not installed: {INSTALL}")
    async with api.client(api.owner_key) as owner:
        ok(
            await owner.put(
                "/v1/gateway/providers/oa",
                json={"provider": "openai", "api_key": "sk-test-abcdefgh", "models": ["gpt-4o"]},
            )
        )
        served = ok(await owner.get("/v1/models"))["data"]
    listed = await asyncio.to_thread(_cli_models, settings)
    assert [(m["name"], m["provider"]) for m in listed] == [
        (m["id"], m["owned_by"]) for m in served
    ]
    assert {"gpt-4o", MODEL_NAME} <= {m["name"] for m in listed}
    everything = {m["name"]: m for m in await asyncio.to_thread(_cli_models, settings, "--all")}
    assert everything[MODEL_NAME]["usable"] is True
    assert everything["gpt-4o"]["usable"] is True
    assert everything["claude-sonnet-4"]["usable"] is False
