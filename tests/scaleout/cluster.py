"""Real ``musubi`` processes sharing one PostgreSQL, one Redis and one MUSUBI_HOME.

A :class:`Cluster` starts commands of the installed ``musubi`` CLI as child processes
(:meth:`Cluster.serve`, :meth:`Cluster.worker`, or any subcommand with :meth:`Cluster.start`),
all with the same environment, each writing its output to its own log file. On failure
:meth:`Cluster.logs` gives the tail of every log; :meth:`Cluster.stop` ends every process
(SIGTERM, then SIGKILL after a grace period) and waits for it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

__all__ = ["Cluster", "Process", "Server", "free_port", "musubi_command"]

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
LOG_TAIL_CHARS = 6000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def musubi_command() -> list[str]:
    """The ``musubi`` entry point of the running interpreter's environment."""
    script = Path(sys.executable).with_name("musubi")
    if script.exists():
        return [str(script)]
    found = shutil.which("musubi")
    if found:
        return [found]
    return [sys.executable, "-c", "from musubi.cli.main import main; main()"]


@dataclass
class Process:
    """One child process and the file its stdout and stderr go to."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    _log: IO[bytes] = field(repr=False)

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def log(self, tail: int = LOG_TAIL_CHARS) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-tail:]

    def describe(self) -> str:
        code = self.popen.poll()
        state = "running" if code is None else f"exited with {code}"
        command = " ".join([Path(self.argv[0]).name, *self.argv[1:]])
        return f"{self.name} ({command}, pid {self.popen.pid}, {state})"

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Terminate, kill after ``grace_s``, and reap the process; idempotent."""
        try:
            if self.popen.poll() is None:
                self.popen.terminate()
                try:
                    self.popen.wait(grace_s)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(grace_s)
        finally:
            self._log.close()


@dataclass
class Server(Process):
    """A ``musubi serve`` process and its base URL."""

    url: str = ""


class Cluster:
    """Processes started with one shared environment (``env`` is added to a clean copy of
    the test's environment with every ``MUSUBI_*`` variable removed)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
        self.env = {**base, **env}
        self.processes: list[Process] = []
        self.servers: list[Server] = []
        self.workers: list[Process] = []

    def start(
        self, name: str, *args: str, env: dict[str, str] | None = None, url: str | None = None
    ) -> Process:
        """Start ``musubi <args>`` as ``name`` (a :class:`Server` when ``url`` is given)."""
        argv = [*musubi_command(), *args]
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - owned by the Process, closed in stop()
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **(env or {})},
                cwd=self.workdir,
            )
        except BaseException:
            log.close()
            raise
        proc: Process
        if url is None:
            proc = Process(name, argv, log_path, popen, log)
        else:
            proc = Server(name, argv, log_path, popen, log, url=url)
            self.servers.append(proc)
        self.processes.append(proc)
        return proc

    def serve(self, name: str | None = None, *, env: dict[str, str] | None = None) -> Server:
        """Start ``musubi serve`` on a free loopback port (not waiting for it)."""
        port = free_port()
        name = name or f"serve-{len(self.servers) + 1}"
        server = self.start(
            name,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=env,
            url=f"http://127.0.0.1:{port}",
        )
        assert isinstance(server, Server)
        return server

    def worker(
        self, *args: str, name: str | None = None, env: dict[str, str] | None = None
    ) -> Process:
        """Start ``musubi worker <args>`` (a batch worker: give the cluster MUSUBI_QUEUE=redis)."""
        worker = self.start(name or f"worker-{len(self.workers) + 1}", "worker", *args, env=env)
        self.workers.append(worker)
        return worker

    async def wait_ready(self, *servers: Server, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until every server answers ``/readyz`` with 200, or fail with its log."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            for server in servers:
                last = "no answer yet"
                while True:
                    if not server.running:
                        raise AssertionError(
                            f"{server.describe()} exited before it was ready; its log:\n"
                            f"{server.log()}"
                        )
                    try:
                        r = await client.get(f"{server.url}/readyz")
                    except httpx.TransportError as exc:
                        last = f"{type(exc).__name__}: {exc}"
                    else:
                        if r.status_code == 200:
                            break
                        last = f"{r.status_code}: {r.text}"
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"{server.describe()} not ready after {timeout_s:.0f} s "
                            f"(last: {last}); its log:\n{server.log()}"
                        )
                    await asyncio.sleep(0.1)

    async def start_servers(self, n: int) -> list[Server]:
        """Start ``n`` ready ``musubi serve`` replicas.

        The first one migrates the database and installs the root tenant alone (two fresh
        processes would race on both); the others start together once it is ready.
        """
        first = self.serve()
        await self.wait_ready(first)
        rest = [self.serve() for _ in range(n - 1)]
        await self.wait_ready(*rest)
        return [first, *rest]

    def check_running(self) -> None:
        """Fail, with the logs, if any process has exited."""
        dead = [p for p in self.processes if not p.running]
        if dead:
            raise AssertionError(
                "processes exited: " + ", ".join(p.describe() for p in dead) + "\n" + self.logs()
            )

    def logs(self) -> str:
        """The tail of every process's log, for failure reports."""
        parts = [f"===== {p.describe()} =====\n{p.log()}" for p in self.processes]
        return "\n".join(parts) or "(no processes)"

    def stop(self) -> None:
        """Terminate every process at once, then wait for each (killing stragglers)."""
        for p in self.processes:
            if p.running:
                p.popen.terminate()
        errors: list[BaseException] = []
        for p in self.processes:
            try:
                p.stop()
            except Exception as exc:  # stop the others anyway
                errors.append(exc)
        if errors:
            raise errors[0]
