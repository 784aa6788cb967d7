"""The file browser inside a snapshot: folders to walk, files and folders to download, both to restore.

Paths come from the user (the query string or a form) and go to the file service as they are; it refuses
absolute paths, ``..`` and symlinks on the way (:mod:`snapkeep.model.relpath`, ``storage.filerestore``). A
name that is not UTF-8 travels as base64 of its bytes (``path_b64``), as in the API. A download is sent
as an attachment, typed as opaque bytes (a folder: a tar archive) and never sniffed, so a file a NAS user
wrote is never shown as a page of this site. Restoring over something that exists goes through a
confirmation page naming it.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from snapkeep.errors import Conflict, InvalidPath
from snapkeep.model import relpath
from snapkeep.model.paging import Window
from snapkeep.model.types import FileEntry
from snapkeep.ui import forms
from snapkeep.ui.deps import Form, UiSvc, Visitor
from snapkeep.ui.downloads import Streamed
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)
FOLDER_PAGE = 500  # entries of a folder per page, by name
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


def _raw(fields: forms.Fields, name: str = "path") -> bytes:
    """The path the user gave as text (``path``) or base64 of its bytes (``path_b64``); empty: the root."""
    text, b64 = fields.get(name), fields.get(f"{name}_b64")
    if isinstance(b64, str) and b64:
        if isinstance(text, str) and text:
            raise InvalidPath(f"give {name} or {name}_b64, not both")
        return relpath.from_base64(b64)
    return relpath.from_text(text) if isinstance(text, str) else b""


def _query(raw: bytes, volume: str | None, name: str = "path") -> dict[str, str]:
    """Query parameters naming ``raw``: as text when it is UTF-8, else as base64."""
    params: dict[str, str] = {"volume": volume} if volume else {}
    try:
        params[name] = raw.decode("utf-8")
    except UnicodeDecodeError:
        params[f"{name}_b64"] = base64.b64encode(raw).decode()
    return params


@dataclass(frozen=True)
class Row:
    """One entry of a folder as the page lists it, with the query string that names it."""

    entry: FileEntry
    shown: str
    query: str
    mtime: datetime


def _rows(folder: bytes, entries: list[FileEntry], volume: str | None) -> list[Row]:
    rows = []
    for entry in entries:
        raw = os.fsencode(entry.name)
        path = folder + b"/" + raw if folder else raw
        rows.append(
            Row(entry, relpath.shown(raw), urlencode(_query(path, volume)), datetime.fromtimestamp(entry.mtime, UTC))
        )
    return rows


def _crumbs(folder: bytes, volume: str | None) -> list[tuple[str, str]]:
    """(name, query) of each folder from the root down to ``folder``."""
    parts = [p for p in folder.split(b"/") if p]
    return [(relpath.shown(part), urlencode(_query(b"/".join(parts[: i + 1]), volume))) for i, part in enumerate(parts)]


@router.get("/snapshots/{snap_id}/files")
def browse(request: Request, visit: Visitor, svc: UiSvc, snap_id: str, volume: str | None = None) -> Response:
    """A folder of the snapshot (the root by default), by name, a page at a time (``after``: the last name of
    the page before); a system snapshot's volume is chosen first."""
    snap = svc.snapshots.get(snap_id, visit.who)
    raw = b"/".join(relpath.split(_raw(request.query_params)))
    if snap.kind != "volume" and volume is None:
        contents = svc.snapshots.manifest(snap_id).visible_to(visit.who.tenant_id)
        volumes = [obj for obj in contents if obj.type == "volume"]
        return render(request, "flows/files.html", visit, snap=snap, volumes=volumes, rows=None, volume=None)
    folder = raw
    if raw:  # a file's path shows the folder it is in
        parent, _sep, last = raw.rpartition(b"/")
        named = [
            e for e in svc.files.browse(snap_id, parent, volume=volume, who=visit.who) if os.fsencode(e.name) == last
        ]
        folder = raw if named and named[0].type == "dir" else parent
    after = _raw(request.query_params, "after") or None
    window = Window(limit=FOLDER_PAGE, after=(os.fsdecode(after),) if after else None)
    page = svc.files.browse_page(snap_id, folder, window, volume=volume, who=visit.who)
    more = None
    if page.next is not None:  # the next page: this folder, after the last name shown
        more = urlencode({**_query(folder, volume), **_query(os.fsencode(str(page.next[0])), None, "after")})
    return render(
        request,
        "flows/files.html",
        visit,
        snap=snap,
        volumes=None,
        volume=volume,
        folder=relpath.shown(folder) or "/",
        crumbs=_crumbs(folder, volume),
        root_query=urlencode(_query(b"", volume)),
        rows=_rows(folder, page.items, volume),
        more=more,
    )


def _filename(raw: bytes) -> str:
    """A Content-Disposition that names the file safely: an ASCII fallback without quotes or control
    characters, and the exact name (RFC 5987) for browsers that read it."""
    name = relpath.shown(raw)
    fallback = _UNSAFE.sub("_", name).strip(" .") or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/snapshots/{snap_id}/files/download")
def download(request: Request, visit: Visitor, svc: UiSvc, snap_id: str, volume: str | None = None) -> Response:
    raw = _raw(request.query_params)
    got = svc.files.download(snap_id, raw, volume=volume, who=visit.who)
    name = os.fsencode(got.entry.name)  # the entry's own name ("docs/" names "docs")
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store",
    }
    if got.is_folder:  # a tar archive made as it is sent: its length is known only at its end
        headers["Content-Disposition"] = _filename(name + b".tar")
        return Streamed(got, stall=svc.settings.download_stall_seconds, headers=headers, media_type="application/x-tar")
    headers["Content-Disposition"] = _filename(name)
    headers["Content-Length"] = str(got.entry.size)
    return Streamed(got, stall=svc.settings.download_stall_seconds, headers=headers)


@router.get("/snapshots/{snap_id}/files/restore")
def restore_form(request: Request, visit: Visitor, svc: UiSvc, snap_id: str, volume: str | None = None) -> Response:
    """Where a file or folder goes back to (its own place by default), and whether that overwrites something
    there now; checked by the service as the restore will be, so a bad path is refused here already. This
    page is the question a replace elsewhere needs: its Overwrite button asks for one."""
    fields = request.query_params
    raw = _raw(fields)
    to_raw = _raw(fields, "to_path") or None
    to_volume = forms.optional(fields, "to_volume")
    snap = svc.snapshots.get(snap_id, visit.who)
    plan = svc.files.check_extract(
        snap_id, raw, to_volume=to_volume, to_path=to_raw, volume=volume, replace=True, who=visit.who
    )
    return render(
        request,
        "flows/file_restore.html",
        visit,
        snap=snap,
        volume=volume,
        source=relpath.shown(raw),
        source_query=_query(raw, None),
        dest=relpath.shown(b"/".join(plan.dest)),
        dest_query=_query(b"/".join(plan.dest), None, "to_path"),
        target=plan.volume,
        to_volume=to_volume or "",
        replaces=plan.replaces,
    )


@router.post("/snapshots/{snap_id}/files/restore")
def restore(visit: Visitor, svc: UiSvc, form: Form, snap_id: str) -> Response:
    """The restore as a job; refused if what is at the destination changed since the confirmation page named
    it (it said "creates" and a user put something there since, or "overwrites" and it went)."""
    raw = _raw(form)
    to_raw = _raw(form, "to_path") or None
    to_volume, volume = forms.optional(form, "to_volume"), forms.optional(form, "volume")
    params: dict[str, object] = {"path": relpath.shown(raw), "to_volume": to_volume, "volume": volume}
    params["to_path"] = relpath.shown(to_raw) if to_raw is not None else None
    confirmed = forms.optional(form, "replaces")  # what the confirmation page said: "yes" or "no"
    params["replace"] = replace = confirmed == "yes"  # the Overwrite button: the caller asked to replace
    if confirmed is not None:  # what is there now, told as the confirmation page told it
        plan = svc.files.check_extract(
            snap_id, raw, to_volume=to_volume, to_path=to_raw, volume=volume, replace=True, who=visit.who
        )
        if plan.replaces != replace:
            dest = relpath.shown(b"/".join(plan.dest))
            now = "something is there now" if plan.replaces else "nothing is there now"
            raise Conflict(
                f"{dest!r} in volume {plan.volume.name!r} changed since the confirmation ({now}); check again"
            )
    job = svc.files.submit_extract(
        snap_id, raw, to_volume=to_volume, to_path=to_raw, volume=volume, replace=replace, params=params, who=visit.who
    )
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)
