"""Can the QEMU processes that libvirt starts reach a directory of VM disks?

libvirt runs QEMU as an unprivileged user (``user``/``group`` in /etc/libvirt/qemu.conf; Debian's default is
``libvirt-qemu``). It hands each disk file to that user, but not the directories above it: a pool under a
directory that user cannot enter (mode 0700, as ``mktemp -d`` makes) lets a VM be defined and then fail to
start with QEMU's "Could not open ...". The check runs a shell as that user (its uid, group and supplementary
groups, as libvirt sets them), so modes, ACLs and group memberships count exactly as they will for QEMU.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

QEMU_CONF = "/etc/libvirt/qemu.conf"
DEFAULT_USER = "libvirt-qemu"  # Debian's build-time defaults, used when qemu.conf does not set them
DEFAULT_GROUP = "libvirt-qemu"
_SETTING = re.compile(r'^\s*(user|group)\s*=\s*"([^"]*)"\s*(?:#.*)?$', re.MULTILINE)
# Prints the first directory (of the arguments, from / down) the user cannot enter.
_FIRST_BLOCKED = 'for d; do [ -x "$d" ] || { printf "%s" "$d"; exit 0; }; done'


@dataclass(frozen=True)
class QemuUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def _user(spec: str) -> pwd.struct_passwd | None:
    """A qemu.conf user: a name, ``+N`` for uid N, or a bare number (a name first, then a uid)."""
    try:
        return pwd.getpwuid(int(spec[1:])) if spec.startswith("+") else pwd.getpwnam(spec)
    except (KeyError, ValueError):
        pass
    try:
        return pwd.getpwuid(int(spec))
    except (KeyError, ValueError):
        return None


def _group(spec: str) -> int | None:
    try:
        return int(spec[1:]) if spec.startswith("+") else grp.getgrnam(spec).gr_gid
    except (KeyError, ValueError):
        pass
    try:
        return int(spec)
    except ValueError:
        return None


def qemu_user(conf_path: str = QEMU_CONF) -> QemuUser | None:
    """The user libvirt runs QEMU as; ``None`` when that is root (it reaches everything) or unknown (no
    libvirt configuration and no ``libvirt-qemu`` user: nothing to check against)."""
    try:
        with open(conf_path) as f:
            settings = dict(_SETTING.findall(f.read()))
    except FileNotFoundError:
        settings = {}
    user = _user(settings.get("user", DEFAULT_USER))
    if user is None or user.pw_uid == 0:
        return None
    gid = _group(settings["group"]) if "group" in settings else _group(DEFAULT_GROUP)
    gid = user.pw_gid if gid is None else gid
    return QemuUser(user.pw_name, user.pw_uid, gid, tuple(os.getgrouplist(user.pw_name, gid)))


def first_blocked(path: str, user: QemuUser) -> str | None:
    """The first directory on the way to ``path`` (``path`` included) that ``user`` cannot enter, or
    ``None`` when it can reach ``path``. Needs root (it switches to ``user`` in a child process)."""
    path = os.path.abspath(path)
    parts = path.strip("/").split("/") if path != "/" else []
    chain = ["/", *("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))]
    done = subprocess.run(
        ["/bin/sh", "-c", _FIRST_BLOCKED, "sh", *chain],
        user=user.uid,
        group=user.gid,
        extra_groups=list(user.groups),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout or None


def unreachable_reason(path: str, conf_path: str = QEMU_CONF) -> str | None:
    """Why QEMU could not open files under ``path``, with how to fix it; ``None`` when it can (or when it
    runs as root, or this process cannot switch users to find out)."""
    user = qemu_user(conf_path)
    if user is None:
        return None
    try:
        blocked = first_blocked(path, user)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not check whether %s can reach %s: %s", user.name, path, exc)
        return None
    if blocked is None:
        return None
    st = os.stat(blocked)
    return (
        f"QEMU runs as user {user.name!r} (libvirt's qemu.conf), which cannot enter {blocked} "
        f"(mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid}), so it could not open the VM disks under "
        f"{path}. Let it through, e.g. `chmod o+x {blocked}` or `setfacl -m u:{user.name}:x {blocked}`, "
        "or put the pool under a directory that user can enter"
    )
