"""``musubi batch`` against a running server: submit and wait, status, results, cancel."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.batch.conftest import chat_lines
from tests.conftest import Api
from tests.gateway.fakes import FakeUpstream

MUSUBI = str(Path(sys.executable).parent / "musubi")


async def run(api: Api, *args: str, code: int = 0) -> tuple[str, str]:
    """``musubi batch <args>`` as the owner; (stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        MUSUBI,
        "batch",
        "--url",
        api.base_url,
        "--key",
        api.owner_key,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},  # a wide table: ids unfolded
    )
    out, err = await proc.communicate()
    assert proc.returncode == code, f"musubi batch {' '.join(args)}: {err.decode()}"
    return out.decode(), err.decode()


async def musubi(api: Api, *args: str) -> str:
    return (await run(api, *args))[0]


async def musubi_stderr(api: Api, *args: str, code: int = 0) -> str:
    return (await run(api, *args, code=code))[1]


async def test_submit_wait_status_results_and_cancel(
    api: Api, wired: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(chat_lines(50))
    done = json.loads(await musubi(api, "submit", str(requests), "--wait", "--json"))
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 50, "completed": 50, "failed": 0}

    status = json.loads(await musubi(api, "status", done["id"], "--json"))
    assert status["output_file_id"] == done["output_file_id"]
    listed = json.loads(await musubi(api, "list", "--json"))
    assert [b["id"] for b in listed] == [done["id"]]
    assert done["id"] in await musubi(api, "list")  # the table

    out = tmp_path / "out.jsonl"
    await musubi(api, "results", done["id"], "-o", str(out))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(x["custom_id"] for x in lines) == sorted(f"req-{i}" for i in range(1, 51))
    assert "(no lines)" in await musubi_stderr(api, "results", done["id"], "--errors")
    # No errors and -o: an empty file (before: no file at all, or a stale one left as it was)
    errors = tmp_path / "errors.jsonl"
    errors.write_text("stale\n")
    assert "(no lines)" in await musubi_stderr(
        api, "results", done["id"], "--errors", "-o", str(errors)
    )
    assert errors.read_bytes() == b""

    error = await musubi_stderr(api, "cancel", done["id"], code=1)
    assert "409" in error and "only a running batch can be cancelled" in error
    missing = await musubi_stderr(api, "status", "batch_0000000000000000", code=1)
    assert "404" in missing and "batch 'batch_0000000000000000' not found" in missing
