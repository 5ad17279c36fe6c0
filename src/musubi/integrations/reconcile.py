"""The periodic reconcile: read every linked issue and bring tracker-side changes in, for
webhooks that never arrived (the tracker was down, the URL wrong, a delivery dropped).

Each issue goes through :func:`~musubi.integrations.sync.apply_remote`, exactly as a
webhook would: a change only on the tracker is written into the spec, a change on both
sides is a conflict, an echo of MUSUBI's own update is ``unchanged``.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select

from musubi.egress.policy import EgressPolicy
from musubi.gateway.secrets import SecretBox
from musubi.integrations.models import Integration, IssueLink
from musubi.integrations.service import open_tracker, tracker_names
from musubi.integrations.sync import apply_remote, project_root
from musubi.integrations.tracker import TrackerError
from musubi.storage.database import Database

__all__ = ["reconcile"]


async def reconcile(
    db: Database, box: SecretBox, egress: EgressPolicy, integration_id: str
) -> dict[str, int]:
    """Reconcile one tracker integration (bound to its tenant); returns the outcomes
    counted (``applied``, ``unchanged``, ``conflict``, ``unlinked``, ``error``)."""
    async with db.read() as s:
        row = await s.get(Integration, integration_id)
        if row is None or row.kind not in tracker_names():
            return {}
        root = await project_root(s, row.project_id)
        keys = list(
            await s.scalars(
                select(IssueLink.issue_key).where(IssueLink.integration_id == integration_id)
            )
        )
    outcomes: Counter[str] = Counter()
    try:
        tracker = open_tracker(row, box, egress)
    except TrackerError:  # refused by the egress policy: every issue is an error
        return {"error": len(keys)} if keys else {}
    try:
        for key in keys:
            try:
                issue = await tracker.get_issue(key)
            except TrackerError:
                outcomes["error"] += 1
                continue
            async with db.transaction() as s:
                fresh = await s.get(Integration, integration_id)
                if fresh is None:
                    break
                outcomes[await apply_remote(s, fresh, root, issue)] += 1
            await asyncio.sleep(0)
    finally:
        await tracker.aclose()
    return dict(outcomes)
