"""Run git on a repository the server did not write, without letting the repository run code.

A repository's own configuration (``.git/config`` and what it includes) can name programs
that git runs: ``core.fsmonitor`` on any command that looks at the working tree (even
``ls-files``), hooks, ``diff.external`` and ``diff.<driver>.textconv``/``command``,
``filter.<driver>.clean``/``smudge``/``process``, ``core.pager``, ``core.sshCommand``,
``core.askPass``, ``gpg.program`` (``log.showSignature``)... Every git call of MUSUBI goes
through :func:`run_git`, which

* ignores the system and user configuration (``GIT_CONFIG_NOSYSTEM``,
  ``GIT_CONFIG_GLOBAL=/dev/null``) and runs with a clean environment (no inherited
  ``GIT_*`` variable, no terminal prompt, no optional locks),
* overrides, at command-line priority (above the repository's own files), every key that
  names a program: the fixed ones below, and each ``filter.*``/``diff.*``/``merge.*``
  driver the repository defines (read first with ``git config --list``, which runs
  nothing), set to empty,
* forbids every transport (``protocol.allow=never``), so no remote helper, ssh or proxy,
* pins the working tree to the directory asked for (``core.worktree`` may not point git
  elsewhere) and stops repository discovery above it,
* keeps git's ``safe.directory`` ownership check: a repository owned by another user is
  refused by git, and the callers then read the files without git.

The knowledge engine only lists files (``ls-files``) and reads commit messages (``log``);
the orchestrator's ``implement`` and ``review`` steps also make worktrees and branches,
check and apply patches and commit them (hooks are off: ``core.hooksPath`` above), and
read a branch's files with ``cat-file`` (no textconv).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["HARDENING", "git_env", "git_outcome", "run_git"]

HARDENING: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.useBuiltinFSMonitor", "false"),
    ("core.hooksPath", os.devnull),
    ("core.pager", "cat"),
    ("core.editor", "true"),
    ("sequence.editor", "true"),
    ("core.askPass", ""),
    ("core.sshCommand", "false"),
    ("core.gitProxy", ""),
    ("core.alternateRefsCommand", ""),
    ("credential.helper", ""),
    ("diff.external", ""),
    ("log.showSignature", "false"),
    ("gpg.program", "false"),
    ("gpg.ssh.program", "false"),
    ("gpg.x509.program", "false"),
    ("log.mailmap", "false"),
    ("protocol.allow", "never"),
)
"""Keys that name a program git may run, and the value that disables each."""

_DRIVER = re.compile(
    r"^(?:filter\..+\.(?:clean|smudge|process)|diff\..+\.(?:textconv|command)|merge\..+\.driver)$",
    re.IGNORECASE,
)
_LOG_LIKE = frozenset({"log", "show", "diff", "whatchanged"})
_TIMEOUT_S = 120.0
log = logging.getLogger("musubi.git")


def git_env(root: Path, extra: list[tuple[str, str]] | None = None) -> dict[str, str]:
    """The environment of a hardened git call in ``root``: no inherited git settings, no
    system or user configuration, and ``extra`` config entries at command-line priority
    (given through ``GIT_CONFIG_KEY_n``, so no key needs quoting)."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_CEILING_DIRECTORIES": str(root.parent),
    }
    for i, (key, value) in enumerate(extra or ()):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    env["GIT_CONFIG_COUNT"] = str(len(extra or ()))
    return env


def _argv(git: str, root: Path, args: tuple[str, ...]) -> list[str]:
    argv = [git, "--no-pager", "-C", str(root), f"--work-tree={root}"]
    for key, value in HARDENING:
        argv += ["-c", f"{key}={value}"]
    if args and args[0] in _LOG_LIKE:  # commands that may show diffs
        return [*argv, args[0], "--no-ext-diff", "--no-textconv", *args[1:]]
    return [*argv, *args]


def _drivers(git: str, root: Path) -> list[tuple[str, str]] | None:
    """An empty override for every program-running driver key the repository defines;
    None when git refuses the directory (not a repository, or not safe)."""
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [git, "--no-pager", "-C", str(root), "config", "--list", "--name-only", "-z"],
        env=git_env(root),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=_TIMEOUT_S,
    )
    if done.returncode != 0:
        return None
    names = done.stdout.decode("utf-8", "surrogateescape").split("\0")
    keys = {n.strip() for n in names if _DRIVER.match(n.strip())}
    required = {k.rsplit(".", 1)[0] + ".required" for k in keys if k.lower().startswith("filter.")}
    return [(key, "") for key in sorted(keys)] + [(key, "false") for key in sorted(required)]


def git_outcome(
    root: Path, *args: str, timeout: float = _TIMEOUT_S
) -> subprocess.CompletedProcess[bytes] | None:
    """``git <args>`` on the repository at ``root``, hardened as this module describes, with
    its exit status and standard error (what a caller shows when git refuses, e.g. a patch
    that does not apply); None when git is not installed, ``root`` has no ``.git``, git
    refuses the repository or runs past ``timeout`` seconds."""
    git = shutil.which("git")
    root = Path(root)
    if git is None or not (root / ".git").exists():
        return None
    try:
        drivers = _drivers(git, root)
        if drivers is None:
            return None
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            _argv(git, root, args),
            env=git_env(root, drivers),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 and b"dubious ownership" in done.stderr:
        log.warning(
            "git refuses %s: another user than this process's owns it, so it is read without "
            "git (no commit history); give this process's user the repository to use git",
            root,
        )
    return done


def run_git(root: Path, *args: str, timeout: float = _TIMEOUT_S) -> bytes | None:
    """The standard output of ``git <args>`` run on the repository at ``root``, hardened
    as this module describes; None when git is not installed, ``root`` has no ``.git``,
    git refuses the repository, fails, or runs past ``timeout`` seconds."""
    done = git_outcome(root, *args, timeout=timeout)
    return done.stdout if done is not None and done.returncode == 0 else None
