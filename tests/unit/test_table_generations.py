"""Per-table write counts (``Unit.seen``): what lets a system take reuse the estate it read last time. A count
must move for every table a committed change may have touched (the table written, and the tables whose rows
refer to it, which a delete can change too), and an estate must be read from no table outside the list it is
checked against (else a change there would go unseen and a take would record the system as it was)."""

from __future__ import annotations

import pytest
from sqlalchemy import Table, event, text
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.util import find_tables

from snapkeep.catalog.db import Database
from snapkeep.model.principal import Role
from snapkeep.model.selection import FULL
from snapkeep.model.types import Tenant
from snapkeep.model.user import User
from snapkeep.services.subjects.estate import ESTATE_TABLES, Estate, EstateCache, read_estate
from snapkeep.services.subjects.vm import VmKind
from snapkeep.services.subjects.volume import VolumeKind
from tests.unit.test_catalog_pages import T0

TABLES = ("tenants", "users", "vms", "volumes", "snapshots", "web_sessions")


def counts(db: Database) -> dict[str, int]:
    with db.unit() as uow:
        return dict(zip((*TABLES, "*"), uow.seen.opened(TABLES), strict=True))


def moved(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {name for name in before if after[name] != before[name]}


def test_a_change_moves_the_count_of_its_table_only(db: Database) -> None:
    start = counts(db)
    with db.unit() as uow:
        uow.tenants.visible()
    assert moved(start, counts(db)) == set(), "a unit that only read"
    with db.unit() as uow:
        uow.users.insert(User("u-1", "ann", "hash", Role.ADMIN, None, T0))
    assert moved(start, counts(db)) == {"users"}


def test_a_delete_moves_the_tables_that_refer_to_it(db: Database) -> None:
    with db.unit() as uow:
        uow.tenants.insert(Tenant("t-a", "a", None, "", T0))
    start = counts(db)
    with db.unit() as uow:
        uow.tenants.delete("t-a")
    changed = moved(start, counts(db))
    assert {"tenants", "users", "vms", "volumes", "snapshots"} <= changed, changed  # rows owned by a tenant
    assert "web_sessions" in changed  # through users: a session refers to its user
    assert "*" not in changed


def test_a_statement_in_sql_text_moves_every_count(db: Database) -> None:
    start = counts(db)
    with db.unit() as uow:
        uow.web_sessions._s.execute(text("DELETE FROM web_sessions WHERE id = 'none'"))  # as a careless store might
    assert moved(start, counts(db)) == {"*"}  # counted in every table's tuple


def test_an_estate_reads_only_the_tables_it_is_checked_against(db: Database) -> None:
    read: set[str] = set()

    def record(state: ORMExecuteState) -> None:
        found = find_tables(state.statement, check_columns=True, include_selects=True)
        read.update(table.name for table in found if isinstance(table, Table))

    event.listen(Session, "do_orm_execute", record)
    try:
        with db.unit() as uow:
            read_estate(uow, None, FULL, *kinds())
    finally:
        event.remove(Session, "do_orm_execute", record)
    assert read, "the recorder saw the estate's queries"
    assert read <= set(ESTATE_TABLES), read - set(ESTATE_TABLES)


def kinds() -> tuple[VmKind, VolumeKind]:
    """The kinds only turn rows into subjects in an estate: nothing of theirs but that is used."""
    return VmKind.__new__(VmKind), VolumeKind.__new__(VolumeKind)


def tenant_names(estate: Estate) -> set[str]:
    return {tenant.name for tenant in estate.tenants}


def test_an_estate_kept_is_not_reused_once_a_change_has_committed_since_the_unit_opened(db: Database) -> None:
    """A take's unit opened before a change committed, which it then reads the system after (as a take does
    when the catalog changed between its first read and its claim): the estate kept from before is stale."""
    cache = EstateCache()
    with db.unit() as uow:
        assert tenant_names(cache.read(uow, None, FULL, *kinds())) == set()
    with db.unit() as uow:
        with db.unit() as other:  # commits after the first unit was opened, before its first query
            other.tenants.insert(Tenant("t-a", "acme", None, "", T0))
        assert tenant_names(cache.read(uow, None, FULL, *kinds())) == {"acme"}  # before the fix: set()
    with db.unit() as uow:
        assert tenant_names(cache.read(uow, None, FULL, *kinds())) == {"acme"}


def test_an_estate_read_by_a_unit_that_changed_rows_is_not_kept(db: Database) -> None:
    cache = EstateCache()
    with pytest.raises(RuntimeError), db.unit() as uow:
        uow.tenants.insert(Tenant("t-g", "ghost", None, "", T0))
        assert tenant_names(cache.read(uow, None, FULL, *kinds())) == {"ghost"}  # its own change, seen
        raise RuntimeError("the unit fails after reading: its change is rolled back")
    with db.unit() as uow:
        assert tenant_names(cache.read(uow, None, FULL, *kinds())) == set()  # before the fix: {"ghost"}
