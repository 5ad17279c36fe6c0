"""Running a project's tests on a patch: running a tenant's code, so only where allowed.

The operator chooses with ``MUSUBI_ORCHESTRATOR_TESTS``:

* ``off`` (the default): tests are never run; an ``implement`` step is valid when its patch
  applies (``git apply --check``).
* ``sandbox``: tests run under bubblewrap (``bwrap``): new user, network, PID, IPC and UTS
  namespaces (no network at all; the loopback of an empty namespace), as uid/gid 65534
  (never the server's own user), the system's ``/usr`` read-only, the worktree the only
  writable place besides a private ``/tmp``, nothing else of the host visible (not the
  server's home, database, keys or other repositories), an empty environment but
  ``PATH``, ``HOME=/tmp`` and ``LANG``, and resource limits (CPU seconds, address space,
  file size, open files) plus a wall-clock timeout that kills the whole process group.
  Where ``bwrap`` is not installed, the step refuses to run tests and says so.
* ``local``: the developer's own machine through the CLI (``musubi run implement …
  --local --tests``): the same clean environment, limits and timeout, but no namespaces;
  the server refuses this mode (``musubi serve`` never runs a tenant's code unsandboxed).

Bubblewrap rather than a container runtime: it is one small setuid-free binary in every
distribution, starts in milliseconds and needs no daemon.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODES", "Limits", "TestRun", "refusal", "run_tests"]

MODES = ("off", "sandbox", "local")
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/alternatives")
_ETC = ("/etc/ld.so.cache", "/etc/ssl", "/etc/localtime", "/etc/mime.types")
OUTPUT_TAIL = 4000  # characters of the test output kept for the model and the user


@dataclass(frozen=True)
class Limits:
    wall_s: float = 300.0
    cpu_s: int = 300
    memory_bytes: int = 2 << 30
    file_bytes: int = 256 << 20
    open_files: int = 1024


@dataclass
class TestRun:
    ok: bool
    returncode: int
    output: str  # the tail of stdout and stderr together
    timed_out: bool = False


def refusal(mode: str) -> str | None:
    """Why tests cannot run in ``mode`` on this machine, or None."""
    if mode == "sandbox" and shutil.which("bwrap") is None:
        return (
            "the operator allows tests in a sandbox (MUSUBI_ORCHESTRATOR_TESTS=sandbox) but "
            "bubblewrap is not installed: install the bwrap package, or set "
            "MUSUBI_ORCHESTRATOR_TESTS=off"
        )
    if mode not in MODES:
        return f"MUSUBI_ORCHESTRATOR_TESTS must be one of {', '.join(MODES)}, not {mode!r}"
    return None


_TMP = "/tmp"  # noqa: S108 - the sandbox's own private tmpfs, or the developer's machine


def _env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": _TMP, "LANG": "C.UTF-8"}


def _bwrap(workdir: Path, argv: list[str]) -> list[str]:
    bwrap = shutil.which("bwrap") or "bwrap"
    out = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    for name, value in _env().items():
        out += ["--setenv", name, value]
    for path in (*_SYSTEM, *_ETC):
        out += ["--ro-bind-try", path, path]
    work = str(workdir.resolve())
    out += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", _TMP, "--bind", work, work]
    out += ["--uid", "65534", "--gid", "65534", "--chdir", work, "--", *argv]
    return out


def _limit(limits: Limits) -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_tests(workdir: Path, command: str, mode: str, limits: Limits | None = None) -> TestRun:
    """Run ``command`` (a shell-like line, split with :func:`shlex.split`, no shell) in
    ``workdir`` as ``mode`` says; raises ValueError when the mode refuses."""
    why = refusal(mode) if mode != "off" else "tests are off on this server"
    if why:
        raise ValueError(why)
    limits = limits or Limits()
    argv = shlex.split(command)
    full = _bwrap(workdir, argv) if mode == "sandbox" else argv
    proc = subprocess.Popen(  # noqa: S603 - argv, no shell; the sandbox is the point
        full,
        cwd=workdir,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the timeout kills all of it
        preexec_fn=lambda: _limit(limits),  # setrlimit only: safe before exec
    )
    try:
        out, _ = proc.communicate(timeout=limits.wall_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        timed_out = True
    text = out.decode("utf-8", "replace")[-OUTPUT_TAIL:]
    if timed_out:
        text += f"\n(killed after {limits.wall_s:g} s)"
    return TestRun(not timed_out and proc.returncode == 0, proc.returncode, text, timed_out)
