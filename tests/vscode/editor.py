"""A real editor for the end-to-end tests and the bench: ``musubi serve`` on loopback with a
fake model upstream, a sample project on the server, code-server with the packaged .vsix,
and Debian's chromium driven by Playwright.

The fake upstream follows OpenAI's API: ``/v1/completions`` answers every FIM request with
``FIM_REPLY``; ``/v1/chat/completions`` writes the orchestrator's requirements, design and
tasks (the scripted upstream of tests/orchestrator).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.gateway.fakes import serve
from tests.orchestrator.conftest import ScriptedUpstream
from tests.scaleout.cluster import musubi_command
from tests.vscode.helpers import CHROMIUM, CODE_SERVER, NODE24, REPO

FIM_REPLY = "verify_password(password, stored)"
SAMPLE = REPO / "tests/sdd/fixtures/auth-project"
KEY_LINE = re.compile(r"owner API key \(shown once, store it now\): (msk_\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_editor() -> str | None:
    """Why the editor cannot run here (None when it can)."""
    for what, path in (("code-server", CODE_SERVER), ("Node 24", NODE24), ("chromium", CHROMIUM)):
        if not path.exists():
            return f"{what} is missing at {path}: run scripts/vscode-e2e-setup"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@contextmanager
def fake_upstream() -> Iterator[tuple[ScriptedUpstream, str]]:
    """The fake model upstream on a loopback port, in a thread of its own."""
    fake = ScriptedUpstream(name="editor-fake", reply=FIM_REPLY)
    ready = threading.Event()
    box: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        box["loop"] = asyncio.get_running_loop()
        async with serve(fake) as url:
            box["url"] = url
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(30), "the fake upstream did not start"
    try:
        yield fake, str(box["url"])
    finally:
        loop = box["loop"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        stop = box["stop"]
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


@dataclass
class Server:
    url: str
    owner_key: str
    dev_key: str
    project_id: str
    repo: Path  # the project's repository on the server: the editor's workspace


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def musubi_server(tmp: Path, upstream_url: str) -> Iterator[Server]:
    """``musubi serve`` with the sample project, an OpenAI credential at the fake, and a
    developer's key restricted to the project."""
    home = tmp / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env |= {
        "MUSUBI_HOME": str(home),
        "MUSUBI_EGRESS_ALLOW": "127.0.0.1",
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
    }
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen(
        [*musubi_command(), "serve", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        key = None
        while key is None:
            assert proc.poll() is None, (tmp / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp / "serve.log").read_text()
            found = KEY_LINE.findall((tmp / "serve.log").read_text())
            key = found[0] if found else None
            time.sleep(0.1)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as owner:
            while not _ready(owner):
                assert time.monotonic() < deadline, (tmp / "serve.log").read_text()
                time.sleep(0.1)
            tenant = owner.get("/v1/me").json()["tenant_id"]
            repo = home / "repos" / tenant / "shop"
            shutil.copytree(SAMPLE, repo)
            body = {"provider": "openai", "api_key": "sk-0001", "base_url": f"{upstream_url}/v1"}
            assert owner.put("/v1/gateway/providers/openai", json=body).status_code == 200
            r = owner.post("/v1/projects", json={"name": "shop", "repo_path": "shop"})
            assert r.status_code == 201, r.text
            project = r.json()["id"]
            user = owner.post("/v1/users", json={"name": "dev"}).json()["id"]
            r = owner.post(
                "/v1/role-assignments",
                json={"user_id": user, "role": "developer", "scope": "tenant", "scope_id": ""},
            )
            assert r.status_code == 201, r.text
            r = owner.post("/v1/keys", json={"user_id": user, "project_id": project})
            assert r.status_code == 201, r.text
            dev_key = r.json()["token"]
        yield Server(url, key, dev_key, project, repo)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@dataclass
class Editor:
    url: str
    user_data: Path


@contextmanager
def code_server(
    tmp: Path, vsix: Path, workspace: Path, settings: dict[str, object]
) -> Iterator[Editor]:
    """code-server with the .vsix installed, serving ``workspace`` on loopback."""
    user_data, extensions = tmp / "user-data", tmp / "extensions"
    (user_data / "User").mkdir(parents=True)
    stable = {
        "workbench.startupEditor": "none",
        "chat.disableAIFeatures": True,
        "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "workbench.tips.enabled": False,
        "editor.inlineSuggest.enabled": True,
        "security.workspace.trust.enabled": False,
        "editor.codeLens": True,
    }
    (user_data / "User/settings.json").write_text(json.dumps(stable | settings, indent=1))
    env = {**os.environ, "PATH": f"{NODE24.parent}:{os.environ['PATH']}"}
    port = free_port()
    config = tmp / "code-server.yaml"  # without --config it writes one into the home directory
    config.write_text(f"bind-addr: 127.0.0.1:{port}\nauth: none\ncert: false\n")
    base = [str(NODE24), str(CODE_SERVER), "--config", str(config)]
    base += ["--user-data-dir", str(user_data), "--extensions-dir", str(extensions)]
    done = subprocess.run(
        [*base, "--install-extension", str(vsix)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    installed = "'musubi.vsix' was successfully installed" in done.stdout
    assert done.returncode == 0 and installed, done.stdout + done.stderr
    log = (tmp / "code-server.log").open("w")
    proc = subprocess.Popen(
        [
            *base,
            *("--disable-telemetry", "--disable-update-check"),
            *("--disable-workspace-trust", str(workspace)),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp / "code-server.log").read_text()
            assert time.monotonic() < deadline, (tmp / "code-server.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield Editor(url, user_data)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
