"""SIGKILL during a 200-item sync: after a restart every item is on the tracker exactly
once (``musubi integrations deliver`` in a real subprocess, killed mid-delivery)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from musubi.context import bind_tenant, system_scope
from musubi.gateway.secrets import SecretBox
from musubi.integrations import service, sync
from musubi.integrations.models import IssueLink, OutboxItem
from musubi.integrations.tracker import label_for
from musubi.runtime import open_state
from musubi.settings import Settings
from musubi.storage.tenants import Tenant
from musubi.tenancy import service as tenancy
from tests.integrations.fakes import FakeJira
from tests.integrations.specs import write_project

N = 200


pytestmark = pytest.mark.slow  # kills a worker process mid-sync


def _deliver(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    code = "from musubi.cli.main import main; main()"
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, "integrations", "deliver", "--lease-s", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_sigkill_mid_sync_leaves_every_item_on_the_tracker_exactly_once(
    tmp_path: Path, jira: FakeJira
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_")}
    env |= {"MUSUBI_HOME": str(home), "MUSUBI_EGRESS_ALLOW": "127.0.0.1"}
    settings = Settings(home=home, egress_allow="127.0.0.1", bootstrap_key=None)
    state = await open_state(settings, announce=False)
    try:
        with system_scope():
            async with state.db.read() as s:
                tenant_id = await s.scalar(select(Tenant.id).where(Tenant.is_root.is_(True)))
        assert tenant_id is not None
        root = tmp_path / "repo"
        write_project(root, n=N)
        with bind_tenant(tenant_id):
            async with state.db.transaction() as s:
                project = await tenancy.create_project(s, "bulk", repo_path=str(root))
                row = await service.set_integration(
                    s,
                    SecretBox.load(home),
                    settings.egress_rules.for_tenant(tenant_id),
                    project_id=project.id,
                    kind="jira",
                    target="PROJ",
                    base_url=jira.url,
                    token=jira.token,
                    email=jira.email,
                    options={"rate_per_s": 0},
                )
                result = await sync.plan_sync(s, row, sync.local_items(root)[1])
        assert result.queued == N

        jira.faults.latency_s = 0.03  # slow enough to be killed mid-flight
        log = tmp_path / "deliver.log"
        proc = _deliver(env, log)
        async with asyncio.timeout(60):
            while len(jira.issues) < N // 3:
                assert proc.poll() is None, log.read_text()
                await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = len(jira.issues)
        assert at_kill < N
        with bind_tenant(tenant_id):
            async with state.db.read() as s:
                linked_at_kill = await s.scalar(select(func.count()).select_from(IssueLink))
        # created on the tracker, answer lost with the process: only the label tells
        assert linked_at_kill is not None and linked_at_kill < at_kill
        searches_before = jira.requests.count(("GET", "/rest/api/3/search/jql"))

        proc = _deliver(env, log)
        assert proc.wait(120) == 0, log.read_text()

        labels = [lb for i in jira.issues.values() for lb in i["fields"]["labels"]]
        assert len(jira.issues) == N, (at_kill, len(jira.issues))
        assert sorted(labels) == sorted(label_for(f"REQ-BULK-{i:03d}") for i in range(1, N + 1))
        with bind_tenant(tenant_id):
            async with state.db.read() as s:
                links = await s.scalar(select(func.count()).select_from(IssueLink))
                open_rows = await s.scalar(
                    select(func.count()).select_from(OutboxItem).where(OutboxItem.status != "done")
                )
        assert (links, open_rows) == (N, 0)
        searches = jira.requests.count(("GET", "/rest/api/3/search/jql")) - searches_before
        assert 0 < searches < 20  # only the rows the killed process held look first
        assert jira.violations == []
    finally:
        await state.close()
