"""SSO: identity providers, external identities, sessions, login flows, replay records,
SSO policies, SCIM groups and memberships. Row-level security on every table (PostgreSQL).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_ALLOWED = (
    "current_setting('musubi.system', true) = 'on' "
    "OR tenant_id = current_setting('musubi.tenant_id', true)"
)
TABLES = [
    "sso_idps",
    "sso_identities",
    "sso_sessions",
    "sso_login_flows",
    "sso_replays",
    "sso_policies",
    "scim_groups",
    "scim_members",
]


def _tenant(primary: bool = False) -> sa.Column[str]:
    return sa.Column(
        "tenant_id",
        sa.String(40),
        sa.ForeignKey("tenants.id", name=None, ondelete="CASCADE"),
        nullable=False,
        primary_key=primary,
    )


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    ]


def _index(table: str, *columns: str) -> None:
    with op.batch_alter_table(table) as batch:
        for col in columns:
            batch.create_index(batch.f(f"ix_{table}_{col}"), [col], unique=False)


def upgrade() -> None:
    op.create_table(
        "sso_idps",
        sa.Column("id", sa.String(40), primary_key=True),
        _tenant(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("protocol", sa.String(8), nullable=False),
        sa.Column("issuer", sa.String(1000), nullable=False),
        sa.Column("client_id", sa.String(400), nullable=False),
        sa.Column("secret", sa.String(4000), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("saml", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        *_stamps(),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_sso_idps_tenant_id")),
    )
    _index("sso_idps", "tenant_id")
    op.create_table(
        "sso_identities",
        sa.Column("id", sa.String(40), primary_key=True),
        _tenant(),
        sa.Column(
            "user_id", sa.String(40), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("idp_id", sa.String(40), sa.ForeignKey("sso_idps.id", ondelete="SET NULL")),
        sa.Column("issuer", sa.String(1000), nullable=False),
        sa.Column("subject", sa.String(400), nullable=False),
        sa.Column("email", sa.String(400), nullable=False),
        sa.Column("last_claims", sa.JSON(), nullable=False),
        sa.Column("last_login_at", _TS),
        *_stamps(),
        sa.UniqueConstraint(
            "tenant_id", "issuer", "subject", name=op.f("uq_sso_identities_tenant_id")
        ),
    )
    _index("sso_identities", "tenant_id", "user_id")
    op.create_table(
        "sso_sessions",
        sa.Column("id", sa.String(40), primary_key=True),
        _tenant(),
        sa.Column(
            "user_id", sa.String(40), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("csrf_hash", sa.String(64), nullable=False),
        sa.Column("idp_id", sa.String(40), sa.ForeignKey("sso_idps.id", ondelete="SET NULL")),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS),
        sa.Column("client_ip", sa.String(64)),
        *_stamps(),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sso_sessions_token_hash")),
    )
    _index("sso_sessions", "tenant_id", "user_id")
    op.create_table(
        "sso_login_flows",
        sa.Column("id", sa.String(40), primary_key=True),
        _tenant(),
        sa.Column(
            "idp_id",
            sa.String(40),
            sa.ForeignKey("sso_idps.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(200), nullable=False),
        sa.Column("code_verifier", sa.String(200), nullable=False),
        sa.Column("redirect_uri", sa.String(1000), nullable=False),
        sa.Column("return_to", sa.String(1000), nullable=False),
        sa.Column("test_only", sa.Boolean(), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        *_stamps(),
        sa.UniqueConstraint("state_hash", name=op.f("uq_sso_login_flows_state_hash")),
    )
    _index("sso_login_flows", "tenant_id")
    op.create_table(
        "sso_replays",
        sa.Column("id", sa.String(40), primary_key=True),
        _tenant(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "kind", "value_hash", name=op.f("uq_sso_replays_tenant_id")
        ),
    )
    _index("sso_replays", "tenant_id")
    op.create_table(
        "sso_policies",
        _tenant(primary=True),
        sa.Column("require_sso", sa.Boolean(), nullable=False),
        sa.Column("idle_minutes", sa.Integer(), nullable=False),
        sa.Column("absolute_hours", sa.Integer(), nullable=False),
        *_stamps(),
    )
    op.create_table(
        "scim_groups",
        sa.Column("id", sa.String(40), primary_key=True),
        _tenant(),
        sa.Column("display_name", sa.String(400), nullable=False),
        sa.Column("external_id", sa.String(400)),
        *_stamps(),
        sa.UniqueConstraint("tenant_id", "display_name", name=op.f("uq_scim_groups_tenant_id")),
    )
    _index("scim_groups", "tenant_id")
    op.create_table(
        "scim_members",
        sa.Column("id", sa.String(40), primary_key=True),
        _tenant(),
        sa.Column(
            "group_id",
            sa.String(40),
            sa.ForeignKey("scim_groups.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "user_id", sa.String(40), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.UniqueConstraint("group_id", "user_id", name=op.f("uq_scim_members_group_id")),
    )
    _index("scim_members", "tenant_id", "group_id", "user_id")
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY tenant_isolation ON {table} USING ({_ALLOWED}) "
                f"WITH CHECK ({_ALLOWED})"
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
