"""``/vms``: virtual machines (create, list, show, power, clone, delete)."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from snapkeep.api.deps import Operator, Svc, Viewer
from snapkeep.api.jobs import MAX_WAIT, start_job
from snapkeep.api.schemas import CloneRequest, JobPublic, StopRequest, VmCreate, VmPublic
from snapkeep.model.principal import Role
from snapkeep.model.units import parse_size
from snapkeep.services.jobs import Progress

router = APIRouter(prefix="/api/v1/vms", tags=["vms"])
Wait = Query(0.0, ge=0, le=MAX_WAIT, description="seconds to wait for the job before answering")


@router.get("", response_model=list[VmPublic])
def list_vms(
    svc: Svc, _who: Viewer, tenant: str | None = Query(None, max_length=4096, description="owned by this tenant")
) -> list[VmPublic]:
    return [VmPublic.of(vm) for vm in svc.vms.listing(tenant)]


@router.post("", response_model=VmPublic, status_code=status.HTTP_201_CREATED)
def create_vm(svc: Svc, who: Operator, body: VmCreate) -> VmPublic:
    """Booting a host file as kernel or initrd hands it to the guest: only admins may name one."""
    if body.kernel is not None or body.initrd is not None:
        who.require(Role.ADMIN)
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
        actor=who.name,
        tenant=body.tenant,
        networks=body.networks,
        tags=body.tags,
    )
    return VmPublic.of(vm)


@router.get("/{ref}", response_model=VmPublic)
def get_vm(svc: Svc, _who: Viewer, ref: str) -> VmPublic:
    """The VM with its state from libvirt and whether its guest agent answers now."""
    return VmPublic.of(svc.vms.get(ref, probe_agent=True))


@router.post("/{ref}/start", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def start_vm(svc: Svc, who: Operator, ref: str, wait: float = Wait) -> JobPublic:
    vm = svc.vms.get(ref)

    def run(_progress: Progress) -> dict[str, object]:
        return {"state": svc.vms.start(vm.id, who.name).state}

    with svc.vms.claim_power(vm, "vm.start") as claim:
        return start_job(svc, "vm.start", {"vm": vm.name}, run, wait, claim=claim)


@router.post("/{ref}/stop", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def stop_vm(svc: Svc, who: Operator, ref: str, body: StopRequest, wait: float = Wait) -> JobPublic:
    vm = svc.vms.get(ref)

    def run(_progress: Progress) -> dict[str, object]:
        return {"state": svc.vms.stop(vm.id, body.force, body.timeout, who.name).state}

    with svc.vms.claim_power(vm, "vm.stop") as claim:
        return start_job(svc, "vm.stop", {"vm": vm.name, **body.model_dump()}, run, wait, claim=claim)


@router.post("/{ref}/clone", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def clone_vm(svc: Svc, who: Operator, ref: str, body: CloneRequest, wait: float = Wait) -> JobPublic:
    vm = svc.vms.get(ref)
    svc.clones.check_clone_name(vm, body.name)

    def run(_progress: Progress) -> dict[str, object]:
        clone = svc.clones.clone(vm.id, body.name, body.preserve_macs, who)
        return {"vm_id": clone.id, "vm": clone.name}

    with svc.clones.claim_clone(vm) as claim:
        return start_job(svc, "vm.clone", {"vm": vm.name, **body.model_dump()}, run, wait, claim=claim)


@router.delete("/{ref}", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def delete_vm(svc: Svc, who: Operator, ref: str, force: bool = False, wait: float = Wait) -> JobPublic:
    vm = svc.vms.get(ref)

    def run(_progress: Progress) -> dict[str, object]:
        svc.vms.delete(vm.id, svc.snapshots, force, who.name)
        return {"vm_id": vm.id}

    with svc.vms.claim_delete(vm, svc.snapshots) as claim:
        svc.vms.check_may_delete(svc.vms.get(vm.id), svc.snapshots, force, who.name)
        return start_job(svc, "vm.delete", {"vm": vm.name, "force": force}, run, wait, claim=claim)
