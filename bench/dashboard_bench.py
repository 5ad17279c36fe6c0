"""Dashboard benchmark (issue 18). Prints tables; run: .venv/bin/python bench/dashboard_bench.py

A real ``musubi serve`` (one worker, SQLite) with 100 teams, 1,000 projects and
1,000,000 usage rows spread over a year (three models, keys of ten users):

1. Server time per page: wall time of GET on loopback with a session cookie, P50/P95
   over ``--repeat`` requests (the page's HTML, not its assets).
2. Chart queries: ``musubi.web.usage.usage_by_day`` run in-process against the same
   database, per dimension and window, P50/P95, and the SQLite query plan of the
   statement (it must search the ``(tenant_id, at)`` index, never scan the table).
3. Browser: Debian's Chromium (Playwright) from navigation to a drawn usage chart.

Options: --rows N (default 1,000,000), --repeat N (default 20), --keep DIR (--reuse:
the data seeded there by an earlier run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

OWNER_KEY = "msk_0be0c0d0_" + "b" * 40
INSERT = (
    "INSERT INTO usage_records (id, tenant_id, at, team_id, project_id, key_id, user_id, model,"
    " provider, input_tokens, output_tokens, cached, cost, latency_ms, outcome, request_id)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
CHROMIUM = os.environ.get("MUSUBI_CHROMIUM", "/usr/lib/chromium/chromium")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def row(name: str, ms: list[float], first: float | None = None) -> str:
    cold = f"{first:8.1f}" if first is not None else "       -"
    return f"| {name:<44} | {statistics.median(ms):8.1f} | {pct(ms, 0.95):8.1f} | {cold} |"


def start_server(home: Path, db: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MUSUBI_HOME": str(home),
        "MUSUBI_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "MUSUBI_BOOTSTRAP_KEY": OWNER_KEY,
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
        "MUSUBI_GATEWAY_LOCAL_MODEL": "0",
        "MUSUBI_LOG_LEVEL": "warning",
    }
    code = "from musubi.cli.main import main; main()"
    args = [sys.executable, "-c", code, "serve", "--port", str(port)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("musubi serve did not start")


def seed(url: str, db: Path, rows: int) -> dict[str, Any]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {OWNER_KEY}"}) as c:
        me = c.get("/v1/me").json()
        teams = [
            c.post("/v1/teams", json={"name": f"team-{i:03}"}).json()["id"] for i in range(100)
        ]
        projects = []
        for i in range(1000):
            body = {"name": f"project-{i:04}", "team_id": teams[i % 100]}
            projects.append((c.post("/v1/projects", json=body).json()["id"], teams[i % 100]))
        users = [c.post("/v1/users", json={"name": f"user-{i}"}).json()["id"] for i in range(10)]
        keys = [c.post("/v1/keys", json={"user_id": u}).json()["key"]["id"] for u in users]
        quota = {"scope": "team", "scope_id": teams[0], "limits": {"cost_per_month": 5.0}}
        c.put("/v1/quotas", json=quota)
    tenant = me["tenant_id"]
    rng = random.Random(18)
    models = [
        ("gpt-4.1", "openai", 2e-6),
        ("gpt-4.1-mini", "openai", 4e-7),
        ("claude-x", "x", 3e-6),
    ]
    now = datetime.now(UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    with sqlite3.connect(db) as con:
        batch = []
        for n in range(rows):
            project, team = projects[rng.randrange(1000)]
            model, provider, price = models[n % 3]
            k = rng.randrange(10)
            tokens_in, tokens_out = rng.randrange(100, 4000), rng.randrange(10, 800)
            at = now - timedelta(seconds=rng.randrange(365 * 86400))
            batch.append(
                (
                    f"use_{uuid.uuid4().hex[:16]}",
                    tenant,
                    at.isoformat(sep=" "),
                    team,
                    project,
                    keys[k],
                    users[k],
                    model,
                    provider,
                    tokens_in,
                    tokens_out,
                    n % 5 == 0,
                    (tokens_in + tokens_out) * price,
                    100.0,
                    "success",
                    None,
                )
            )
            if len(batch) == 50_000:
                con.executemany(INSERT, batch)
                batch.clear()
        if batch:
            con.executemany(INSERT, batch)
        con.execute("ANALYZE")
    print(f"seeded {rows:,} usage rows in {time.perf_counter() - t0:.1f} s")
    return {"tenant": tenant, "project": projects[0][0]}


def reuse(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as con:
        (tenant,) = con.execute("SELECT tenant_id FROM usage_records LIMIT 1").fetchone()
        (n,) = con.execute("SELECT count(*) FROM usage_records").fetchone()
    print(f"reusing {n:,} usage rows")
    return {"tenant": tenant}


def since30() -> datetime:
    return datetime.now(UTC) - timedelta(days=30)


def login(url: str) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=120)
    r = c.post("/ui/login", data={"api_key": OWNER_KEY, "next": "/ui/"})
    assert r.status_code == 303, r.text
    return c


def bench_pages(url: str, ids: dict[str, Any], repeat: int) -> list[str]:
    pages = [
        "/ui/?by=model",
        "/ui/?by=team",
        "/ui/?by=project",
        "/ui/?by=key",
        "/ui/?by=team&days=365",
        "/ui/runs",
        "/ui/projects",
        "/ui/models",
        "/ui/audit",
        "/ui/admin",
    ]
    out = []
    c = login(url)
    try:
        for path in pages:
            t = time.perf_counter()
            c.get(path)  # the first view may roll up the window's closed days
            first = (time.perf_counter() - t) * 1000
            ms = []
            for _ in range(repeat):
                t = time.perf_counter()
                r = c.get(path)
                ms.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (path, r.status_code)
            out.append(row(f"GET {path}", ms, first))
    finally:
        c.close()
    return out


async def bench_queries(db: Path, tenant: str, repeat: int) -> tuple[list[str], str]:
    from sqlalchemy.dialects import sqlite

    from musubi.context import bind_tenant
    from musubi.storage.database import Database
    from musubi.usage.models import UsageRow
    from musubi.usage.rollup import closed_until, days_statement, ledger_statement
    from musubi.web.usage import DIMENSIONS, usage_by_day, usage_statement

    database = Database(f"sqlite+aiosqlite:///{db}")
    out = []
    try:
        with bind_tenant(tenant):
            for days in (30, 365):
                for by in DIMENSIONS:
                    ms = []
                    for _ in range(repeat):
                        t = time.perf_counter()
                        async with database.transaction() as s:
                            await usage_by_day(s, tenant, by, days)
                        ms.append((time.perf_counter() - t) * 1000)
                    out.append(row(f"usage_by_day(by={by}, days={days})", ms))
    finally:
        await database.dispose()
    today = datetime.now(UTC).date()
    closed = closed_until()
    plans = []
    for title, stmt in (
        ("closed days: the rollup", days_statement(tenant, "team", today - timedelta(29), closed)),
        (
            "open days: the ledger's index range",
            ledger_statement(tenant, UsageRow.team_id, datetime.now(UTC) - timedelta(1), None),
        ),
        ("for comparison, the raw 30-day read", usage_statement(tenant, "team", since30())),
    ):
        sql = str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        with sqlite3.connect(db) as con:
            plan = "\n".join(r[-1] for r in con.execute("EXPLAIN QUERY PLAN " + sql))
        plans.append(f"-- {title}\n{sql}\n-- plan:\n{plan}")
    return out, "\n\n".join(plans)


def bench_browser(url: str, repeat: int) -> list[str]:
    from playwright.sync_api import sync_playwright

    ms = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{url}/ui/login")
        page.get_by_label("API key", exact=True).fill(OWNER_KEY)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_selector("#usage-chart[data-drawn=true]")
        for _ in range(repeat):
            t = time.perf_counter()
            page.goto(f"{url}/ui/?by=team")
            page.wait_for_selector("#usage-chart[data-drawn=true] canvas")
            ms.append((time.perf_counter() - t) * 1000)
        browser.close()
    return [row("browser: navigation to drawn overview chart", ms)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="the data folder, kept")
    parser.add_argument("--reuse", action="store_true", help="with --keep: data seeded before")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="dash-bench-"))
    home, db = root / "home", root / "musubi.db"
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = start_server(home, db, port)
    url = f"http://127.0.0.1:{port}"
    try:
        ids = reuse(db) if args.keep and args.reuse else seed(url, db, args.rows)
        header = ["| what | P50 ms | P95 ms | first ms |", "|---|---:|---:|---:|"]
        print(f"\n## Server time per page ({args.repeat} requests each, SQLite)\n")
        print("\n".join(header + bench_pages(url, ids, args.repeat)))
        rows, plan = asyncio.run(bench_queries(db, ids["tenant"], args.repeat))
        print(f"\n## Chart queries ({args.repeat} runs each, in-process)\n")
        print("\n".join(header + rows))
        print(f"\n## Query plans (30 days by team)\n\n```\n{plan}\n```")
        print("\n## Browser\n")
        print("\n".join(header + bench_browser(url, max(5, args.repeat // 4))))
        print(f"\nload: {os.getloadavg()}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
