"""The CLI loads what the command it runs needs, and no more (issue 9, item 7: 2,000 rows in well under a
second, where importing the CLI alone took 0.6-0.9 s).

Checked by structure, not by timing: a fresh interpreter runs one command against a real ``snapkeep serve``
and reports the modules it loaded. The service's stack (pydantic-settings, FastAPI, SQLAlchemy, uvicorn) is
never among them for a listing or a subcommand's help, and neither are httpx, pydantic or any other command
group's module.
Listing every command (``snapkeep --help``, shell completion, a mistyped name) still finds them all.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Server

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)
CLI = [sys.executable, "-m", "snapkeep.cli.main"]
# Runs the CLI's main() as the `snapkeep` script does, then writes the names of the loaded modules to argv[1].
PROBE = """
import json, sys
from snapkeep.cli.main import main
out, sys.argv = sys.argv[1], ["snapkeep", *sys.argv[2:]]
try:
    main()
finally:
    with open(out, "w") as f:
        json.dump(sorted(sys.modules), f)
"""
SERVICE_STACK = ("pydantic_settings", "fastapi", "starlette", "sqlalchemy", "uvicorn", "libvirt")
# what no command needs: httpx (cli/transport.py sends with http.client) and pydantic (Typer 0.29 imports it)
NOT_NEEDED = ("httpx", "httpcore", "pydantic", "pydantic_core")
SERVICE_SIDE = ("snapkeep.config", "snapkeep.api", "snapkeep.services", "snapkeep.catalog", "snapkeep.storage")
# rich (and httpx's own command line: click, pygments) only for what draws with rich: help, progress, `show`
RICH = ("rich", "pygments", "click")
GROUPS = (
    "volume",
    "vm",
    "snapshot",
    "job",
    "tenant",
    "network",
    "settings",
    "tag",
    "token",
    "user",
    "audit",
    "profile",
)


def loaded(server: Server, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``snapkeep ARGS`` in a new interpreter; its outcome and the modules it had loaded at the end."""
    report = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args],
        env=server.cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, set(json.loads(report.read_text()))


def heavy(modules: set[str], also: tuple[str, ...] = ()) -> set[str]:
    top = (*SERVICE_STACK, *NOT_NEEDED, *also)
    return {m for m in modules if m.split(".")[0] in top or m.startswith(SERVICE_SIDE)}


def other_groups(modules: set[str], *wanted: str) -> set[str]:
    return {m for m in modules if m.startswith("snapkeep.cli.") and m.endswith("_cmd")} - {
        f"snapkeep.cli.{group}_cmd" for group in wanted
    }


@pytest.mark.parametrize(
    ("args", "groups"),
    [
        (["snapshot", "list"], ["snapshot", "job"]),  # the groups that start jobs follow them with job_cmd's help
        (["snapshot", "list", "--help"], ["snapshot", "job"]),
        (["volume", "list"], ["volume", "job"]),
        (["job", "list", "--limit", "5"], ["job"]),
        (["user", "list"], ["user"]),
        (["audit", "list", "--limit", "5", "--outcome", "refused"], ["audit"]),
    ],
)
def test_a_command_loads_neither_the_service_nor_other_groups(
    server: Server, tmp_path: Path, args: list[str], groups: list[str]
) -> None:
    done, modules = loaded(server, tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert "snapkeep.cli.main" in modules  # the probe saw the CLI run
    assert heavy(modules, also=() if "--help" in args else RICH) == set()
    assert other_groups(modules, *groups) == set()


def test_listing_every_command_still_finds_them_all(server: Server, tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "--help"], env={**server.cli_env(), "COLUMNS": "200"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # the rows of the Commands panel, in the order they were always listed
    assert re.findall(r"^│ (\w+)  ", done.stdout, re.MULTILINE) == ["serve", *GROUPS, "scheduler"]
    assert "Point-in-time snapshots of volumes and VMs, and restores from them." in done.stdout
    assert "Run the snapkeep service" in done.stdout

    # shell completion, which the installed script answers (its name says which variable asks)
    script = [str(Path(sys.executable).with_name("snapkeep"))]
    complete = {**server.cli_env(), "_SNAPKEEP_COMPLETE": "complete_bash", "COMP_CWORD": "1"}
    top = subprocess.run(script, env={**complete, "COMP_WORDS": "snapkeep "}, capture_output=True, text=True)
    assert top.stdout.split() == ["serve", *GROUPS, "scheduler"]
    nested = {**complete, "COMP_WORDS": "snapkeep snapshot l", "COMP_CWORD": "2"}
    assert subprocess.run(script, env=nested, capture_output=True, text=True).stdout.split() == ["list"]

    typo = subprocess.run([*CLI, "snapshots", "list"], env=server.cli_env(), capture_output=True, text=True)
    assert typo.returncode == 2 and "Did you mean 'snapshot'?" in typo.stderr
