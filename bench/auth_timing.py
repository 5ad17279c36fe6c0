"""Key-prefix timing (issue 14, finding 15): does a 401 tell whether a key prefix exists?

Run: PYTHONPATH=src .venv/bin/python bench/auth_timing.py [--rounds 400]

Starts a server on loopback (SQLite in a temporary directory, a known owner key) and
sends, alternately, a key with the owner key's prefix and a wrong secret, and a key with
an unknown prefix, timing each 401 from the client. The first 50 rounds are warm-up.
Prints the median and the 10th percentile of each; the two rows should match (the 10th
percentile is the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn

from musubi.api.app import create_app
from musubi.settings import Settings

PREFIX = "0123abcd"
OWNER = f"msk_{PREFIX}_" + "o" * 43
KNOWN = f"msk_{PREFIX}_" + "x" * 43  # a real prefix, a wrong secret
UNKNOWN = "msk_9999ffff_" + "x" * 43
WARM_UP = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="musubi-auth-bench-"))
    settings = Settings(
        home=tmp / "home",
        database_url=f"sqlite+aiosqlite:///{tmp / 'musubi.db'}",
        bootstrap_key=OWNER,
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    times: dict[str, list[float]] = {"known prefix": [], "unknown prefix": []}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(rounds):
                for name, key in (("known prefix", KNOWN), ("unknown prefix", UNKNOWN)):
                    started = time.perf_counter()
                    r = await client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
                    times[name].append(time.perf_counter() - started)
                    assert r.status_code == 401, r.text
    finally:
        server.should_exit = True
        await task
    print(f"{'':16}{'median':>10}{'p10':>10}   ({rounds - WARM_UP} rounds)")
    for name, values in times.items():
        kept = sorted(values[WARM_UP:])
        median, p10 = statistics.median(kept), kept[len(kept) // 10]
        print(f"{name:16}{median * 1000:>8.2f}ms{p10 * 1000:>8.2f}ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    asyncio.run(main(parser.parse_args().rounds))
