"""``snapkeep profile``: snapshot profiles, their periods, assignments and previews; ``snapkeep scheduler``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from snapkeep.cli import render
from snapkeep.cli.client import JsonObject, connect
from snapkeep.cli.render import JsonOption
from snapkeep.errors import InvalidInput

app = typer.Typer(help="Snapshot profiles: periods that take and expire snapshots on schedules.", no_args_is_help=True)
periods_app = typer.Typer(help="The periods of a profile.", no_args_is_help=True)
app.add_typer(periods_app, name="period")
scheduler_app = typer.Typer(help="What the scheduler takes next.", no_args_is_help=True)

ProfileArgument = Annotated[str, typer.Argument(metavar="PROFILE", help="The profile's name or id.")]
PeriodArgument = Annotated[str, typer.Argument(metavar="PERIOD", help="The period's name within the profile.")]
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


def _day_of_week(text: str | None) -> int | None:
    if text is None or text == "any":
        return None
    if text.isdigit() and int(text) in range(7):
        return int(text)
    day = _DAYS.get(text.strip().lower()[:3])
    if day is None:
        raise InvalidInput(f"not a day of the week: {text!r} (sun, mon, … sat, 0-6 from Sunday, or any)")
    return day


def _any(text: str | None) -> int | None:
    """A day of month or month: a number, or 'any'."""
    if text is None or text == "any":
        return None
    if not text.isdigit():
        raise InvalidInput(f"not a number or 'any': {text!r}")
    return int(text)


def _subject(system: bool, tenant: str | None, vm: str | None, volume: str | None) -> tuple[str, str]:
    given = [(k, v) for k, v in (("tenant", tenant), ("vm", vm), ("volume", volume)) if v is not None]
    if system:
        given.append(("system", "system"))
    if len(given) != 1:
        raise InvalidInput("name exactly one subject: --system, --tenant T, --vm V or --volume V")
    return given[0]


def _period_flags(period: JsonObject) -> str:
    """What a period does beyond the defaults (``public``: its system snapshots are shown to tenants)."""
    flags = [f for f in ("quiesce", "immutable", "skip_missed") if period[f]]
    flags += [] if period["private"] else ["public"]
    flags += [f"+{tag}" for tag in period["include_tags"]] + [f"-{tag}" for tag in period["exclude_tags"]]
    return ",".join(flags) or "-"


def _period_table(profile: JsonObject) -> None:
    render.table(
        ["PERIOD", "RUNS", "RETENTION", "MIN", "FLAGS", "KEEPS"],
        (
            [
                p["name"],
                p["runs"],
                "forever" if p["retention_seconds"] is None else render.duration(p["retention_seconds"]),
                str(p["min_snapshots"]),
                _period_flags(p),
                "unbounded" if p["estimate"] is None else str(p["estimate"]),
            ]
            for p in profile["periods"]
        ),
    )


def _show(profile: JsonObject) -> None:
    total = profile["estimate"]
    render.details(
        [
            ("id", profile["id"]),
            ("name", profile["name"]),
            ("time zone", profile["timezone"]),
            ("description", profile["description"]),
            ("keeps per subject", "unbounded" if total is None else str(total)),
        ]
    )
    _period_table(profile)
    for warning in profile["warnings"]:
        render.note(f"warning: {warning}")


def _print(profile: JsonObject, as_json: bool) -> None:
    if as_json:
        render.print_json(profile)
    else:
        _show(profile)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Name of the new profile (unique within its owner).")],
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone its periods run in.")] = "UTC",
    description: Annotated[str, typer.Option(help="Free text shown in listings.")] = "",
    ignore_warning: Annotated[bool, typer.Option(help="No warning when it keeps many snapshots.")] = False,
    tenant: Annotated[str | None, typer.Option(help="The owning tenant (id, name or path).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an empty profile; add periods with ``profile period add``."""
    body = {
        "name": name,
        "timezone": timezone,
        "description": description,
        "ignore_warning": ignore_warning,
        "tenant": tenant,
    }
    _print(connect().post("profiles", body=body), as_json)


@app.command("list")
def list_profiles(as_json: JsonOption = False) -> None:
    """Every profile you see."""
    profiles = connect().listing("profiles")
    if as_json:
        render.print_json(profiles)
        return
    render.table(
        ["ID", "NAME", "ZONE", "PERIODS", "KEEPS", "DESCRIPTION"],
        (
            [
                p["id"],
                p["name"],
                p["timezone"],
                ", ".join(period["name"] for period in p["periods"]) or "-",
                "unbounded" if p["estimate"] is None else str(p["estimate"]),
                p["description"],
            ]
            for p in profiles
        ),
    )


@app.command("show")
def show(ref: ProfileArgument, as_json: JsonOption = False) -> None:
    """One profile with its periods (when each runs, how many snapshots it keeps) and its subjects."""
    client = connect()
    profile: JsonObject = client.get("profiles", ref)
    assigned = client.listing("profiles", profile["id"], "assignments")
    if as_json:
        render.print_json({**profile, "assignments": assigned})
        return
    _show(profile)
    names = ", ".join(f"{a['subject_type']} {a['subject_name']}" for a in assigned)
    render.say(f"assigned to: {names or 'nothing'}")


@app.command("update")
def update(
    ref: ProfileArgument,
    name: Annotated[str | None, typer.Option(help="Rename the profile.")] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="Another IANA zone (moves every slot).")] = None,
    description: Annotated[str | None, typer.Option(help="Replace the description.")] = None,
    ignore_warning: Annotated[bool | None, typer.Option("--ignore-warning/--warn")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a profile's name, zone, description or warning."""
    body = {
        k: v
        for k, v in {
            "name": name,
            "timezone": timezone,
            "description": description,
            "ignore_warning": ignore_warning,
        }.items()
        if v is not None
    }
    if not body:
        raise InvalidInput("nothing to change: give --name, --timezone, --description or --ignore-warning/--warn")
    _print(connect().patch("profiles", ref, body=body), as_json)


@app.command("delete")
def delete(
    ref: ProfileArgument,
    detach: Annotated[bool, typer.Option(help="Unassign it from every subject first.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a profile (refused while assigned, unless --detach). The snapshots it took stay."""
    if not yes:
        typer.confirm(f"Delete profile {ref!r}{' and unassign it everywhere' if detach else ''}?", abort=True)
    connect().delete("profiles", ref, detach=detach)
    render.say(f"profile {ref!r} deleted")


SystemOption = Annotated[bool, typer.Option("--system", help="The system's system snapshots.")]
TenantSubject = Annotated[str | None, typer.Option("--tenant", help="A tenant's own system snapshots.")]
VmSubject = Annotated[str | None, typer.Option("--vm", help="A VM (name or id).")]
VolumeSubject = Annotated[str | None, typer.Option("--volume", help="A volume (name or id).")]


@app.command("assign")
def assign(
    ref: ProfileArgument,
    system: SystemOption = False,
    tenant: TenantSubject = None,
    vm: VmSubject = None,
    volume: VolumeSubject = None,
    as_json: JsonOption = False,
) -> None:
    """Assign the profile to a subject (replacing the profile it had)."""
    subject_type, subject = _subject(system, tenant, vm, volume)
    body = {"subject_type": subject_type, "subject": subject}
    assignment: JsonObject = connect().post("profiles", ref, "assignments", body=body)
    if as_json:
        render.print_json(assignment)
    else:
        render.say(f"profile {ref!r} assigned to {subject_type} {assignment['subject_name']!r}")


@app.command("unassign")
def unassign(
    system: SystemOption = False, tenant: TenantSubject = None, vm: VmSubject = None, volume: VolumeSubject = None
) -> None:
    """Take a subject's profile away; its snapshots stay, with their expiry."""
    subject_type, subject = _subject(system, tenant, vm, volume)
    connect().request("DELETE", "assignments", subject_type, subject)
    render.say(f"{subject_type} {subject!r} has no profile now")


@app.command("preview")
def preview(
    ref: ProfileArgument,
    at: Annotated[str, typer.Option("--at", help="The time to preview (ISO 8601, e.g. 2027-03-01T12:00).")],
    system: SystemOption = False,
    tenant: TenantSubject = None,
    vm: VmSubject = None,
    volume: VolumeSubject = None,
    as_json: JsonOption = False,
) -> None:
    """Which snapshots would exist at --at (of one subject, counting its existing ones); takes none."""
    params: dict[str, Any] = {"at": at}
    if system or tenant or vm or volume:
        params["subject_type"], params["subject"] = _subject(system, tenant, vm, volume)
    planned = connect().listing("profiles", ref, "preview", **params)
    if as_json:
        render.print_json(planned)
        return
    render.table(
        ["NAME", "PERIOD", "CREATED", "EXPIRES", "STATUS", "EXISTS"],
        (
            [
                p["name"],
                p["period"],
                render.local_time(p["created_at"]),
                render.local_time(p["expires_at"], "never"),
                p["status"],
                "yes" if p["existing"] else "-",
            ]
            for p in planned
        ),
    )


def _period_body(**options: Any) -> dict[str, Any]:
    """The options given, as the API's period fields."""
    body = {k: v for k, v in options.items() if v is not None}
    if "day_of_week" in body:
        body["day_of_week"] = _day_of_week(body["day_of_week"])
    for key in ("day_of_month", "month"):
        if key in body:
            body[key] = _any(body[key])
    for key, tag in (("include_tags", "include_tag"), ("exclude_tags", "exclude_tag")):
        if body.pop(tag, None):
            body[key] = options[tag]
    return body


Frequency = Annotated[
    str | None, typer.Option(help="interval, hourly, daily, weekly, monthly, yearly or once.", show_default=False)
]
Minute = Annotated[int | None, typer.Option(help="Minute 0-59.")]
Hour = Annotated[int | None, typer.Option(help="Hour 0-23.")]
DayOfWeek = Annotated[str | None, typer.Option(help="sun … sat, or any (weekly: once a week, on Sunday).")]
DayOfMonth = Annotated[str | None, typer.Option(help="1-31 (31: the last day in shorter months), or any.")]
Month = Annotated[str | None, typer.Option(help="1-12, or any.")]
Interval = Annotated[int | None, typer.Option("--interval", help="Minutes between snapshots (interval).")]
At = Annotated[str | None, typer.Option(help="The exact time of a 'once' period (ISO 8601 with zone).")]
RetentionOption = Annotated[str | None, typer.Option(help="How long each snapshot is kept: 12h, 7d, 2w, 7y, forever.")]
MinSnapshots = Annotated[int | None, typer.Option(help="Keep at least this many, even expired (default 1).")]
Flag = Annotated[bool | None, typer.Option(show_default=False)]
Tags = Annotated[list[str] | None, typer.Option(help="System periods: only / all but objects with this tag.")]


@periods_app.command("add")
def add_period(
    ref: ProfileArgument,
    name: PeriodArgument,
    frequency: Frequency = None,
    minute: Minute = None,
    hour: Hour = None,
    day_of_week: DayOfWeek = None,
    day_of_month: DayOfMonth = None,
    month: Month = None,
    interval: Interval = None,
    at: At = None,
    retention: RetentionOption = None,
    min_snapshots: MinSnapshots = None,
    quiesce: Annotated[bool | None, typer.Option("--quiesce/--no-quiesce")] = None,
    immutable: Annotated[bool | None, typer.Option("--immutable/--mutable")] = None,
    private: Annotated[bool | None, typer.Option("--private/--public")] = None,
    skip_missed: Annotated[bool | None, typer.Option("--skip-missed/--catch-up")] = None,
    include_tag: Tags = None,
    exclude_tag: Tags = None,
    as_json: JsonOption = False,
) -> None:
    """Add a period to a profile."""
    if frequency is None:
        raise InvalidInput("a period needs --frequency")
    body = _period_body(
        name=name,
        frequency=frequency,
        minute=minute,
        hour=hour,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        month=month,
        interval_minutes=interval,
        at=at,
        retention=retention,
        min_snapshots=min_snapshots,
        quiesce=quiesce,
        immutable=immutable,
        private=private,
        skip_missed=skip_missed,
        include_tag=include_tag,
        exclude_tag=exclude_tag,
    )
    _print(connect().post("profiles", ref, "periods", body=body), as_json)


@periods_app.command("update")
def update_period(
    ref: ProfileArgument,
    name: PeriodArgument,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename the period.")] = None,
    frequency: Frequency = None,
    minute: Minute = None,
    hour: Hour = None,
    day_of_week: DayOfWeek = None,
    day_of_month: DayOfMonth = None,
    month: Month = None,
    interval: Interval = None,
    at: At = None,
    retention: RetentionOption = None,
    min_snapshots: MinSnapshots = None,
    quiesce: Annotated[bool | None, typer.Option("--quiesce/--no-quiesce")] = None,
    immutable: Annotated[bool | None, typer.Option("--immutable/--mutable")] = None,
    private: Annotated[bool | None, typer.Option("--private/--public")] = None,
    skip_missed: Annotated[bool | None, typer.Option("--skip-missed/--catch-up")] = None,
    include_tag: Tags = None,
    exclude_tag: Tags = None,
    as_json: JsonOption = False,
) -> None:
    """Change fields of a period (only those given); its next slots are computed again."""
    body = _period_body(
        name=new_name,
        frequency=frequency,
        minute=minute,
        hour=hour,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        month=month,
        interval_minutes=interval,
        at=at,
        retention=retention,
        min_snapshots=min_snapshots,
        quiesce=quiesce,
        immutable=immutable,
        private=private,
        skip_missed=skip_missed,
        include_tag=include_tag,
        exclude_tag=exclude_tag,
    )
    if not body:
        raise InvalidInput("nothing to change: give at least one option")
    _print(connect().patch("profiles", ref, "periods", name, body=body), as_json)


@periods_app.command("remove")
def remove_period(ref: ProfileArgument, name: PeriodArgument, as_json: JsonOption = False) -> None:
    """Remove a period; the snapshots it took stay, with their expiry."""
    _print(connect().request("DELETE", "profiles", ref, "periods", name), as_json)


@scheduler_app.command("status")
def status(as_json: JsonOption = False) -> None:
    """The next run of every period on every subject you see, soonest first."""
    entries = connect().listing("scheduler")
    if as_json:
        render.print_json(entries)
        return
    render.table(
        ["SUBJECT", "PROFILE", "PERIOD", "NEXT RUN", "LAST RUN", "FAILURES", "LAST ERROR"],
        (
            [
                f"{e['subject_type']} {e['subject_name']}",
                e["profile"],
                e["period"],
                "running" if e["running"] else render.local_time(e["next_run"], "never"),
                render.local_time(e["last_run"], "-"),
                str(e["failures"]),
                e["last_error"] or "-",
            ]
            for e in entries
        ),
    )
