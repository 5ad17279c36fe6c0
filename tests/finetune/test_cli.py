"""``musubi finetune create|list|show|cancel`` against a running server (subprocesses)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.conftest import Api
from tests.finetune.conftest import EXAMPLES, chat_jsonl

MUSUBI = str(Path(sys.executable).parent / "musubi")


async def musubi(api: Api, *args: str, code: int = 0) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(
        MUSUBI,
        "finetune",
        "--url",
        api.base_url,
        "--key",
        api.owner_key,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await proc.communicate()
    assert proc.returncode == code, f"musubi finetune {' '.join(args)}: {err.decode()}"
    return out.decode(), err.decode()


async def test_create_list_show_cancel(api: Api, tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_bytes(chat_jsonl())
    out, _ = await musubi(
        api, "create", str(train), "--model", "tiny-llama", "--rank", "8", "--epochs", "2", "--json"
    )
    job = json.loads(out)
    assert job["status"] == "queued"
    assert job["method"]["lora"]["rank"] == 8
    assert job["hyperparameters"]["n_epochs"] == 2
    out, _ = await musubi(api, "list", "--json")
    assert [j["id"] for j in json.loads(out)] == [job["id"]]
    out, _ = await musubi(api, "show", job["id"])
    assert "Files validated, moving job to queued state" in out
    out, _ = await musubi(api, "cancel", job["id"], "--json")
    assert json.loads(out)["status"] == "cancelled"

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(chat_jsonl(EXAMPLES[:3]))
    out, _ = await musubi(api, "create", str(bad), "--model", "tiny-llama", "--json")
    assert "at least 10 are required" in json.loads(out)["error"]["message"]
    _, err = await musubi(api, "create", str(train), "--model", "nope", code=1)
    assert "'nope' is not a base model" in err
