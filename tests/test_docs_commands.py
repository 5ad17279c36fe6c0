"""The README's commands, run as a new user runs them: a fresh clone, a fresh venv.

* The first of the "Two commands" runs verbatim in a clone of this checkout (its HEAD plus
  the working tree's uncommitted changes to tracked files): a new venv, ``pip install -e .``
  (the machine's pip configuration and cache, as a user's), ``musubi serve``. Only the
  environment differs from a user's: ``MUSUBI_HOME`` and ``MUSUBI_PORT`` point at this
  test's folder and a free port, so that nothing of the machine's ``~/.musubi`` or port
  8000 is used.
* The second command runs the whole suite (this test included), so the suite does not run
  it: CI does, since ``.ci/run`` runs it verbatim, which is asserted here.
* Every other ``bash`` block of the README then runs, in order, each in ``bash -euo
  pipefail`` from the clone, against that server, with three substitutions only: the owner
  key placeholder (``msk_…``) becomes the key the first start printed, ``:8000`` the free
  port, and ``curl`` fails on an HTTP error status. A block this file does not know fails
  the test, so a new block cannot be added to the README without being run here.

Slow (a venv and a real install, about a minute on a warm machine), and run by CI like
every other test.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
INSTALL_TIMEOUT_S = 480  # a cold pip cache on a busy 2-core machine
BLOCK_TIMEOUT_S = 180
KEY_LINE = re.compile(r"owner API key \(shown once, store it now\): (msk_\S+)")
CURL = 'curl() { command curl --fail-with-body "$@"; }\n'  # an HTTP error fails the block


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


# What each README block is, by a line only it has; the first is the "Two commands" block.
KINDS = {
    "quickstart": "export KEY=msk_…",
    "cli": "musubi teams create platform",
    "sdd": "musubi init --agents all",
    "project-trace": "/sdd/trace?require=",
}


def kind_of(block: str) -> str:
    found = [name for name, marker in KINDS.items() if marker in block]
    assert len(found) == 1, f"a README command block this test does not run:\n{block}"
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def user_env(**extra: str) -> dict[str, str]:
    """The test's environment without what points into this checkout or its venv."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("MUSUBI_")}
    return {**env, **extra}


@dataclass
class Served:
    clone: Path
    home: Path
    port: int
    key: str = ""
    stderr: list[str] = field(default_factory=list)


def fresh_clone(dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True, timeout=120)
    diff = subprocess.run(
        ["git", "-C", str(ROOT), "diff", "HEAD", "--binary"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    if diff:  # the working tree's edits, so the README being written is the one tested
        subprocess.run(["git", "-C", str(dest), "apply"], input=diff, check=True, timeout=60)
    return dest


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    (first, _second) = commands(bash_blocks(README)[0])
    base = tmp_path_factory.mktemp("readme")
    run = Served(fresh_clone(base / "musubi"), base / "home", free_port())
    env = user_env(MUSUBI_HOME=str(run.home), MUSUBI_PORT=str(run.port))
    proc = subprocess.Popen(
        ["bash", "-c", first],
        cwd=run.clone,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the server is bash's child: stopped with its group
    )
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: run.stderr.extend(proc.stderr or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + INSTALL_TIMEOUT_S
        while not ready(run):
            assert proc.poll() is None, f"exited {proc.returncode}:\n{''.join(run.stderr)}"
            assert time.monotonic() < deadline, f"not serving:\n{''.join(run.stderr)[-4000:]}"
            time.sleep(0.5)
        yield run
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        reader.join(30)
        proc.stderr.close()


def ready(run: Served) -> bool:
    keys = KEY_LINE.findall("".join(run.stderr))
    if not keys:
        return False
    run.key = keys[0]
    try:
        return httpx.get(f"http://127.0.0.1:{run.port}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def run_block(run: Served, block: str, home: Path) -> subprocess.CompletedProcess[str]:
    script = block.replace("export KEY=msk_…", f"export KEY={run.key}")
    script = script.replace("127.0.0.1:8000", f"127.0.0.1:{run.port}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", CURL + script],
        cwd=run.clone,
        env=user_env(MUSUBI_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{block}\nexit {result.returncode}:\n{result.stderr[-4000:]}"
    return result


def test_the_second_command_is_what_ci_runs() -> None:
    (_first, second) = commands(bash_blocks(README)[0])
    assert second in (ROOT / ".ci/run").read_text().splitlines()


def test_every_readme_command_block_runs(served: Served) -> None:
    stderr = "".join(served.stderr)
    assert stderr.index("listening on") < stderr.index("owner API key")
    blocks = bash_blocks(README)[1:]
    assert [kind_of(b) for b in blocks] == list(KINDS), "blocks added, removed or reordered"
    by_kind = dict(zip(KINDS, blocks, strict=True))

    # The Quickstart, then (in the same shell, as its variables are reused) a project's
    # repository on the server, as "Over the API, a project whose repo_path …" describes.
    me = httpx.get(
        f"http://127.0.0.1:{served.port}/v1/me",
        headers={"Authorization": f"Bearer {served.key}"},
    ).json()
    (served.home / "repos" / me["tenant_id"] / "checkout").mkdir(parents=True)
    api = run_block(served, by_kind["quickstart"] + by_kind["project-trace"], served.home).stdout
    assert '"ok":true' in api.replace(" ", "") and '"token":"msk_' in api.replace(" ", "")

    # "The same from the CLI": the same steps on a database of their own (on the server's,
    # `teams create platform` would rightly answer that the name is taken).
    run_block(served, by_kind["cli"], served.clone.parent / "home-cli")
    assert (served.clone / "audit.jsonl").stat().st_size > 0

    sdd = run_block(served, by_kind["sdd"], served.clone.parent / "home-sdd")
    assert (served.clone.parent / "my-service" / "storage").is_dir()
    assert "OK: 0 requirement(s)" in sdd.stdout and "eTour" in sdd.stdout
