"""Platform benchmarks (issue 2). Prints a table; run: .venv/bin/python bench/platform_bench.py

1. CLI start-up: wall time of ``musubi --help``, and the import time of ``musubi``; wall
   time of a management listing (``musubi teams list`` on an initialised home) beside the
   floor it cannot go under (Python importing SQLAlchemy's async ORM, aiosqlite, pydantic
   and click, and nothing of ours).
2. Authenticated GET /v1/teams at 100 concurrent clients against a real ``musubi serve``
   (one uvicorn worker) on SQLite and on PostgreSQL, load from ``wrk`` (Debian package
   ``wrk``; else an httpx client, which competes for the CPU): P50/P95, requests/s, and
   server CPU seconds per request (from /proc, utime+stime of the server process).
3. Audit: append rate (one event per transaction, and 1,000 per transaction) and the time
   ``verify`` takes over a chain of 1M events.

Options: --seconds N (load per backend, default 15), --events N (default 1_000_000),
--skip-postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("MUSUBI_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def row(name: str, value: str, note: str = "") -> None:
    print(f"| {name:<48} | {value:>16} | {note} |")


def cli_startup() -> None:
    musubi = str(BIN / "musubi")
    subprocess.run([musubi, "--help"], capture_output=True, check=True)  # warm the .pyc cache
    times = []
    for _ in range(20):
        t = time.perf_counter()
        subprocess.run([musubi, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    row(
        "musubi --help, wall (median of 20)",
        f"{statistics.median(times) * 1000:.0f} ms",
        "goal < 150 ms",
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import musubi.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    total = sum(int(m.group(1)) for m in re.finditer(r"import time:\s+(\d+) \|", out))
    row("import musubi.cli.main (self times summed)", f"{total / 1000:.0f} ms", "-X importtime")
    loaded = [
        m
        for m in ("sqlalchemy", "fastapi", "uvicorn", "asyncpg")
        if re.search(rf"\|\s+{m}$", out, re.M)
    ]
    row("heavy modules imported by musubi --help", ", ".join(loaded) or "none", "")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(base: str, key: str, total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        queue = iter(range(total))

        async def worker() -> None:
            for _ in queue:
                t = time.perf_counter()
                r = await client.get("/v1/teams")
                latencies.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


_WRK_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95)))
end
"""


def _wrk(base: str, key: str, seconds: int) -> tuple[int, float, float, float]:
    """Run wrk (1 thread, 100 connections): requests, seconds, P50 and P95 in seconds."""
    script = Path(tempfile.mkdtemp()) / "report.lua"
    script.write_text(_WRK_REPORT)
    cmd = [
        "wrk",
        "-t1",
        "-c100",
        f"-d{seconds}s",
        "-s",
        str(script),
        "-H",
        f"Authorization: Bearer {key}",
        f"{base}/v1/teams",
    ]
    subprocess.run([*cmd[:3], "-d2s", *cmd[4:]], capture_output=True, check=True)  # warm-up
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+)", out)
    assert m, out
    n, dur_us, p50_us, p95_us = (int(g) for g in m.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert non2xx is None, out
    return n, dur_us / 1e6, p50_us / 1e6, p95_us / 1e6


def http_bench(label: str, database_url: str | None, seconds: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="musubi-bench-"))
    env = {
        **os.environ,
        "MUSUBI_HOME": str(home),
        "MUSUBI_PORT": "8799",
        "MUSUBI_LOG_LEVEL": "warning",
    }
    if database_url:
        env["MUSUBI_DATABASE_URL"] = database_url
    proc = subprocess.Popen(
        [str(BIN / "musubi"), "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        key = None
        assert proc.stderr is not None
        for line in proc.stderr:
            m = re.search(r"(msk_[A-Za-z0-9_-]+)", line)
            if m:
                key = m.group(1)
                break
        # Keep draining the server's stderr so it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
        base = "http://127.0.0.1:8799"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert key, "no bootstrap key printed"
        for i in range(5):
            httpx.post(
                f"{base}/v1/teams",
                json={"name": f"team-{i}"},
                headers={"Authorization": f"Bearer {key}"},
            )
        if shutil.which("wrk"):
            cpu0 = _cpu_seconds(proc.pid)
            done, wall, p50, p95 = _wrk(base, key, seconds)
        else:  # an in-Python client competes with the server for the CPU: numbers are worse
            asyncio.run(_load(base, key, 500, 100))
            cpu0, t0 = _cpu_seconds(proc.pid), time.perf_counter()
            lat = sorted(asyncio.run(_load(base, key, seconds * 200, 100)))
            done, wall = len(lat), time.perf_counter() - t0
            p50, p95 = lat[len(lat) // 2], lat[int(len(lat) * 0.95)]
        cpu = _cpu_seconds(proc.pid) - cpu0
        tool = "wrk" if shutil.which("wrk") else "httpx"
        row(f"GET /v1/teams, 100 clients, {label}: P50", f"{p50 * 1000:.1f} ms", tool)
        row("  ... P95", f"{p95 * 1000:.1f} ms")
        row("  ... throughput", f"{done / wall:.0f} req/s", f"{done} requests in {wall:.0f} s")
        row("  ... server CPU per request", f"{cpu / done * 1000:.2f} ms", "one uvicorn worker")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)


async def audit_bench(database_url: str, events: int) -> None:
    from sqlalchemy import insert

    from musubi.audit import service as audit
    from musubi.audit.chain import GENESIS, event_hash, head_message
    from musubi.audit.models import AuditEvent, AuditHead
    from musubi.audit.signing import Signer
    from musubi.context import bind_tenant
    from musubi.storage.base import utcnow
    from musubi.storage.database import Database
    from musubi.storage.migrate import upgrade

    db = Database(database_url, audit_signer=Signer.generate())
    await upgrade(db)
    label = db.engine.dialect.name
    with bind_tenant("ten_bench"):
        n = 2000
        t = time.perf_counter()
        for i in range(n):
            async with db.transaction() as s:
                await audit.record(s, "bench.one", str(i))
        row(
            f"audit append, 1 event/transaction, {label}",
            f"{n / (time.perf_counter() - t):.0f} ev/s",
        )
        t = time.perf_counter()
        for b in range(10):
            async with db.transaction() as s:
                for i in range(1000):
                    await audit.record(s, "bench.batch", f"{b}-{i}")
        row(
            f"audit append, 1000 events/transaction, {label}",
            f"{10_000 / (time.perf_counter() - t):.0f} ev/s",
        )

    # A 1M-event chain, written directly with MUSUBI's hashing rules (fast set-up), then verified.
    tenant = "ten_million"
    prev, at = GENESIS, utcnow()
    t = time.perf_counter()
    with bind_tenant(tenant):
        batch: list[dict[str, object]] = []
        for seq in range(1, events + 1):
            fields: dict[str, Any] = {
                "tenant_id": tenant,
                "seq": seq,
                "at": at,
                "actor": "key:msk_bench",
                "action": "x.y",
                "target": f"t{seq}",
                "outcome": "success",
                "request_id": None,
                "client_ip": None,
                "detail": {},
            }
            digest = event_hash(prev_hash=prev, **fields)
            batch.append({**fields, "prev_hash": prev, "hash": digest})
            prev = digest
            if len(batch) == 20_000 or seq == events:
                async with db.transaction() as s:
                    await s.execute(insert(AuditEvent), batch)
                batch = []
        async with db.transaction() as s:
            signer = audit.signer_of(s)
            s.add(
                AuditHead(
                    tenant_id=tenant,
                    seq=events,
                    hash=prev,
                    key_id=signer.key_id,
                    signature=signer.sign(head_message(tenant, events, prev)),
                )
            )
        setup = time.perf_counter() - t
        t = time.perf_counter()
        async with db.read() as s:
            report = await audit.verify(s, tenant)
        elapsed = time.perf_counter() - t
    assert report.ok and report.checked == events, report.as_dict()
    row(
        f"audit verify, {events:,} events, {label}",
        f"{elapsed:.1f} s",
        f"{events / elapsed:,.0f} ev/s (set-up {setup:.0f} s)",
    )
    await db.dispose()


def _best_and_median(argv: list[str], env: dict[str, str], runs: int = 10) -> str:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env)
        times.append(time.perf_counter() - t)
    return f"{min(times) * 1000:.0f} / {statistics.median(times) * 1000:.0f} ms"


FLOOR_IMPORTS = "import sqlalchemy.ext.asyncio, sqlalchemy.orm, aiosqlite, pydantic, click"


def cli_listing() -> None:
    home = tempfile.mkdtemp(prefix="musubi-bench-cli-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env["MUSUBI_HOME"] = home
    musubi = str(BIN / "musubi")
    subprocess.run([musubi, "teams", "list"], capture_output=True, check=True, env=env)  # init
    listing = _best_and_median([musubi, "teams", "list"], env)
    row("musubi teams list, wall (best / median of 10)", listing, "goal < 300 ms")
    floor = _best_and_median([sys.executable, "-c", FLOOR_IMPORTS], env)
    row("floor: python importing SQLAlchemy ORM, pydantic", floor, "best / median of 10")
    shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15, help="load duration per backend")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    print(f"| {'measure':<48} | {'value':>16} | note |")
    print(f"|{'-' * 50}|{'-' * 18}|------|")
    cli_startup()
    cli_listing()
    http_bench("SQLite", None, args.seconds)
    if not args.skip_postgres:
        http_bench("PostgreSQL", _fresh_pg(), args.seconds)
    home = Path(tempfile.mkdtemp(prefix="musubi-bench-audit-"))
    asyncio.run(audit_bench(f"sqlite+aiosqlite:///{home / 'audit.db'}", args.events))
    if not args.skip_postgres:
        asyncio.run(audit_bench(_fresh_pg(), args.events))
    shutil.rmtree(home, ignore_errors=True)


def _fresh_pg() -> str:
    """A new database owned by a non-superuser role, so row-level security applies."""
    import secrets

    import asyncpg

    name = f"musubi_bench_{secrets.token_hex(4)}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'musubi_app')"
                " THEN CREATE ROLE musubi_app LOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$;"
            )
            await conn.execute(f"CREATE DATABASE {name} OWNER musubi_app")
        finally:
            await conn.close()

    asyncio.run(create())
    host = httpx.URL(PG_ADMIN)
    return f"postgresql+asyncpg://musubi_app@{host.host}:{host.port or 5432}/{name}"


if __name__ == "__main__":
    main()
