"""Chat alerts: a quota crossing 80 % and an audit chain found broken, recorded once per
tenant and occurrence, for the chat integrations to post (musubi.integrations.alerts).

Revision ID: 0018_notices
Revises: 0017_heads_proof
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_notices"
down_revision = "0017_heads_proof"
branch_labels = None
depends_on = None

_ALLOWED = (
    "current_setting('musubi.system', true) = 'on' "
    "OR tenant_id = current_setting('musubi.tenant_id', true)"
)


def upgrade() -> None:
    op.create_table(
        "chat_alerts",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chat_alerts"),
        sa.UniqueConstraint("tenant_id", "key", name="uq_chat_alerts_tenant_id"),
    )
    op.create_index("ix_chat_alerts_tenant_id", "chat_alerts", ["tenant_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE chat_alerts ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE chat_alerts FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON chat_alerts "
            f"USING ({_ALLOWED}) WITH CHECK ({_ALLOWED})"
        )


def downgrade() -> None:
    op.drop_table("chat_alerts")
