"""Build (once) and cache the test guest's kernel and initramfs from Debian packages.

Why from packages: the guest must be the same on every developer machine and in CI, and must not need a
network beyond the Debian mirror the host already uses. The kernel is Debian's cloud kernel
(`apt-get download`), the userland is busybox-static, and the guest agent is the host's own
``qemu-ga`` with the shared libraries ``ldd`` lists for it (same distribution, so they fit).

The result is cached under ``cache_dir`` with a manifest (``guest.json``). A cached build is reused
without calling apt as long as the inputs it was made from (the init script, the module list and the
host's ``qemu-ga``) are unchanged, so the fast path costs one hash of ``qemu-ga``. Files are written
aside and renamed into place, so an interrupted build leaves no half-made image behind. Images built
from earlier inputs are kept (each initramfs is named by its input hash): domains defined with their
paths must still boot.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from snapkeep.errors import GuestImageError

DEFAULT_CACHE_DIR = "/var/cache/snapkeep/testguest"
CMDLINE = "console=ttyS0 panic=-1 quiet"
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"

# Order matters: virtio_ring before virtio fails with unknown symbols. button + evdev give busybox's
# acpid the power button, so a libvirt ACPI shutdown reaches the guest.
MODULES = (
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
    "drivers/char/virtio_console.ko",
    "drivers/input/evdev.ko",
    "drivers/acpi/button.ko",
)

# PID 1 of the guest (busybox ash). It mounts the data disk /dev/vda at /data, keeps qemu-ga running on
# its virtio port (restarting it if it dies, so tests may kill it), appends an increasing counter to
# /data/counter every 50 ms (each line fsync'd; after a reboot it continues from the last value), and
# powers off cleanly on SIGUSR2, which both the ACPI power-button handler and /sbin/shutdown (what
# qemu-ga's guest-shutdown runs) send.
INIT_SCRIPT = r"""#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /run /tmp /data /var/run /var/log

say() { echo "snapkeep-testguest: $*"; }

K=/lib/modules/$(uname -r)/kernel
for m in @MODULES@; do
    insmod "$K/$m" || say "insmod $m failed"
done

n=0
while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do usleep 50000; n=$((n + 1)); done
DATA=0
if mount -t ext4 /dev/vda /data; then DATA=1; say "data disk mounted"; else say "no data disk"; fi

agent_port() {
    for p in /sys/class/virtio-ports/*; do
        if [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ]; then
            echo "/dev/${p##*/}"
            return 0
        fi
    done
    return 1
}
PORT=
n=0
while [ -z "$PORT" ] && [ $n -lt 30 ]; do PORT=$(agent_port) || usleep 100000; n=$((n + 1)); done

# pidof, not the pid file: a qemu-ga restarted while the filesystems are frozen writes its pid file only
# after the thaw.
agent_alive() { pidof qemu-ga >/dev/null; }
start_agent() {
    [ -n "$PORT" ] || return 0
    rm -f /run/qga.pid
    qemu-ga -m virtio-serial -p "$PORT" -d -t /run -f /run/qga.pid && say "guest agent started on $PORT"
}

writer() {
    trap - USR1 USR2 TERM
    last=$(tail -n 1 /data/counter 2>/dev/null | tr -cd 0-9)
    i=${last:-0}
    while :; do
        i=$((i + 1))
        echo "$i" >>/data/counter
        sync /data/counter
        # a second disk, if any, gets the same value in its first sector, right after: at any instant the
        # two disks differ by at most one step, which is how tests see that both were captured together
        [ -b /dev/vdb ] && printf '%-511s\n' "$i" | dd of=/dev/vdb bs=512 count=1 conv=fsync 2>/dev/null
        usleep 50000
    done
}

WRITER=
power_off() {
    say "powering off"
    [ -n "$WRITER" ] && kill "$WRITER" 2>/dev/null && wait "$WRITER" 2>/dev/null
    killall qemu-ga 2>/dev/null
    if [ $DATA = 1 ]; then
        fsfreeze --unfreeze /data 2>/dev/null
        sync
        umount /data || mount -o remount,ro /data
        say "data disk unmounted"
    fi
    sync
    poweroff -f
}
trap power_off USR1 USR2 TERM

acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid || say "acpid failed"
if [ $DATA = 1 ]; then
    writer &
    WRITER=$!
fi
start_agent
say "ready"
while :; do
    sleep 1 &
    wait $!
    agent_alive || start_agent
done
""".replace("@MODULES@", " ".join(MODULES))

# Both ask PID 1 for the clean power-off above.
POWER_OFF_SCRIPT = "#!/bin/sh\nkill -USR2 1\n"


@dataclass(frozen=True)
class GuestImage:
    """A built test guest: boot it with ``kernel``, ``initrd`` and ``cmdline`` and a raw ext4 data disk."""

    kernel: str
    initrd: str
    cmdline: str
    kernel_version: str
    key: str  # hash of the inputs the initramfs was built from


def _run(argv: list[str], cwd: str | None = None, stdin: bytes | None = None) -> bytes:
    """Run one build command; its stderr becomes the error message."""
    try:
        done = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, check=True)
    except subprocess.CalledProcessError as exc:
        msg = exc.stderr.decode(errors="replace").strip() or f"exit status {exc.returncode}"
        raise GuestImageError(f"{argv[0]} failed: {msg}", command=argv) from exc
    except FileNotFoundError as exc:
        raise GuestImageError(f"{argv[0]} is not installed (run scripts/setup)", command=argv) from exc
    return done.stdout


def qemu_ga_path() -> str:
    """The host's guest agent binary (Debian installs it in /usr/sbin)."""
    found = shutil.which("qemu-ga") or shutil.which("qemu-ga", path="/usr/sbin:/usr/bin")
    if not found:
        raise GuestImageError("qemu-ga is not installed (Debian package qemu-guest-agent; run scripts/setup)")
    return found


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _input_key(qemu_ga: str) -> str:
    h = hashlib.sha256()
    for part in (INIT_SCRIPT, POWER_OFF_SCRIPT, CMDLINE, _file_digest(qemu_ga)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _make_dir(path: str) -> None:
    """Directories QEMU reads from must be traversable by the libvirt-qemu user: 0755, never 0700."""
    os.makedirs(path, mode=0o755, exist_ok=True)
    os.chmod(path, 0o755)


def check_traversable(path: str) -> None:
    """Fail early, with the culprit named, when libvirt's QEMU user could not reach ``path``."""
    parent = os.path.dirname(os.path.abspath(path))
    while True:
        mode = os.stat(parent).st_mode
        if not mode & stat.S_IXOTH:
            raise GuestImageError(
                f"{parent} is not traversable by other users (mode {stat.filemode(mode)}); "
                "libvirt's QEMU runs as libvirt-qemu and could not open files below it: chmod 0755"
            )
        if parent == "/":
            return
        parent = os.path.dirname(parent)


def _apt_download(package: str, dest: str) -> str:
    """Download ``package``'s .deb into ``dest`` (reused when present); `apt-get update` only if needed."""
    existing = sorted(Path(dest).glob(f"{package}_*.deb"))
    if existing:
        return str(existing[-1])
    argv = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package]
    try:
        _run(argv, cwd=dest)
    except GuestImageError:
        _run(["apt-get", "update", "-q"])
        _run(argv, cwd=dest)
    found = sorted(Path(dest).glob(f"{package}_*.deb"))
    if not found:
        raise GuestImageError(f"apt-get download {package} left no .deb in {dest}")
    return str(found[-1])


def resolve_kernel_package() -> str:
    """The versioned cloud kernel package the meta package depends on (e.g. linux-image-6.1.0-56-cloud-amd64)."""

    def depends() -> str | None:
        out = _run(["apt-cache", "depends", KERNEL_META_PACKAGE]).decode()
        match = re.search(r"Depends:\s*(linux-image-\S+-cloud-amd64)", out)
        return match.group(1) if match else None

    try:
        name = depends()
    except GuestImageError:
        name = None
    if name is None:  # a fresh machine may have no package lists yet
        _run(["apt-get", "update", "-q"])
        name = depends()
    if name is None:
        raise GuestImageError(f"cannot resolve the kernel package behind {KERNEL_META_PACKAGE}")
    return name


def _shared_libraries(binary: str) -> list[str]:
    """The absolute paths of the libraries and dynamic loader ``ldd`` lists for ``binary``."""
    out = _run(["ldd", binary]).decode()
    return re.findall(r"(/\S+)\s+\(0x", out)


def _copy(src: str, root: str, dest: str, mode: int = 0o755) -> None:
    target = os.path.join(root, dest.lstrip("/"))
    _make_dir(os.path.dirname(target))
    shutil.copyfile(src, target)  # follows symlinks: the soname path gets the real library
    os.chmod(target, mode)


def _write(root: str, dest: str, text: str, mode: int = 0o755) -> None:
    target = os.path.join(root, dest.lstrip("/"))
    _make_dir(os.path.dirname(target))
    Path(target).write_text(text)
    os.chmod(target, mode)


def _populate_rootfs(root: str, kernel_tree: str, kernel_version: str, busybox_tree: str, qemu_ga: str) -> None:
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run", "tmp", "data", "etc/acpi"):
        _make_dir(os.path.join(root, d))
    _copy(os.path.join(busybox_tree, "bin/busybox"), root, "/bin/busybox")
    os.symlink("busybox", os.path.join(root, "bin/sh"))
    _write(root, "/init", INIT_SCRIPT)
    _write(root, "/sbin/shutdown", POWER_OFF_SCRIPT)
    _write(root, "/etc/acpi/PWRF/00000080", POWER_OFF_SCRIPT)
    _copy(qemu_ga, root, "/usr/sbin/qemu-ga")
    for lib in _shared_libraries(qemu_ga):
        _copy(lib, root, lib)
    modules = os.path.join("lib/modules", kernel_version, "kernel")
    for module in MODULES:
        _copy(os.path.join(kernel_tree, modules, module), root, os.path.join("/", modules, module), 0o644)


def _pack_initramfs(root: str, target: str) -> None:
    """cpio newc (owned by root) + gzip, written aside and renamed into place."""
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        names.append(rel)
        names.extend(os.path.join(rel, f) for f in sorted(filenames))
    archive = _run(
        ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0", "--null"],
        cwd=root,
        stdin="\0".join(names).encode() + b"\0",
    )
    tmp = f"{target}.tmp"
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(archive)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)


def _cached(cache_dir: str, key: str) -> GuestImage | None:
    try:
        data = json.loads(Path(cache_dir, "guest.json").read_text())
        image = GuestImage(**data)
    except (OSError, ValueError, TypeError):
        return None
    if image.key != key or not (os.path.isfile(image.kernel) and os.path.isfile(image.initrd)):
        return None
    return image


def build_test_guest(cache_dir: str = DEFAULT_CACHE_DIR, rebuild: bool = False) -> GuestImage:
    """Return the test guest, building it first if the cache lacks it or its inputs changed.

    Idempotent; the cached path costs a hash of ``qemu-ga``. Needs root only for `apt-get update` on a
    machine without package lists, and to write the default cache directory.
    """
    qemu_ga = qemu_ga_path()
    key = _input_key(qemu_ga)
    _make_dir(cache_dir)
    check_traversable(os.path.join(cache_dir, "guest.json"))
    if not rebuild and (image := _cached(cache_dir, key)) is not None:
        return image
    with open(os.path.join(cache_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same image right now
        if not rebuild and (image := _cached(cache_dir, key)) is not None:
            return image
        return _build(cache_dir, qemu_ga, key)


def _build(cache_dir: str, qemu_ga: str, key: str) -> GuestImage:
    debs = os.path.join(cache_dir, "debs")
    _make_dir(debs)
    kernel_deb = _apt_download(resolve_kernel_package(), debs)
    busybox_deb = _apt_download("busybox-static", debs)
    work = tempfile.mkdtemp(prefix="build-", dir=cache_dir)
    try:
        kernel_tree, busybox_tree, root = (os.path.join(work, d) for d in ("kernel", "busybox", "root"))
        _run(["dpkg-deb", "-x", kernel_deb, kernel_tree])
        _run(["dpkg-deb", "-x", busybox_deb, busybox_tree])
        vmlinuz = sorted(Path(kernel_tree, "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise GuestImageError(f"{kernel_deb} holds no boot/vmlinuz-*")
        kernel_version = vmlinuz[-1].name.removeprefix("vmlinuz-")
        _populate_rootfs(root, kernel_tree, kernel_version, busybox_tree, qemu_ga)

        kernel = os.path.join(cache_dir, f"vmlinuz-{kernel_version}")
        shutil.copyfile(vmlinuz[-1], f"{kernel}.tmp")
        os.chmod(f"{kernel}.tmp", 0o644)
        os.replace(f"{kernel}.tmp", kernel)
        initrd = os.path.join(cache_dir, f"initramfs-{key}.img")
        _pack_initramfs(root, initrd)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    image = GuestImage(kernel, initrd, CMDLINE, kernel_version, key)
    manifest = Path(cache_dir, "guest.json")
    Path(f"{manifest}.tmp").write_text(json.dumps(asdict(image), indent=2) + "\n")
    os.replace(f"{manifest}.tmp", manifest)
    return image
