"""``musubi serve`` as a user starts it: a real process, its stderr, a real port."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.scaleout.cluster import free_port, musubi_command

KEY_LINE = re.compile(r"owner API key \(shown once, store it now\): (msk_\S+)")


pytestmark = pytest.mark.slow  # starts musubi serve processes


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    return {**env, "MUSUBI_HOME": str(home)}


def _serve_until_ready(home: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    """Start ``musubi serve``; return it once /readyz answers, with its stderr so far."""
    proc = subprocess.Popen(
        [*musubi_command(), "serve", "--port", str(port)],
        env=_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, ""
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"not ready in 60 s: {proc.communicate()[1]}")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    return proc.communicate(timeout=30)[1]


def test_a_taken_port_fails_clearly_and_the_owner_key_is_not_lost(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        failed = subprocess.run(
            [*musubi_command(), "serve", "--port", str(port)],
            env=_env(home),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert failed.returncode == 3, failed.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in failed.stderr
    assert "Address already in use" in failed.stderr
    assert "listening on" not in failed.stderr
    assert "owner API key" not in failed.stderr
    assert not home.exists(), "nothing was created for a server that never listened"

    # The port is free now: the first real start creates the owner key and shows it once.
    proc, _ = _serve_until_ready(home, port)
    stderr = _stop(proc)
    assert stderr.index("listening on") < stderr.index("owner API key")
    (key,) = KEY_LINE.findall(stderr)

    # A key lost anyway: the operator mints a new owner key on the host (as the README says).
    minted = subprocess.run(
        [*musubi_command(), "keys", "create", "--user", "owner", "--name", "new", "--json"],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    new_key = json.loads(minted.stdout)["token"]

    proc, _ = _serve_until_ready(home, port)
    try:
        for token in (key, new_key):
            me = httpx.get(
                f"http://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert me.status_code == 200, me.text
    finally:
        assert "owner API key" not in _stop(proc), "shown once"
