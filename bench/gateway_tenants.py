"""Gateway cost against the number of tenants (issue 24). Prints a table.

Run: ``.venv/bin/python bench/gateway_tenants.py --tenants 150,1000,10000``

For each source tree given (``--src``, default this checkout's ``src``; give two, e.g. a
``git archive`` of main and this checkout, to compare before and after in one run):

- ``musubi serve`` on embedded defaults (SQLite in a fresh ``MUSUBI_HOME``; or
  ``--database-url`` for PostgreSQL, a fresh schema is the caller's job), one uvicorn
  worker pinned to CPU 0 with ``taskset``; the fake OpenAI upstream
  (``tests/gateway/fakes.py``, 50 ms) and the load generator share the other CPU;
- the largest N tenants are created **in bulk, without the API** (through it, or even
  through the service layer, 10,000 tenants took well over an hour on this busy 2-core
  machine): the first 200 through the service layer in one process (``provision_tenant``,
  ``set_credential`` and ``set_policy``, the functions the API routes call), the others
  as copies of the first one's rows with new ids and new keys, inserted in bulk. Each
  tenant has its owner key, its own ``openai_compatible`` credential pointing at the
  upstream and a tenant quota policy on five metrics, never reached;
- every key is warmed with one call, then the load: ``--conns`` connections (100) for
  ``--seconds`` (15), each request using the next tenant's key in rotation, with
  ``x-musubi-cache: no``. One tenant first, then each N, on the same server.

PostgreSQL: ``--postgres postgresql://postgres@127.0.0.1:5432/postgres`` (an admin URL)
gives each ``--src`` a fresh database owned by a non-superuser role, dropped at the end.
Replicas: ``--replicas 3`` starts three servers on the same database, home and Redis
(``--redis-url``, default db 5), none pinned (two CPUs cannot give three servers a core
each, so nothing is pinned, the upstream and the load generator neither); every replica
is warmed with every key, and connection ``i`` goes to replica ``i mod 3``, so the keys'
rotation crosses all of them; CPU per call is the servers' together.

The load generator is a small asyncio HTTP/1.1 client in its own process (uvloop,
keep-alive, precomputed requests; a 2 s timeout per request, as wrk's default, counted as
a timeout), kept rather than wrk for the per-request key rotation. Reported per row:
requests/s, P50, P95, P99, server CPU per call (``/proc/<pid>/stat`` utime+stime of the
server over the run divided by the calls), timeouts and non-200 answers, and the load
average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "bench-llm", "messages": [{"role": "user", "content": "Hello"}]}
CHUNK = 200  # tenants created per transaction


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_idle(pid: int, limit: float = 600) -> float:
    """Seconds until the server spends under 5% of a CPU over a second: the usage ledger
    has written the warm-up's records (and begun the new tenants' audit chains), which
    would otherwise be measured with the first row."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        cpu0 = _cpu(pid)
        time.sleep(1)
        if _cpu(pid) - cpu0 < 0.05:
            break
    return time.monotonic() - started


def _wait_port(port: int, proc: subprocess.Popen[Any], seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


# -- setup, run in a process of its own with the source tree under test ---------------------
async def _setup(
    home: str, count: int, upstream: str, out: str, through_service: int = CHUNK
) -> None:
    """The first ``through_service`` tenants through the service layer, the rest copied."""
    from musubi.context import bind_tenant, system_scope
    from musubi.egress import EgressRules
    from musubi.gateway.providers.registry import ProviderRegistry
    from musubi.gateway.secrets import SecretBox
    from musubi.gateway.service import set_credential
    from musubi.identity.bootstrap import provision_tenant
    from musubi.quotas.policies import set_policy
    from musubi.runtime import open_state
    from musubi.settings import Settings

    settings = Settings()
    state = await open_state(settings, announce=False)
    box = SecretBox.load(Path(home))
    registry = ProviderRegistry()
    rules = EgressRules.parse("127.0.0.1")
    limits: dict[str, float | None] = {  # within PostgreSQL's 32-bit integer columns
        "requests_per_minute": 10**9,
        "tokens_per_minute": 2 * 10**9,
        "tokens_per_day": 2 * 10**9,
        "cost_per_day": 10**9,
        "cost_per_month": 10**10,
    }
    tokens: list[str] = []
    started = time.perf_counter()
    try:
        for first in range(0, min(count, through_service), CHUNK):
            with system_scope():
                async with state.db.transaction() as s:
                    for i in range(first, min(first + CHUNK, count, through_service)):
                        tenant, _, token = await provision_tenant(s, f"bench-{i:05d}")
                        tokens.append(token)
                        with bind_tenant(tenant.id):
                            await set_credential(
                                s,
                                box,
                                name="upstream",
                                provider="openai_compatible",
                                registry=registry,
                                egress=rules.for_tenant(tenant.id),
                                api_key="sk-bench-000000001",
                                base_url=upstream + "/v1",
                                models=[str(BODY["model"])],
                            )
                            await set_policy(s, "tenant", "", limits)
            print(f"  {len(tokens)} tenants", file=sys.stderr, flush=True)
        if count > len(tokens):
            tokens += await _clone(state.db, len(tokens), count)
    finally:
        await state.close()
    Path(out).write_text("\n".join(tokens))  # noqa: ASYNC240 (once, at the end)
    print(f"  created {count} tenants in {time.perf_counter() - started:.0f} s", file=sys.stderr)


async def _clone(db: Any, first: int, count: int) -> list[str]:
    """Tenants ``first`` to ``count`` as copies of tenant 0's rows (its owner, role,
    key, credential and quota policy), each with new ids and its own new key, inserted in
    bulk: the service layer took ~80 ms a tenant on this busy machine. The copies start
    without audit events (their chains begin at their first event)."""
    from sqlalchemy import select

    from musubi.context import system_scope
    from musubi.identity import keys
    from musubi.schema import metadata
    from musubi.storage.base import new_id

    tables = ["users", "role_assignments", "api_keys", "gateway_credentials", "quota_policies"]
    tokens = []
    with system_scope():
        async with db.transaction() as s:
            t_tenants = metadata.tables["tenants"]
            source = (
                (await s.execute(select(t_tenants).where(t_tenants.c.name == "bench-00000")))
                .one()
                ._asdict()
            )
            rows = {
                t: [
                    r._asdict()
                    for r in (
                        await s.execute(
                            select(metadata.tables[t]).where(
                                metadata.tables[t].c.tenant_id == source["id"]
                            )
                        )
                    ).all()
                ]
                for t in tables
            }
            for start in range(first, count, 1000):
                out: dict[str, list[dict[str, Any]]] = {t: [] for t in ["tenants", *tables]}
                for i in range(start, min(start + 1000, count)):
                    ids = {source["id"]: new_id("ten")}
                    for t in tables:
                        for r in rows[t]:
                            ids[r["id"]] = new_id(r["id"].split("_", 1)[0])
                    out["tenants"].append(
                        {**source, "id": ids[source["id"]], "name": f"bench-{i:05d}"}
                    )
                    for t in tables:
                        for r in rows[t]:
                            copy = {
                                k: ids.get(v, v) if isinstance(v, str) else v for k, v in r.items()
                            }
                            if t == "api_keys":
                                key = keys.generate()
                                copy["prefix"], copy["secret_hash"] = key.prefix, key.secret_hash
                                copy["last_used_at"] = None
                                tokens.append(key.token)
                            out[t].append(copy)
                for t, values in out.items():
                    await s.execute(metadata.tables[t].insert(), values)
                print(f"  {i + 1} tenants (copies)", file=sys.stderr, flush=True)
    return tokens


# -- load generator, run in a process of its own --------------------------------------------
async def _load(
    ports: list[int], keys: list[str], conns: int, seconds: float, out: str, once: bool = False
) -> None:
    """``conns`` connections for ``seconds``, connection ``i`` to ``ports[i % len(ports)]``
    (several replicas: the keys' rotation crosses them all); with ``once``, each key once
    (the warm-up, patient: 60 s a request)."""
    body = json.dumps(BODY).encode()
    requests = [
        (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {k}\r\nContent-Type: application/json\r\n"
            f"x-musubi-cache: no\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for k in keys
    ]
    latencies: list[float] = []
    counts: dict[str, Any] = {"timeouts": 0, "bad": 0}
    turn = 0
    end = time.monotonic() + seconds

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> int:
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        m = re.search(rb"(?i)content-length: *(\d+)", head)
        data = await reader.readexactly(int(m.group(1)) if m else 0)
        if status != 200 and not counts.get("first_bad"):
            counts["first_bad"] = (head[:12] + data).decode(errors="replace")[:500]  # type: ignore[assignment]
        return status

    async def worker(port: int) -> None:
        nonlocal turn
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.monotonic() < end and not (once and turn >= len(requests)):
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            req = requests[turn % len(requests)]
            turn += 1
            t = time.perf_counter()
            try:
                async with asyncio.timeout(60.0 if once else 2.0):
                    status = await one(*conn, req)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                counts["timeouts"] += 1
                conn[1].close()
                conn = None
                continue
            if time.monotonic() <= end:
                latencies.append((time.perf_counter() - t) * 1000)
                if status != 200:
                    counts["bad"] += 1
        if conn is not None:
            conn[1].close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker(ports[i % len(ports)]) for i in range(conns)))
    took = min(time.monotonic() - t0, seconds)
    result = json.dumps({"latencies": latencies, "seconds": took, **counts})
    Path(out).write_text(result)  # noqa: ASYNC240 (once, after the load)


def load(
    ports: list[int],
    keys_file: str,
    count: int,
    conns: int,
    seconds: float,
    once: bool = False,
    pin: bool = True,
) -> dict[str, float]:
    out = os.path.join(tempfile.mkdtemp(prefix="musubi-load-"), "result.json")
    cmd = [sys.executable, __file__, "--_load", ",".join(map(str, ports)), keys_file, str(count)]
    cmd += [str(conns), str(seconds), out, "once" if once else "timed"]
    if pin and shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2:
        cmd = ["taskset", "-c", "1", *cmd]
    subprocess.run(cmd, check=True)
    data = json.loads(Path(out).read_text())
    lat = sorted(data["latencies"])
    if data.get("first_bad"):
        print("  first non-200 answer:", data["first_bad"], file=sys.stderr)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")

    return {
        "n": len(lat),
        "rps": len(lat) / data["seconds"],
        "p50": pct(0.5),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "timeouts": data["timeouts"],
        "bad": data["bad"],
    }


# -- the server --------------------------------------------------------------------------
def _env(
    src: str, home: str, port: int, database_url: str | None, redis_url: str | None = None
) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": src,
        "MUSUBI_HOME": home,
        "MUSUBI_PORT": str(port),
        "MUSUBI_LOG_LEVEL": "warning",
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
        "MUSUBI_GATEWAY_LOCAL_MODEL": "0",
        "MUSUBI_EGRESS_ALLOW": "127.0.0.1",
    }
    if database_url:
        env["MUSUBI_DATABASE_URL"] = database_url
    if redis_url:
        env["MUSUBI_REDIS_URL"] = redis_url
    return env


def summarize_profile(path: str, top: int = 30) -> None:
    """py-spy's raw (collapsed) stacks: the functions most often on the stack, and at its
    top (where the CPU is spent itself)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    for title, table in (("on the stack", inclusive), ("at the top", own)):
        print(f"  profile, {title} (% of {total} samples):", file=sys.stderr)
        for f, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {n / total * 100:5.1f}%  {f[:150]}", file=sys.stderr)


def serve(env: dict[str, str], pin: bool = True) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", "from musubi.cli.main import main; main()", "serve"]
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True).start()
    _wait_port(int(env["MUSUBI_PORT"]), proc)
    return proc


def fake_upstream(latency: float, port: int, pin: bool = True) -> tuple[subprocess.Popen[str], str]:
    # The fake keeps every request it answered (for tests' assertions): here it keeps
    # none, or its heap grows by millions of objects over a run, its garbage collections
    # lengthen, and every later row (and the second --src) meets a slower upstream.
    code = (
        "import collections, uvicorn; from tests.gateway.fakes import FakeUpstream; "
        f"f = FakeUpstream(latency={latency}); "
        "f.requests = f.answered = f.dropped = collections.deque(maxlen=0); "
        f"uvicorn.run(f.app(), host='127.0.0.1', port={port}, "
        "log_level='warning', loop='uvloop', http='httptools')"
    )
    cmd = [sys.executable, "-c", code]
    if pin and shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2:
        cmd = ["taskset", "-c", "1", *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, cwd=ROOT, text=True, env=env)
    _wait_port(port, proc)
    return proc, f"http://127.0.0.1:{port}"


async def _pg_admin(admin_url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def fresh_pg_database(admin_url: str, label: str) -> str:
    """A new, empty database ``bench_tenants_<label>`` owned by a non-superuser role (as in
    production: row-level security applies), dropped first if a run left it; its URL."""
    name = "bench_tenants_" + re.sub(r"[^a-z0-9]", "_", label.lower())
    role = "musubi_app"
    asyncio.run(_pg_admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(
        _pg_admin(
            admin_url,
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS; END IF; END $$;",
        )
    )
    asyncio.run(_pg_admin(admin_url, f"CREATE DATABASE {name} OWNER {role}"))
    server = admin_url.replace("postgresql+asyncpg", "postgresql").split("://", 1)[1]
    host = server.split("@", 1)[-1].split("/", 1)[0]
    return f"postgresql+asyncpg://{role}@{host}/{name}"


def run_tree(
    label: str,
    src: str,
    counts: list[int],
    upstream: str,
    args: argparse.Namespace,
    template: str | None,
) -> str | None:
    """Measure one source tree; returns a copy of its freshly set-up home (SQLite), which
    the next tree starts from instead of creating the tenants again (its own code
    migrates it forward: give the older tree first). With ``--postgres``, each tree gets
    a fresh database (dropped at the end); with ``--replicas``, that many servers share
    the database, the home and Redis."""
    home = tempfile.mkdtemp(prefix="musubi-tenants-")
    database_url = args.database_url
    if args.postgres:
        database_url = fresh_pg_database(args.postgres, label)
        template = None
    replicas = max(1, args.replicas)
    pin = replicas == 1
    ports = [_port() for _ in range(replicas)]
    redis_url = args.redis_url if replicas > 1 or args.redis else None
    envs = [_env(src, home, p, database_url, redis_url) for p in ports]
    env = envs[0]
    keys_file = os.path.join(home, "bench-keys.txt")
    if template is not None:
        shutil.copytree(template, home, dirs_exist_ok=True)
    else:
        proc = serve(env)  # the first start creates the database; stopped for the setup
        proc.terminate()
        proc.wait(20)
        print(f"{label}: creating {max(counts)} tenants ({src})", file=sys.stderr, flush=True)
        code = f"import asyncio, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
        code += "import gateway_tenants as g; "
        code += f"asyncio.run(g._setup({home!r}, {max(counts)}, {upstream!r}, {keys_file!r}))"
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        if not database_url:
            template = args.template or tempfile.mkdtemp(prefix="musubi-tenants-template-")
            shutil.copytree(home, template, dirs_exist_ok=True)
    procs = [serve(e, pin=pin) for e in envs]
    try:
        print(f"{label}: warming {max(counts)} keys", file=sys.stderr, flush=True)
        t = time.monotonic()
        for port in ports:  # every replica caches every key, as under the rotation below
            warm = load([port], keys_file, max(counts), 10, 3600, once=True, pin=pin)
        took = time.monotonic() - t
        print(f"  warm-up: {warm['n']} calls in {took:.0f} s", file=sys.stderr, flush=True)
        idle = max(_wait_idle(p.pid) for p in procs)
        print(f"  server idle after {idle:.0f} s more", file=sys.stderr, flush=True)
        for n in [1, *counts]:
            spy = None
            if args.py_spy and (n in (1, max(counts)) or args.profiles):
                spy_cmd = [args.py_spy, "record", "-p", str(procs[0].pid)]
                spy_cmd += ["-d", str(int(args.seconds))]
                spy_cmd += ["-r", "100", "-f", "raw", "-o", os.path.join(home, "spy.txt")]
                quiet = subprocess.DEVNULL
                spy = subprocess.Popen(spy_cmd, stdout=quiet, stderr=quiet)
            cpu0 = sum(_cpu(p.pid) for p in procs)
            r = load(ports, keys_file, n, args.conns, args.seconds, pin=pin)
            if spy is not None:
                spy.wait(60)
                summarize_profile(os.path.join(home, "spy.txt"))
                if args.profiles:  # the raw stacks, for a closer look
                    Path(args.profiles).mkdir(parents=True, exist_ok=True)
                    keep = Path(args.profiles) / f"{label}-{n}.txt"
                    shutil.copy(os.path.join(home, "spy.txt"), keep)
            cpu = (sum(_cpu(p.pid) for p in procs) - cpu0) / max(r["n"], 1) * 1000
            load1 = os.getloadavg()[0]
            print(
                f"| {label:<8} | {n:>6} | {r['rps']:>6.0f} | {r['p50']:>6.1f} | {r['p95']:>6.1f} "
                f"| {r['p99']:>7.1f} | {cpu:>5.2f} | {r['timeouts']:>4} | {r['bad']:>4} "
                f"| {load1:>4.1f} |",
                flush=True,
            )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        shutil.rmtree(home, ignore_errors=True)
        if args.postgres and database_url:
            name = database_url.rsplit("/", 1)[1]
            asyncio.run(_pg_admin(args.postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    return template


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_load":
        ports, keys_file, count, conns, seconds, out, mode = sys.argv[2:]
        keys = Path(keys_file).read_text().split()[: int(count)]
        import uvloop

        ports_ = [int(p) for p in ports.split(",")]
        uvloop.run(_load(ports_, keys, int(conns), float(seconds), out, mode == "once"))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", default="150,1000,10000", help="N in rotation, e.g. 1000")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument(
        "--src",
        action="append",
        help="label=path of a source tree to serve (repeat to compare); default this checkout",
    )
    parser.add_argument("--py-spy", default=None, help="py-spy command: profile the largest N")
    parser.add_argument(
        "--profiles", default=None, help="a folder to keep py-spy's raw stacks in (with --py-spy)"
    )
    parser.add_argument(
        "--template",
        default=None,
        help="a folder keeping the set-up home (SQLite) between runs: made on the first run "
        "(by the first --src), copied by the next ones (same --upstream-port)",
    )
    parser.add_argument("--upstream-port", type=int, default=18950)
    parser.add_argument(
        "--database-url", default=None, help="a database instead of SQLite (set up by you)"
    )
    parser.add_argument(
        "--postgres",
        default=None,
        help="PostgreSQL admin URL (postgresql://postgres@127.0.0.1:5432/postgres): a fresh "
        "database per --src, owned by a non-superuser role, dropped at the end",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="servers sharing the database, the home and Redis (unpinned); the connections "
        "are spread over them round-robin",
    )
    parser.add_argument("--redis", action="store_true", help="Redis with one server too")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    args = parser.parse_args()
    counts = [int(c) for c in args.tenants.split(",")]
    trees = [s.split("=", 1) for s in args.src or [f"this={ROOT / 'src'}"]]
    up, upstream = fake_upstream(0.05, args.upstream_port, pin=args.replicas <= 1)
    where = args.postgres or args.database_url or "SQLite"
    print(
        f"upstream 50 ms; {args.conns} connections, {args.seconds:.0f} s a row; "
        f"{args.replicas} server(s) on {where.split('@')[-1]}; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the start"
    )
    print(
        "| code     | tenants | RPS | P50 ms | P95 ms | P99 ms | CPU ms/call | timeouts "
        "| non-200 | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        template = None
        if args.template and (Path(args.template) / "bench-keys.txt").exists():
            template = args.template
        for label, src in trees:
            template = run_tree(label, src, counts, upstream, args, template)
    finally:
        up.terminate()
        up.wait(10)


if __name__ == "__main__":
    main()
