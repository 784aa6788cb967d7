"""``snapkeep snapshot``: take, list, show, contents, delete, unlock, restore, import, browse, extract, space
and sweep.

A snapshot is addressed by its id, or by its name together with ``--volume`` or ``--vm`` (names are unique
per subject only). A system or tenant snapshot is addressed by its id; then ``--vm``, ``--volume`` and
``--tenant`` name one object inside it (to restore, import, browse or extract just that one).
"""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import ApiClient, JsonObject, connect
from snapkeep.cli.job_cmd import NoWaitOption, follow
from snapkeep.cli.render import JsonOption, LimitOption
from snapkeep.errors import InvalidInput
from snapkeep.model.timespec import parse_duration
from snapkeep.model.types import QuiescePolicy, RestoreMode, SnapshotKind, SnapshotStatus

app = typer.Typer(help="Point-in-time snapshots of volumes and VMs, and restores from them.", no_args_is_help=True)

RefArgument = Annotated[str, typer.Argument(help="The snapshot's id, or its name when --volume or --vm is given.")]
NamedRefArgument = Annotated[
    str, typer.Argument(help="The snapshot's id, or its name with its subject: --volume, --vm, --system, --tenant.")
]
VolumeOption = Annotated[
    str | None,
    typer.Option("--volume", metavar="NAME|ID", help="Read REF as a snapshot name of this volume."),
]
VmOption = Annotated[
    str | None,
    typer.Option("--vm", metavar="NAME|ID", help="Read REF as a snapshot name of this VM."),
]


SystemNameOption = Annotated[
    bool,
    typer.Option("--system", help="Read REF as a system snapshot's name (of your scope; with --tenant: its own)."),
]
TenantNameOption = Annotated[
    str | None,
    typer.Option("--tenant", metavar="NAME|PATH|ID", help="Read REF as a snapshot name of this tenant (see --system)."),
]


def _subject_of(volume: str | None, vm: str | None, system: bool, tenant: str | None) -> dict[str, object] | None:
    """The query naming the subject a snapshot name is read with (None: REF is an id); one subject at most."""
    if sum([volume is not None, vm is not None, system or tenant is not None]) > 1:
        raise InvalidInput("give one subject: --volume, --vm, --system (with or without --tenant) or --tenant")
    if volume is None and vm is None and not system and tenant is None:
        return None
    return {"volume": volume, "vm": vm, "system": system or None, "tenant": tenant}


def _one_subject(volume: str | None, vm: str | None) -> None:
    if volume is not None and vm is not None:
        raise InvalidInput("give --volume or --vm, not both")


def _snapshot(
    api: ApiClient, ref: str, volume: str | None, vm: str | None = None, system: bool = False, tenant: str | None = None
) -> JsonObject:
    """The snapshot REF names: by id, or by name together with its subject."""
    subject = _subject_of(volume, vm, system, tenant)
    if subject is None:
        snap: JsonObject = api.get("snapshots", ref)
        return snap
    named: list[JsonObject] = api.get("snapshots", **subject, name=ref)  # one, or NotFound
    return named[0]


def _snapshot_id(
    api: ApiClient, ref: str, volume: str | None, vm: str | None = None, system: bool = False, tenant: str | None = None
) -> str:
    """The id REF names; an id needs no lookup."""
    if _subject_of(volume, vm, system, tenant) is None:
        return ref
    return str(_snapshot(api, ref, volume, vm, system, tenant)["id"])


def _holds_members(api: ApiClient, ref: str) -> bool:
    """Whether REF is the id of a system or tenant snapshot (whose --vm/--volume/--tenant name a member)."""
    try:
        uuid.UUID(ref)
    except ValueError:
        return False
    snap: JsonObject = api.get("snapshots", ref)
    return snap["kind"] in ("system", "tenant")


def _target(
    api: ApiClient, ref: str, volume: str | None, vm: str | None, tenant: str | None = None
) -> tuple[str, JsonObject]:
    """(snapshot id, member): REF with --vm/--volume is a snapshot name of that subject, unless REF is a
    system or tenant snapshot's id; then the option names the member to act on (and so may --tenant)."""
    given = {key: value for key, value in (("vm", vm), ("volume", volume), ("tenant", tenant)) if value}
    if len(given) > 1:
        raise InvalidInput("name one of --vm, --volume and --tenant")
    if given and _holds_members(api, ref):
        return ref, given
    if tenant is not None:
        raise InvalidInput("--tenant names a tenant inside a system snapshot: give that snapshot's id")
    return _snapshot_id(api, ref, volume, vm), {}


def _subject(snap: JsonObject) -> str:
    """``vm:web1`` or ``volume:docs``: a VM and a volume may have the same name."""
    return f"{snap['subject_type']}:{snap['subject_name']}"


def _when(text: str | None, option: str) -> str | None:
    """An ISO time as given (the service reads it; without an offset it is UTC), or a duration (``7d``,
    ``12h``) before now, in UTC."""
    if text is None:
        return None
    try:
        return (datetime.now(UTC) - parse_duration(text)).isoformat()
    except InvalidInput:
        pass
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise InvalidInput(f"{option} takes an ISO time (2026-11-30T08:00) or a duration ago (7d, 12h)") from None


def _window(ms: float | None) -> str:
    return f"{ms:.1f} ms" if ms is not None else "-"


def _status(snap: JsonObject) -> str:
    """The status; a held snapshot with how long it is overdue (its period's minimum count keeps it)."""
    overdue = snap.get("overdue_seconds")
    if snap["status"] != "held" or overdue is None:
        return str(snap["status"])
    return f"held ({render.duration(int(overdue) // 60 * 60 or 60)} overdue)"


def _flags(snap: JsonObject) -> str:
    flags = []
    if snap["immutable"]:
        flags.append("unlocked" if snap["unlocked_at"] else "immutable")
    if snap["quiesced"]:
        flags.append("quiesced")
    return ",".join(flags)


def _deletable(snap: JsonObject) -> str:
    if not snap["immutable"]:
        return "yes"
    if snap["deletable_at"] is None:
        return "no: immutable (unlock to start the cooling-off)"
    return f"from {render.local_time(snap['deletable_at'])}"


@app.command("take")
def take(
    volume: Annotated[str | None, typer.Option("--volume", metavar="NAME|ID", help="The volume to snapshot.")] = None,
    vm: Annotated[
        str | None, typer.Option("--vm", metavar="NAME|ID", help="The VM to snapshot (all its disks at once).")
    ] = None,
    system: Annotated[
        bool,
        typer.Option(
            "--system",
            help="Everything in your scope at one instant (with --tenant: that tenant's own system snapshot).",
        ),
    ] = False,
    tenant: Annotated[
        str | None,
        typer.Option(metavar="NAME|PATH|ID", help="A tenant snapshot of this tenant's subtree, taken by its parent."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Its name, unique per subject (default: manual_<YYYYMMDD>_<HHMMSS>, UTC)."),
    ] = None,
    include_tag: Annotated[
        list[str] | None, typer.Option("--include-tag", metavar="TAG", help="Partial: only objects with this tag.")
    ] = None,
    exclude_tag: Annotated[
        list[str] | None, typer.Option("--exclude-tag", metavar="TAG", help="Partial: all but objects with this tag.")
    ] = None,
    private: Annotated[
        bool | None,
        typer.Option("--private/--public", help="System snapshots: hidden from tenants (default: private)."),
    ] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    expires: Annotated[
        str | None,
        typer.Option(metavar="7d|DATE|never", help="When it expires: a duration, an ISO date, or never."),
    ] = None,
    never: Annotated[bool, typer.Option("--never", help="Never expires (the default).")] = False,
    quiesce: Annotated[
        bool,
        typer.Option(
            "--quiesce",
            help="Flush and block writers while capturing; for a VM, freeze the guest's filesystems "
            "through its guest agent.",
        ),
    ] = False,
    quiesce_policy: Annotated[
        QuiescePolicy | None,
        typer.Option(help="With --quiesce, if quiescing fails: fail, or fall back to crash-consistent."),
    ] = None,
    immutable: Annotated[
        bool, typer.Option("--immutable", help="Nobody can delete it until it expires or is unlocked.")
    ] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Take a snapshot of a volume, a VM, the system or a tenant (instant: metadata only).

    Exactly one of --volume, --vm, --system (with or without --tenant) and --tenant.
    """
    _one_subject(volume, vm)
    if sum([volume is not None, vm is not None, system or tenant is not None]) != 1:
        raise InvalidInput("say what to snapshot: --volume NAME, --vm NAME, --system or --tenant NAME")
    if never and expires is not None:
        raise InvalidInput("give --expires or --never, not both")
    if quiesce_policy is not None and not quiesce:
        raise InvalidInput("--quiesce-policy applies only with --quiesce")
    body: JsonObject = {
        "volume": volume,
        "vm": vm,
        **({"name": name} if name is not None else {}),
        "description": description,
        "expires": expires,
        "quiesce": quiesce,
        "immutable": immutable,
        "system": system,
        "tenant": tenant,
        "private": private,
        "include_tags": include_tag or [],
        "exclude_tags": exclude_tag or [],
    }
    if quiesce_policy is not None:
        body["quiesce_policy"] = quiesce_policy.value
    api = connect()

    def done(result: JsonObject) -> str:
        snap = result["snapshot"]
        if snap["kind"] in ("system", "tenant"):
            paused = f", guests paused {_window(snap['paused_window_ms'])}" if snap["paused_window_ms"] else ""
            return f"{snap['kind']} snapshot {snap['name']!r} of {snap['subject_name']!r} taken{paused}: {snap['id']}"
        how = "quiesced" if snap["quiesced"] else "crash-consistent"
        note = f" ({snap['quiesce_note']})" if snap["quiesce_note"] else ""
        return f"snapshot {snap['name']!r} of {snap['subject_name']!r} taken, {how}{note}: {snap['id']}"

    follow(api, api.post("snapshots", body=body), no_wait=no_wait, as_json=as_json, done=done)


@app.command("list")
def list_snapshots(
    volume: Annotated[
        str | None, typer.Option("--volume", metavar="NAME|ID", help="Only this volume's snapshots.")
    ] = None,
    vm: Annotated[str | None, typer.Option("--vm", metavar="NAME|ID", help="Only this VM's snapshots.")] = None,
    system: Annotated[
        bool, typer.Option("--system", help="Only system snapshots of your scope (with --tenant: its own).")
    ] = False,
    tenant: Annotated[
        str | None, typer.Option(metavar="NAME|PATH|ID", help="Only this tenant's snapshots (see --system).")
    ] = None,
    kind: Annotated[SnapshotKind | None, typer.Option(help="Only snapshots of this kind.")] = None,
    status: Annotated[SnapshotStatus | None, typer.Option(help="Only snapshots in this state.")] = None,
    origin: Annotated[str | None, typer.Option(help="Only those of this origin (manual, or a period's).")] = None,
    period: Annotated[str | None, typer.Option(metavar="ID", help="Only those this profile period took.")] = None,
    since: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Only those created since: ISO time, or 7d ago.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="WHEN", help="Only those created before: ISO time, or 1h ago.")
    ] = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """Snapshots, oldest first."""
    _one_subject(volume, vm)
    snaps = connect().listing(
        "snapshots",
        limit=limit,
        volume=volume,
        vm=vm,
        system=system or None,
        tenant=tenant,
        kind=kind and kind.value,
        status=status and status.value,
        origin=origin,
        period=period,
        created_after=_when(since, "--since"),
        created_before=_when(until, "--until"),
    )
    if as_json:
        render.print_json(snaps)
        return
    render.table(
        ["ID", "SUBJECT", "NAME", "CREATED", "EXPIRES", "STATUS", "FLAGS", "EXCLUSIVE"],
        (
            [
                s["id"],
                _subject(s),
                s["name"],
                render.local_time(s["created_at"]),
                render.local_time(s["expires_at"], missing="never"),
                _status(s),
                _flags(s),
                render.size(s["exclusive_bytes"]),
            ]
            for s in snaps
        ),
    )


@app.command("show")
def show(
    ref: NamedRefArgument,
    volume: VolumeOption = None,
    vm: VmOption = None,
    system: SystemNameOption = False,
    tenant: TenantNameOption = None,
    as_json: JsonOption = False,
) -> None:
    """One snapshot: expiry, lock, consistency and space."""
    snap = _snapshot(connect(), ref, volume, vm, system, tenant)
    if as_json:
        render.print_json(snap)
        return
    quiesce = "not asked" if not snap["quiesce_requested"] else "yes" if snap["quiesced"] else "no"
    render.details(
        [
            ("id", snap["id"]),
            ("name", snap["name"]),
            (snap["subject_type"], f"{snap['subject_name']} ({snap['subject_id']})"),
            ("owner", snap["owner"]),
            ("description", snap["description"]),
            ("status", _status(snap) + (f": {snap['status_reason']}" if snap["status_reason"] else "")),
            ("created", render.local_time(snap["created_at"])),
            ("expires", render.local_time(snap["expires_at"], missing="never")),
            ("origin", snap["origin"]),
            ("quiesced", quiesce + (f" ({snap['quiesce_note']})" if snap["quiesce_note"] else "")),
            ("capture window", _window(snap["quiesce_window_ms"])),
            *([("paused window", _window(snap["paused_window_ms"]))] if snap["subject_type"] != "volume" else []),
            ("immutable", "yes" if snap["immutable"] else "no"),
            *([("private", "yes" if snap["private"] else "no")] if snap["kind"] == "system" else []),
            ("deletable", _deletable(snap)),
            ("exclusive", render.size(snap["exclusive_bytes"])),
            ("shared", render.size(snap["shared_bytes"])),
        ]
    )


@app.command("delete")
def delete(
    ref: NamedRefArgument,
    volume: VolumeOption = None,
    vm: VmOption = None,
    system: SystemNameOption = False,
    tenant: TenantNameOption = None,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a snapshot (refused, and audited, while it is immutable)."""
    api = connect()
    snap_id = _snapshot_id(api, ref, volume, vm, system, tenant)
    job: JsonObject = api.delete("snapshots", snap_id)
    follow(
        api,
        job,
        no_wait=no_wait,
        as_json=as_json,
        done=lambda _result: f"snapshot {job['params']['name']!r} deleted",
    )


@app.command("unlock")
def unlock(
    ref: NamedRefArgument,
    volume: VolumeOption = None,
    vm: VmOption = None,
    system: SystemNameOption = False,
    tenant: TenantNameOption = None,
    as_json: JsonOption = False,
) -> None:
    """Unlock an immutable snapshot: it becomes deletable after the cooling-off period (or its expiry)."""
    api = connect()
    snap: JsonObject = api.post("snapshots", _snapshot_id(api, ref, volume, vm, system, tenant), "unlock")
    if as_json:
        render.print_json(snap)
    else:
        render.say(f"snapshot {snap['name']!r} unlocked; deletable {_deletable(snap)}")


TenantMemberOption = Annotated[
    str | None,
    typer.Option("--tenant", metavar="NAME|ID", help="System snapshots: restore only this tenant's subtree."),
]


@app.command("restore")
def restore(
    ref: RefArgument,
    volume: VolumeOption = None,
    vm: VmOption = None,
    tenant: TenantMemberOption = None,
    as_new: Annotated[
        bool,
        typer.Option(
            "--as-new",
            help="Restore into a new volume (named <original>_restored), a new VM (named '<snapshot> restored', "
            "or '<VM> (n)' out of a system snapshot) or a new tenant ('<tenant> (n)').",
        ),
    ] = False,
    new_name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Name of the new volume or VM; implies --as-new.")
    ] = None,
    mode: Annotated[
        RestoreMode | None,
        typer.Option(help="In place, volumes: restore the data only (default), or the volume's settings too."),
    ] = None,
    pre_restore: Annotated[
        bool,
        typer.Option(
            "--pre-restore/--no-pre-restore", help="In place: take a safety snapshot of the volume or VM first."
        ),
    ] = True,
    power_off: Annotated[
        bool,
        typer.Option("--power-off", help="In place, VMs: power the VM off first if it runs (else refused)."),
    ] = False,
    preserve_macs: Annotated[
        bool,
        typer.Option("--preserve-macs", help="As a new VM: keep the snapshot's MACs (default: new ones)."),
    ] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Restore a snapshot over its subject, or with --as-new / --new-name NAME as a new one.

    In place, the current state is first kept as a pre-restore snapshot unless --no-pre-restore.

    A VM restored in place gets its disks and configuration back; it must be off, or --power-off given.
    A system snapshot restored in place brings back everything in it (objects made since are removed);
    with --vm, --volume or --tenant only that object is restored, in place or as new.
    """
    as_new = as_new or new_name is not None
    if as_new and (mode is not None or not pre_restore or power_off):
        raise InvalidInput("--mode, --no-pre-restore and --power-off apply to in-place restores, not to --as-new")
    if preserve_macs and not as_new:
        raise InvalidInput("--preserve-macs applies to restores as a new VM (--as-new or --new-name)")
    body: JsonObject = {
        "as_new": as_new,
        "name": new_name,
        "pre_restore": pre_restore,
        "power_off": power_off,
        "preserve_macs": preserve_macs,
    }
    if mode is not None:
        body["mode"] = mode.value
    api = connect()
    snap_id, member = _target(api, ref, volume, vm, tenant)

    def done(result: JsonObject) -> str:
        what = next(kind for kind in ("vm", "volume", "tenant", "system") if f"{kind}_id" in result)
        shown = "VM" if what == "vm" else what
        if as_new:
            return f"restored as new {shown} {result[what]!r}: {result[what + '_id']}"
        safety = result["pre_restore_snapshot_id"]
        return f"{shown} restored in place" + (f"; its previous state is snapshot {safety}" if safety else "")

    job: JsonObject = api.post("snapshots", snap_id, "restore", body={**body, **member})
    follow(api, job, no_wait=no_wait, as_json=as_json, done=done)


@app.command("import")
def import_member(
    ref: Annotated[str, typer.Argument(help="The system or tenant snapshot's id.")],
    vm: Annotated[str | None, typer.Option("--vm", metavar="NAME|ID", help="The VM to import.")] = None,
    volume: Annotated[str | None, typer.Option("--volume", metavar="NAME|ID", help="The volume to import.")] = None,
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="The new snapshot's name (default: the system snapshot's).")
    ] = None,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Import one VM's (or volume's) state out of a system snapshot as a snapshot of that VM (or volume),
    restorable like any other."""
    api = connect()
    body = {"vm": vm, "volume": volume, "name": name}

    def done(result: JsonObject) -> str:
        snap = result["snapshot"]
        return f"imported as snapshot {snap['name']!r} of {_subject(snap)}: {snap['id']}"

    follow(api, api.post("snapshots", ref, "import", body=body), no_wait=no_wait, as_json=as_json, done=done)


@app.command("contents")
def contents(
    ref: Annotated[str, typer.Argument(help="The snapshot's id, or its name with --system or --tenant.")],
    system: SystemNameOption = False,
    tenant: TenantNameOption = None,
    as_json: JsonOption = False,
) -> None:
    """What a snapshot holds, as it was then: tenants (as a tree), VMs, volumes, networks, users and
    profiles (what you may see)."""
    api = connect()
    found: JsonObject = api.get("snapshots", _snapshot_id(api, ref, None, None, system, tenant), "contents")
    if as_json:
        render.print_json(found)
        return
    snap = found["snapshot"]
    render.say(f"{snap['kind']} snapshot {snap['name']!r} of {snap['subject_name']!r}, {found['selection']}")
    paths = {t["id"]: t["path"] for t in found["tenants"]}

    def owner(obj: JsonObject) -> str:
        return paths.get(obj["owner_tenant_id"], "-") if obj["owner_tenant_id"] else "system"

    rows = [
        ["tenant", "  " * t["depth"] + t["name"], paths.get(t["parent_id"], "system"), ""] for t in found["tenants"]
    ]
    rows += [
        ["vm", v["name"], owner(v), "was running" if v["config"].get("running") else "was off"] for v in found["vms"]
    ]
    rows += [["volume", v["name"], owner(v), render.size(v["config"]["size_limit"])] for v in found["volumes"]]
    rows += [["network", n["name"], owner(n), n["config"]["cidr"]] for n in found["networks"]]
    rows += [["user", u["name"], owner(u), u["config"]["role"]] for u in found["users"]]
    rows += [["profile", p["name"], owner(p), _periods(p["config"]["periods"])] for p in found["profiles"]]
    render.table(["TYPE", "NAME", "OWNER", "AT THE TIME"], rows)


def _periods(periods: list[JsonObject]) -> str:
    return f"periods: {', '.join(p['name'] for p in periods)}" if periods else "no periods"


@app.command("browse")
def browse(
    ref: RefArgument,
    path: Annotated[str, typer.Argument(help="A folder or file, relative to the volume's root.")] = "",
    volume: VolumeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a folder of a snapshot (read-only); of a system snapshot, of the volume --volume names."""
    api = connect()
    snap_id, member = _target(api, ref, volume, None)
    query: JsonObject = {**_path_query("path", path), **member}
    entries = api.listing("snapshots", snap_id, "files", **query)
    if as_json:
        render.print_json(entries)
        return
    render.table(
        ["MODE", "SIZE", "MODIFIED", "NAME"],
        (
            [
                render.file_mode(e["type"], e["mode"]),
                render.size(e["size"]) if e["type"] == "file" else "-",
                render.local_time(float(e["mtime"])),
                render.file_name(e["name"], e["name_b64"])
                + (f" -> {render.file_name(e['target'], e['target_b64'])}" if e["target"] is not None else ""),
            ]
            for e in entries
        ),
    )


def _path_query(field: str, path: str | None) -> dict[str, str | None]:
    """A path argument for the API: as text, or (a name that is not UTF-8, typed e.g. as bash's
    ``$'\\xff.txt'``) as base64 of its bytes in ``<field>_b64``."""
    if path is None:
        return {field: None}
    raw = os.fsencode(path)
    try:
        return {field: raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{field}_b64": base64.b64encode(raw).decode()}


@app.command("extract")
def extract(
    ref: RefArgument,
    path: Annotated[str, typer.Argument(help="The file or folder to copy, relative to the volume's root.")],
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="DEST_PATH", help="Where to put it (default: its own place)."),
    ] = None,
    to_volume: Annotated[
        str | None,
        typer.Option(metavar="NAME|ID", help="Copy into this volume (default: the snapshot's own)."),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace what is at a destination other than its own place."),
    ] = False,
    pre_restore: Annotated[
        bool,
        typer.Option("--pre-restore/--no-pre-restore", help="Before replacing, take a safety snapshot of the volume."),
    ] = True,
    volume: VolumeOption = None,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Copy a file or folder out of a snapshot into a volume, atomically (out of a system snapshot: from
    the volume --volume names). At its own place it replaces what is there, after a pre-restore snapshot
    (unless --no-pre-restore); elsewhere something already there is refused unless --replace."""
    api = connect()
    snap_id, member = _target(api, ref, volume, None)
    body = {**_path_query("path", path), **_path_query("to_path", to), "to_volume": to_volume, **member}
    body |= {"replace": replace, "pre_restore": pre_restore}
    job: JsonObject = api.post("snapshots", snap_id, "extract", body=body)

    def done(result: JsonObject) -> str:
        skipped = result.get("skipped_special", 0)
        note = f"; {skipped} special file(s) (FIFOs, sockets, devices) skipped" if skipped else ""
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        undo = result.get("pre_restore_snapshot_id")
        note += f"; what it replaced is in pre-restore snapshot {undo}" if undo else ""
        return f"extracted {shown!r} to {result['path']!r} in volume {result['volume']!r}{note}"

    follow(api, job, no_wait=no_wait, as_json=as_json, done=done)


@app.command("space")
def space(
    ref: NamedRefArgument,
    volume: VolumeOption = None,
    vm: VmOption = None,
    system: SystemNameOption = False,
    tenant: TenantNameOption = None,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Measure the space a snapshot holds: bytes exclusive to it and bytes it shares."""
    api = connect()
    job: JsonObject = api.post("snapshots", _snapshot_id(api, ref, volume, vm, system, tenant), "space")
    follow(
        api,
        job,
        no_wait=no_wait,
        as_json=as_json,
        done=lambda r: f"exclusive {render.size(r['exclusive_bytes'])}, shared {render.size(r['shared_bytes'])}",
    )


@app.command("sweep")
def sweep(no_wait: NoWaitOption = False, as_json: JsonOption = False) -> None:
    """Delete every expired snapshot now (the service also does this on its own, periodically)."""
    api = connect()
    follow(
        api,
        api.post("snapshots", "sweep"),
        no_wait=no_wait,
        as_json=as_json,
        done=lambda result: f"{len(result['deleted'])} expired snapshot(s) deleted",
    )
