"""Daily usage rollups for the dashboard's charts (musubi.usage.rollup).

Revision ID: 0012_dash
Revises: 0011_scim_owners
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_dash"
down_revision = "0011_scim_owners"
branch_labels = None
depends_on = None

_ALLOWED = (
    "current_setting('musubi.system', true) = 'on' "
    "OR tenant_id = current_setting('musubi.tenant_id', true)"
)


def upgrade() -> None:
    op.create_table(
        "usage_days",
        sa.Column("dim", sa.String(length=8), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("grp", sa.String(length=200), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("cached", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "dim", "day", "grp", name=op.f("pk_usage_days")),
    )
    with op.batch_alter_table("usage_days", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_days_tenant_id"), ["tenant_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE usage_days ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE usage_days FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON usage_days USING ({_ALLOWED}) "
            f"WITH CHECK ({_ALLOWED})"
        )


def downgrade() -> None:
    op.drop_table("usage_days")
