"""``snapkeep serve``: open the pool, build the services, settle crashes, then serve beside the scheduler."""

from __future__ import annotations

import logging
import os
import resource
import socket

import uvicorn

from snapkeep.api.app import create_app
from snapkeep.api.one_service import only_service
from snapkeep.catalog.db import Database
from snapkeep.config import Settings
from snapkeep.errors import PoolUnreachable, SnapkeepError, UnsupportedFilesystem, WrongPool
from snapkeep.scheduler import Scheduler, standard_tasks
from snapkeep.services.catalog_rebuild import check_not_lost
from snapkeep.services.container import Services, open_catalog
from snapkeep.services.pool_binding import bind_to_pool, check_pool_binding, is_new_installation
from snapkeep.storage.detect import choose_driver, filesystem_magic
from snapkeep.storage.loopfs import is_mountpoint, make_image_whole, mount_loop, unmount
from snapkeep.storage.pool import Pool

log = logging.getLogger("snapkeep")


def mount_loop_pool_if_needed(settings: Settings, create_loop_pool: bool, may_make: bool, rebuild: bool) -> bool:
    """With ``create_loop_pool``, keep the pool in a loop-mounted btrfs image in the data directory: its image
    if there is one (an image mounted already is kept), else a new one if the data directory's filesystem
    cannot hold a pool, made only if ``may_make`` (a new installation); else its absence is refused, having
    made nothing. True if it mounted one now."""
    if not create_loop_pool or settings.pool_dir is not None:
        return False  # the operator's pool directory: checked as it is, then opened (or refused) by Pool.open
    image = os.path.join(settings.data_dir, "pool.img")
    if is_mountpoint(settings.pool_path):
        return False
    if not os.path.exists(image):
        try:
            choose_driver(settings.data_dir, settings.allow_slow_copy)
            return False  # the pool can be a folder of the data directory
        except UnsupportedFilesystem:
            pass
        if not may_make:
            wanted = "the catalog is to be rebuilt from" if rebuild else "the catalog describes"
            raise WrongPool(
                f"the loop pool's image {image} is missing, and with it the pool {wanted}: nothing was made; put "
                "the image back" + ("" if rebuild else ", or start with a new catalog"),
                pool=settings.pool_path,
            )
        make_image_whole(image, settings.pool_image_size, "btrfs")
        log.warning(
            "the data directory's filesystem (0x%x) cannot hold a pool: made a sparse btrfs image %s (%s)",
            filesystem_magic(settings.data_dir),
            image,
            settings.pool_image_size,
        )
    mount_loop(image, settings.pool_path)
    log.warning("the pool is the loop-mounted btrfs image %s, at %s", image, settings.pool_path)
    return True


def listening_socket(host: str, port: int, stall: float) -> socket.socket:
    """The socket to serve on, made here rather than by uvicorn so that every connection accepted on it
    inherits ``TCP_USER_TIMEOUT``: the kernel drops a connection whose data the client leaves unread (a
    zero window) or unacknowledged for ``stall`` seconds. A download closed for stalling
    (``ui/downloads.py``) otherwise left its connection open with ~4 MB queued in the kernel for as long as
    the client cared to keep it, and a client could pile such connections up."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)  # bound as uvicorn binds (no
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # IPV6_V6ONLY: "::" takes IPv4 clients too)
    try:
        sock.bind((host, port))
    except OSError as exc:  # as uvicorn says it, and exits
        sock.close()
        log.error("error while attempting to bind on address (%s, %d): %s", host, port, exc.strerror or exc)
        raise SystemExit(1) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(stall * 1000))
    return sock


DESCRIPTORS = 65536


def more_descriptors(wanted: int = DESCRIPTORS) -> int:
    """Raise the soft limit on open descriptors towards ``wanted`` (within the hard limit); the new soft
    limit. The usual 1024 is too few for a service whose folder downloads hold two descriptors per folder
    level (up to ``tarstream.MAX_DEPTH``) while they are read: one deep download must not make every other
    request fail with "Too many open files"."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def settle_catalog(services: Services, rebuild: bool) -> None:
    """With ``rebuild``, fill the empty catalog from the pool (after it was lost) and log what the pool
    held that could not be placed; without, finish a rebuild a crash cut short, else refuse an empty catalog
    over a pool that holds snapshots."""
    summary = services.catalog_rebuild.run() if rebuild else services.catalog_rebuild.finish()
    if summary is None:  # nothing to rebuild, nor to finish
        check_not_lost(services.db, services.pool)
        return
    counts = {key: value for key, value in summary.items() if not isinstance(value, list)}
    log.info("catalog rebuilt from the pool: %s", counts)
    for key, items in summary.items():
        if isinstance(items, list) and items:
            log.warning("catalog rebuild, %s: %s", key.replace("_", " "), ", ".join(items))


def serve(settings: Settings, create_loop_pool: bool = False, rebuild_catalog: bool = False) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("open descriptors allowed: %d", more_descriptors())
    os.makedirs(settings.data_dir, mode=0o755, exist_ok=True)
    with only_service(settings.data_dir, "data directory"):
        db = open_catalog(settings)
        try:
            _open_pool_and_serve(settings, db, create_loop_pool, rebuild_catalog)
        finally:
            db.engine.dispose()  # again after the services closed it: harmless


def _open_pool_and_serve(settings: Settings, db: Database, create_loop_pool: bool, rebuild_catalog: bool) -> None:
    """Check that the pool directory holds the catalog's pool before anything is made there (the pool
    directory may be an empty folder beneath an unmounted disk), then lock, check again, open and serve it."""
    new = is_new_installation(db) and not rebuild_catalog
    mounted = mount_loop_pool_if_needed(settings, create_loop_pool, may_make=new, rebuild=rebuild_catalog)
    try:
        check_pool_binding(db, settings.pool_path, rebuild=rebuild_catalog)
        os.makedirs(settings.pool_path, mode=0o755, exist_ok=True)
        choose_driver(settings.pool_path, settings.allow_slow_copy)  # refused before the lock file is made there
        # the pool's lock on the pool's own filesystem, taken before the pool is opened: opening it mounts
        # volumes a restore left unmounted (one another service might be restoring right now)
        with only_service(settings.pool_path, "pool"):
            check_pool_binding(db, settings.pool_path, rebuild=rebuild_catalog)  # what is there now, locked
            pool = Pool.open(
                settings.pool_path, settings.allow_slow_copy, settings.size_limits, settings.expedite_freeze
            )
            _serve(settings, pool, db, rebuild_catalog)
    except WrongPool:
        if mounted:  # the loop pool this start mounted is not the catalog's
            _unmount_quietly(settings.pool_path)
        raise


def _unmount_quietly(mountpoint: str) -> None:
    """Unmount the loop pool a refused start mounted; a failure is logged, the refusal is what is reported."""
    try:
        unmount(mountpoint)
    except SnapkeepError as exc:
        log.warning("could not unmount the loop pool at %s again: %s", mountpoint, exc)


def _serve(settings: Settings, pool: Pool, db: Database, rebuild_catalog: bool) -> None:
    if not pool.limits_enforced:
        log.warning("limits are not enforced on this pool (%s): %s", pool.root, pool.limits_problem)
    services = Services.build(settings, pool, db=db)
    try:
        settle_catalog(services, rebuild_catalog)
        # once settled: a catalog refused as lost stays free to be pointed at the right pool (a rebuild binds
        # the catalog with its rows)
        bind_to_pool(services.db, pool)
    except BaseException:
        services.close()
        raise
    services.tokens.ensure_admin_file(settings.token_file)
    first_admin = services.users.ensure_first_admin(settings.admin_password_file)
    if first_admin is not None:
        log.info("made the web UI's first user, %s; its password is in %s", first_admin, settings.admin_password_file)
    report = services.reconcile()
    log.info("pool %s (%s); reconciled: %s", pool.root, pool.driver.name, report)
    if settings.install_profiles and services.profiles.install():
        log.info("installed the snapshot profiles; System Snapshots is assigned to the system")
    try:
        services.vms.check_pool_reachable()
    except PoolUnreachable as exc:
        log.warning("VMs cannot be created or started until this is fixed: %s", exc.message)
    stop_scheduler = Scheduler(standard_tasks(services), services.clock).start()
    host, port = settings.host_port
    try:
        config = uvicorn.Config(
            create_app(services),
            host=host,
            port=port,
            log_level="warning",
            ssl_certfile=settings.tls_cert,
            ssl_keyfile=settings.tls_key,
            forwarded_allow_ips=settings.trusted_proxies,  # uvicorn's default believes any local client
        )
        server = uvicorn.Server(config)
        server.run(sockets=[listening_socket(host, port, settings.download_stall_seconds)])
        if not server.started:
            raise SystemExit(3)  # as uvicorn.run: the application did not start
    finally:
        stop_scheduler()
        services.close()
