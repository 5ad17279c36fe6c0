"""Start ``musubi worker`` processes for tests, sharing the test server's database,
Redis and data directory (its secret box and audit key)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from musubi.settings import Settings

MUSUBI = str(Path(sys.executable).parent / "musubi")


def start_worker(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MUSUBI_HOME": str(settings.home),
        "MUSUBI_DATABASE_URL": settings.effective_database_url,
        "MUSUBI_REDIS_URL": settings.redis_url or "",
        "MUSUBI_QUEUE": "redis",
        "MUSUBI_GATEWAY_DETECT_OLLAMA": "0",
        "MUSUBI_LOG_LEVEL": "warning",
    }
    with log.open("ab") as out:
        return subprocess.Popen([MUSUBI, "worker", *args], env=env, stdout=out, stderr=out)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
