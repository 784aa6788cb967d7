"""A pool QEMU cannot reach (issue 6, defect 10): under a directory of mode 0700, as ``mktemp -d`` makes.

Real libvirtd, a real pool on a loop filesystem and a real ``snapkeep serve``: the service warns at start-up
with how to fix it, ``vm create`` and ``vm start`` are refused with that advice (changing nothing) instead of
QEMU's "Could not open ...", and once the directory lets QEMU's user through, the VM is created and QEMU
really opens its disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from snapkeep.config import Settings
from snapkeep.errors import PoolUnreachable, SnapkeepError
from snapkeep.model.principal import SYSTEM
from snapkeep.model.vmspec import VMState
from snapkeep.services.container import Services
from snapkeep.storage.pool import Pool
from tests.conftest import Mounted, make_traversable_tmp, start_server, stop_server

pytestmark = pytest.mark.usefixtures("libvirtd")


@pytest.fixture
def private_dir(fs: Mounted) -> Iterator[str]:
    path = fs.new_dir("private")
    os.chmod(path, 0o700)
    yield path
    os.chmod(path, 0o755)


@pytest.fixture
def services(private_dir: str) -> Iterator[Services]:
    """Services (with the real libvirt host) on a pool under the private directory."""
    data_dir = make_traversable_tmp("snapkeep-access-")
    settings = Settings(data_dir=data_dir, pool_dir=os.path.join(private_dir, "pool"), sweep_interval=3600)
    svc = Services.build(settings, Pool.open(settings.pool_path))
    yield svc
    os.chmod(private_dir, 0o755)
    for vm in svc.vms.listing(who=SYSTEM):
        with contextlib.suppress(SnapkeepError):
            svc.vms.delete(vm.id, svc.snapshots, force=True, who=SYSTEM)
    svc.close()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_service_start_up_warns_with_the_fix(private_dir: str) -> None:
    data_dir = make_traversable_tmp("snapkeep-access-serve-")
    server = start_server(data_dir, os.path.join(private_dir, "served-pool"))
    try:
        with open(os.path.join(data_dir, "serve.log")) as f:
            log = f.read()
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)
    assert "WARNING" in log and f"cannot enter {private_dir}" in log and f"chmod o+x {private_dir}" in log


def libvirt_domains() -> set[str]:
    listed = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True, text=True
    )
    return {line for line in listed.stdout.splitlines() if line}


def test_vm_create_and_start_refused_until_qemu_can_reach_the_pool(services: Services, private_dir: str) -> None:
    name = f"skaccess-{uuid.uuid4().hex[:8]}"
    domains_before = libvirt_domains()
    with pytest.raises(PoolUnreachable) as refused:
        services.vms.create(name, vcpus=1, memory_mib=64, disk_sizes=[1 << 20], who=SYSTEM)
    assert f"cannot enter {private_dir}" in refused.value.message
    assert f"chmod o+x {private_dir}" in refused.value.message
    assert services.pool.list_datasets() == [] and services.vms.listing(who=SYSTEM) == []
    assert libvirt_domains() == domains_before, "a refused create left a libvirt domain"

    os.chmod(private_dir, 0o711)  # what the message advises: search permission for others
    vm = services.vms.create(name, vcpus=1, memory_mib=64, disk_sizes=[1 << 20], who=SYSTEM)
    os.chmod(private_dir, 0o700)  # someone tightens it again: start says why, before QEMU fails
    with pytest.raises(PoolUnreachable):
        services.vms.start(vm.id, who=SYSTEM)
    assert services.vms.get(vm.id, who=SYSTEM).state == VMState.SHUTOFF

    os.chmod(private_dir, 0o711)
    assert services.vms.start(vm.id, who=SYSTEM).state == VMState.RUNNING  # QEMU opened the disk (no OS: it idles)
    services.vms.stop(vm.id, force=True, who=SYSTEM)
