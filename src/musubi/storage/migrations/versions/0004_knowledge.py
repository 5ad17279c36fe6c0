"""Knowledge: one row per indexed project (files, chunks, embedder, when).

The chunks, terms and vectors live on local disk under <home>/knowledge/<tenant>/<project>/;
this table is what the API lists and audits. Row-level security as in 0001.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ALLOWED = (  # the rule of 0001_initial_schema
    "current_setting('musubi.system', true) = 'on' "
    "OR {col} = current_setting('musubi.tenant_id', true)"
)


def upgrade() -> None:
    op.create_table(
        "knowledge_indexes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("embedder", sa.String(length=100), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_knowledge_indexes_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_knowledge_indexes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_indexes")),
        sa.UniqueConstraint("tenant_id", "project_id", name=op.f("uq_knowledge_indexes_tenant_id")),
    )
    with op.batch_alter_table("knowledge_indexes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_knowledge_indexes_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_indexes_tenant_id"), ["tenant_id"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        rule = _ALLOWED.format(col="tenant_id")
        op.execute("ALTER TABLE knowledge_indexes ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE knowledge_indexes FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON knowledge_indexes "
            f"USING ({rule}) WITH CHECK ({rule})"
        )


def downgrade() -> None:
    with op.batch_alter_table("knowledge_indexes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledge_indexes_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_knowledge_indexes_project_id"))
    op.drop_table("knowledge_indexes")
