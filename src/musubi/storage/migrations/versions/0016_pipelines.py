"""Pipelines: a project's configured CI/CD pipelines and the runs MUSUBI triggered.

Revision ID: 0016_pipelines
Revises: 0015_scale
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_pipelines"
down_revision = "0015_scale"
branch_labels = None
depends_on = None

_ALLOWED = (
    "current_setting('musubi.system', true) = 'on' "
    "OR tenant_id = current_setting('musubi.tenant_id', true)"
)
_TABLES = ("integration_pipelines", "integration_pipeline_runs")


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


def upgrade() -> None:
    op.create_table(
        "integration_pipelines",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("pipeline", sa.String(length=40), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("key_hint", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_integration_pipelines_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_integration_pipelines_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_integration_pipelines"),
        sa.UniqueConstraint("project_id", "name", name="uq_integration_pipelines_project_id"),
    )
    op.create_index("ix_integration_pipelines_tenant_id", "integration_pipelines", ["tenant_id"])
    op.create_table(
        "integration_pipeline_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("pipeline_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("web_url", sa.String(length=500), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("vendor_status", sa.String(length=40), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        _ts("notice_lease"),
        _ts("created_at", False),
        _ts("next_check_at", False),
        _ts("finished_at"),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["integration_pipelines.id"],
            name="fk_integration_pipeline_runs_pipeline_id_integration_pipelines",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_integration_pipeline_runs"),
    )
    op.create_index(
        "ix_integration_pipeline_runs_tenant_id", "integration_pipeline_runs", ["tenant_id"]
    )
    op.create_index(
        "ix_integration_pipeline_runs_pipeline_id", "integration_pipeline_runs", ["pipeline_id"]
    )
    op.create_index(
        "ix_integration_pipeline_runs_follow",
        "integration_pipeline_runs",
        ["state", "next_check_at"],
    )
    for table in _TABLES:
        _enable_rls(table)


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
