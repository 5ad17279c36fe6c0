"""Fine-tuning jobs, their events and checkpoints (musubi.finetune.models).

Revision ID: 0014_ft
Revises: 0013_integ
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_ft"
down_revision = "0013_integ"
branch_labels = None
depends_on = None

_ALLOWED = (
    "current_setting('musubi.system', true) = 'on' "
    "OR tenant_id = current_setting('musubi.tenant_id', true)"
)
_TABLES = ("fine_tuning_jobs", "fine_tuning_events", "fine_tuning_checkpoints")


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


def _job_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["job_id"],
        ["fine_tuning_jobs.id"],
        name=f"fk_{table}_job_id_fine_tuning_jobs",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "fine_tuning_jobs",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("training_file", sa.String(length=40), nullable=False),
        sa.Column("validation_file", sa.String(length=40), nullable=True),
        sa.Column("suffix", sa.String(length=64), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("method", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("fine_tuned_model", sa.String(length=300), nullable=True),
        sa.Column("trained_tokens", sa.Integer(), nullable=True),
        sa.Column("adapter_path", sa.Text(), nullable=True),
        sa.Column("base_path", sa.Text(), nullable=True),
        sa.Column("serving", sa.Text(), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        _ts("lease_until"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("created_at", False),
        _ts("started_at"),
        _ts("finished_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_fine_tuning_jobs_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_fine_tuning_jobs"),
    )
    op.create_index("ix_fine_tuning_jobs_tenant_id", "fine_tuning_jobs", ["tenant_id"])
    op.create_index("ix_fine_tuning_jobs_project_id", "fine_tuning_jobs", ["project_id"])
    op.create_index(
        "ix_fine_tuning_jobs_fine_tuned_model", "fine_tuning_jobs", ["fine_tuned_model"]
    )
    op.create_index(
        "ix_fine_tuning_jobs_status_lease", "fine_tuning_jobs", ["status", "lease_until"]
    )
    op.create_table(
        "fine_tuning_events",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        _ts("created_at", False),
        _job_fk("fine_tuning_events"),
        sa.PrimaryKeyConstraint("id", name="pk_fine_tuning_events"),
    )
    op.create_index("ix_fine_tuning_events_tenant_id", "fine_tuning_events", ["tenant_id"])
    op.create_index("ix_fine_tuning_events_job_id", "fine_tuning_events", ["job_id"])
    op.create_table(
        "fine_tuning_checkpoints",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        _ts("created_at", False),
        _job_fk("fine_tuning_checkpoints"),
        sa.PrimaryKeyConstraint("id", name="pk_fine_tuning_checkpoints"),
    )
    op.create_index(
        "ix_fine_tuning_checkpoints_tenant_id", "fine_tuning_checkpoints", ["tenant_id"]
    )
    op.create_index("ix_fine_tuning_checkpoints_job_id", "fine_tuning_checkpoints", ["job_id"])
    for table in _TABLES:
        _enable_rls(table)


def downgrade() -> None:
    for table in reversed(_TABLES):
        op.drop_table(table)
