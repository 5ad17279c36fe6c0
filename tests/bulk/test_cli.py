"""``musubi bulk import|export`` end to end on a SQLite home."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from musubi.cli.main import cli


def musubi(home: Path, *args: str, code: int = 0, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(
        cli,
        list(args),
        input=stdin,
        env={"MUSUBI_HOME": str(home), "COLUMNS": "200"},
        catch_exceptions=False,
    )
    assert result.exit_code == code, f"musubi {' '.join(args)}: {result.exit_code}\n{result.output}"
    return result


def test_import_reports_failures_and_exports_round_trip(tmp_path: Path) -> None:
    home = tmp_path / "home"
    users = tmp_path / "users.csv"
    users.write_text(
        "email,display_name,kind\n"
        "ann@example.com,Ann,human\n"
        "not-an-email,Bad,human\n"
        "ci@example.com,CI,service\n"
    )
    out = musubi(home, "bulk", "import", "users", str(users), code=1).stdout
    assert re.search(r"created\s*│\s*2", out) and re.search(r"failed\s*│\s*1", out)
    assert "line 3" in out and "not an e-mail address" in out

    exported = tmp_path / "export.csv"
    musubi(home, "bulk", "export", "users", "-o", str(exported))
    assert exported.read_text().splitlines()[0] == "name,display_name,kind,disabled"
    report = json.loads(musubi(home, "bulk", "import", "users", str(exported), "--json").stdout)
    assert (report["total"], report["failed"]) == (3, 0)
    assert {r["status"] for r in report["results"]} == {"unchanged"}

    as_json = musubi(home, "bulk", "export", "users", "--format", "json").stdout
    assert json.loads(as_json)["kind"] == "users"
    report = json.loads(
        musubi(home, "bulk", "import", "users", "-", "--json", stdin=as_json).stdout
    )
    assert report["succeeded"] == 3


def test_keys_tokens_are_printed_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    musubi(home, "users", "create", "ci-bot", "--kind", "service")
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"user": "ci-bot", "name": "deploy"}, {"user": "nobody"}]))
    out = musubi(home, "bulk", "import", "keys", str(keys), code=1).stdout
    assert "tokens shown once" in out and "user 'nobody' not found" in out
    [token] = [w for w in out.split() if w.startswith("msk_")]
    assert out.count(token) == 1
    exported = musubi(home, "bulk", "export", "keys", "--format", "csv").stdout
    assert "ci-bot,deploy,,," in exported
    assert token.split("_", 2)[2] not in exported


def test_documented_commands_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("users.csv", "keys.json"):
        Path(name).write_text("[]")
    doc = (Path(__file__).parents[2] / "docs" / "bulk.md").read_text(encoding="utf-8")
    lines = re.findall(r"^(?:cat \S+ \| )?musubi (bulk .+?)(?:\s+#.*)?$", doc, re.MULTILINE)
    assert len(lines) == 5
    for line in lines:
        words = shlex.split(line.split(">")[0])
        group = cli.get_command(click.Context(cli), "bulk")
        assert isinstance(group, click.Group)
        command = group.get_command(click.Context(group), words[1])
        assert command is not None, line
        with command.make_context(words[1], words[2:]):  # raises on an unknown option
            pass
