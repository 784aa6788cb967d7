"""``snapkeep snapshot``: take, list, show, delete, unlock, restore, browse, extract, space and sweep.

A snapshot is addressed by its id, or by its name together with ``--volume`` (names are unique per
subject only).
"""

from __future__ import annotations

from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import ApiClient, JsonObject, connect
from snapkeep.cli.job_cmd import NoWaitOption, follow
from snapkeep.cli.render import JsonOption
from snapkeep.errors import InvalidInput
from snapkeep.model.types import QuiescePolicy, RestoreMode

app = typer.Typer(help="Point-in-time snapshots of volumes, and restores from them.", no_args_is_help=True)

RefArgument = Annotated[str, typer.Argument(help="The snapshot's id, or its name when --volume is given.")]
VolumeOption = Annotated[
    str | None,
    typer.Option("--volume", metavar="NAME|ID", help="Read REF as a snapshot name of this volume."),
]


def _snapshot(api: ApiClient, ref: str, volume: str | None) -> JsonObject:
    if volume is None:
        snap: JsonObject = api.get("snapshots", ref)
        return snap
    named: list[JsonObject] = api.get("snapshots", volume=volume, name=ref)  # one, or NotFound
    return named[0]


def _snapshot_id(api: ApiClient, ref: str, volume: str | None) -> str:
    """The id REF names; an id needs no lookup."""
    return ref if volume is None else str(_snapshot(api, ref, volume)["id"])


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
    volume: Annotated[str, typer.Option("--volume", metavar="NAME|ID", help="The volume to snapshot.")],
    name: Annotated[str, typer.Option(help="The snapshot's name, unique per volume.")],
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    expires: Annotated[
        str | None,
        typer.Option(metavar="7d|DATE|never", help="When it expires: a duration, an ISO date, or never."),
    ] = None,
    never: Annotated[bool, typer.Option("--never", help="Never expires (the default).")] = False,
    quiesce: Annotated[
        bool, typer.Option("--quiesce", help="Flush and block writers while capturing.")
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
    """Take a snapshot of a volume (instant: metadata only)."""
    if never and expires is not None:
        raise InvalidInput("give --expires or --never, not both")
    if quiesce_policy is not None and not quiesce:
        raise InvalidInput("--quiesce-policy applies only with --quiesce")
    body: JsonObject = {
        "volume": volume,
        "name": name,
        "description": description,
        "expires": expires,
        "quiesce": quiesce,
        "immutable": immutable,
    }
    if quiesce_policy is not None:
        body["quiesce_policy"] = quiesce_policy.value
    api = connect()

    def done(result: JsonObject) -> str:
        snap = result["snapshot"]
        how = "quiesced" if snap["quiesced"] else "crash-consistent"
        note = f" ({snap['quiesce_note']})" if snap["quiesce_note"] else ""
        return f"snapshot {snap['name']!r} of {snap['subject_name']!r} taken, {how}{note}: {snap['id']}"

    follow(api, api.post("snapshots", body=body), no_wait=no_wait, as_json=as_json, done=done)


@app.command("list")
def list_snapshots(
    volume: Annotated[
        str | None, typer.Option("--volume", metavar="NAME|ID", help="Only this volume's snapshots.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Snapshots, oldest first."""
    snaps: list[JsonObject] = connect().get("snapshots", volume=volume)
    if as_json:
        render.print_json(snaps)
        return
    render.table(
        ["ID", "VOLUME", "NAME", "CREATED", "EXPIRES", "STATUS", "FLAGS", "EXCLUSIVE"],
        (
            [
                s["id"],
                s["subject_name"],
                s["name"],
                render.local_time(s["created_at"]),
                render.local_time(s["expires_at"], missing="never"),
                s["status"],
                _flags(s),
                render.size(s["exclusive_bytes"]),
            ]
            for s in snaps
        ),
    )


@app.command("show")
def show(ref: RefArgument, volume: VolumeOption = None, as_json: JsonOption = False) -> None:
    """One snapshot: expiry, lock, consistency and space."""
    snap = _snapshot(connect(), ref, volume)
    if as_json:
        render.print_json(snap)
        return
    quiesce = "not asked" if not snap["quiesce_requested"] else "yes" if snap["quiesced"] else "no"
    window = snap["quiesce_window_ms"]
    render.details(
        [
            ("id", snap["id"]),
            ("name", snap["name"]),
            ("volume", f"{snap['subject_name']} ({snap['subject_id']})"),
            ("description", snap["description"]),
            ("status", snap["status"] + (f": {snap['status_reason']}" if snap["status_reason"] else "")),
            ("created", render.local_time(snap["created_at"])),
            ("expires", render.local_time(snap["expires_at"], missing="never")),
            ("origin", snap["origin"]),
            ("quiesced", quiesce + (f" ({snap['quiesce_note']})" if snap["quiesce_note"] else "")),
            ("capture window", f"{window:.1f} ms" if window is not None else "-"),
            ("immutable", "yes" if snap["immutable"] else "no"),
            ("deletable", _deletable(snap)),
            ("exclusive", render.size(snap["exclusive_bytes"])),
            ("shared", render.size(snap["shared_bytes"])),
        ]
    )


@app.command("delete")
def delete(
    ref: RefArgument, volume: VolumeOption = None, no_wait: NoWaitOption = False, as_json: JsonOption = False
) -> None:
    """Delete a snapshot (refused, and audited, while it is immutable)."""
    api = connect()
    snap_id = _snapshot_id(api, ref, volume)
    job: JsonObject = api.delete("snapshots", snap_id)
    follow(
        api,
        job,
        no_wait=no_wait,
        as_json=as_json,
        done=lambda _result: f"snapshot {job['params']['name']!r} deleted",
    )


@app.command("unlock")
def unlock(ref: RefArgument, volume: VolumeOption = None, as_json: JsonOption = False) -> None:
    """Unlock an immutable snapshot: it becomes deletable after the cooling-off period (or its expiry)."""
    api = connect()
    snap: JsonObject = api.post("snapshots", _snapshot_id(api, ref, volume), "unlock")
    if as_json:
        render.print_json(snap)
    else:
        render.say(f"snapshot {snap['name']!r} unlocked; deletable {_deletable(snap)}")


@app.command("restore")
def restore(
    ref: RefArgument,
    volume: VolumeOption = None,
    as_new: Annotated[
        bool, typer.Option("--as-new", help="Restore into a new volume (named <original>_restored).")
    ] = False,
    new_name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Name of the new volume; implies --as-new.")
    ] = None,
    mode: Annotated[
        RestoreMode | None,
        typer.Option(help="In place: restore the data only (default), or the volume's settings too."),
    ] = None,
    pre_restore: Annotated[
        bool,
        typer.Option(
            "--pre-restore/--no-pre-restore", help="In place: take a safety snapshot of the volume first."
        ),
    ] = True,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Restore a snapshot over its volume, or with --as-new / --new-name NAME as a new volume.

    In place, the volume's current state is first kept as a pre-restore snapshot unless --no-pre-restore.
    """
    as_new = as_new or new_name is not None
    if as_new and (mode is not None or not pre_restore):
        raise InvalidInput("--mode and --no-pre-restore apply to in-place restores, not to --as-new")
    body: JsonObject = {"as_new": as_new, "name": new_name, "pre_restore": pre_restore}
    if mode is not None:
        body["mode"] = mode.value
    api = connect()

    def done(result: JsonObject) -> str:
        if as_new:
            return f"restored as new volume {result['volume']!r}: {result['volume_id']}"
        safety = result["pre_restore_snapshot_id"]
        return "volume restored in place" + (f"; its previous state is snapshot {safety}" if safety else "")

    job: JsonObject = api.post("snapshots", _snapshot_id(api, ref, volume), "restore", body=body)
    follow(api, job, no_wait=no_wait, as_json=as_json, done=done)


@app.command("browse")
def browse(
    ref: RefArgument,
    path: Annotated[str, typer.Argument(help="A folder or file, relative to the volume's root.")] = "",
    volume: VolumeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a folder of a snapshot (read-only)."""
    api = connect()
    entries: list[JsonObject] = api.get("snapshots", _snapshot_id(api, ref, volume), "files", path=path)
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
                e["name"] + (f" -> {e['target']}" if e["target"] is not None else ""),
            ]
            for e in entries
        ),
    )


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
    volume: VolumeOption = None,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Copy a file or folder out of a snapshot into a volume, replacing what is there atomically."""
    api = connect()
    body = {"path": path, "to_path": to, "to_volume": to_volume}
    job: JsonObject = api.post("snapshots", _snapshot_id(api, ref, volume), "extract", body=body)
    follow(
        api,
        job,
        no_wait=no_wait,
        as_json=as_json,
        done=lambda result: f"extracted {path!r} to {result['path']!r} in volume {result['volume']!r}",
    )


@app.command("space")
def space(
    ref: RefArgument, volume: VolumeOption = None, no_wait: NoWaitOption = False, as_json: JsonOption = False
) -> None:
    """Measure the space a snapshot holds: bytes exclusive to it and bytes it shares."""
    api = connect()
    job: JsonObject = api.post("snapshots", _snapshot_id(api, ref, volume), "space")
    follow(
        api,
        job,
        no_wait=no_wait,
        as_json=as_json,
        done=lambda r: (
            f"exclusive {render.size(r['exclusive_bytes'])}, shared {render.size(r['shared_bytes'])}"
        ),
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
