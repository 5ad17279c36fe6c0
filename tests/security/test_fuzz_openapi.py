"""Schemathesis against ``/openapi.json`` of a real server: no server error, and the
document tells the truth (status codes, content types, ``Allow`` on 405, auth).

Two bounded runs, anonymous and with the root owner key, each ``FUZZ_SECONDS`` long. Left
out of the checks: ``positive_data_acceptance`` and ``negative_data_rejection``, which ask
the schema to describe every rule the server applies; a free-form JSON body (the gateway's,
SCIM's) cannot say "no integer past 64 bits, nothing nested past 64 levels", and a
syntactically valid id that names nothing is a 404, not an acceptance. The owner run leaves
out the operations that can lock the fuzzing key out of its own tenant (revoking keys,
disabling or deleting users, requiring SSO, purging the audit log): the fuzzer learns ids
from answers and would end the run early otherwise.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import Api

FUZZ_SECONDS = 35
MAX_EXAMPLES = 10
EXCLUDED_CHECKS = "positive_data_acceptance,negative_data_rejection"
LOCKOUT = (
    "revoke_key_v1_keys__key_id__delete",
    "update_user_v1_users__user_id__patch",
    "delete_user_v1_users__user_id__delete",
    "unassign_role_v1_role_assignments__assignment_id__delete",
    "delete_tenant_v1_tenants__tenant_id__delete",
    "import_users_v1_bulk_users_post",
    "import_keys_v1_bulk_keys_post",
    "put_policy_v1_sso_policy_put",
    "purge_v1_audit_purge_post",
    "replace_user_scim_v2_Users__user_id__put",
    "patch_user_scim_v2_Users__user_id__patch",
    "delete_user_scim_v2_Users__user_id__delete",
)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _schemathesis() -> list[str]:
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise AssertionError("schemathesis (the dev extra) is not installed") from None
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return [sys.executable, "-m", "schemathesis.cli"]


async def _fuzz(api: Api, tmp_path: Path, name: str, *extra: str) -> str:
    argv = [
        *_schemathesis(),
        "run",
        f"{api.base_url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(FUZZ_SECONDS),
        "--workers",
        "1",  # CPython 3.11.7's ast module is not thread-safe (hypothesis parses lambdas)
        "--seed",
        "20261207",
        "--no-color",
        "--report-dir",
        str(tmp_path / name),
        *extra,
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=FUZZ_SECONDS + 60)
    text = out.decode(errors="replace")
    summary = re.search(r"(\d+) generated, .*", text)
    print(f"schemathesis {name}: {summary[0] if summary else 'no summary'}")
    (tmp_path / f"{name}.txt").write_text(text)
    assert proc.returncode == 0, text[-20000:]
    assert summary and int(summary[1]) > 500, text[-5000:]  # it really ran
    return text


@pytest.mark.fuzz
@pytest.mark.slow
async def test_fuzz_anonymous_and_as_owner(api: Api, tmp_path: Path) -> None:
    os.environ.get("MUSUBI_FUZZ_OUT") and print("out:", tmp_path)
    anonymous = await _fuzz(api, tmp_path, "anonymous")
    assert "110/110" in anonymous or "Selected:" in anonymous
    exclusions = [f"--exclude-operation-id={op}" for op in LOCKOUT]
    owner = await _fuzz(
        api, tmp_path, "owner", "-H", f"Authorization: Bearer {api.owner_key}", *exclusions
    )
    # The key worked to the end: only the OIDC callback (which takes no key; a login
    # with nothing to finish is a 401) answered nothing but 401/403.
    refused = re.search(r"(?s)401 Unauthorized \(\d+ operations?\):\n(.*?)\n\n", owner)
    assert refused is None or refused[1].split() == ["-", "GET", "/v1/sso/{tenant}/oidc/callback"]
