"""Audit heads signed in batches (musubi.audit.chain): a head's inclusion proof in the
Merkle tree of the heads one signature covers; empty for a head signed alone.

Revision ID: 0017_heads_proof
Revises: 0016_pipelines
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_heads_proof"
down_revision = "0016_pipelines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_heads") as batch:
        batch.add_column(sa.Column("proof", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("audit_heads") as batch:
        batch.drop_column("proof")
