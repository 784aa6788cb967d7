"""Names are unique among the system's own objects as among a tenant's: the catalog itself refuses a second
system object of a name (a UNIQUE constraint over owner and name does not, NULL owners being distinct in
SQL), and migration 0011 settles duplicates a race could have made before it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, select
from sqlalchemy.schema import CreateIndex

from snapkeep.catalog.db import MIGRATIONS, Database, make_engine, migrate
from snapkeep.catalog.tables import Base, NetworkRow, ProfileRow, SettingRow, TenantRow, VmRow, VolumeRow
from snapkeep.errors import Conflict
from snapkeep.model.installed_profiles import installed_profiles
from snapkeep.services.subjects import tenant_own

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def tenant(n: int, name: str, parent: str | None = None) -> dict[str, Any]:
    return {"id": f"t-{n}", "name": name, "parent_id": parent, "description": "", "created_at": T0}


def volume(n: int, name: str, owner: str | None = None) -> dict[str, Any]:
    values = {"id": f"vol-{n}", "name": name, "description": "", "size_limit": 1, "owner_tenant_id": owner}
    return values | {"dataset": f"volume-{n}", "settings": {}, "created_at": T0}


def vm(n: int, name: str, owner: str | None = None) -> dict[str, Any]:
    values = {"id": f"vm-{n}", "name": name, "description": "", "owner_tenant_id": owner, "dataset": f"vm-{n}"}
    return values | {"domain_uuid": f"u-{n}", "domain_name": f"d-{n}", "spec": {}, "created_at": T0}


def network(n: int, name: str, owner: str | None = None) -> dict[str, Any]:
    values = {"id": f"net-{n}", "name": name, "description": "", "owner_tenant_id": owner}
    return values | {"cidr": f"10.0.{n}.0/24", "dhcp": True, "created_at": T0}


def profile(n: int, name: str, owner: str | None = None) -> dict[str, Any]:
    values = {"id": f"p-{n}", "name": name, "description": "", "owner_tenant_id": owner, "timezone": "UTC"}
    return values | {"ignore_warning": False, "created_at": T0}


NAMED: list[tuple[Any, Callable[..., dict[str, Any]]]] = [
    (TenantRow, tenant),
    (VolumeRow, volume),
    (VmRow, vm),
    (NetworkRow, network),
    (ProfileRow, profile),
]


def add(engine: Engine, table: Any, *rows: dict[str, Any]) -> None:
    with engine.begin() as conn:
        for row in rows:
            conn.execute(insert(table.__table__).values(**row))


@pytest.mark.parametrize(("row", "make"), NAMED, ids=[row.__tablename__ for row, _ in NAMED])
def test_a_second_system_object_of_a_name_is_refused_by_the_catalog(
    db: Database, row: Any, make: Callable[..., dict[str, Any]]
) -> None:
    add(db.engine, TenantRow, tenant(90, "acme"), tenant(91, "beta"))
    with db.unit() as uow:
        uow.tenants._s.execute(insert(row.__table__).values(**make(1, "web")))
    with pytest.raises(Conflict), db.unit() as uow:  # before the fix: a second 'web' of the system
        uow.tenants._s.execute(insert(row.__table__).values(**make(2, "web")))
    owned = ("t-90", "t-91") if row is not TenantRow else ("t-90", "t-90")
    add(db.engine, row, make(3, "web", owned[0]))  # a tenant's own of the same name: fine, as before
    if row is not TenantRow:
        add(db.engine, row, make(4, "web", owned[1]))
    with db.engine.connect() as conn:
        assert conn.execute(select(row.__table__.c.name).where(row.__table__.c.id == make(2, "web")["id"])).all() == []


def test_a_system_setting_is_one_row(db: Database) -> None:
    add(db.engine, SettingRow, {"owner_tenant_id": None, "key": "motd", "value": {"v": 1}})
    with pytest.raises(Conflict), db.unit() as uow:
        uow.settings._s.execute(insert(SettingRow.__table__).values(owner_tenant_id=None, key="motd", value={"v": 2}))
    with db.unit() as uow:
        assert uow.settings.document(None) == {"motd": {"v": 1}}


def test_the_migration_settles_duplicates_made_before_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0010")  # before names were unique among the system's objects
    add(engine, TenantRow, tenant(1, "web"), tenant(2, "web"), tenant(3, "web (2)"), tenant(4, "web"))
    add(engine, VolumeRow, volume(1, "data"), volume(2, "data", "t-1"), volume(3, "data"))
    long_name = "x" * 128
    add(engine, VmRow, vm(1, long_name), vm(2, long_name))
    add(engine, SettingRow, {"owner_tenant_id": None, "key": "motd", "value": {"v": 1}})
    add(engine, SettingRow, {"owner_tenant_id": None, "key": "motd", "value": {"v": 2}})
    migrate(engine)
    with engine.connect() as conn:
        names = lambda table: dict(conn.execute(select(table.c.id, table.c.name)).all())  # noqa: E731
        # the oldest keeps its name (ties in time: by id); each later one the first free '<name> (n)'
        assert names(TenantRow.__table__) == {"t-1": "web", "t-2": "web (3)", "t-3": "web (2)", "t-4": "web (4)"}
        assert names(VolumeRow.__table__) == {"vol-1": "data", "vol-2": "data", "vol-3": "data (2)"}
        assert names(VmRow.__table__) == {"vm-1": long_name, "vm-2": "x" * 124 + " (2)"}
        settings = conn.execute(select(SettingRow.__table__.c.key, SettingRow.__table__.c.value)).all()
        assert [tuple(s) for s in settings] == [("motd", {"v": 2})]  # the newest value
    engine.dispose()


def test_a_recorded_profile_whose_name_is_taken_now_comes_back_numbered(db: Database) -> None:
    """A first start on an empty data directory installs the default profiles; a catalog then rebuilt from
    the old pool brings back the old installation's profiles of the same names (other ids, which their
    assignments name). Before its fix the whole rebuild was refused by the catalog."""
    with db.unit() as uow:  # what the first start installed
        for i, installed in enumerate(installed_profiles()):
            periods = tuple(replace(p, id=f"new-{i}-{j}") for j, p in enumerate(installed.periods))
            uow.profiles.insert(replace(installed, id=f"new-{i}", created_at=T0, periods=periods))
        system = next(p for p in uow.profiles.list() if p.name == "System Snapshots")
    old_periods = tuple(replace(p, id=f"old-{p.id}") for p in system.periods)
    recorded = tenant_own.recorded_profile(replace(system, id="old-system", periods=old_periods))
    with db.unit() as uow:
        assert tenant_own.bring_back(uow, [recorded]) == []
    with db.unit() as uow:
        names = {p.id: p.name for p in uow.profiles.list()}
    assert names["old-system"] == "System Snapshots (1)" and names["new-0"] == "System Snapshots"


def test_the_migration_makes_the_partial_indexes_the_tables_describe(db: Database) -> None:
    """Alembic's comparison of schema and tables does not look at an index's WHERE: compared here, as SQL."""
    with db.engine.connect() as conn:
        made = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE name LIKE 'uq_%_system_%'").all())
    described = {
        index.name: str(CreateIndex(index).compile(dialect=db.engine.dialect)).strip()
        for table in Base.metadata.tables.values()
        for index in table.indexes
        if index.name and index.name.startswith("uq_") and "_system_" in index.name
    }
    assert len(described) == 6 and made == described, (made, described)
