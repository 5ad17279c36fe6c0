"""The extension's pure modules under Node's test runner (``node --test``: ID parsing, FIM
request building, debounce and cancellation, tree building, errors), and the ID grammar the
editor links against the Python reader's on the sample projects' real text."""

from __future__ import annotations

import json
import subprocess

import pytest

from musubi.sdd.ids import find_ids
from tests.vscode.helpers import EXTENSION, REPO, npm

pytestmark = pytest.mark.slow  # builds and runs the extension under Node


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_node_unit_tests_pass() -> None:
    done = npm("test", timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "# fail 0" in out
    passed = int(out.split("# pass ", 1)[1].split()[0])
    assert passed >= 25, out[-2000:]


def test_typescript_and_python_find_the_same_ids() -> None:
    texts = [
        p.read_text(encoding="utf-8")
        for folder in ("tests/fixtures/musubi-projects", "tests/sdd/fixtures")
        for p in sorted((REPO / folder).rglob("*.md"))[:60]
    ]
    texts += ["REQ-AUTH-02 REQ-N01 xREQ-001 REQ-001x REQ-001-x TASK-1.1 REQ-004-N01 NFR-003"]
    assert npm("exec", "--", "tsc", "-p", ".").returncode == 0
    script = (
        "const {findIds}=require('./out/ids.js');"
        "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{"
        "console.log(JSON.stringify(JSON.parse(s).map(t=>findIds(t).map(f=>[f.id,f.start]))))})"
    )
    done = subprocess.run(
        ["node", "-e", script],
        cwd=EXTENSION,
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    from_ts = json.loads(done.stdout)
    # offsets in UTF-16 code units, as JavaScript (and VS Code) count them
    from_py = [[[i, _utf16(t[:pos])] for i, pos in find_ids(t)] for t in texts]
    total = sum(len(x) for x in from_py)
    assert total > 500, "the sample projects are full of IDs"
    for text, ts, py in zip(texts, from_ts, from_py, strict=True):
        assert ts == py, text[:200]
