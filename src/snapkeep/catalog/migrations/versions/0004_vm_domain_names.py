"""a VM's libvirt domain name apart from its name (names are unique per owner, domains per host)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vms") as batch:
        batch.add_column(sa.Column("domain_name", sa.String(length=128), nullable=True))
    op.execute("UPDATE vms SET domain_name = name")  # existing domains keep the name they were defined with
    with op.batch_alter_table("vms") as batch:
        batch.alter_column("domain_name", existing_type=sa.String(length=128), nullable=False)
        batch.create_unique_constraint("uq_vms_domain_name", ["domain_name"])


def downgrade() -> None:
    with op.batch_alter_table("vms") as batch:
        batch.drop_constraint("uq_vms_domain_name", type_="unique")
        batch.drop_column("domain_name")
