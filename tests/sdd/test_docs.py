"""Every command and option shown in docs/sdd.md exists, so the guide cannot rot silently."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from musubi.cli.main import cli

DOC = Path(__file__).parents[2] / "docs" / "sdd.md"


def _examples() -> list[str]:
    text = DOC.read_text(encoding="utf-8").replace("\\\n", " ")
    return [m[1] for m in re.finditer(r"^\$ (musubi .+?)(?:\s+#.*)?$", text, re.MULTILINE)]


@pytest.mark.parametrize("line", _examples())
def test_documented_command_exists(line: str) -> None:
    words = shlex.split(line.split(">")[0])[1:]
    ctx = click.Context(cli)
    command: click.Command = cli
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.get_command(ctx, words[0])
        assert sub is not None, f"{line}: no command {words[0]!r}"
        command, words = sub, words[1:]
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for word in words:
        if word.startswith("-"):
            assert word in known, f"{line}: {command.name} has no option {word}"


def test_docs_show_examples() -> None:
    assert len(_examples()) > 20
