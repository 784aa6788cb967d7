"""Two requests creating a system volume of one name at once: one volume is made, the other request is
refused and leaves nothing behind (its dataset removed). Both pass the name check before either writes its
row (a fault switch holds them there), as two API requests on two threads can."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from snapkeep.errors import Conflict
from snapkeep.model.principal import SYSTEM
from snapkeep.services.container import Services

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)

MiB = 1 << 20


def test_two_system_volumes_of_one_name_made_at_once_make_one(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = services
    datasets = set(svc.pool.list_datasets())
    both_checked = threading.Barrier(2, timeout=10)
    checks: dict[int, int] = {}
    check = svc.volumes.check_free_name

    def check_then_wait(*args: Any) -> None:  # the second check of each request: the one before its row
        check(*args)
        me = threading.get_ident()
        checks[me] = checks.get(me, 0) + 1
        if checks[me] == 2:
            both_checked.wait()

    monkeypatch.setattr(svc.volumes, "check_free_name", check_then_wait)
    outcomes: list[object] = []

    def create() -> None:
        try:
            outcomes.append(svc.volumes.create("shared", 8 * MiB, who=SYSTEM))
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 2 and sum(isinstance(o, Conflict) for o in outcomes) == 1, outcomes
    volumes = [v for v in svc.volumes.list(who=SYSTEM) if v.name == "shared"]
    assert len(volumes) == 1, volumes  # before the fix: two system volumes named 'shared'
    assert set(svc.pool.list_datasets()) == datasets | {volumes[0].dataset}  # the loser's data removed
