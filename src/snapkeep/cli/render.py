"""How the CLI shows things: rich tables for people, the API's own JSON for scripts, a job progress bar.

Machine output (``--json``, a job id with ``--no-wait``) goes to stdout unadorned; the progress bar goes to
stderr, so a script capturing stdout never sees it.
"""

from __future__ import annotations

import base64
import json
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

import typer

from snapkeep.model.units import format_size

if TYPE_CHECKING:
    from rich.console import Console

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON (and nothing else) on stdout.")]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="Show at most this many (default: all of them, page by page).")
]


@cache
def _console(stderr: bool = False) -> Console:
    """rich's console for stdout or stderr, made (and rich imported: a tenth of a second) only when needed.

    Like docker or kubectl, rows are never wrapped or cut to fit a screen (the terminal folds long lines):
    ids stay whole for copying into the next command, and piped output stays one row per line. Cells are
    plain text: no rich markup (names and descriptions may hold brackets) and no emoji codes (the MAC
    52:54:00:ab:cd:ef would otherwise show an emoji for ":ab:").
    """
    from rich.console import Console

    if stderr:
        return Console(stderr=True, highlight=False, markup=False, emoji=False)
    return Console(highlight=False, markup=False, emoji=False, width=100_000)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def say(text: str) -> None:
    """One plain line for people (never parsed as rich markup: names may hold brackets)."""
    typer.echo(text)


def note(text: str) -> None:
    """A remark for the person at the terminal, on stderr so it never mixes with output."""
    typer.echo(text, err=True)


def local_time(value: str | float | None, missing: str = "-") -> str:
    """An API timestamp (ISO 8601 in UTC, or seconds since the epoch) in the terminal's local time zone."""
    if value is None:
        return missing
    when = datetime.fromtimestamp(value) if isinstance(value, float) else datetime.fromisoformat(value)
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: int) -> str:
    """A retention as it was likely written: the largest unit that divides it (``3h``, ``7d``, ``2w``)."""
    for unit, length in (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % length == 0:
            return f"{seconds // length}{unit}"
    return f"{seconds}s"


def size(value: int | None) -> str:
    """Bytes as people read them (binary units); ``-`` while not measured yet."""
    return format_size(value)


_TYPE_BITS = {
    "dir": stat.S_IFDIR,
    "file": stat.S_IFREG,
    "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO,
    "socket": stat.S_IFSOCK,
    "char-device": stat.S_IFCHR,
    "block-device": stat.S_IFBLK,
}


def file_mode(kind: str, mode: int) -> str:
    """``drwxr-xr-x`` from a browsed entry's type and permission bits."""
    return stat.filemode(_TYPE_BITS.get(kind, 0) | mode)


def file_name(text: str, b64: str | None) -> str:
    """A browsed name as text; one that is not UTF-8 (or holds control characters) in bash's ``$'...'``
    quoting, with ``\\xNN`` for its other bytes, so it can be pasted back into a command exactly."""
    raw = base64.b64decode(b64) if b64 is not None else text.encode()
    if b64 is None and text.isprintable():
        return text
    escaped = "".join(chr(byte) if 0x20 <= byte < 0x7F and chr(byte) not in "\\'" else f"\\x{byte:02x}" for byte in raw)
    return f"$'{escaped}'"


def compact(data: Any) -> str:
    """A small JSON value on one line, for a cell of a table."""
    return json.dumps(data, sort_keys=True)


def table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Columns padded to their widest cell, two spaces apart, one row per line (the header bold on a terminal).

    Plain text rather than a rich ``Table``: rich lays out every cell as styled segments, which took 2.5 s
    for 2,000 snapshot rows on a 2-core host; this takes milliseconds. Widths count terminal cells, so wide
    characters still line up; control characters and line breaks in a cell become spaces.
    """
    lines = [list(columns), *([_cell(value) for value in row] for row in rows)]
    widths = [max(_width(line[i]) for line in lines) for i in range(len(columns))]
    text = ["  ".join(_pad(value, width) for value, width in zip(line, widths, strict=True)).rstrip() for line in lines]
    if sys.stdout.isatty():
        text[0] = typer.style(text[0], bold=True)
    typer.echo("\n".join(text))


def _cell(value: str) -> str:
    return value.translate(_CONTROL) if not value.isprintable() else value


def _width(value: str) -> int:
    """The terminal cells ``value`` takes: its length if ASCII (almost every cell), else as rich counts them."""
    if value.isascii():
        return len(value)
    from rich.cells import cell_len

    return cell_len(value)


def _pad(value: str, width: int) -> str:
    return value + " " * (width - _width(value))


_CONTROL = {code: " " for code in (*range(0x20), 0x7F)}


def details(pairs: Iterable[tuple[str, str]]) -> None:
    """One object as ``field  value`` lines, for the ``show`` commands."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in pairs:
        grid.add_row(key, value)
    _console().print(grid)


@contextmanager
def job_progress(job: dict[str, Any]) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A progress bar on stderr for one job; yields the callback that moves it to a newer job state.

    Transient, and silent when stderr is not a terminal, so logs and captured output stay clean.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

    err = _console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[message]}", markup=False),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = progress.add_task(job["kind"], total=1.0, completed=job["progress"], message=job["message"])

    def update(current: dict[str, Any]) -> None:
        progress.update(task, completed=current["progress"], message=current["message"])

    with progress:
        yield update
