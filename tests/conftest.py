"""Shared fixtures: real btrfs and XFS filesystems on loop devices, pools on them, services, a server.

Missing capabilities (not root, no mkfs) skip locally and fail in CI (SNAPKEEP_REQUIRE_ALL=1).
Every fixture that mounts unmounts in teardown, and ``mount -o loop`` detaches the device with it.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from snapkeep.config import Settings
from snapkeep.model.principal import SYSTEM
from snapkeep.model.timespec import utcnow
from snapkeep.model.types import VM, Volume
from snapkeep.services.container import Services
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage import images, loopfs
from snapkeep.storage.pool import Pool

DRIVERS = ["btrfs", "xfs"]
# How long a starting ``snapkeep serve`` may take to answer: a bound on a wait, not a speed requirement
# (a start-up after a crash settles leftovers first, and 2 busy cores made 30 s too short).
SERVE_START_TIMEOUT = 180.0
_counter = itertools.count()


def require(condition: bool, why: str) -> None:
    """Skip when a capability is missing, except in CI where a skip would hide a broken install."""
    if condition:
        return
    if os.environ.get("SNAPKEEP_REQUIRE_ALL") == "1":
        pytest.fail(f"required capability missing in CI: {why}")
    pytest.skip(why)


_made_tmp: list[str] = []


def make_traversable_tmp(prefix: str) -> str:
    """A new folder in /tmp that others may traverse (QEMU runs as libvirt-qemu), removed when this
    process exits, so that a test or benchmark that forgets it (or fails first) leaves nothing behind."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    if not _made_tmp:
        atexit.register(_remove_made_tmp)
    _made_tmp.append(path)
    return path


def _remove_made_tmp() -> None:
    """Remove the folders :func:`make_traversable_tmp` made, except one with something still mounted
    beneath it: removing through a mount would delete another filesystem's files."""
    for path in _made_tmp:
        if os.path.isdir(path) and not images.mounts_beneath(path):
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class Mounted:
    fstype: str
    image: str
    mountpoint: str

    def new_dir(self, prefix: str) -> str:
        path = os.path.join(self.mountpoint, f"{prefix}-{next(_counter)}")
        os.makedirs(path, mode=0o755)
        return path


def mount_fs(fstype: str, size: str) -> Mounted:
    require(os.geteuid() == 0, "loop mounts need root")
    require(shutil.which("mkfs.btrfs" if fstype == "btrfs" else "mkfs.xfs") is not None, f"mkfs for {fstype}")
    workdir = make_traversable_tmp(f"snapkeep-{fstype}-")
    image = os.path.join(workdir, "fs.img")
    mountpoint = os.path.join(workdir, "mnt")
    loopfs.make_filesystem(image, size, fstype)
    loopfs.mount_loop(image, mountpoint)
    return Mounted(fstype, image, mountpoint)


def unmount_fs(mounted: Mounted) -> None:
    for attempt in range(20):
        try:
            loopfs.run(["umount", "--recursive", "--", mounted.mountpoint])  # with the volumes mounted in it
            break
        except Exception:
            if attempt == 19:
                raise
            time.sleep(0.25)
    shutil.rmtree(os.path.dirname(mounted.image), ignore_errors=True)


@pytest.fixture(scope="session", params=DRIVERS)
def fs(request: pytest.FixtureRequest) -> Iterator[Mounted]:
    """A 20 GiB (sparse) filesystem of each kind, shared by the whole session."""
    mounted = mount_fs(request.param, "20G")
    yield mounted
    unmount_fs(mounted)


@pytest.fixture
def small_fs(request: pytest.FixtureRequest) -> Iterator[Mounted]:
    """A small filesystem of the kind the test is parametrised with, to fill up on purpose."""
    fstype = getattr(request, "param", "btrfs")
    mounted = mount_fs(fstype, "320M")
    yield mounted
    unmount_fs(mounted)


@pytest.fixture
def pool(fs: Mounted) -> Pool:
    return Pool.open(fs.new_dir("pool"))


class TestClock:
    """The services' clock in tests: real UTC time plus an offset the test moves forward, so expiry and
    cooling-off are tested by moving time, never by waiting for it (however slow the machine)."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class SimulatedClock:
    """A clock that stands where a simulation puts it (``now``): what a scheduled take records as created
    is exactly the slot the simulation moved to (used by the simulated-year test and the scheduler bench)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def volume_restored_as_new(svc: Services, snap_id: str, name: str | None = None) -> Volume:
    """Restore a volume snapshot as a new volume, as the system, and return that volume."""
    made = svc.restores.as_new(snap_id, RestoreOptions(as_new=True, name=name), SYSTEM)
    return svc.volumes.get(str(made["volume_id"]), who=SYSTEM)


def vm_restored_as_new(svc: Services, snap_id: str, name: str | None = None, preserve_macs: bool = False) -> VM:
    """Restore a VM snapshot as a new VM, as the system, and return that VM."""
    made = svc.restores.as_new(snap_id, RestoreOptions(as_new=True, name=name, preserve_macs=preserve_macs), SYSTEM)
    return svc.vms.get(str(made["vm_id"]), who=SYSTEM)


def build_services(data_dir: str, pool: Pool, clock: Callable[[], datetime] = utcnow) -> Services:
    settings = Settings(data_dir=data_dir, pool_dir=pool.root, sweep_interval=3600)
    return Services.build(settings, pool, clock)


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def services(pool: Pool, tmp_path: Path, clock: TestClock, libvirtd: None) -> Iterator[Services]:
    """The services on a pool of each driver, with libvirtd running (what reads the host, a system
    snapshot for one, needs it, and a test must not depend on an earlier one having started it)."""
    svc = build_services(str(tmp_path / "data"), pool, clock)
    yield svc
    svc.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A real ``snapkeep serve`` process on a loopback port."""

    url: str
    token: str
    data_dir: str
    pool_dir: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    admin_password: str  # of the web UI's first user, ``admin``
    ca_file: str | None = None  # over HTTPS: the certificate to trust (the test's self-signed one)

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies this server's certificate with."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, verify=self.verify)

    def cli_env(self) -> dict[str, str]:
        trust = {"SSL_CERT_FILE": self.ca_file} if self.ca_file else {}
        return {**os.environ, "SNAPKEEP_URL": self.url, "SNAPKEEP_TOKEN": self.token, **trust}


def start_server(
    data_dir: str,
    pool_dir: str | None,
    port: int | None = None,
    tls: tuple[str, str] | None = None,
    options: tuple[str, ...] = (),
    **settings: str,
) -> Server:
    """``snapkeep serve`` on a loopback port; with ``tls`` (certificate, key) over HTTPS, the certificate
    trusted by the returned server's clients; ``options`` go on its command line (``--rebuild-catalog``);
    ``settings`` are more SNAPKEEP_* variables (``session_hours="1"``); ``pool_dir`` None: the data
    directory's ``pool``, as the service's default."""
    port = port or free_port()
    env = {
        **{key: value for key, value in os.environ.items() if key != "SNAPKEEP_POOL_DIR"},
        "SNAPKEEP_DATA_DIR": data_dir,
        **({"SNAPKEEP_POOL_DIR": pool_dir} if pool_dir is not None else {}),
        "SNAPKEEP_LISTEN": f"127.0.0.1:{port}",
        # no hourly system snapshots in the middle of other tests: the tests of profiles install their own
        "SNAPKEEP_INSTALL_PROFILES": "false",
        **{f"SNAPKEEP_{key.upper()}": value for key, value in settings.items()},
    }
    tls_args = ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else []
    verify = ssl.create_default_context(cafile=tls[0]) if tls else True
    log = open(os.path.join(data_dir, "serve.log"), "ab")  # noqa: SIM115 (kept open for the child)
    process = subprocess.Popen(
        [sys.executable, "-m", "snapkeep.cli.main", "serve", *tls_args, *options],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVE_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"snapkeep serve exited: {Path(data_dir, 'serve.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1, verify=verify).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(f"snapkeep serve did not answer within {SERVE_START_TIMEOUT:.0f} s")
    token = Path(data_dir, "admin.token").read_text().strip()
    password = Path(data_dir, "admin.password").read_text().strip()
    pool = pool_dir if pool_dir is not None else os.path.join(data_dir, "pool")
    return Server(url, token, data_dir, pool, process, env, password, tls[0] if tls else None)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def server(fs: Mounted, libvirtd: None) -> Iterator[Server]:
    """One running service per driver, shared by the HTTP and CLI tests (libvirtd running, as for
    :func:`services`)."""
    data_dir = make_traversable_tmp("snapkeep-data-")
    srv = start_server(data_dir, fs.new_dir("served-pool"))
    yield srv
    stop_server(srv)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def libvirtd() -> Iterator[None]:
    """libvirtd (and virtlogd) for the whole session; stopped at the end only if this session started them
    (by the pids it started), so modules never stop it under each other."""
    from snapkeep.hypervisor.daemons import ensure_libvirtd, stop_daemons

    require(os.geteuid() == 0, "libvirt's system connection needs root")
    for tool in ("libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "debugfs", "mkfs.ext4"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    daemons = ensure_libvirtd()
    yield
    stop_daemons(daemons)


# --- a real browser ----------------------------------------------------------------------------------------
# Debian's headless Chromium driven by Playwright (never a downloaded browser), one per test session (a
# launch costs 1-2 s); each test gets a fresh context (its own cookies). A failing test leaves a screenshot
# and the page's HTML in test-artifacts/.
CHROMIUM = "/usr/lib/chromium/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_FLAGS = [  # Chromium's own calls home are refused on a closed network; they only slow it down
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the test, so a fixture's teardown knows whether the test failed."""
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    require(os.path.exists(CHROMIUM), f"Debian's chromium is not installed ({CHROMIUM}); scripts/setup installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a browser context of its own; on failure its screenshot and HTML are kept."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
        try:
            tab.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
            (ARTIFACTS / f"{stem}.html").write_text(tab.content())
        except PlaywrightError as exc:  # the page may be what failed; the test's own error matters more
            (ARTIFACTS / f"{stem}.txt").write_text(f"no screenshot: {exc}")
    context.close()


def log_in(tab: Page, base_url: str, name: str, password: str) -> None:
    """Log in through the login form, as a person would."""
    tab.goto(f"{base_url}/login")
    tab.get_by_label("User name").fill(name)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Log in").click()


def self_signed(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (valid a day) and its key, as PEM files."""
    require(shutil.which("openssl") is not None, "openssl is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture
def https_server(fs: Mounted, tmp_path: Path) -> Iterator[Server]:
    """A ``snapkeep serve`` of its own over HTTPS, with a self-signed certificate its clients are given."""
    data_dir = make_traversable_tmp("snapkeep-tls-")
    server = start_server(data_dir, fs.new_dir("tls-pool"), tls=self_signed(tmp_path))
    try:
        yield server
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)
