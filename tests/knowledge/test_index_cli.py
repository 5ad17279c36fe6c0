"""``musubi index`` as CI and a user at a terminal run it: a real process, stderr not a TTY."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from musubi.knowledge.embeddings.minilm import model_dir
from tests.scaleout.cluster import musubi_command

pytestmark = pytest.mark.slow  # interrupts an indexing process


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    return {**env, "MUSUBI_HOME": str(home)}


def _repo(root: Path, functions: int) -> Path:
    src = root / "src"
    src.mkdir(parents=True)
    for n in range(functions):
        (src / f"mod_{n}.py").write_text(
            f"def handler_{n}(request):\n    '''Handle request kind {n}.'''\n"
            f"    return request.get('value_{n}', {n}) * {n}\n"
        )
    return root


def test_index_prints_plain_progress_when_not_on_a_terminal(tmp_path: Path) -> None:
    """Before: nothing at all on stderr (rich's bar draws nothing off a terminal)."""
    repo = _repo(tmp_path / "repo", 5)
    run = subprocess.run(
        [*musubi_command(), "index", str(repo), "--embedder", "hashing", "--json"],
        env=_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = run.stderr.splitlines()
    assert "musubi index: chunk 1/5 (20%)" in lines
    assert any(re.fullmatch(r"musubi index: chunk 5/5 \(100%\).*", line) for line in lines)
    assert any(re.fullmatch(r"musubi index: embed 5/5 \(100%\).*", line) for line in lines)
    assert json.loads(run.stdout)["embedded"] == 5  # stdout stays the JSON alone


def test_ctrl_c_keeps_the_embeddings_made_so_far(tmp_path: Path) -> None:
    """Before: vectors were saved every 2,048 embeddings; an interrupt lost them all."""
    try:
        model_dir()
    except Exception as exc:  # the knowledge extra's model wheel
        pytest.skip(str(exc))
    repo = _repo(tmp_path / "repo", 120)
    env = _env(tmp_path / "home")
    proc = subprocess.Popen(
        [*musubi_command(), "index", str(repo)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        done = 0
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # the first "embed" line comes after the first batch
            if m := re.match(r"musubi index: embed (\d+)/120", line):
                done = int(m[1])
                break
            assert time.monotonic() < deadline, "no embedding progress in 120 s"
        assert done > 0
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    (keys,) = (tmp_path / "home").rglob("keys.txt")
    saved = len(keys.read_text().split())
    assert saved >= done, "every vector embedded before the interrupt is on disk"

    again = subprocess.run(
        [*musubi_command(), "index", str(repo), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert json.loads(again.stdout)["embedded"] == 120 - saved  # resumed, not redone
