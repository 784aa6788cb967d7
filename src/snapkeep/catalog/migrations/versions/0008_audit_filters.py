"""audit log: indexes for its exact filters (actor, action, outcome), each read newest first

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor", "id"])
    op.create_index("ix_audit_log_action_id", "audit_log", ["action", "id"])
    op.create_index("ix_audit_log_outcome_id", "audit_log", ["outcome", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_outcome_id", "audit_log")
    op.drop_index("ix_audit_log_action_id", "audit_log")
    op.drop_index("ix_audit_log_actor_id", "audit_log")
