"""Which user libvirt runs QEMU as, and whether that user can reach a directory (issue 6, defect 10)."""

from __future__ import annotations

import os
import pwd
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.hypervisor.qemu_access import first_blocked, qemu_user, unreachable_reason
from tests.conftest import require


def conf(tmp_path: Path, text: str) -> str:
    path = tmp_path / "qemu.conf"
    path.write_text(text)
    return str(path)


def test_user_and_group_come_from_qemu_conf(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    user = qemu_user(conf(tmp_path, '#user = "root"\nuser = "nobody"  # who\ngroup = "+12345"\n'))
    assert user is not None and (user.name, user.uid, user.gid) == ("nobody", nobody.pw_uid, 12345)
    assert 12345 in user.groups
    assert qemu_user(conf(tmp_path, f'user = "+{nobody.pw_uid}"\n')) is not None


def test_root_or_unknown_user_means_nothing_to_check(tmp_path: Path) -> None:
    assert qemu_user(conf(tmp_path, 'user = "+0"\n')) is None
    assert qemu_user(conf(tmp_path, 'user = "root"\n')) is None
    assert qemu_user(conf(tmp_path, 'user = "no-such-user-here"\n')) is None


def test_default_is_debians_libvirt_qemu(tmp_path: Path) -> None:
    require(_exists("libvirt-qemu"), "the libvirt-qemu user (libvirt-daemon-system) is not installed")
    user = qemu_user(conf(tmp_path, "# nothing set\n"))
    assert user is not None and user.name == "libvirt-qemu"


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture
def private_dir() -> Iterator[str]:
    """A directory of mode 0700, as ``mktemp -d`` makes, with a pool-like tree inside."""
    require(os.geteuid() == 0, "checking as another user needs root")
    path = tempfile.mkdtemp(prefix="snapkeep-private-")
    os.makedirs(os.path.join(path, "pool", "datasets"), mode=0o755)
    yield path
    os.chmod(path, 0o700)
    for sub in ("pool/datasets", "pool"):
        os.rmdir(os.path.join(path, sub))
    os.rmdir(path)


def test_the_first_directory_the_user_cannot_enter_is_named(private_dir: str, tmp_path: Path) -> None:
    user = qemu_user(conf(tmp_path, 'user = "nobody"\n'))
    assert user is not None
    datasets = os.path.join(private_dir, "pool", "datasets")
    assert first_blocked(datasets, user) == private_dir
    reason = unreachable_reason(datasets, conf(tmp_path, 'user = "nobody"\n'))
    assert reason is not None and private_dir in reason and f"chmod o+x {private_dir}" in reason
    assert "0700" in reason and "'nobody'" in reason

    os.chmod(private_dir, 0o711)  # search permission only is enough
    assert first_blocked(datasets, user) is None
    assert unreachable_reason(datasets, conf(tmp_path, 'user = "nobody"\n')) is None
    os.chmod(os.path.join(private_dir, "pool", "datasets"), 0o700)
    assert first_blocked(datasets, user) == datasets
    os.chmod(os.path.join(private_dir, "pool", "datasets"), 0o755)
