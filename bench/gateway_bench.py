"""Gateway benchmark (issue 3). Prints a table; run: .venv/bin/python bench/gateway_bench.py

Same machine, loopback, the in-tree fake OpenAI upstream (tests/gateway/fakes.py) with
0 ms and 50 ms latency. For each: ``wrk`` (Debian package) straight at the upstream, and
through ``musubi serve`` (one uvicorn worker, pinned to CPU 0 with ``taskset`` when
available, while the upstream, wrk and this script share CPU 1) with everything on: key
auth, RBAC, quota reservation (a tenant policy on five metrics, never reached), routing
with breaker and retries, usage ledger and audit. The response cache is off for these rows
(every request goes upstream); one row measures cache hits. Reported: requests/s and
P50/P95/P99 at 10/50/100 connections, server CPU per request (/proc utime+stime; the
upstream's own too, for scale: a process woken per request spends more CPU on each than
one kept busy), added latency of sequential requests on one keep-alive connection, idle
RSS (after the first requests, and again after the load) and start-to-first-answer.

Options: --seconds N (per wrk run, default 5), --conns 10,50,100, --litellm PATH,
--musubi PATH (the ``musubi`` command to run, default this venv's; a base install's
``pip install -e .`` measures what a user runs, without the dev extras' imports).

``--litellm PATH`` adds the same rows for LiteLLM's proxy (PATH: its ``litellm`` command,
installed in a venv of its own: ``python3 -m venv /tmp/litellm && /tmp/litellm/bin/pip
install 'litellm[proxy]'``), run the way the issue asks: no database, one worker, a master
key (so it authenticates like MUSUBI), pinned to the same CPU, against the same upstream.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MUSUBI = str(BIN / "musubi")  # --musubi: e.g. a base install's, as a user runs it
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}

_WRK = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
%s
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    summary.errors.status))
end
"""


def row(name: str, value: str, note: str = "") -> None:
    print(f"| {name:<58} | {value:>18} | {note} |", flush=True)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


def _wait(url: str, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def fake_upstream(latency: float) -> tuple[subprocess.Popen[str], str]:
    port = _port()
    code = (
        "import uvicorn; from tests.gateway.fakes import FakeUpstream; "
        f"uvicorn.run(FakeUpstream(latency={latency}).app(), host='127.0.0.1', port={port}, "
        "log_level='warning')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True)
    url = f"http://127.0.0.1:{port}"
    _wait(url + "/v1/models", proc)
    return proc, url


def musubi(upstream: str, command: str = MUSUBI) -> tuple[subprocess.Popen[str], str, str, float]:
    home = tempfile.mkdtemp(prefix="musubi-gw-bench-")
    port = _port()
    env = {
        **os.environ,
        "MUSUBI_HOME": home,
        "MUSUBI_PORT": str(port),
        "MUSUBI_LOG_LEVEL": "warning",
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
        "MUSUBI_EGRESS_ALLOW": "127.0.0.1",  # the fake upstream is on loopback
    }
    cmd = [command, "serve"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    # First start: creates the database and prints the owner key; configured, then stopped.
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    key = ""
    for line in proc.stderr:
        m = re.search(r"(msk_[A-Za-z0-9_-]+)", line)
        if m:
            key = m.group(1)
            break
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    _wait(base + "/readyz", proc)
    auth = {"Authorization": f"Bearer {key}"}
    cred = {"provider": "openai", "api_key": "sk-bench-000000001", "base_url": upstream + "/v1"}
    httpx.put(f"{base}/v1/gateway/providers/openai", json=cred, headers=auth).raise_for_status()
    httpx.put(f"{base}/v1/gateway/config", json={"cache": False}, headers=auth).raise_for_status()
    # a tenant quota on every metric, never reached: each call reserves and reconciles
    limits = {"requests_per_minute": 10**9, "tokens_per_minute": 10**12}
    limits |= {"tokens_per_day": 10**13, "cost_per_day": 10**9, "cost_per_month": 10**10}
    policy = {"scope": "tenant", "limits": limits}
    httpx.put(f"{base}/v1/quotas", json=policy, headers=auth).raise_for_status()
    proc.terminate()
    proc.wait(10)
    # The measured start: a restart on that database, as every start after the first is.
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, text=True)
    end = time.monotonic() + 30
    while True:
        try:
            r = httpx.post(f"{base}/v1/chat/completions", json=BODY, headers=auth)
            if r.status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError("musubi did not answer after a restart")
        time.sleep(0.02)
    return proc, base, key, time.perf_counter() - started


def litellm(command: str, upstream: str) -> tuple[subprocess.Popen[str], str, str, float]:
    """LiteLLM's proxy with one model pointing at the fake upstream; no database."""
    home = Path(tempfile.mkdtemp(prefix="litellm-bench-"))
    key = "sk-litellm-bench-master"
    config = {
        "model_list": [
            {
                "model_name": BODY["model"],
                "litellm_params": {
                    "model": f"openai/{BODY['model']}",
                    "api_base": upstream + "/v1",
                    "api_key": "sk-bench-000000001",
                },
            }
        ],
        "general_settings": {"master_key": key},
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    (home / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    port = _port()
    cmd = [command, "--config", str(home / "config.yaml"), "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--num_workers", "1"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    env.pop("DATABASE_URL", None)
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 120
    while True:  # start to the first successful completion
        if proc.poll() is not None:
            raise RuntimeError(f"litellm exited with {proc.returncode}")
        try:
            r = httpx.post(
                base + "/v1/chat/completions",
                json=BODY,
                headers={"Authorization": f"Bearer {key}"},
                timeout=5,
            )
            if r.status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > end:
            raise RuntimeError("litellm did not answer in 120 s")
        time.sleep(0.1)
    return proc, base, key, time.perf_counter() - started


def wrk(url: str, conns: int, seconds: int, key: str | None, headers: str = "") -> dict[str, float]:
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(_WRK % (json.dumps(BODY), auth + "\n" + headers))
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    assert m, out
    n, dur, p50, p95, p99, bad = (int(g) for g in m.groups())
    assert bad == 0 and "Non-2xx" not in out, out
    return {"n": n, "rps": n / (dur / 1e6), "p50": p50 / 1e3, "p95": p95 / 1e3, "p99": p99 / 1e3}


def sequential(url: str, key: str | None, count: int = 300) -> list[float]:
    """Latencies (ms) of requests one after another on one keep-alive connection, with the
    standard library's client (httpx's own CPU per call would blur a sub-millisecond gap)."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = json.dumps(BODY)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    out = []
    try:
        for i in range(count + 20):
            t = time.perf_counter()
            conn.request("POST", parts.path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            if i >= 20:
                out.append((time.perf_counter() - t) * 1000)
    finally:
        conn.close()
    return sorted(out)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def measure(
    name: str,
    proc: subprocess.Popen[str],
    base: str,
    key: str,
    start_s: float,
    up_url: str,
    latency: float,
    conns: list[int],
    seconds: int,
    direct: dict[int, dict[str, float]],
) -> None:
    """The rows of one gateway (MUSUBI or LiteLLM) in front of one upstream."""
    tag = f"upstream {latency * 1000:.0f} ms"
    url = base + "/v1/chat/completions"
    if latency == 0:
        row(f"{name}: start to first successful request", f"{start_s:.2f} s", "")
        row(f"{name}: idle RSS", f"{_rss_mb(proc.pid):.0f} MB", "after the first requests")
        plain = sequential(up_url + "/v1/chat/completions", None)
        through = sequential(url, key)
        added50 = statistics.median(through) - statistics.median(plain)
        added99 = pct(through, 0.99) - pct(plain, 0.99)
        row(
            f"{name}: sequential added latency P50 / P99",
            f"{added50:.2f} / {added99:.2f}",
            "ms, one keep-alive connection",
        )
    for c in conns:
        cpu0 = _cpu(proc.pid)
        g = wrk(url, c, seconds, key)
        cpu = (_cpu(proc.pid) - cpu0) / g["n"] * 1000
        row(
            f"{tag}, {c} conns: {name} RPS / P50 / P99",
            f"{g['rps']:.0f} / {g['p50']:.1f} / {g['p99']:.1f}",
            f"ms; P95 {g['p95']:.1f}; {g['rps'] / direct[c]['rps'] * 100:.0f}% of direct; "
            f"CPU {cpu:.2f} ms/request",
        )
    if latency == 0:  # caches, pools and allocator high-water marks after real traffic
        row(f"{name}: RSS after the loads above", f"{_rss_mb(proc.pid):.0f} MB", "idle again")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--conns", default="10,50,100")
    parser.add_argument("--litellm", default=None, help="LiteLLM's `litellm` command")
    parser.add_argument("--musubi", default=MUSUBI, help="the `musubi` command to measure")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    conns = [int(c) for c in args.conns.split(",")]
    if shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2:
        # The gateway under test gets CPU 0 to itself (taskset below); this process, the
        # fake upstream and wrk share CPU 1, so neither side steals the other's core.
        os.sched_setaffinity(0, {1})
    print(f"| {'measure':<58} | {'value':>18} | note |\n|{'-' * 60}|{'-' * 20}|------|")
    for latency in (0.0, 0.05):
        up, up_url = fake_upstream(latency)
        try:
            direct = {}
            for c in conns:
                cpu0 = _cpu(up.pid)
                d = direct[c] = wrk(up_url + "/v1/chat/completions", c, args.seconds, None)
                cpu = (_cpu(up.pid) - cpu0) / d["n"] * 1000
                row(
                    f"upstream {latency * 1000:.0f} ms, {c} conns: direct RPS / P50 / P99",
                    f"{d['rps']:.0f} / {d['p50']:.1f} / {d['p99']:.1f}",
                    f"ms; the upstream's own CPU {cpu:.2f} ms/request",
                )
            gw, base, key, start_s = musubi(up_url, args.musubi)
            try:
                measure(
                    "MUSUBI", gw, base, key, start_s, up_url, latency, conns, args.seconds, direct
                )
                if latency == 0:
                    cache_hits(base, key, args.seconds)
            finally:
                gw.terminate()
                gw.wait(10)
            if args.litellm:
                ll, base, key, start_s = litellm(args.litellm, up_url)
                try:
                    measure(
                        "LiteLLM",
                        ll,
                        base,
                        key,
                        start_s,
                        up_url,
                        latency,
                        conns,
                        args.seconds,
                        direct,
                    )
                finally:
                    ll.terminate()
                    ll.wait(20)
        finally:
            up.terminate()
            up.wait(10)


def cache_hits(base: str, key: str, seconds: int) -> None:
    """Cache on, one warm-up call, then hits: alone on one connection, and at 10."""
    auth = {"Authorization": f"Bearer {key}"}
    httpx.put(f"{base}/v1/gateway/config", json={"cache": True}, headers=auth)
    time.sleep(5.5)  # the routing cache of the server (5 s)
    httpx.post(f"{base}/v1/chat/completions", json=BODY, headers=auth)
    one = sequential(base + "/v1/chat/completions", key)
    row(
        "MUSUBI: cache hit, one connection P50 / P95",
        f"{pct(one, 0.5):.2f} / {pct(one, 0.95):.2f}",
        "ms, client-side, loopback",
    )
    h = wrk(base + "/v1/chat/completions", 10, seconds, key)
    row(
        "MUSUBI: cache hits, 10 conns: RPS / P50 / P95",
        f"{h['rps']:.0f} / {h['p50']:.1f} / {h['p95']:.1f}",
        "ms",
    )


if __name__ == "__main__":
    main()
