"""snapshots: covering indexes for the dashboard's tally by status and measured space (the system's, and a
tenant's by owner and exposure), so it reads an index instead of every row

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_snapshots_status_exclusive_bytes", "snapshots", ["status", "exclusive_bytes"])
    op.create_index(  # a tenant's own, and its parent's exposed system snapshots (not private)
        "ix_snapshots_scope_tally", "snapshots", ["owner_tenant_id", "kind", "private", "status", "exclusive_bytes"]
    )


def downgrade() -> None:
    op.drop_index("ix_snapshots_scope_tally", "snapshots")
    op.drop_index("ix_snapshots_status_exclusive_bytes", "snapshots")
