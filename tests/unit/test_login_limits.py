"""Login limits and web sessions, through :class:`Logins` on a real catalog, with a clock the tests move.

Addresses cannot be varied over loopback in the integration tests, nor can time pass quickly there: here
several addresses log in, limits are small, and hours go by in a line. Each failure counts a real argon2
check, so the limits are kept small.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.errors import TooManyAttempts, Unauthorized
from snapkeep.model.filters import AuditFilter
from snapkeep.model.paging import Window
from snapkeep.model.principal import SYSTEM, Role
from snapkeep.services.audit import Audit
from snapkeep.services.login_limits import LoginLimits
from snapkeep.services.logins import Logins
from snapkeep.services.users import Users

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = "the right password"
WRONG = "a wrong password"
IDLE, LIFETIME = timedelta(minutes=30), timedelta(hours=12)
LIMITS = LoginLimits(per_user=3, per_address=5, window=timedelta(minutes=10))
A, B = "192.0.2.1", "198.51.100.7"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class World:
    def __init__(self, db: Database) -> None:
        self.clock = Clock()
        self.audit = Audit(db, self.clock)
        self.users = Users(db, self.audit, self.clock)
        self.logins = Logins(db, self.audit, self.clock, IDLE, LIFETIME, LIMITS)
        for name in ("alice", "bob"):
            self.users.create(SYSTEM, name, PASSWORD, Role.OPERATOR)

    def refusals(self, name: str) -> list[str]:
        where = AuditFilter(target=f"user:{name}", action="login", outcome="refused")
        return [e.detail for e in self.audit.page(SYSTEM, Window(100), where).items]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    yield World(Database(engine))
    engine.dispose()


def fail(world: World, name: str, address: str, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Unauthorized):
            world.logins.login(name, WRONG, address)
        world.clock.move(minutes=1)


def test_a_user_is_limited_from_every_address_but_others_are_not(world: World) -> None:
    fail(world, "alice", A, times=3)  # at T0, T0+1, T0+2
    for address in (A, B):  # the right password, from anywhere: refused
        with pytest.raises(TooManyAttempts) as refused:
            world.logins.login("alice", PASSWORD, address)
    assert refused.value.details["retry_after"] == 7 * 60  # the oldest of the three leaves the window at T0+10
    assert sum("too many failed logins" in d for d in world.refusals("alice")) == 1  # one entry per lockout
    _secret, visit = world.logins.login("bob", PASSWORD, B)  # another user, from another address
    assert visit.who.name == "bob"
    world.clock.move(minutes=7)  # the window has slid past the first failure
    _secret, visit = world.logins.login("alice", PASSWORD, A)
    assert visit.who.name == "alice"


def test_an_address_is_limited_for_every_name(world: World) -> None:
    for name in ("carol", "dave", "erin", "frank", "alice"):  # five names, known or not, from one address
        fail(world, name, A)
    with pytest.raises(TooManyAttempts):
        world.logins.login("bob", PASSWORD, A)  # bob never failed, but his address did
    assert any("too many failed logins; from 192.0.2.1" in d for d in world.refusals("bob"))
    world.logins.login("bob", PASSWORD, B)  # from elsewhere he may
    world.logins.login("alice", PASSWORD, B)  # alice failed once only: her own limit is far
    world.clock.move(minutes=10)
    world.logins.login("bob", PASSWORD, A)  # the address's failures have left the window


def test_an_ipv6_address_counts_with_its_64_and_a_mapped_ipv4_as_itself(world: World) -> None:
    """One host picks any address of its /64: five names from five addresses of one /64 use up its limit."""
    for n, name in enumerate(("carol", "dave", "erin", "frank", "gina"), start=1):
        fail(world, name, f"2001:db8:1:2::{n:x}")
    with pytest.raises(TooManyAttempts):
        world.logins.login("bob", PASSWORD, "2001:db8:1:2:ffff::9")
    world.logins.login("bob", PASSWORD, "2001:db8:1:3::1")  # the next /64 is someone else
    for name in ("carol", "dave", "erin", "frank", "gina"):
        fail(world, name, "::ffff:192.0.2.1")  # IPv4 mapped into IPv6: the IPv4 address A
    with pytest.raises(TooManyAttempts):
        world.logins.login("bob", PASSWORD, A)


def test_a_flood_of_refused_logins_writes_one_audit_entry_per_lockout(world: World) -> None:
    fail(world, "alice", A, times=3)
    for _ in range(50):
        with pytest.raises(TooManyAttempts):
            world.logins.login("alice", WRONG, A)
    assert sum("too many failed logins" in d for d in world.refusals("alice")) == 1
    world.clock.move(minutes=10)  # the lockout is over; alice fails three times more: a second lockout
    fail(world, "alice", A, times=3)
    with pytest.raises(TooManyAttempts):
        world.logins.login("alice", PASSWORD, A)
    assert sum("too many failed logins" in d for d in world.refusals("alice")) == 2


def test_a_success_clears_the_users_failures_not_the_addresses(world: World) -> None:
    fail(world, "alice", A, times=2)
    world.logins.login("alice", PASSWORD, A)
    fail(world, "alice", A, times=2)  # two more: four in the window, but two since her success
    world.logins.login("alice", PASSWORD, A)
    fail(world, "carol", A)  # the address now has five failures (alice's four and this one)
    with pytest.raises(TooManyAttempts):
        world.logins.login("bob", PASSWORD, A)


def test_an_idle_session_ends_and_a_busy_one_ends_at_its_lifetime(world: World) -> None:
    secret, _visit = world.logins.login("alice", PASSWORD, A)
    world.clock.move(minutes=29)
    assert world.logins.visit(secret).who.name == "alice"  # a request moves the idle deadline on
    world.clock.move(minutes=29)
    assert world.logins.visit(secret).who.name == "alice"
    world.clock.move(minutes=30)  # 30 minutes without a request
    with pytest.raises(Unauthorized):
        world.logins.visit(secret)
    busy, _visit = world.logins.login("alice", PASSWORD, A)
    started = world.clock.now
    while world.clock.now < started + LIFETIME - timedelta(minutes=20):
        world.clock.move(minutes=20)
        assert world.logins.visit(busy).who.name == "alice"
    world.clock.move(minutes=20)  # past its lifetime, however busy
    with pytest.raises(Unauthorized):
        world.logins.visit(busy)


def test_a_changed_or_removed_user_and_a_logout_end_sessions(world: World) -> None:
    alice, _visit = world.logins.login("alice", PASSWORD, A)
    bob, _visit = world.logins.login("bob", PASSWORD, B)
    bob_again, _visit = world.logins.login("bob", PASSWORD, A)
    world.users.update(SYSTEM, "alice", password=PASSWORD + "!")
    with pytest.raises(Unauthorized):
        world.logins.visit(alice)
    assert world.logins.visit(bob).who.name == "bob"  # another user's sessions go on
    alice, _visit = world.logins.login("alice", PASSWORD + "!", A)
    world.users.update(SYSTEM, "alice", role=Role.VIEWER)
    with pytest.raises(Unauthorized):
        world.logins.visit(alice)
    world.logins.logout(bob)
    with pytest.raises(Unauthorized):
        world.logins.visit(bob)
    assert world.logins.visit(bob_again).who.name == "bob"  # logging out ends that session only
    world.users.delete(SYSTEM, "bob")
    with pytest.raises(Unauthorized):
        world.logins.visit(bob_again)
    with pytest.raises(Unauthorized):
        world.logins.login("bob", PASSWORD, A)
