"""Integrations: trackers per project, issue links, the outbox, webhook deliveries.

Revision ID: 0013_integ
Revises: 0012_dash
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_integ"
down_revision = "0012_dash"
branch_labels = None
depends_on = None

_ALLOWED = (
    "current_setting('musubi.system', true) = 'on' "
    "OR tenant_id = current_setting('musubi.tenant_id', true)"
)
_TABLES = ("integrations", "integration_links", "integration_outbox", "integration_deliveries")


def _enable_rls(table: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING ({_ALLOWED}) WITH CHECK ({_ALLOWED})"
    )


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _integration_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["integration_id"],
        ["integrations.id"],
        name=f"fk_{table}_integration_id_integrations",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("key_hint", sa.String(length=16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status_map", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_integrations_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_integrations_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_integrations"),
        sa.UniqueConstraint("project_id", "kind", name="uq_integrations_project_id"),
    )
    op.create_index("ix_integrations_tenant_id", "integrations", ["tenant_id"])
    op.create_table(
        "integration_links",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("integration_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=100), nullable=False),
        sa.Column("issue_key", sa.String(length=100), nullable=False),
        sa.Column("issue_url", sa.String(length=500), nullable=False),
        sa.Column("local_hash", sa.String(length=64), nullable=False),
        sa.Column("remote", sa.JSON(), nullable=False),
        sa.Column("conflict", sa.JSON(), nullable=True),
        _ts("synced_at", False),
        _integration_fk("integration_links"),
        sa.PrimaryKeyConstraint("id", name="pk_integration_links"),
        sa.UniqueConstraint(
            "integration_id", "item_id", name="uq_integration_links_integration_id"
        ),
    )
    op.create_index("ix_integration_links_tenant_id", "integration_links", ["tenant_id"])
    op.create_table(
        "integration_outbox",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("integration_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_at", False),
        _ts("lease_until"),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at", False),
        _ts("done_at"),
        _integration_fk("integration_outbox"),
        sa.PrimaryKeyConstraint("id", name="pk_integration_outbox"),
    )
    op.create_index("ix_integration_outbox_tenant_id", "integration_outbox", ["tenant_id"])
    op.create_index(
        "ix_integration_outbox_integration_id", "integration_outbox", ["integration_id"]
    )
    op.create_index("ix_integration_outbox_claim", "integration_outbox", ["status", "next_at"])
    op.create_table(
        "integration_deliveries",
        sa.Column("integration_id", sa.String(length=40), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        _ts("received_at", False),
        _integration_fk("integration_deliveries"),
        sa.PrimaryKeyConstraint("integration_id", "delivery_id", name="pk_integration_deliveries"),
    )
    op.create_index("ix_integration_deliveries_tenant_id", "integration_deliveries", ["tenant_id"])
    for table in _TABLES:
        _enable_rls(table)


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
