"""A uvicorn server for the tests' loopback servers (the app under test, fake upstreams).

uvicorn's main loop looks every 0.1 s whether it was told to stop (and refreshes its ``Date``
header); a test's server is stopped by the test, so it waits on an event instead and stops at
once: about 0.1 s less for each of the thousand servers a run starts. Its ``Date`` header is
the start's.
"""

from __future__ import annotations

import asyncio

import uvicorn


class LoopbackServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stopping = asyncio.Event()

    async def main_loop(self) -> None:
        await self._stopping.wait()

    def stop(self) -> None:
        """From the server's own event loop."""
        self.should_exit = True
        self._stopping.set()
