"""The dataset builder on a real MUSUBI project in a git repository: requirement→design,
task→change (through a commit's trace link), docstring↔code and FIM examples; secrets
scrubbed, licences respected, duplicates dropped, a deterministic split with token stats;
and ``musubi finetune dataset`` writes files that the jobs API accepts as they are."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from musubi.cli.main import cli
from musubi.finetune.chat import check_line
from musubi.finetune.dataset import DatasetOptions, build_dataset, detect_licence, scrub

FIXTURE = Path(__file__).parents[1] / "sdd" / "fixtures" / "auth-project"
SECRET = "sk-live-0123456789abcdefABCDEF"
HELPER = '''

def normalise_email(email: str) -> str:
    """Lower-case an e-mail address and strip the spaces around it."""
    return email.strip().lower()
'''


def _git(root: Path, *args: str) -> None:
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "-C", str(root), *ident, *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(FIXTURE, root)
    (root / "src/auth/config.py").write_text(
        '"""Settings."""\n\n\ndef connect() -> dict[str, str]:\n'
        '    """Open the payment provider client with its credentials."""\n'
        f'    api_key = "{SECRET}"\n    db_password = "hunter2-very-secret"\n'
        "    return {'key': api_key, 'db': db_password}\n"
    )
    (root / "src/auth/copied.py").write_text(  # the same helper twice: one example
        '"""Copied."""\n' + HELPER + HELPER
    )
    (root / "vendor").mkdir()
    (root / "vendor/gpl_lib.py").write_text(
        '"""Vendored."""\n\ndef f():\n    """A GPL function, vendored here."""\n'
    )
    (root / "src/auth/gpl_part.py").write_text(
        "# SPDX-License-Identifier: GPL-3.0-only\n" + HELPER.replace("normalise_email", "gpl_email")
    )
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "initial import")
    login = root / "src/auth/login.py"
    login.write_text(login.read_text() + HELPER)
    _git(root, "commit", "-qam", "TASK-002: normalise e-mail addresses before hashing")
    return root


def test_examples_of_every_kind_cleaned_and_split(repo: Path) -> None:
    built = build_dataset(repo, DatasetOptions(valid_share=0.2, seed=1))
    examples = built.train + built.validation
    kinds = {e.kind for e in examples}
    assert kinds == {"requirement→design", "task→change", "docstring→code", "code→docstring", "fim"}
    [design] = [e for e in examples if e.kind == "requirement→design"]
    assert design.prompt.startswith("Requirement REQ-AUTH-002")
    assert "Use bcrypt with a configurable cost factor" in design.answer
    [change] = [e for e in examples if e.kind == "task→change"]
    assert change.prompt.startswith("Task TASK-002: Implement password hashing")
    assert "+def normalise_email(email: str) -> str:" in change.answer
    everything = json.dumps([(e.prompt, e.answer) for e in examples])
    assert SECRET not in everything and "hunter2" not in everything
    assert "<REDACTED>" in everything
    assert "gpl_email" not in everything and "GPL function" not in everything  # licence, vendor
    assert built.dropped["licence"] == 1
    assert built.dropped["duplicate"] >= 1
    docs = [e for e in examples if e.kind == "docstring→code" and "normalise_email" in e.prompt]
    assert len(docs) == 2  # login.py and copied.py differ in path: the prompt names it
    assert built.validation and built.train
    again = build_dataset(repo, DatasetOptions(valid_share=0.2, seed=1))
    assert again.validation == built.validation  # deterministic


def test_scrub_and_licence_detection(tmp_path: Path) -> None:
    text, n = scrub(f'token = "{SECRET}"  # and ghp_{"a" * 36}')
    assert n == 2 and SECRET not in text and "ghp_" not in text
    assert detect_licence(tmp_path) is None  # none declared: the organisation's own code
    (tmp_path / "LICENSE").write_text("MIT License\n\nPermission is hereby granted, free of charge")
    assert detect_licence(tmp_path) == "MIT"


def test_the_cli_writes_files_the_jobs_api_accepts(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = CliRunner().invoke(cli, ["finetune", "dataset", str(repo), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    train = (out / "train.jsonl").read_bytes().splitlines()
    assert stats["splits"]["train"]["examples"] == len(train) > 10
    assert stats["splits"]["train"]["tokens"] > 0
    for number, line in enumerate(train, start=1):
        check_line(line, number)  # OpenAI's rules, as /v1/fine_tuning/jobs checks them
