"""audit log: the tenant whose subtree each entry concerns (null: the system's), so tenants read their own,
and the scope of who acted (a tenant sees the names of its own subtree's actors only)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("owner_tenant_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("actor_tenant_id", sa.String(36), nullable=True))
    op.create_index("ix_audit_log_owner_id", "audit_log", ["owner_tenant_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_owner_id", "audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("actor_tenant_id")
        batch.drop_column("owner_tenant_id")
