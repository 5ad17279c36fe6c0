"""The cache change feed (musubi.storage.changes): one row per change of a tenant's cached
settings, read by every process to invalidate its caches.

Revision ID: 0015_scale
Revises: 0014_ft
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_scale"
down_revision = "0014_ft"
branch_labels = None
depends_on = None

_ALLOWED = (
    "current_setting('musubi.system', true) = 'on' "
    "OR tenant_id = current_setting('musubi.tenant_id', true)"
)


def upgrade() -> None:
    op.create_table(
        "cache_changes",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_cache_changes"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_cache_changes_tenant_id", "cache_changes", ["tenant_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE cache_changes ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE cache_changes FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON cache_changes "
            f"USING ({_ALLOWED}) WITH CHECK ({_ALLOWED})"
        )


def downgrade() -> None:
    op.drop_table("cache_changes")
