"""Orchestrator runs, their steps and their events (musubi.orchestrator.models).

Revision ID: 0010_orchestrator_runs
Revises: 0009_file_owners
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_orchestrator_runs"
down_revision = "0009_file_owners"
branch_labels = None
depends_on = None

_ALLOWED = (
    "current_setting('musubi.system', true) = 'on' "
    "OR tenant_id = current_setting('musubi.tenant_id', true)"
)
_TABLES = ("orchestrator_runs", "orchestrator_run_steps", "orchestrator_run_events")


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


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"],
        ["orchestrator_runs.id"],
        name=f"fk_{table}_run_id_orchestrator_runs",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "orchestrator_runs",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("idea", sa.Text(), nullable=False),
        sa.Column("feature", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("auto_approve", sa.Boolean(), nullable=False),
        sa.Column("budget", sa.Float(), nullable=True),
        sa.Column("estimate", sa.JSON(), nullable=True),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("max_output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.String(length=40), nullable=True),
        sa.Column("key_project_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        _ts("lease_until"),
        _ts("created_at", False),
        _ts("updated_at", False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_orchestrator_runs_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_orchestrator_runs_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_orchestrator_runs"),
    )
    op.create_index("ix_orchestrator_runs_tenant_id", "orchestrator_runs", ["tenant_id"])
    op.create_index(
        "ix_orchestrator_runs_project_status", "orchestrator_runs", ["project_id", "status"]
    )
    op.create_table(
        "orchestrator_run_steps",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("prompt_hash", sa.String(length=64), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("output_path", sa.String(length=500), nullable=True),
        sa.Column("output_sha", sa.String(length=64), nullable=True),
        sa.Column("base_sha", sa.String(length=64), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("diagnostics", sa.JSON(), nullable=True),
        _ts("started_at"),
        _ts("finished_at"),
        _run_fk("orchestrator_run_steps"),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_orchestrator_run_steps"),
    )
    op.create_index("ix_orchestrator_run_steps_tenant_id", "orchestrator_run_steps", ["tenant_id"])
    op.create_table(
        "orchestrator_run_events",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        _ts("created_at", False),
        _run_fk("orchestrator_run_events"),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_orchestrator_run_events"),
    )
    op.create_index(
        "ix_orchestrator_run_events_tenant_id", "orchestrator_run_events", ["tenant_id"]
    )
    for table in _TABLES:
        _enable_rls(table)


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
