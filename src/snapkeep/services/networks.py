"""Virtual networks: definitions owned by the system or a tenant, realised on the host only when needed.

A network is a catalog row until a VM that uses it starts: then :func:`realise_nics` makes its isolated
libvirt network exist (``Hypervisor.ensure_network``). Every network of the host counts for overlaps,
whoever owns it, since all are realised on the same host. A VM's NIC may name only a network of the VM's
own owner, so tenants stay apart. Deleting a network that a VM's NIC names is refused; otherwise its
libvirt network (if realised) goes first, then the row.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import NameClash, NetworkInUse, NotFound
from snapkeep.hypervisor import Hypervisor
from snapkeep.model.names import check_description
from snapkeep.model.network import NetworkDef, check_disjoint, libvirt_network_name, network_spec
from snapkeep.model.paging import Page, Window
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import Network
from snapkeep.model.vmconfig import NicConfig, VMConfig, new_mac
from snapkeep.services.audit import Audit


def definition(network: Network) -> NetworkDef:
    return NetworkDef(network.name, network.cidr, network.dhcp)


def network_nics(uow: Unit, owner_tenant_id: str | None, refs: Iterable[str]) -> tuple[NicConfig, ...]:
    """One NIC (with a new MAC) per network ``ref`` (an id, or a name within ``owner_tenant_id``): a VM's
    NIC may only be on a network of the VM's own owner (:class:`NotFound` otherwise, as for a missing one)."""
    nics = []
    for ref in refs:
        found = uow.networks.find(ref, owner_tenant_id)
        if found is None:
            try:
                found = uow.networks.get(ref)
            except NotFound:
                found = None
        if found is None or found.owner_tenant_id != owner_tenant_id:
            raise NotFound(f"the VM's owner has no network named or with id {ref!r}", network=ref)
        nics.append(NicConfig(mac=new_mac(), network_id=found.id))
    return tuple(nics)


def realise_nics(db: Database, host: Hypervisor, config: dict[str, Any]) -> None:
    """Make every snapkeep network the VM's NICs are on exist on the host (before the VM starts)."""
    ids = {nic.network_id for nic in VMConfig.model_validate(config).nics if nic.network_id is not None}
    if not ids:
        return
    with db.unit() as uow:
        networks = [uow.networks.get(network_id) for network_id in sorted(ids)]
    for network in networks:
        host.ensure_network(network_spec(network.id, definition(network)))


class Networks:
    def __init__(self, db: Database, host: Hypervisor, audit: Audit, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._host = host
        self._audit = audit
        self._clock = clock

    def _check_free(self, uow: Unit, candidate: NetworkDef, owner: str | None, own_id: str | None) -> None:
        found = uow.networks.find(candidate.name, owner)
        if found is not None and found.id != own_id:
            raise NameClash(f"a network named {candidate.name!r} already exists", name=candidate.name)
        seen = {n.id for n in uow.networks.list()}  # the caller's scope
        others = [n for n in uow.networks.every() if n.id != own_id]
        check_disjoint(
            candidate,
            [definition(n) for n in others if n.id in seen],
            [definition(n) for n in others if n.id not in seen],
        )

    def create(
        self,
        who: Principal,
        name: str,
        cidr: str,
        *,
        dhcp: bool = True,
        description: str = "",
        tenant: str | None = None,
        new_id: str | None = None,
    ) -> Network:
        """A network of the caller's own owner, or of ``tenant``; not realised until a VM uses it (``new_id``:
        a deleted network brought back by a rebuild keeps its id)."""
        who.require(Role.OPERATOR)
        candidate = NetworkDef(name, cidr, dhcp)
        check_description(description)
        with self._db.unit(who) as uow:
            owner = uow.tenants.owner(tenant)
            self._check_free(uow, candidate, owner, None)
            network = uow.networks.insert(
                Network(
                    id=new_id or str(uuid.uuid4()),
                    name=name,
                    description=description,
                    owner_tenant_id=owner,
                    cidr=cidr,
                    dhcp=dhcp,
                    created_at=self._clock(),
                )
            )
            self._audit.done(uow, who, "network.create", f"network:{name}", cidr, owner=owner)
            return network

    def get(self, who: Principal, ref: str) -> Network:
        with self._db.unit(who) as uow:
            return uow.networks.resolve(ref)

    def list(self, who: Principal, tenant: str | None = None) -> list[Network]:
        """Every network the caller sees; with ``tenant``, those that tenant owns itself."""
        with self._db.unit(who) as uow:
            return uow.networks.list(owned_by=uow.tenants.id_of(tenant))

    def page(self, who: Principal, window: Window, tenant: str | None = None) -> Page[Network]:
        """:meth:`list` a page at a time (by name, then id)."""
        with self._db.unit(who) as uow:
            return uow.networks.page(window, owned_by=uow.tenants.id_of(tenant))

    def realised(self, network: Network) -> bool:
        """Whether the host has the network's libvirt network now."""
        return self._host.network_exists(libvirt_network_name(network.id))

    def update(
        self,
        who: Principal,
        ref: str,
        *,
        name: str | None = None,
        description: str | None = None,
        cidr: str | None = None,
        dhcp: bool | None = None,
    ) -> Network:
        """Change what is given; a realised network is redefined on the host too (refused while running VMs
        are on it: ``NetworkInUse``), before the catalog commits."""
        who.require(Role.OPERATOR)
        if description is not None:
            check_description(description)
        with self._db.unit(who) as uow:
            network = uow.networks.resolve(ref)
            candidate = NetworkDef(
                name if name is not None else network.name,
                cidr if cidr is not None else network.cidr,
                dhcp if dhcp is not None else network.dhcp,
            )
            self._check_free(uow, candidate, network.owner_tenant_id, network.id)
            changes: dict[str, Any] = {"name": candidate.name, "cidr": candidate.cidr, "dhcp": candidate.dhcp}
            if description is not None:
                changes["description"] = description
            updated = uow.networks.update(network.id, **changes)
            host_side = (updated.cidr, updated.dhcp) != (network.cidr, network.dhcp)  # the name is not on the host
            if host_side and self.realised(network):
                self._host.ensure_network(network_spec(network.id, candidate))
            self._audit.done(uow, who, "network.update", f"network:{updated.name}", owner=updated.owner_tenant_id)
            return updated

    def users(self, uow: Unit, network_id: str) -> builtins.list[str]:
        """The names of the VMs (that the unit sees) with a NIC on the network."""
        return [
            vm.name
            for vm in uow.vms.list()
            if any(nic.get("network_id") == network_id for nic in vm.spec.get("nics", ()))
        ]

    def delete(self, who: Principal, ref: str) -> None:
        """Refused (``NetworkInUse``, nothing changed) while a VM's NIC names it; else removed from the host
        (if realised), then from the catalog."""
        who.require(Role.OPERATOR)
        with self._db.unit(who) as uow:
            network = uow.networks.resolve(ref)
            self.remove(uow, who, network)

    def remove(self, uow: Unit, who: Principal, network: Network) -> None:
        """Delete ``network`` within ``uow`` (the tenant delete calls it for each of the subtree's)."""
        users = self.users(uow, network.id)
        if users:
            raise NetworkInUse(
                f"network {network.name!r} is used by VM(s) {', '.join(sorted(users))}: delete them first",
                network=network.name,
                vms=sorted(users),
            )
        self._host.remove_network(libvirt_network_name(network.id))
        uow.networks.delete(network.id)
        self._audit.done(uow, who, "network.delete", f"network:{network.name}", owner=network.owner_tenant_id)

    def in_subtree(self, uow: Unit, tenant_ids: Sequence[str]) -> builtins.list[Network]:
        return [n for n in uow.networks.list() if n.owner_tenant_id in tenant_ids]
