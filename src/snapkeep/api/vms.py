"""``/vms``: virtual machines (create, list, show, power, clone, delete)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Query, status

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.jobs import MAX_WAIT, job_response
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.schemas import CloneRequest, JobPublic, StopRequest, VmCreate, VmPublic
from snapkeep.model.units import parse_size

router = APIRouter(prefix="/api/v1/vms", tags=["vms"])
Wait = Query(0.0, ge=0, le=MAX_WAIT, description="seconds to wait for the job before answering")
VMS = Listing("vms", (str, str))


@router.get("", response_model=list[VmPublic], responses=PAGED)
def list_vms(
    svc: Svc,
    who: Caller,
    pages: Paged,
    tenant: str | None = Query(None, max_length=4096, description="owned by this tenant"),
) -> Sequence[VmPublic]:
    """By name, a page at a time."""
    page = svc.vms.page(pages.window(VMS), tenant, who=who)
    return pages.send(VMS, page, lambda vm: VmPublic.of(vm, who.is_system_admin))


@router.post("", response_model=VmPublic, status_code=status.HTTP_201_CREATED)
def create_vm(svc: Svc, who: Caller, body: VmCreate) -> VmPublic:
    """Booting a host file as kernel or initrd hands it to the guest: only admins may name one."""
    vm = svc.vms.create(
        body.name,
        vcpus=body.vcpus,
        memory_mib=parse_size(body.memory) >> 20,
        disk_sizes=[parse_size(d) for d in body.disks],
        kernel=body.kernel,
        initrd=body.initrd,
        cmdline=body.cmdline,
        nics=body.nics,
        description=body.description,
        quiesce_policy=body.quiesce_policy,
        agent_timeout=body.agent_timeout,
        who=who,
        tenant=body.tenant,
        networks=body.networks,
        tags=body.tags,
    )
    return VmPublic.of(vm, who.is_system_admin)


@router.get("/{ref}", response_model=VmPublic)
def get_vm(svc: Svc, who: Caller, ref: str) -> VmPublic:
    """The VM with its state from libvirt and whether its guest agent answers now."""
    return VmPublic.of(svc.vms.get(ref, probe_agent=True, who=who), who.is_system_admin)


@router.post("/{ref}/start", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def start_vm(svc: Svc, who: Caller, ref: str, wait: float = Wait) -> JobPublic:
    return job_response(svc, svc.vms.submit_start(ref, who=who), wait)


@router.post("/{ref}/stop", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def stop_vm(svc: Svc, who: Caller, ref: str, body: StopRequest, wait: float = Wait) -> JobPublic:
    return job_response(svc, svc.vms.submit_stop(ref, body.force, body.timeout, who=who), wait)


@router.post("/{ref}/clone", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def clone_vm(svc: Svc, who: Caller, ref: str, body: CloneRequest, wait: float = Wait) -> JobPublic:
    return job_response(svc, svc.clones.submit_clone(ref, body.name, body.preserve_macs, who=who), wait)


@router.delete("/{ref}", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def delete_vm(svc: Svc, who: Caller, ref: str, force: bool = False, wait: float = Wait) -> JobPublic:
    return job_response(svc, svc.vms.submit_delete(ref, svc.snapshots, force, who=who), wait)
