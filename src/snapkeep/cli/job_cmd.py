"""``snapkeep job``: list, show and wait for long operations; and :func:`follow`, which every command that
starts a job uses to wait for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import ApiClient, JsonObject, connect, error_from_body
from snapkeep.cli.render import JsonOption

app = typer.Typer(help="Long operations: what they are doing, and their results.", no_args_is_help=True)

NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Do not wait for the job: print its id (or its JSON with --json).")
]


def follow(api: ApiClient, job: JsonObject, *, no_wait: bool, as_json: bool, done: Callable[[JsonObject], str]) -> None:
    """Wait for a job the API just started, with a progress bar, then print ``done(result)`` (or the final
    job's JSON). A failed job raises its error after printing, so ``main()`` exits with its code."""
    if no_wait:
        if as_json:
            render.print_json(job)
        else:
            render.say(job["id"])
        return
    try:
        with render.job_progress(job) as update:
            job = api.wait_job(job["id"], update)
    except KeyboardInterrupt:
        render.note(f"stopped waiting; job {job['id']} goes on (snapkeep job wait {job['id']})")
        raise
    if as_json:
        render.print_json(job)
    if job["status"] == "failed":
        raise error_from_body(job["error"])
    if not as_json:
        render.say(done(job["result"] or {}))


def _percent(job: JsonObject) -> str:
    return f"{job['progress'] * 100:.0f}%"


@app.command("list")
def list_jobs(
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Recent jobs, newest first."""
    jobs = connect().listing("jobs", limit=limit)
    if as_json:
        render.print_json(jobs)
        return
    render.table(
        ["ID", "KIND", "STATUS", "PROGRESS", "CREATED", "MESSAGE"],
        (
            [j["id"], j["kind"], j["status"], _percent(j), render.local_time(j["created_at"]), j["message"]]
            for j in jobs
        ),
    )


def _show(job: JsonObject) -> None:
    error = job["error"]
    render.details(
        [
            ("id", job["id"]),
            ("kind", job["kind"]),
            ("status", job["status"]),
            ("progress", _percent(job)),
            ("message", job["message"]),
            ("params", render.compact(job["params"])),
            ("result", render.compact(job["result"]) if job["result"] is not None else "-"),
            ("error", f"{error['message']} ({error['code']})" if error else "-"),
            ("created", render.local_time(job["created_at"])),
            ("finished", render.local_time(job["finished_at"])),
        ]
    )


@app.command("show")
def show(job_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False) -> None:
    """One job: its progress, result or error."""
    job: JsonObject = connect().get("jobs", job_id)
    if as_json:
        render.print_json(job)
    else:
        _show(job)


@app.command("wait")
def wait(job_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOption = False) -> None:
    """Wait for a job to finish; exits non-zero with the job's error if it failed."""
    api = connect()
    follow(
        api,
        api.get("jobs", job_id),
        no_wait=False,
        as_json=as_json,
        done=lambda result: f"job {job_id} succeeded: {render.compact(result)}",
    )
