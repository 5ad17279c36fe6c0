"""CPU per request of the two async HTTP clients the gateway could use upstream.

Starts a minimal Starlette server (the same JSON a chat completion answers) with uvicorn
in a subprocess, then sends ``--requests`` POSTs, 50 at a time over 8 keep-alive
connections, with httpx.AsyncClient and with aiohttp.ClientSession, and prints the
client process's CPU time per request (the server's CPU is not counted).

    .venv/bin/python bench/http_clients.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

SERVER = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
ANSWER = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message":
  {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
async def chat(request):
    await request.body()
    return JSONResponse(ANSWER)
app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
"""
BODY = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
HEADERS = {"content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def with_httpx(url: str, n: int) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=8)) as client:

        async def one() -> None:
            (await client.post(url, content=BODY, headers=HEADERS)).json()

        for _ in range(n // 50):
            await asyncio.gather(*(one() for _ in range(50)))


async def with_aiohttp(url: str, n: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as session:

        async def one() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.json()

        for _ in range(n // 50):
            await asyncio.gather(*(one() for _ in range(50)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVER + f"\nimport uvicorn; uvicorn.run(app, port={port}, log_level='warning')",
        ]
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        for _ in range(100):
            try:
                httpx.post(url, content=BODY, headers=HEADERS)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        clients: list[tuple[str, Callable[[str, int], Awaitable[None]]]] = [
            ("httpx 0.28", with_httpx),
            ("aiohttp 3.14", with_aiohttp),
        ]
        print(f"| client | CPU ms/request | wall s ({args.requests} requests) |")
        print("|---|---|---|")
        for name, run in clients * 2:  # twice each, interleaved
            cpu, wall = time.process_time(), time.perf_counter()
            asyncio.run(run(url, args.requests))
            cpu_ms = (time.process_time() - cpu) * 1000 / args.requests
            print(f"| {name} | {cpu_ms:.3f} | {time.perf_counter() - wall:.2f} |")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
