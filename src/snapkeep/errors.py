"""The one error hierarchy of snapkeep.

Every error a user can see is a :class:`SnapkeepError` subclass whose class carries its stable
machine-readable ``code``, HTTP status, CLI exit code and whether retrying may help. They are mapped to
responses in exactly two places: the FastAPI exception handlers (``api/app.py``) and the CLI's ``main()``.
Adapters translate foreign exceptions (``OSError``, ``CalledProcessError``, ``IntegrityError``) into these
with ``raise ... from exc``; nothing above an adapter catches a foreign exception.

    SnapkeepError                      internal (500)
    ├── InvalidInput                   invalid_input (422)
    │   ├── InvalidName                invalid_name
    │   ├── InvalidPath                invalid_path
    │   ├── InvalidExpiry              invalid_expiry
    │   ├── InvalidSettings            invalid_settings
    │   ├── InvalidNetwork             invalid_network
    │   ├── InvalidTag                 invalid_tag
    │   ├── InvalidSchedule            invalid_schedule
    │   ├── MalformedBody              malformed_body (400)
    │   ├── BodyTooLarge               body_too_large (413)
    │   └── MethodNotAllowed           method_not_allowed (405)
    ├── NotFound                       not_found (404)
    │   └── VMNotFound                 vm_not_found
    ├── Conflict                       conflict (409)
    │   ├── NameClash                  name_clash
    │   ├── SnapshotLocked             snapshot_locked
    │   ├── SnapshotNotReady           snapshot_not_ready
    │   ├── Busy                       busy (retryable)
    │   ├── VMStateConflict            vm_state_conflict
    │   ├── NetworkOverlap             network_overlap
    │   ├── NetworkInUse               network_in_use
    │   ├── TenantOnline               tenant_online
    │   └── PoolUnreachable            pool_unreachable
    ├── Unauthorized                   unauthorized (401)
    │   └── LoginRequired              login_required
    ├── TooManyAttempts                too_many_attempts (429, retryable)
    ├── TooManyDownloads               too_many_downloads (429, retryable)
    ├── Forbidden                      forbidden (403)
    ├── PoolError                      pool_error (500)
    │   ├── UnsupportedFilesystem      unsupported_filesystem
    │   └── PoolFull                   pool_full (507)
    ├── QuiesceFailed                  quiesce_failed (409)
    │   └── AgentUnavailable           agent_unavailable (retryable)
    │       └── FreezeTimeout          freeze_timeout
    ├── Interrupted                    interrupted (500, retryable)
    ├── StateUnwritable                state_unwritable (500)
    │   └── DataDirFull                data_dir_full (507)
    ├── ServiceUnavailable             service_unavailable (503, retryable)
    │   ├── HypervisorUnavailable      hypervisor_unavailable
    │   └── SnapshotMountsFull         snapshot_mounts_full
    ├── HypervisorError                hypervisor_error (500)
    │   └── ShutdownTimeout            shutdown_timeout (504, retryable)
    ├── GuestImageError                guest_image_error (500)
    └── ScheduledTakeFailed            scheduled_take_failed (500, retryable)
"""

from __future__ import annotations

from typing import Any, ClassVar


class SnapkeepError(Exception):
    """Base of every error snapkeep reports; the class decides code, status and exit code."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        """The stable error body every interface shows."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "retryable": self.retryable,
                "details": self.details,
            }
        }


class InvalidInput(SnapkeepError):
    """The request is malformed or breaks a rule; nothing was changed."""

    code = "invalid_input"
    http_status = 422
    exit_code = 2


class InvalidName(InvalidInput):
    """A name contains `/`, `..`, NUL or control characters, or is empty or too long."""

    code = "invalid_name"


class InvalidPath(InvalidInput):
    """A file path is absolute, climbs out with `..`, or passes through a symlink."""

    code = "invalid_path"


class InvalidExpiry(InvalidInput):
    """An expiry or duration that cannot be read, or that is not in the future."""

    code = "invalid_expiry"


class InvalidSettings(InvalidInput):
    """Settings that are not a JSON document snapkeep can keep: too deep, too large, NaN or a non-text key."""

    code = "invalid_settings"


class InvalidNetwork(InvalidInput):
    """A network definition that cannot be realised: not a private IPv4 network address, or too small a prefix."""

    code = "invalid_network"


class InvalidTag(InvalidInput):
    """A tag that is not 1-64 letters, digits and . _ : = - (starting with a letter or digit), or one too many."""

    code = "invalid_tag"


class InvalidSchedule(InvalidInput):
    """A profile or period that cannot run as written (a field out of range, a day no calendar has, an unknown
    time zone, a "once" in the past); the message names the period and the field."""

    code = "invalid_schedule"


class MalformedBody(InvalidInput):
    """The request body is not strict JSON (RFC 8259: UTF-8, no lone surrogates, no NaN or Infinity)."""

    code = "malformed_body"
    http_status = 400


class BodyTooLarge(InvalidInput):
    """The request body is larger than the service accepts; nothing was read into the catalog."""

    code = "body_too_large"
    http_status = 413


class MethodNotAllowed(InvalidInput):
    """The path exists but not with this HTTP method; the ``Allow`` header lists the ones it has."""

    code = "method_not_allowed"
    http_status = 405


class NotFound(SnapkeepError):
    """No object with that id or name (in the caller's scope)."""

    code = "not_found"
    http_status = 404
    exit_code = 3

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        # The object exists but the caller's scope hides it: answered exactly like a missing one, and
        # audited as a refusal (never shown in the body).
        self.outside_scope = False

    def hiding(self) -> NotFound:
        """This error, marked as hiding an object outside the caller's scope."""
        self.outside_scope = True
        return self


class Conflict(SnapkeepError):
    """The request clashes with the current state."""

    code = "conflict"
    http_status = 409
    exit_code = 4


class NameClash(Conflict):
    """The name is taken by an object of the same kind and owner (or a file restore's destination is)."""

    code = "name_clash"


class SnapshotLocked(Conflict):
    """The snapshot is immutable and still locked; the refusal is audited."""

    code = "snapshot_locked"


class SnapshotNotReady(Conflict):
    """The snapshot is being created, failed, or is being deleted."""

    code = "snapshot_not_ready"


class Busy(Conflict):
    """Another operation is running on the same subject; it is named in the details. Try again after it."""

    code = "busy"
    retryable = True


class Unauthorized(SnapkeepError):
    """No token, or an unknown one."""

    code = "unauthorized"
    http_status = 401
    exit_code = 5


class LoginRequired(Unauthorized):
    """A web UI page without a live session; the browser is sent to the login page."""

    code = "login_required"


class TooManyAttempts(SnapkeepError):
    """Too many failed logins for this user or from this address lately; wait before trying again."""

    code = "too_many_attempts"
    http_status = 429
    retryable = True


class TooManyDownloads(SnapkeepError):
    """You have as many downloads open as one caller may (downloads_per_caller); finish one, then try again."""

    code = "too_many_downloads"
    http_status = 429
    retryable = True


class Forbidden(SnapkeepError):
    """The token's role or scope does not allow this."""

    code = "forbidden"
    http_status = 403
    exit_code = 5


class PoolError(SnapkeepError):
    """The storage pool failed an operation; nothing half-made is left."""

    code = "pool_error"


class UnsupportedFilesystem(PoolError):
    """The pool is on a filesystem without snapshots or reflinks."""

    code = "unsupported_filesystem"
    exit_code = 6


class PoolFull(PoolError):
    """The pool (or a volume's size limit) ran out of space, or would (a restore's estimate); undone or not started."""

    code = "pool_full"
    http_status = 507
    exit_code = 7


class QuiesceFailed(SnapkeepError):
    """Writers could not be paused in time and the policy was `require`."""

    code = "quiesce_failed"
    http_status = 409
    exit_code = 8


class Interrupted(SnapkeepError):
    """The service stopped while the job ran; the reconciler settled what it left. Try again."""

    code = "interrupted"
    retryable = True


class StateUnwritable(SnapkeepError):
    """The service could not write its own records in its data directory (an intent file); the operation was undone."""

    code = "state_unwritable"


class DataDirFull(StateUnwritable):
    """The service's data directory (not the pool) ran out of space for its own records; the operation was undone."""

    code = "data_dir_full"
    http_status = 507
    exit_code = 7


class ServiceUnavailable(SnapkeepError):
    """The service or its catalog cannot be reached; try again."""

    code = "service_unavailable"
    http_status = 503
    exit_code = 9
    retryable = True


class VMNotFound(NotFound):
    """No libvirt domain with that name."""

    code = "vm_not_found"


class VMStateConflict(Conflict):
    """The VM's power state does not allow this (it must be running, paused or off first)."""

    code = "vm_state_conflict"


class NetworkOverlap(Conflict):
    """The network's addresses overlap another network's, or a route of the host; the other is named."""

    code = "network_overlap"


class NetworkInUse(Conflict):
    """VMs use the network: running ones block a change on the host, any VM on it blocks deleting it."""

    code = "network_in_use"


class TenantOnline(Conflict):
    """A VM of the tenant (or of a tenant beneath it) runs: power the tenant off first, or force."""

    code = "tenant_online"


class PoolUnreachable(Conflict):
    """QEMU could not open VM disks in the pool: the user it runs as cannot enter a folder above the pool.

    The message names the directory and how to let that user through."""

    code = "pool_unreachable"


class CatalogInUse(Conflict):
    """A catalog rebuild was asked of a catalog that holds objects or snapshots: it only fills an empty one."""

    code = "catalog_in_use"


class CatalogLost(Conflict):
    """The catalog is empty (and was never rebuilt) while the pool holds snapshots: rebuild it, or use the right one."""

    code = "catalog_lost"


class WrongPool(Conflict):
    """The pool directory does not hold the catalog's pool (its disk not mounted, another disk, an older copy).

    Refused before anything is made there. Mount the right disk, or point the pool directory or the catalog
    where they belong."""

    code = "wrong_pool"


class AlreadyServing(Conflict):
    """Another snapkeep service uses this data directory or pool (its pid is in the details): stop it first."""

    code = "already_serving"


class AgentUnavailable(QuiesceFailed):
    """The guest agent is not configured, not connected, or did not answer in time; try again later."""

    code = "agent_unavailable"
    retryable = True


class FreezeTimeout(AgentUnavailable):
    """The guest agent did not confirm the filesystem freeze in time; the caller must still thaw."""

    code = "freeze_timeout"


class HypervisorUnavailable(ServiceUnavailable):
    """libvirtd cannot be reached (is it running?); try again."""

    code = "hypervisor_unavailable"


class SnapshotMountsFull(ServiceUnavailable):
    """As many snapshots are mounted to be read as the host allows at once (snapshot_mounts); try again later."""

    code = "snapshot_mounts_full"


class HypervisorError(SnapkeepError):
    """libvirt or QEMU refused or failed an operation; the message carries libvirt's reason."""

    code = "hypervisor_error"


class ShutdownTimeout(HypervisorError):
    """The guest did not power off within the timeout; power it off by force, or wait longer."""

    code = "shutdown_timeout"
    http_status = 504
    retryable = True


class GuestImageError(SnapkeepError):
    """The test guest's kernel, initramfs or disk image could not be built or read."""

    code = "guest_image_error"


class ScheduledTakeFailed(SnapkeepError):
    """A scheduled snapshot could not be taken; the scheduler retries it with back-off until its next slot."""

    code = "scheduled_take_failed"
    retryable = True


def all_error_classes() -> list[type[SnapkeepError]]:
    """Every error class, depth first: the source of the generated error catalogue in the docs."""
    found: list[type[SnapkeepError]] = []

    def walk(cls: type[SnapkeepError]) -> None:
        found.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(SnapkeepError)
    return found


def error_class_for_code(code: str) -> type[SnapkeepError]:
    """The class for a code in an error body (the CLI rebuilds the server's error from it)."""
    for cls in all_error_classes():
        if cls.code == code:
            return cls
    return SnapkeepError


def catalogue_markdown() -> str:
    """The error catalogue in docs/errors.md, generated from the classes (a test keeps them equal)."""
    lines = [
        "# Error catalogue",
        "",
        "Generated from `snapkeep.errors` by `python -m snapkeep.errors`; a test fails when it drifts.",
        'Every refused request answers with `{"error": {"code", "message", "retryable", "details"}}`.',
        "",
        "| code | HTTP status | CLI exit code | retryable | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for cls in all_error_classes():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        lines.append(f"| `{cls.code}` | {cls.http_status} | {cls.exit_code} | {cls.retryable} | {doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(catalogue_markdown(), end="")
