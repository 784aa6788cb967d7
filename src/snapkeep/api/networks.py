"""``/networks``: virtual network definitions (realised on the host when a VM on one starts)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Query, Response, status

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.schemas import NetworkCreate, NetworkPublic, NetworkUpdate

router = APIRouter(prefix="/api/v1/networks", tags=["networks"])
NETWORKS = Listing("networks", (str, str))


@router.get("", response_model=list[NetworkPublic], responses=PAGED)
def list_networks(
    svc: Svc,
    who: Caller,
    pages: Paged,
    tenant: str | None = Query(None, max_length=4096, description="owned by this tenant"),
) -> Sequence[NetworkPublic]:
    """By name, a page at a time."""
    return pages.send(NETWORKS, svc.networks.page(who, pages.window(NETWORKS), tenant), NetworkPublic.of)


@router.post("", response_model=NetworkPublic, status_code=status.HTTP_201_CREATED)
def create_network(svc: Svc, who: Caller, body: NetworkCreate) -> NetworkPublic:
    network = svc.networks.create(
        who, body.name, body.cidr, dhcp=body.dhcp, description=body.description, tenant=body.tenant
    )
    return NetworkPublic.of(network)


@router.get("/{ref}", response_model=NetworkPublic)
def get_network(svc: Svc, who: Caller, ref: str) -> NetworkPublic:
    return NetworkPublic.of(svc.networks.get(who, ref))


@router.patch("/{ref}", response_model=NetworkPublic)
def update_network(svc: Svc, who: Caller, ref: str, body: NetworkUpdate) -> NetworkPublic:
    network = svc.networks.update(
        who, ref, name=body.name, cidr=body.cidr, dhcp=body.dhcp, description=body.description
    )
    return NetworkPublic.of(network)


@router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_network(svc: Svc, who: Caller, ref: str) -> Response:
    """Refused (``network_in_use``) while a VM's NIC is on it."""
    svc.networks.delete(who, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
