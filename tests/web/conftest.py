"""A real ``musubi serve`` on loopback with seeded data, and Debian's Chromium driving it.

One server for the whole web suite (starting one costs seconds): two teams, a project
with a MUSUBI repository (requirements with EARS findings, trace gaps), an empty project
whose runs call a scripted upstream through the gateway, a viewer, a second tenant,
quotas, real model calls and 60 days of back-dated usage rows. The scripted upstream and
the OIDC provider run in a background thread's event loop (the browser API is sync).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, BrowserType, Playwright, sync_playwright

from tests.conftest import _free_port
from tests.gateway.fakes import serve
from tests.orchestrator.conftest import ScriptedUpstream, good

T = TypeVar("T")
CHROMIUM = os.environ.get("MUSUBI_CHROMIUM", "/usr/lib/chromium/chromium")
OWNER_KEY = "msk_0da5b0a1_" + "k" * 40
FIXTURE_REPO = Path(__file__).parents[1] / "fixtures" / "musubi-projects" / "TENJIN"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"  # axe-core 4.14.1 (scripts/vendor-web)
ARTIFACTS = Path(os.environ.get("PYTEST_ARTIFACTS", Path(__file__).parents[1] / "artifacts"))


class Loop:
    """An event loop in a daemon thread, for the fakes the server calls."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class Dash:
    base_url: str
    home: Path
    db_path: Path
    tenant_id: str
    loop: Loop
    upstream: ScriptedUpstream
    ids: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    upstream_server: serve | None = None

    def client(self, key: str = OWNER_KEY) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def _start_server(home: Path, db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MUSUBI_HOME": str(home),
        "MUSUBI_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "MUSUBI_BOOTSTRAP_KEY": OWNER_KEY,
        "MUSUBI_EGRESS_ALLOW": "127.0.0.1",
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
        "MUSUBI_GATEWAY_LOCAL_MODEL": "0",
    }
    code = "from musubi.cli.main import main; main()"
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"musubi serve exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"musubi serve did not start:\n{log.read_text()}")


def _usage_rows(dash: Dash) -> None:
    """60 days of model calls by two teams, three projects' keys and three models."""
    models = [
        ("gpt-4.1", "openai", 2e-6),
        ("gpt-4.1-mini", "openai", 4e-7),
        ("claude-x", "anthropic", 3e-6),
    ]
    scopes = [
        (dash.ids["team_core"], dash.ids["project_demo"]),
        (dash.ids["team_core"], dash.ids["project_shop"]),
        (dash.ids["team_web"], None),
    ]
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for day in range(60):
        at = now - timedelta(days=day, minutes=5)
        for i, (model, provider, price) in enumerate(models):
            for j, (team, project) in enumerate(scopes):
                n_in, n_out = 1000 * (i + 1) + day * 10, 200 * (j + 1)
                rows.append(
                    (
                        f"use_{uuid.uuid4().hex[:16]}",
                        dash.tenant_id,
                        at.isoformat(sep=" "),
                        team,
                        project,
                        dash.ids["owner_key"],
                        dash.ids["owner_user"],
                        model,
                        provider,
                        n_in,
                        n_out,
                        (day + i) % 4 == 0,
                        (n_in + n_out) * price,
                        120.0,
                        "success",
                        None,
                    )
                )
    with sqlite3.connect(dash.db_path) as con:
        con.executemany(
            "INSERT INTO usage_records (id, tenant_id, at, team_id, project_id, key_id, user_id,"
            " model, provider, input_tokens, output_tokens, cached, cost, latency_ms, outcome,"
            " request_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )


def _seed(dash: Dash) -> None:
    repos = dash.home / "repos" / dash.tenant_id
    with dash.client() as owner:
        me = ok(owner.get("/v1/me"))
        dash.ids["owner_user"], dash.ids["owner_key"] = me["user_id"], me["key_id"]
        core = ok(owner.post("/v1/teams", json={"name": "core", "description": "Core"}), 201)
        web = ok(owner.post("/v1/teams", json={"name": "web"}), 201)
        dash.ids.update(team_core=core["id"], team_web=web["id"])
        shutil.copytree(FIXTURE_REPO, repos / "demo")
        (repos / "shop").mkdir(parents=True)
        for name in ("demo", "shop"):
            body = {"name": name, "team_id": core["id"], "repo_path": name}
            dash.ids[f"project_{name}"] = ok(owner.post("/v1/projects", json=body), 201)["id"]
        dash.upstream_server = serve(dash.upstream)
        upstream = dash.loop.run(_start(dash.upstream_server))
        dash.ids["upstream"] = upstream
        credential = {"provider": "openai", "api_key": "sk-test-0001", "base_url": f"{upstream}/v1"}
        ok(owner.put("/v1/gateway/providers/openai", json=credential))
        for _ in range(3):  # real calls through the gateway: the ledger writes their rows
            msg = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
            ok(owner.post("/v1/chat/completions", json=msg))
        dash.upstream.chats.clear()
        _usage_rows(dash)
        # The team "core" has used 90% of its monthly cost limit: a warning.
        month = datetime.now(UTC).strftime("%Y-%m-01")
        with sqlite3.connect(dash.db_path) as con:
            (used,) = con.execute(
                "SELECT sum(cost) FROM usage_records WHERE team_id = ? AND at >= ?",
                (core["id"], month),
            ).fetchone()
        limits = {"cost_per_month": round(used / 0.9, 8)}
        quota = {"scope": "team", "scope_id": core["id"], "limits": limits}
        ok(owner.put("/v1/quotas", json=quota))
        viewer = ok(owner.post("/v1/users", json={"name": "vera"}), 201)
        body = {"user_id": viewer["id"], "role": "viewer"}
        ok(owner.post("/v1/role-assignments", json=body), 201)
        dash.keys["viewer"] = ok(owner.post("/v1/keys", json={"user_id": viewer["id"]}), 201)[
            "token"
        ]
        other = ok(owner.post("/v1/tenants", json={"name": "other-co"}), 201)
        dash.keys["other"] = other["owner_key"]


def _script(messages: list[dict[str, Any]]) -> str:
    """A run's stages get the orchestrator tests' documents; a plain chat a greeting."""
    return good(messages) if len(messages) > 1 else "Hello from the scripted upstream."


async def _start(server: serve) -> str:
    return await server.__aenter__()


@pytest.fixture(scope="package")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dash]:
    root = tmp_path_factory.mktemp("dash")
    home, db, log = root / "home", root / "musubi.db", root / "serve.log"
    port = _free_port()
    proc = _start_server(home, db, port, log)
    loop = Loop()
    d = None
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, log)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {OWNER_KEY}"}) as c:
            tenant_id = ok(c.get("/v1/me"))["tenant_id"]
        d = Dash(url, home, db, tenant_id, loop, ScriptedUpstream(name="scripted", script=_script))
        _seed(d)
        yield d
    finally:
        proc.terminate()
        proc.wait(10)
        if d is not None and d.upstream_server is not None:
            loop.run(d.upstream_server.__aexit__(None, None, None))
        loop.close()


# pytest-playwright keeps its Playwright (and so a running event loop in the main thread)
# for the whole session, which breaks every pytest-asyncio test collected after this
# package. Scoped to this package instead: Playwright stops when the browser tests end.


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}}


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright) -> BrowserType:
    return playwright.chromium


@pytest.fixture(scope="package")
def launch_browser(
    browser_type_launch_args: dict[str, Any], browser_type: BrowserType
) -> Callable[..., Browser]:
    def launch(**kwargs: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="package")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    found = launch_browser()
    yield found
    found.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def base_url() -> str | None:
    """Replaces pytest-base-url's (a class-method fixture pytest 9 warns about); the tests
    use ``dash.base_url``."""
    return None
