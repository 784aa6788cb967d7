"""A guest handle (hypervisor/libvirt_host.py ``_LibvirtGuest``) whose libvirt connection died between its
lookup and the resume: the resume is made again on a fresh connection, so the guest is not left paused. The
real handles pause and resume a booted guest in tests/integration/test_hypervisor.py; a libvirtd that goes
away exactly inside the window cannot be arranged there, hence these stand-ins for the domain objects."""

from __future__ import annotations

import libvirt
import pytest

from snapkeep.errors import HypervisorUnavailable
from snapkeep.hypervisor.libvirt_host import LibvirtHost, _LibvirtGuest


def connection_closed() -> libvirt.libvirtError:
    error = libvirt.libvirtError("internal error: client socket is closed")
    error.err = (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC, "client socket is closed", 2, "", "", "", 0, 0)
    return error


class Domain:
    """A domain object that answers, or one whose connection is gone."""

    def __init__(self, dead: bool = False) -> None:
        self.dead = dead
        self.resumed = 0

    def resume(self) -> int:
        if self.dead:
            raise connection_closed()
        self.resumed += 1
        return 0


class Reconnecting(LibvirtHost):
    """Looks a domain up again on a new connection (here: a domain that answers)."""

    def __init__(self, fresh: Domain | None) -> None:
        super().__init__("test:///default")
        self.fresh = fresh

    def _domain(self, name: str) -> Domain:
        if self.fresh is None:
            raise HypervisorUnavailable("cannot connect to libvirt (stand-in)")
        return self.fresh


def test_a_resume_on_a_dead_connection_is_made_again_on_a_fresh_one() -> None:
    fresh = Domain()
    guest = _LibvirtGuest(Reconnecting(fresh), "g", Domain(dead=True))
    guest.resume()
    assert fresh.resumed == 1


def test_when_libvirtd_stays_away_the_resume_fails_for_the_service_to_retry() -> None:
    guest = _LibvirtGuest(Reconnecting(None), "g", Domain(dead=True))
    with pytest.raises(HypervisorUnavailable):
        guest.resume()
