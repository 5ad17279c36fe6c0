"""Tracker sync throughput under a rate limit, and webhook → spec latency (issue 20).

Run: PYTHONPATH=src:. .venv/bin/python bench/integrations_sync.py [--items 1000]
     [--webhooks 100] [--rate 10] [--concurrency 4]

1. ``--items`` requirements are synced to the fake JIRA of the tests
   (``tests/integrations/fakes.py``: every request validated against JIRA's OpenAPI
   description) answering each request after 100 ms and answering 429 (Retry-After: 1) to
   any request over 10 in a second. MUSUBI paces itself with its token bucket at
   ``--rate``. Printed: wall time against the physical minimum (items / 10 req/s),
   requests sent per item, and the 429s received.
2. A real server (uvicorn on loopback) receives ``--webhooks`` signed JIRA webhooks, each a
   status change of one synced issue; the time from sending to the spec file holding the
   new status is measured per webhook (the answer comes after the file is written).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

import uvicorn
from sqlalchemy import select
from tests.integrations.fakes import FakeJira
from tests.integrations.specs import write_project

from musubi.api.app import create_app
from musubi.context import bind_tenant, system_scope
from musubi.gateway.secrets import SecretBox
from musubi.integrations import service, sync
from musubi.integrations.models import IssueLink
from musubi.integrations.outbox import OutboxWorker
from musubi.runtime import open_state
from musubi.settings import Settings
from musubi.storage.tenants import Tenant
from musubi.tenancy import service as tenancy

SECRET = "bench-webhook-secret"  # noqa: S105 - the fake signs with it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(items: int, webhooks: int, rate: float, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeJira().serve() as jira:
        home = Path(tmp) / "home"
        settings = Settings(home=home, egress_allow="127.0.0.1", bootstrap_key=None)
        state = await open_state(settings, announce=False)
        with system_scope():
            async with state.db.read() as s:
                tenant_id = await s.scalar(select(Tenant.id).where(Tenant.is_root.is_(True)))
        assert tenant_id is not None
        root = settings.effective_repos_root / tenant_id / "bulk"
        spec = write_project(root, n=items)
        box = SecretBox.load(home)
        with bind_tenant(tenant_id):
            async with state.db.transaction() as s:
                project = await tenancy.create_project(s, "bulk", repo_path=str(root))
                row = await service.set_integration(
                    s,
                    box,
                    settings.egress_rules.for_tenant(tenant_id),
                    project_id=project.id,
                    kind="jira",
                    target="PROJ",
                    base_url=jira.url,
                    token=jira.token,
                    email=jira.email,
                    webhook_secret=SECRET,
                    status_map={"In Progress": "Implementing", "To Do": "Draft"},
                    options={"rate_per_s": rate},
                )
                await sync.plan_sync(s, row, sync.local_items(root)[1])
            integration_id = row.id
        jira.faults.latency_s, jira.faults.rate_per_s = 0.1, 10
        worker = OutboxWorker(
            state.db, box, settings.egress_rules, concurrency=concurrency, poll_s=0.2
        )
        started = time.perf_counter()
        with system_scope():
            await worker.drain()
        wall = time.perf_counter() - started
        tracker = next(iter(worker._trackers.values()))
        await worker.close()
        with bind_tenant(tenant_id):
            async with state.db.transaction() as s:
                links = list(await s.scalars(select(IssueLink)))
                sync.write_tracker_keys(root, row, links)
        await state.close()
        minimum = items / 10
        print(f"\nSync of {items} requirements to fake JIRA (100 ms per answer, 10 req/s limit)")
        print(f"{'wall time':<28}{wall:>10.1f} s")
        print(f"{'physical minimum':<28}{minimum:>10.1f} s")
        print(f"{'wall / minimum':<28}{wall / minimum:>10.2f}")
        print(f"{'issues on the tracker':<28}{len(jira.issues):>10}")
        print(f"{'requests sent (MUSUBI)':<28}{tracker.requests:>10}")
        print(f"{'requests per item':<28}{tracker.requests / items:>10.2f}")
        print(f"{'429 answers received':<28}{jira.rejected_429:>10}")
        print(f"{'spec violations':<28}{len(jira.violations):>10}")

        # -- webhook -> spec file ------------------------------------------------------
        jira.faults.latency_s, jira.faults.rate_per_s = 0.0, 0
        app = create_app(Settings(home=home, egress_allow="127.0.0.1", bootstrap_key=None))
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag only
            await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{port}/v1/integrations/{integration_id}/webhook"
        times: list[float] = []
        try:
            for n in range(1, webhooks + 1):
                key = f"PROJ-{n}"
                jira.edit(key, status="In Progress")
                t0 = time.perf_counter()
                r = await jira.send_webhook(url, SECRET, key)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200 and r.json()["result"] == "applied", r.text
        finally:
            server.should_exit = True
            await task
        text = spec.read_text()
        assert text.count("**Status**: Implementing") == webhooks
        times.sort()
        p95 = times[int(len(times) * 0.95) - 1]
        print(f"\nWebhook -> spec file updated ({webhooks} webhooks, {items} requirements)")
        print(f"{'P50':<28}{statistics.median(times) * 1000:>10.0f} ms")
        print(f"{'P95':<28}{p95 * 1000:>10.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--webhooks", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.webhooks, args.rate, args.concurrency))
