"""Files belong to a project and a creator, like batches (musubi.batch.ownership).

``files.project_id`` (None: the tenant) and ``files.user_id``; a batch's output and error
files take their batch's. Other files from before have neither: tenant-level objects of
no one, visible to tenant-wide holders of ``models:use`` only. The row-level security
policy of ``files`` (tenant isolation, 0007) covers the new columns unchanged.

Revision ID: 0009_file_owners
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_file_owners"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("user_id", sa.String(length=40), nullable=True))
        batch_op.create_index("ix_files_project_id", ["project_id"])
    if op.get_bind().dialect.name == "postgresql":  # the backfill spans tenants: past RLS
        op.execute("SELECT set_config('musubi.system', 'on', true)")
    for column in ("project_id", "user_id"):
        op.execute(
            f"UPDATE files SET {column} = (SELECT b.{column} FROM batches b "
            "WHERE b.output_file_id = files.id OR b.error_file_id = files.id) "
            "WHERE EXISTS (SELECT 1 FROM batches b "
            "WHERE b.output_file_id = files.id OR b.error_file_id = files.id)"
        )


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index("ix_files_project_id")
        batch_op.drop_column("user_id")
        batch_op.drop_column("project_id")
