"""names unique among the system's own objects too: partial unique indexes where the owner is NULL (the
UNIQUE constraints over owner and name hold for tenants only, NULLs being distinct in SQL)

Duplicates a race could have made before are settled first: the oldest object keeps its name, each later
one gets ``<name> (2)``, ``(3)``... (logged); of a system setting written twice, the newest value stays.

Revision ID: 0011
Revises: 0010
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

log = logging.getLogger("snapkeep.catalog.migrations")

NAMED = (  # table, owner column
    ("tenants", "parent_id"),
    ("networks", "owner_tenant_id"),
    ("volumes", "owner_tenant_id"),
    ("vms", "owner_tenant_id"),
    ("profiles", "owner_tenant_id"),
)
NAME_LENGTH = 128  # the columns' length


def _free_name(taken: set[str], name: str) -> str:
    n = 2
    while True:
        suffix = f" ({n})"
        candidate = name[: NAME_LENGTH - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _rename_duplicates(conn: sa.Connection, table: str, owner: str) -> None:
    rows = conn.execute(sa.text(f"SELECT id, name FROM {table} WHERE {owner} IS NULL ORDER BY created_at, id")).all()
    taken = {row.name for row in rows}
    seen: set[str] = set()
    for row in rows:
        if row.name not in seen:
            seen.add(row.name)
            continue
        new_name = _free_name(taken, row.name)
        taken.add(new_name)
        conn.execute(sa.text(f"UPDATE {table} SET name = :name WHERE id = :id"), {"name": new_name, "id": row.id})
        log.warning("%s %s: a second system object named %r, renamed %r", table, row.id, row.name, new_name)


def _keep_newest_settings(conn: sa.Connection) -> None:
    duplicates = conn.execute(
        sa.text(
            "SELECT id FROM settings s WHERE owner_tenant_id IS NULL AND EXISTS "
            "(SELECT 1 FROM settings t WHERE t.owner_tenant_id IS NULL AND t.key = s.key AND t.id > s.id)"
        )
    ).all()
    for row in duplicates:
        conn.execute(sa.text("DELETE FROM settings WHERE id = :id"), {"id": row.id})
        log.warning("settings %s: an older value of a system setting written twice, removed", row.id)


def upgrade() -> None:
    conn = op.get_bind()
    for table, owner in NAMED:
        _rename_duplicates(conn, table, owner)
    _keep_newest_settings(conn)
    for table, owner in NAMED:
        where = sa.text(f"{owner} IS NULL")
        op.create_index(
            f"uq_{table}_system_name", table, ["name"], unique=True, sqlite_where=where, postgresql_where=where
        )
    where = sa.text("owner_tenant_id IS NULL")
    op.create_index(
        "uq_settings_system_key", "settings", ["key"], unique=True, sqlite_where=where, postgresql_where=where
    )


def downgrade() -> None:
    for table, _owner in NAMED:
        op.drop_index(f"uq_{table}_system_name", table)
    op.drop_index("uq_settings_system_key", "settings")
