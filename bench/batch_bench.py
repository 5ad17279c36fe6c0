"""Batch benchmark (issue 7). Prints a table; run: .venv/bin/python bench/batch_bench.py

A chat batch of distinct lines (so the response cache never answers) against the in-tree
fake OpenAI upstream (tests/gateway/fakes.py, 50 ms per answer, its request log off),
through a real ``musubi serve`` subprocess, submitted with the official ``openai`` SDK:
``files.create``, ``batches.create``, then ``batches.retrieve`` every 0.25 s (1 s above
10,000 lines) until the batch is completed (every line must have succeeded). Each row
runs on a fresh server (fresh data directory, SQLite or a fresh PostgreSQL database) so
its peak RSS is its own.

Rows: the database queue (SQLite, in-process workers) at concurrency 100; the Redis queue
(PostgreSQL, ``musubi worker`` processes) with one and two workers; the baseline of one
line at a time (concurrency 1, fewer lines); and memory: the database queue with an
instant upstream on 10 x N lines, against the first row's N (goal: peak RSS stays flat,
files are streamed and lines live in the database; the upstream's latency changes how
long a line is in flight, not how many are). ``seconds`` runs from ``batches.create``
(validation and line insert included) to ``completed`` (output file written); ``upload``
is ``files.create``. ``CPU ms`` is the CPU time (user + system) of the server and
workers per line, from upload to completion: unlike lines/s it holds when other work
shares the machine. Peak RSS is VmHWM of the server (and of each worker).

``MUSUBI_BATCH_CONCURRENCY`` is a limit per process: with two workers at 100, up to 200
lines are in flight (the ``in flight`` column).

Options: --lines N (default 10000), --quick (1000 lines, smoke run), --skip-redis,
--skip-memory, --memory-lines (default 10 x N), --baseline-lines (default 200),
--concurrency (default 100), --latency-ms (default 50), --redis-url (a Redis database of
its own: it is flushed); MUSUBI_BENCH_POSTGRES_URL, the admin URL that creates and drops
the PostgreSQL databases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("MUSUBI_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
APP_ROLE = "musubi_app"
DONE = ("completed", "failed", "cancelled", "expired")
POLL_S = 0.25  # 1 s above 10,000 lines: a retrieve counts the batch's lines (O(lines))

# The fake keeps every request it saw (for tests); here that would grow with the batch.
_FAKE = """
import uvicorn
from tests.gateway.fakes import FakeUpstream

class Fake(FakeUpstream):
    async def _enter(self, request, kind):
        out = await super()._enter(request, kind)
        self.requests.clear()
        self.answered.clear()
        return out

uvicorn.run(Fake(latency={latency}).app(), host="127.0.0.1", port={port}, log_level="warning")
"""


@dataclass
class Result:
    backend: str
    workers: str
    concurrency: int
    in_flight: int
    latency_ms: float
    lines: int
    upload_s: float
    create_s: float
    seconds: float
    cpu_s: float
    server_mb: float
    worker_mb: list[float]

    def print(self) -> None:
        workers_mb = " + ".join(f"{m:.0f}" for m in self.worker_mb) or "-"
        print(
            f"| {self.backend:<19} | {self.workers:>7} | {self.concurrency:>4} "
            f"| {self.in_flight:>9} | {self.latency_ms:>5.0f} | {self.lines:>7,} "
            f"| {self.upload_s:>8.2f} | {self.create_s:>8.2f} | {self.seconds:>7.1f} "
            f"| {self.lines / self.seconds:>7.0f} | {self.cpu_s / self.lines * 1000:>6.2f} "
            f"| {self.server_mb:>9.0f} | {workers_mb:>9} |",
            flush=True,
        )


HEADER = (
    "| backend             | workers | conc | in flight | ms up |   lines "
    "| upload s | create s | seconds | lines/s | CPU ms | server MB | worker MB |\n"
    "|---------------------|--------:|-----:|----------:|------:|--------:"
    "|---------:|---------:|--------:|--------:|-------:|----------:|----------:|"
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _hwm_mb(pid: int) -> float:
    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: exited with {proc.returncode}\n{_tail(log)}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up\n{_tail(log)}")


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def chat_lines(n: int, tag: str) -> bytes:
    """``n`` distinct chat requests as batch JSONL (as tests/batch/conftest.py)."""
    out = []
    for i in range(1, n + 1):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q {tag} {i}"}]}
        item = {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions"}
        out.append(json.dumps(item | {"body": body}))
    return ("\n".join(out) + "\n").encode()


@contextmanager
def fake_upstream(latency_s: float, logs: Path) -> Iterator[str]:
    port = _port()
    log = logs / f"fake-{port}.log"
    code = _FAKE.format(latency=latency_s, port=port)
    proc = _spawn([sys.executable, "-c", code], dict(os.environ), log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/v1/models", proc, log)
        yield url
    finally:
        _stop(proc)


# -- PostgreSQL and Redis -------------------------------------------------------------------


def _pg_admin(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    async def go() -> None:
        conn = await asyncpg.connect(PG_ADMIN.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


@contextmanager
def pg_database() -> Iterator[str]:
    """A new database owned by a non-superuser role (row-level security applies)."""
    name = f"musubi_bench_{secrets.token_hex(4)}"
    _pg_admin(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN "
        f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$;"
    )
    _pg_admin(f"CREATE DATABASE {name} OWNER {APP_ROLE}")
    host = httpx.URL(PG_ADMIN.replace("postgresql+asyncpg", "postgresql"))
    try:
        yield f"postgresql+asyncpg://{APP_ROLE}@{host.host}:{host.port or 5432}/{name}"
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


# -- MUSUBI ---------------------------------------------------------------------------------


@dataclass
class Musubi:
    base: str
    key: str
    server: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


@contextmanager
def musubi(
    upstream: str,
    logs: Path,
    *,
    concurrency: int,
    workers: int = 0,
    database_url: str | None = None,
    redis_url: str | None = None,
) -> Iterator[Musubi]:
    """A fresh ``musubi serve`` (and ``workers`` x ``musubi worker``) wired to ``upstream``."""
    home = Path(tempfile.mkdtemp(prefix="musubi-batch-bench-"))
    key = f"msk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
    env = {
        **os.environ,
        "MUSUBI_HOME": str(home),
        "MUSUBI_BOOTSTRAP_KEY": key,
        "MUSUBI_LOG_LEVEL": "warning",
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
        "MUSUBI_BATCH_CONCURRENCY": str(concurrency),
    }
    if database_url:
        env["MUSUBI_DATABASE_URL"] = database_url
    if redis_url:
        env |= {"MUSUBI_REDIS_URL": redis_url, "MUSUBI_QUEUE": "redis"}
    port = _port()
    log = logs / f"server-{port}.log"
    server = _spawn([str(BIN / "musubi"), "serve", "--port", str(port)], env, log)
    procs = [server]
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(base + "/readyz", server, log)
        auth = {"Authorization": f"Bearer {key}"}
        cred = {"provider": "openai", "api_key": "sk-bench-000000001", "base_url": upstream + "/v1"}
        r = httpx.put(f"{base}/v1/gateway/providers/openai", json=cred, headers=auth)
        r.raise_for_status()
        started = []
        for i in range(workers):  # after the server: it has migrated the database
            wlog = logs / f"worker-{port}-{i}.log"
            started.append((_spawn([str(BIN / "musubi"), "worker"], env | _INFO, wlog), wlog))
            procs.append(started[-1][0])
        for proc, wlog in started:
            _wait_log(proc, wlog, "musubi worker ready")
        yield Musubi(base, key, server, [p for p, _ in started])
    finally:
        for proc in reversed(procs):  # a worker left running is killed: its jobs are done
            _stop(proc, 20 if proc is server else 3)
        shutil.rmtree(home, ignore_errors=True)


_INFO = {"MUSUBI_LOG_LEVEL": "info"}  # workers announce "ready" at info


def _wait_log(proc: subprocess.Popen[bytes], log: Path, text: str, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}\n{_tail(log)}")
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready after {seconds} s\n{_tail(log)}")


def run_batch(m: Musubi, lines: int, tag: str, timeout_s: float) -> tuple[float, float, float]:
    """Upload, create, poll to completion: (upload s, create s, create-to-completed s)."""
    data = chat_lines(lines, tag)
    sdk = openai.OpenAI(base_url=f"{m.base}/v1", api_key=m.key, max_retries=0, timeout=600)
    try:
        t0 = time.perf_counter()
        uploaded = sdk.files.create(file=("in.jsonl", data), purpose="batch")
        t1 = time.perf_counter()
        batch = sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        t2 = time.perf_counter()
        while batch.status not in DONE:
            if time.perf_counter() - t1 > timeout_s:
                raise RuntimeError(f"batch not done after {timeout_s} s: {batch.request_counts}")
            for proc in (m.server, *m.workers):
                if proc.poll() is not None:
                    raise RuntimeError(f"a MUSUBI process exited with {proc.returncode}")
            time.sleep(POLL_S if lines <= 10_000 else 1.0)
            batch = sdk.batches.retrieve(batch.id)
        t3 = time.perf_counter()
    finally:
        sdk.close()
    counts = batch.request_counts
    got: Any = (counts.total, counts.completed, counts.failed) if counts else None
    if batch.status != "completed" or got != (lines, lines, 0):
        raise RuntimeError(f"batch {batch.id} ended {batch.status} with counts {got}")
    return t1 - t0, t2 - t1, t3 - t1


def measure(
    up: str,
    logs: Path,
    *,
    lines: int,
    concurrency: int,
    latency_ms: float,
    workers: int = 0,
    redis_url: str | None = None,
) -> Result:
    """One row: a fresh MUSUBI (SQLite, or PostgreSQL and Redis when ``redis_url``)."""
    with contextlib.ExitStack() as stack:
        url = None
        if redis_url:
            _flush_redis(redis_url)
            stack.callback(_flush_redis, redis_url)
            url = stack.enter_context(pg_database())
        m = stack.enter_context(
            musubi(
                up,
                logs,
                concurrency=concurrency,
                workers=workers,
                database_url=url,
                redis_url=redis_url,
            )
        )
        procs = [m.server, *m.workers]
        cpu0 = sum(_cpu_s(p.pid) for p in procs)
        upload, create, seconds = run_batch(m, lines, secrets.token_hex(3), timeout_s=900)
        result = Result(
            backend="redis (PostgreSQL)" if redis_url else "database (SQLite)",
            workers=str(workers) if workers else "in-proc",
            concurrency=concurrency,
            in_flight=concurrency * max(1, workers),
            latency_ms=latency_ms,
            lines=lines,
            upload_s=upload,
            create_s=create,
            seconds=seconds,
            cpu_s=sum(_cpu_s(p.pid) for p in procs) - cpu0,
            server_mb=_hwm_mb(m.server.pid),
            worker_mb=[_hwm_mb(w.pid) for w in m.workers],
        )
    result.print()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=10_000, help="lines of the main batch")
    parser.add_argument("--baseline-lines", type=int, default=200, help="lines at concurrency 1")
    parser.add_argument("--memory-lines", type=int, default=None, help="default 10 x --lines")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="1000 lines: a smoke run")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12", help="flushed")
    args = parser.parse_args()
    if args.quick:
        args.lines, args.baseline_lines = min(args.lines, 1000), min(args.baseline_lines, 50)
    n, conc, lat = args.lines, args.concurrency, args.latency_ms
    args.memory_lines = args.memory_lines or n * 10
    logs = Path(tempfile.mkdtemp(prefix="musubi-batch-bench-logs-"))
    print(f"logs in {logs}", file=sys.stderr)
    print(HEADER, flush=True)
    with fake_upstream(lat / 1000, logs) as up:
        measure(up, logs, lines=n, concurrency=conc, latency_ms=lat)
        if not args.skip_redis:
            for workers in (1, 2):
                measure(
                    up,
                    logs,
                    lines=n,
                    concurrency=conc,
                    latency_ms=lat,
                    workers=workers,
                    redis_url=args.redis_url,
                )
        measure(up, logs, lines=args.baseline_lines, concurrency=1, latency_ms=lat)
    if not args.skip_memory:  # memory at 10 x N lines (instant upstream) against the 1st row
        with fake_upstream(0.0, logs) as up:
            measure(up, logs, lines=args.memory_lines, concurrency=conc, latency_ms=0)
    shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
