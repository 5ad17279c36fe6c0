"""Server CPU per gateway call, with and without the fast path. Prints a table.

Run: ``.venv/bin/python bench/fastpath_bench.py`` (``--calls N``). To compare two
checkouts in one run, run it twice with ``PYTHONPATH=<checkout>/src``.

The app is driven in-process at the ASGI level (no sockets, no HTTP parsing, no client):
what is measured is MUSUBI's own work per call, key auth, RBAC, routing, quota, the
provider call and the ledger line, plus the FastAPI routing the fast path skips. The
provider answers in-process (an echo provider registered for the run), so no upstream's
CPU is counted. ``bench/gateway_bench.py`` measures the whole server under ``wrk`` (when
wrk is installed); this one needs nothing but the venv.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from musubi.api.app import create_app
from musubi.gateway.providers.base import Op, Provider
from musubi.settings import Settings

KEY = "msk_0a1b2c3d_" + "b" * 40
BODY = json.dumps({"model": "echo-1", "messages": [{"role": "user", "content": "Hello"}]}).encode()


class Echo(Provider):
    name: ClassVar[str] = "bench_echo"
    needs_key: ClassVar[bool] = False

    async def send(self, op: Op, body: dict[str, Any], model: str) -> dict[str, Any]:
        message = {"role": "assistant", "content": "hi"}
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


def _scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"x-musubi-cache", b"no"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


async def _call(app: Any, method: str, path: str, body: bytes) -> int:
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(method, path), receive, send)
    return status


async def measure(fast: bool, calls: int, home: Path) -> list[float]:
    settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home}.db", bootstrap_key=KEY)
    kwargs = {} if fast else {"fast_path": False}
    if not fast and "fast_path" not in inspect.signature(create_app).parameters:
        return []  # a checkout from before the switch
    app = create_app(settings, **kwargs)
    async with app.router.lifespan_context(app):
        app.state.musubi.gateway.registry.register(Echo)
        cred = json.dumps({"provider": "bench_echo", "models": ["echo-1"]}).encode()
        assert await _call(app, "PUT", "/v1/gateway/providers/echo", cred) == 200
        for _ in range(200):  # warm: caches, first-call imports
            assert await _call(app, "POST", "/v1/chat/completions", BODY) == 200
        rounds = []
        for _ in range(5):
            start = time.process_time()
            for _ in range(calls // 5):
                await _call(app, "POST", "/v1/chat/completions", BODY)
            rounds.append((time.process_time() - start) / (calls // 5) * 1000)
        await asyncio.sleep(0.2)  # let the ledger's background writes finish
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    import musubi

    print(f"code: {Path(musubi.__file__).parent}  python {sys.version.split()[0]}")
    print(f"{'path':<12} {'CPU ms/call (median of 5)':>26} {'min':>7} {'max':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for fast in (True, False):
            rounds = asyncio.run(measure(fast, args.calls, Path(tmp) / f"h{fast}"))
            name = "fast path" if fast else "FastAPI"
            if not rounds:
                print(f"{name:<12} {'(no switch in this checkout)':>26}")
                continue
            med = statistics.median(rounds)
            print(f"{name:<12} {med:>26.3f} {min(rounds):>7.3f} {max(rounds):>7.3f}")


if __name__ == "__main__":
    main()
