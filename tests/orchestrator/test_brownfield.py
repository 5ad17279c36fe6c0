"""The steps on an existing project: ``change``, ``reverse`` and ``steering``, against a real
server on loopback, the gateway in front of a scripted upstream that answers badly first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from musubi.gateway.tokens import count_request_tokens
from musubi.sdd.changes import apply_change, load_change
from musubi.sdd.project import load_project
from tests.api.helpers import ok
from tests.conftest import Api
from tests.orchestrator.conftest import ScriptedUpstream, read_events, wire_project
from tests.orchestrator.test_cli import musubi

SHOP_REQUIREMENTS = """# shop requirements

### REQ-SHOP-001: List orders

**EARS Statement**:
```
WHEN the user opens the order page, the system SHALL list the user's orders.
```

**Priority**: P1

**Acceptance Criteria**:
- [ ] Every order of the user is listed.

### REQ-SHOP-002: Export orders

**EARS Statement**:
```
WHEN the user requests an export, the system SHALL return a CSV file of the orders.
```

**Priority**: P2

**Acceptance Criteria**:
- [ ] A CSV file with one row per order is returned.
"""


REFUND = "WHEN the user asks for a refund, the system SHALL refund the order."
FASTER = "WHEN the user requests an export, the system SHALL return a CSV file within 5 seconds."


def _block(req_id: str, title: str, statement: str) -> str:
    return (
        f"### {req_id}: {title}\n\n**EARS Statement**:\n```\n{statement}\n```\n\n"
        "**Priority**: P1\n\n**Acceptance Criteria**:\n- [ ] The answer is checked by a test.\n"
    )


BAD_CHANGE = f"""# add-refunds

**Target**: storage/specs/shop-requirements.md

## ADDED Requirements

{_block("REQ-SHOP-001", "Refund", REFUND)}
## MODIFIED Requirements

{_block("REQ-SHOP-009", "Ghost", "The system SHALL keep orders for 10 years.")}
"""

GOOD_CHANGE = f"""Here is the change.

```markdown
# add-refunds

**Target**: storage/specs/shop-requirements.md

## ADDED Requirements

{_block("REQ-SHOP-003", "Refund", REFUND)}
## MODIFIED Requirements

{_block("REQ-SHOP-002", "Export orders", FASTER)}
## REMOVED Requirements

- REQ-SHOP-001: the order page is gone
```
"""

EXPORT_PY = '''"""Order export."""


def export_csv(orders):
    """One CSV row per order."""
    if not orders:
        raise LookupError("no orders")
    return "\\n".join(f"{o.id},{o.total}" for o in orders)
'''


def _reverse(source: str) -> str:
    return f"""# src-orders requirements

### REQ-SRCORDER-001: Export orders as CSV

**EARS Statement**:
```
WHEN an export is requested, the system SHALL return one CSV row per order.
```

**Source**: {source}

**Priority**: P1

**Acceptance Criteria**:
- [ ] Two orders give two rows.
"""


STEERING = """<!-- file: product.md -->
# Product

## Purpose

A shop that sells tea.

## Users

Tea drinkers.

<!-- file: tech.md -->
# Tech

## Languages and frameworks

Python 3.11.

## Build and test

pytest.

<!-- file: structure.md -->
# Structure

## Layout

`src/shop/` holds the application.
"""

BAD_STEERING = """<!-- file: product.md -->
# Product

## Purpose

## Users

Tea drinkers.

<!-- file: tech.md -->
# Tech

## Languages and frameworks

Python 3.11.
"""


def _repo(api: Api, tenant: str) -> Path:
    return api.state.settings.effective_repos_root / tenant / "shop"


async def _setup(api: Api, client: httpx.AsyncClient, url: str) -> tuple[str, Path]:
    project_id = await wire_project(api, client, url)
    tenant = ok(await client.get("/v1/me"))["tenant_id"]
    return project_id, _repo(api, tenant)


def _answers(*texts: str) -> Any:
    it = iter(texts)
    return lambda messages: next(it)


async def _run(client: httpx.AsyncClient, project_id: str, **body: Any) -> dict[str, Any]:
    run = ok(await client.post(f"/v1/projects/{project_id}/runs", json=body), 201)
    events = await read_events(client, run["id"])
    shown = ok(await client.get(f"/v1/runs/{run['id']}"))
    return {**shown, "events": events}


async def test_change_writes_a_delta_spec_that_change_apply_accepts_after_a_repair(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id, root = await _setup(api, owner, url)
    (root / "storage/specs").mkdir(parents=True)
    (root / "storage/specs/shop-requirements.md").write_text(SHOP_REQUIREMENTS)
    fake.script = _answers(BAD_CHANGE, GOOD_CHANGE)
    run = await _run(
        owner, project_id, idea="Refunds, and a faster export", feature="add-refunds",
        steps=["change"],
    )  # fmt: skip
    assert run["status"] == "succeeded", run
    attempts = [e for e in run["events"] if e["type"] == "step.attempt"]
    assert [a["valid"] for a in attempts] == [False, True]
    errors = " ".join(attempts[0]["errors"])
    assert "ADDED REQ-SHOP-001 already exists" in errors
    assert "MODIFIED REQ-SHOP-009 does not exist" in errors
    # the prompt showed the model the project's requirements; the repair sent the messages back
    assert "REQ-SHOP-002: Export orders" in fake.chats[0][1]["content"]
    assert "does not pass validation" in fake.chats[1][-1]["content"]
    assert run["steps"][0]["output_path"] == "storage/changes/add-refunds.md"
    # written where `musubi change` keeps deltas, and the SDD core applies it
    result = apply_change(load_project(root), load_change(root, "add-refunds"))
    assert (result.added, result.modified, result.removed) == (
        ["REQ-SHOP-003"],
        ["REQ-SHOP-002"],
        ["REQ-SHOP-001"],
    )
    assert [r.id for r in load_project(root).requirements] == ["REQ-SHOP-002", "REQ-SHOP-003"]
    # a second change with the same id never overwrites the first
    before = (root / "storage/changes/add-refunds.md").read_text()
    body = {"idea": "again", "feature": "add-refunds", "steps": ["change"]}
    r = await owner.post(f"/v1/projects/{project_id}/runs", json=body)
    assert r.status_code == 409 and "never overwritten" in r.json()["error"]["message"]
    assert (root / "storage/changes/add-refunds.md").read_text() == before and fake.calls == 2


async def test_reverse_requirements_cite_lines_that_exist_after_a_repair(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id, root = await _setup(api, owner, url)
    (root / "src/orders").mkdir(parents=True)
    (root / "src/orders/export.py").write_text(EXPORT_PY)
    (root / "src/money.py").write_text("CURRENCY = 'EUR'\n")
    fake.script = _answers(
        _reverse("src/orders/export.py:4-40, src/nope.py:1"),
        _reverse("src/orders/export.py:4-8, src/money.py:1"),
    )
    run = await _run(owner, project_id, idea="src/orders", steps=["reverse"])
    assert run["status"] == "succeeded", run
    attempts = [e for e in run["events"] if e["type"] == "step.attempt"]
    assert [a["valid"] for a in attempts] == [False, True]
    errors = " ".join(attempts[0]["errors"])
    assert "src/orders/export.py:4-40 is outside the file (8 lines)" in errors
    assert "src/nope.py does not exist in the repository" in errors
    prompt = fake.chats[0][1]["content"]
    assert "    4| def export_csv(orders):" in prompt  # the code, numbered, for citing
    # the estimate packed the same prompt: its input tokens are the exact count of the first
    tenant = ok(await owner.get("/v1/me"))["tenant_id"]
    info = (await api.state.gateway.table(tenant)).plan("gpt-4.1").groups[0][0]
    sent = count_request_tokens({"model": info.name, "messages": fake.chats[0]}, info)
    assert run["estimate"]["steps"][0]["input_tokens"] == sent > 300
    assert "## Repository map" in prompt and "4: def export_csv(orders):" in prompt
    out = root / "storage/specs/src-orders-requirements.md"
    assert run["steps"][0]["output_path"] == "storage/specs/src-orders-requirements.md"
    [req] = load_project(root).requirements
    assert req.extra["Source"] == "src/orders/export.py:4-8, src/money.py:1" and out.is_file()
    # a citation outside the module is allowed, and said
    [warning] = [d for d in run["steps"][0]["diagnostics"] if d["code"].startswith("reverse.")]
    assert (
        warning["severity"] == "warning"
        and "src/money.py, outside src/orders" in warning["message"]
    )


async def test_reverse_refuses_a_module_that_is_not_in_the_repository(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id, _ = await _setup(api, owner, url)
    for idea in ("src/missing", "../../etc", "/etc", ""):
        r = await owner.post(
            f"/v1/projects/{project_id}/runs", json={"idea": idea, "steps": ["reverse"]}
        )
        assert r.status_code == 422, (idea, r.text)
        assert r.json()["error"]["field"] == "idea"
    r = await owner.post(
        f"/v1/projects/{project_id}/runs", json={"idea": "x", "steps": ["reverse", "design"]}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "steps"
    assert fake.calls == 0


async def test_the_reverse_estimate_counts_the_packed_code(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    _, url = scripted
    project_id, root = await _setup(api, owner, url)
    (root / "src/orders").mkdir(parents=True)
    (root / "src/orders/export.py").write_text(EXPORT_PY)
    body = {"idea": "src/orders", "steps": ["reverse"]}
    route = f"/v1/projects/{project_id}/runs/estimate"
    small = ok(await owner.post(route, json=body))["steps"][0]
    more = "".join(f"def handler_{n}(request):\n    return {n}\n\n" for n in range(200))
    (root / "src/orders/handlers.py").write_text(more)
    large = ok(await owner.post(route, json=body))["steps"][0]
    assert small["step"] == "reverse" and small["output_tokens"] == 2000
    assert large["input_tokens"] - small["input_tokens"] > 2000  # the new file is in the prompt


async def test_steering_writes_three_files_and_never_overwrites_the_users(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id, root = await _setup(api, owner, url)
    (root / "src/shop").mkdir(parents=True)
    (root / "src/shop/app.py").write_text("def serve_tea(cup):\n    return cup\n")
    (root / "README.md").write_text("# Tea shop\n\nSells tea online.\n")
    fake.script = _answers(BAD_STEERING, STEERING)
    run = await _run(owner, project_id, steps=["steering"])
    assert run["status"] == "succeeded", run
    attempts = [e for e in run["events"] if e["type"] == "step.attempt"]
    assert [a["valid"] for a in attempts] == [False, True]
    errors = " ".join(attempts[0]["errors"])
    assert "section 'Purpose' is empty" in errors and "structure.md is missing" in errors
    prompt = fake.chats[0][1]["content"]
    assert "Sells tea online." in prompt and "def serve_tea(cup):" in prompt
    assert (root / "steering/product.md").read_text().startswith("# Product\n\n## Purpose\n")
    assert "Python 3.11." in (root / "steering/tech.md").read_text()
    assert "`src/shop/`" in (root / "steering/structure.md").read_text()
    assert "<!--" not in (root / "steering/tech.md").read_text()
    # the user's steering file is a conflict: refused before any call, nothing changed
    (root / "steering/tech.md").write_text("# mine\n")
    for name in ("product.md", "structure.md"):
        (root / "steering" / name).unlink()
    r = await owner.post(f"/v1/projects/{project_id}/runs", json={"steps": ["steering"]})
    assert r.status_code == 409 and "steering/tech.md" in r.json()["error"]["message"]
    assert (root / "steering/tech.md").read_text() == "# mine\n" and fake.calls == 2


async def test_a_steering_file_the_user_writes_during_the_run_is_not_overwritten(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id, root = await _setup(api, owner, url)

    def script(messages: list[dict[str, Any]]) -> str:
        (root / "steering").mkdir(exist_ok=True)
        (root / "steering/structure.md").write_text("# the user's\n")
        return STEERING

    fake.script = script
    run = await _run(owner, project_id, steps=["steering"])
    assert run["status"] == "failed" and "changed since the step read it" in run["error"]
    assert (root / "steering/structure.md").read_text() == "# the user's\n"
    assert not (root / "steering/product.md").exists()


async def test_musubi_run_reverse_from_the_cli(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str]
) -> None:
    fake, url = scripted
    project_id, root = await _setup(api, owner, url)
    (root / "src/orders").mkdir(parents=True)
    (root / "src/orders/export.py").write_text(EXPORT_PY)
    fake.script = _answers(_reverse("src/orders/export.py:4-8"))
    out, err = await musubi(api, "run", "reverse", "src/orders", "--project", project_id)
    assert "reverse: wrote storage/specs/src-orders-requirements.md" in err
    assert "succeeded" in out
    _, err = await musubi(api, "run", "reverse", "src/none", "--project", project_id, code=1)
    assert "no file or folder" in err


async def test_reverse_never_reads_or_accepts_code_through_a_link_out_of_the_repository(
    api: Api, owner: httpx.AsyncClient, scripted: tuple[ScriptedUpstream, str], tmp_path: Path
) -> None:
    fake, url = scripted
    project_id, root = await _setup(api, owner, url)
    secret = tmp_path / "server-secret.py"
    secret.write_text("TOKEN = 'TOPSECRET'\n")
    (root / "src/orders").mkdir(parents=True)
    (root / "src/orders/export.py").write_text(EXPORT_PY)
    (root / "src/orders/leak.py").symlink_to(secret)
    fake.script = lambda messages: _reverse("src/orders/leak.py:1")
    run = await _run(owner, project_id, idea="src/orders", steps=["reverse"])
    assert run["status"] == "failed" and fake.calls == 3
    assert all("TOPSECRET" not in str(chat) for chat in fake.chats)
    assert "src/orders/leak.py leads outside the repository" in run["error"]
    assert not (root / "storage").exists()
