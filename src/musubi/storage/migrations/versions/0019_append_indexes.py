"""The append-only tables lose their single-column ``tenant_id`` index: the composite
indexes that begin with ``tenant_id`` (usage ``(tenant_id, at)``; audit ``(tenant_id,
seq)`` and ``(tenant_id, at)``) answer every query it served. Every call inserts one
usage row and one audit event; with many tenants in rotation each insert lands on a
different page of every tenant-prefixed index, so one such index less is a page less
written per row (issue 24).

Revision ID: 0019_append_indexes
Revises: 0018_notices
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0019_append_indexes"
down_revision = "0018_notices"
branch_labels = None
depends_on = None

_DROPPED = (
    ("usage_records", "ix_usage_records_tenant_id"),
    ("audit_events", "ix_audit_events_tenant_id"),
)


def upgrade() -> None:
    for table, index in _DROPPED:
        op.drop_index(index, table_name=table)


def downgrade() -> None:
    for table, index in _DROPPED:
        op.create_index(index, table, ["tenant_id"])
