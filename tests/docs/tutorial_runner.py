"""Runs a tutorial of the documentation site as a reader follows it.

A tutorial is Markdown. Its ``bash`` blocks run in order in one ``bash -euo pipefail``
(variables carry from one block to the next, as in a reader's terminal), in a fresh
working directory and ``MUSUBI_HOME``, with this venv's ``musubi`` on ``PATH``. A block
that begins with ``# In a second terminal:`` (third, fourth…) is a long-running process
(``musubi serve``, ``musubi worker``): the runner starts it in the background instead,
waits until a server answers ``/readyz`` and takes the owner key the first one prints. A
``text`` block right after a bash block is that block's expected output: each of its
lines must appear in the block's output (or a server's log), in order, with ``…``
matching anything. Two substitutions, the same as a reader makes: the key placeholder
``msk_…`` becomes the printed key, ports ``8000``, ``8001`` and ``8002`` free ports.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
OTHER_TERMINAL = re.compile(r"^# In an? \w+ terminal:")
MARK = "@@musubi-tutorial-block@@"
PORTS = ("8000", "8001", "8002")
RUN_TIMEOUT_S = 300


@dataclass
class Block:
    script: str
    expected: list[str] = field(default_factory=list)

    @property
    def background(self) -> bool:
        return bool(OTHER_TERMINAL.match(self.script.lstrip()))


def blocks(markdown: str) -> list[Block]:
    found: list[Block] = []
    previous = ""
    for match in FENCE.finditer(markdown):
        lang, body = match.group(1), match.group(2)
        if lang == "bash":
            found.append(Block(body))
        elif lang == "text" and previous == "bash":
            found[-1].expected = [line for line in body.splitlines() if line.strip()]
        previous = lang
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def matches(expected: list[str], output: str) -> str | None:
    """None if every expected line appears in ``output`` in order, else the first missing."""
    lines = output.splitlines()
    at = 0
    for want in expected:
        pattern = re.compile(".*".join(re.escape(part.strip()) for part in want.split("…")))
        while at < len(lines) and not pattern.search(lines[at]):
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


@dataclass
class Tutorial:
    path: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {p: str(free_port()) for p in PORTS}
        venv_bin = str(Path(sys.executable).parent)
        drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        base = {k: v for k, v in os.environ.items() if k not in drop}
        base = {k: v for k, v in base.items() if not k.startswith("MUSUBI_")}
        self.env = {
            **base,
            "PATH": f"{venv_bin}:{base.get('PATH', '')}",
            "MUSUBI_HOME": str(self.workdir / "musubi-home"),
            # a reader's git knows who they are; a CI machine's may not
            "GIT_AUTHOR_NAME": "Reader",
            "GIT_AUTHOR_EMAIL": "reader@example.com",
            "GIT_COMMITTER_NAME": "Reader",
            "GIT_COMMITTER_EMAIL": "reader@example.com",
            # the loopback fakes and servers of a test machine, as tests/conftest.py allows
            "MUSUBI_EGRESS_ALLOW": os.environ.get("MUSUBI_EGRESS_ALLOW", "127.0.0.1"),
        }

    def substitute(self, script: str) -> str:
        return self.free_ports(script).replace("msk_…", "${MUSUBI_TUTORIAL_KEY}")

    def free_ports(self, text: str) -> str:
        for port, free in self.ports.items():
            text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{free}")
            text = text.replace(f"MUSUBI_PORT={port}", f"MUSUBI_PORT={free}")
        return text

    def script(self, todo: list[Block]) -> str:
        """One shell script for the whole tutorial: variables carry between blocks."""
        parts = [WAIT_READY]
        servers = 0
        for block in todo:
            body = self.substitute(block.script)
            if block.background:
                port = re.search(r"MUSUBI_PORT=(\d+)", body)
                url = f"http://127.0.0.1:{port.group(1) if port else self.ports['8000']}/readyz"
                log = self.workdir / f"server-{servers}.log"
                servers += 1
                parts.append(f"( {body}\n) > {log} 2>&1 &\n")
                # a server is waited for; anything else (a worker) is given a moment
                parts.append(f"wait_ready {url} {log}\n" if "musubi serve" in body else "sleep 3\n")
            else:
                parts.append(body)
            parts.append(f"echo {MARK}\n")
        return "".join(parts)

    def run(self) -> None:
        todo = blocks(self.path.read_text())
        assert todo, f"{self.path} has no bash block"
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", self.script(todo)],
            cwd=self.workdir,
            env={**self.env, "MUSUBI_PORT": self.ports["8000"]},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # a reader's terminal shows both, interleaved
            text=True,
            start_new_session=True,  # the servers it starts are stopped with its group
        )
        try:
            stdout, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        outputs = stdout.split(MARK + "\n")
        done = len(outputs) - 1
        logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in self.logs())
        assert proc.returncode == 0, (
            f"{self.path.name}: block {done + 1} failed (exit {proc.returncode}):\n"
            f"{todo[min(done, len(todo) - 1)].script}\n--- output\n{outputs[-1][-3000:]}{logs}"
        )
        servers = iter(self.logs())
        for block, output in zip(todo, outputs, strict=False):
            text = next(servers).read_text() if block.background else output
            missing = matches([self.free_ports(line) for line in block.expected], text)
            assert missing is None, f"{block.script}\nexpected {missing!r} in:\n{text}"

    def logs(self) -> list[Path]:
        return sorted(self.workdir.glob("server-*.log"), key=lambda p: int(p.stem[7:]))


# Waits for a server, and takes the owner key the first one prints.
WAIT_READY = r"""
wait_ready() {
  for _ in $(seq 1 400); do
    if curl -sf "$1" >/dev/null 2>&1; then
      if [ -z "${MUSUBI_TUTORIAL_KEY:-}" ]; then
        MUSUBI_TUTORIAL_KEY=$(grep -o 'store it now): msk_[^ ]*' "$2" | head -1 | cut -d' ' -f4)
      fi
      return 0
    fi
    sleep 0.3
  done
  echo "not serving: $1" >&2; cat "$2" >&2; return 1
}
"""
