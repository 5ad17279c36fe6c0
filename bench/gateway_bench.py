"""Gateway benchmark (issue 3). Prints a table; run: .venv/bin/python bench/gateway_bench.py

Same machine, loopback, the in-tree fake OpenAI upstream (tests/gateway/fakes.py) with
0 ms and 50 ms latency. For each: ``wrk`` (Debian package) straight at the upstream, and
through ``musubi serve`` (one uvicorn worker, pinned to CPU 0 with ``taskset`` when
available) with everything on: key auth, RBAC, quota reservation, routing with breaker
and retries, usage ledger and audit. The response cache is off for these rows (every
request goes upstream); one row measures cache hits. Reported: requests/s and P50/P95/P99
at 10/50/100 connections, server CPU per request (/proc utime+stime), added latency of
sequential requests on one keep-alive connection, idle RSS and start-to-first-answer.

Options: --seconds N (per wrk run, default 5), --conns 10,50,100.
"""

from __future__ import annotations

import argparse
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

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
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


def musubi(upstream: str) -> tuple[subprocess.Popen[str], str, str, float]:
    home = tempfile.mkdtemp(prefix="musubi-gw-bench-")
    port = _port()
    env = {
        **os.environ,
        "MUSUBI_HOME": home,
        "MUSUBI_PORT": str(port),
        "MUSUBI_LOG_LEVEL": "warning",
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
    }
    cmd = [str(BIN / "musubi"), "serve"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    started = time.perf_counter()
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
    httpx.post(f"{base}/v1/chat/completions", json=BODY, headers=auth).raise_for_status()
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
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    out = []
    with httpx.Client(headers=headers) as c:
        for i in range(count + 20):
            t = time.perf_counter()
            c.post(url, json=BODY).raise_for_status()
            if i >= 20:
                out.append((time.perf_counter() - t) * 1000)
    return sorted(out)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--conns", default="10,50,100")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    conns = [int(c) for c in args.conns.split(",")]
    print(f"| {'measure':<58} | {'value':>18} | note |\n|{'-' * 60}|{'-' * 20}|------|")
    for latency in (0.0, 0.05):
        up, up_url = fake_upstream(latency)
        gw, base, key, start_s = musubi(up_url)
        try:
            tag = f"upstream {latency * 1000:.0f} ms"
            if latency == 0:
                row("start to first successful request", f"{start_s:.2f} s", "musubi serve")
                row("idle RSS of the server", f"{_rss_mb(gw.pid):.0f} MB", "after one request")
                direct = sequential(up_url + "/v1/chat/completions", None)
                through = sequential(base + "/v1/chat/completions", key)
                added50 = statistics.median(through) - statistics.median(direct)
                row("sequential added latency P50", f"{added50:.2f} ms", "one keep-alive conn")
                added99 = pct(through, 0.99) - pct(direct, 0.99)
                row("sequential added latency P99", f"{added99:.2f} ms", "")
            for c in conns:
                d = wrk(up_url + "/v1/chat/completions", c, args.seconds, None)
                cpu0 = _cpu(gw.pid)
                g = wrk(base + "/v1/chat/completions", c, args.seconds, key)
                cpu = (_cpu(gw.pid) - cpu0) / g["n"] * 1000
                row(
                    f"{tag}, {c} conns: direct RPS / P50 / P99",
                    f"{d['rps']:.0f} / {d['p50']:.1f} / {d['p99']:.1f}",
                    "ms",
                )
                row(
                    f"{tag}, {c} conns: MUSUBI RPS / P50 / P99",
                    f"{g['rps']:.0f} / {g['p50']:.1f} / {g['p99']:.1f}",
                    f"P95 {g['p95']:.1f} ms; {g['rps'] / d['rps'] * 100:.0f}% of direct",
                )
                row(f"{tag}, {c} conns: MUSUBI CPU per request", f"{cpu:.2f} ms", "server process")
            if latency == 0:
                auth = {"Authorization": f"Bearer {key}"}
                httpx.put(f"{base}/v1/gateway/config", json={"cache": True}, headers=auth)
                time.sleep(5.5)  # the routing cache of the server (5 s)
                httpx.post(f"{base}/v1/chat/completions", json=BODY, headers=auth)
                h = wrk(base + "/v1/chat/completions", 10, args.seconds, key)
                row(
                    "cache hits, 10 conns: RPS / P50 / P95",
                    f"{h['rps']:.0f} / {h['p50']:.1f} / {h['p95']:.1f}",
                    "ms",
                )
        finally:
            for p in (gw, up):
                p.terminate()
                p.wait(10)


if __name__ == "__main__":
    main()
