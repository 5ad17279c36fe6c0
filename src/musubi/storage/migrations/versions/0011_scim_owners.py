"""SSO policy: whether SCIM may change or delete the tenant's owners (off by default).

Revision ID: 0011_scim_owners
Revises: 0010_orchestrator_runs
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_scim_owners"
down_revision = "0010_orchestrator_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sso_policies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "scim_manages_owners", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sso_policies", schema=None) as batch_op:
        batch_op.drop_column("scim_manages_owners")
