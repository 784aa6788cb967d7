"""The tenants a system or tenant snapshot captures come parents first (a restore recreates them in that
order), brothers by name, read in one query whatever the depth of the tree."""

from __future__ import annotations

from sqlalchemy import event

from snapkeep.catalog.db import Database
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import Tenant
from snapkeep.services.subjects.estate import _tenants_parents_first
from tests.unit.test_catalog_pages import T0

TREE = [  # id, name, parent, in the order inserted: parents first, brothers against the order of their names
    ("t-z", "zeta", None),
    ("t-a", "alpha", None),
    ("t-m", "mid", "t-a"),
    ("t-b", "beta", "t-a"),
    ("t-za", "aa", "t-z"),
    ("t-d", "deep", "t-b"),
]


def names(tenants: list[Tenant]) -> list[str]:
    return [tenant.name for tenant in tenants]


def test_parents_first_brothers_by_name_in_a_constant_number_of_queries(db: Database) -> None:
    with db.unit() as uow:
        for tenant_id, name, parent in TREE:
            uow.tenants.insert(Tenant(tenant_id, name, parent, "", T0))
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with db.unit() as uow:
        assert names(_tenants_parents_first(uow, None)) == ["alpha", "zeta", "beta", "mid", "aa", "deep"]
    whole = len(statements)
    with db.unit() as uow:
        assert names(_tenants_parents_first(uow, "t-a")) == ["alpha", "beta", "mid", "deep"]
    with db.unit(Principal("token", Role.ADMIN, "t-a")) as uow:  # the tenant's own view of its subtree
        assert names(_tenants_parents_first(uow, "t-a")) == ["alpha", "beta", "mid", "deep"]
    with db.unit() as uow:
        uow.tenants.insert(Tenant("t-e", "even deeper", "t-d", "", T0))
    statements.clear()
    with db.unit() as uow:
        assert names(_tenants_parents_first(uow, None))[-1] == "even deeper"
    assert len(statements) == whole  # one level more, no query more
