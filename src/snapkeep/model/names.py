"""Rules for names users give to objects and snapshots, and the names snapkeep makes itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from itertools import chain

from snapkeep.errors import InvalidInput, InvalidName

MAX_NAME_LENGTH = 128
MAX_DESCRIPTION_LENGTH = 4096  # free text shown in listings; the catalog and every manifest carry it
_ALLOWED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+:@-]*$")
# Every rule of check_name in one expression (no "..": a dot is never followed by another), for the API schema.
NAME_PATTERN = r"^[A-Za-z0-9]((\.?[A-Za-z0-9 _()+:@-])*(\.?[A-Za-z0-9_()+:@-]|\.))?$"


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe object name, else raise :class:`InvalidName` saying why.

    Names appear in paths shown to users, in CLI arguments and in URLs, so they may not contain ``/``,
    NUL or control characters, may not be ``.``/``..`` and may not start with a separator or dot.
    """
    if not name or not name.strip():
        raise InvalidName(f"{what} must not be empty", name=name)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"{what} is {len(name)} characters long; at most {MAX_NAME_LENGTH}", name=name[:40])
    if "\x00" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidName(f"{what} must not contain NUL or control characters", name=repr(name))
    if "/" in name or "\\" in name:
        raise InvalidName(f"{what} must not contain '/' or '\\'", name=name)
    if name in (".", "..") or ".." in name:
        raise InvalidName(f"{what} must not contain '..'", name=name)
    if name != name.strip():
        raise InvalidName(f"{what} must not start or end with spaces", name=name)
    if not _ALLOWED.match(name):
        raise InvalidName(
            f"{what} may hold letters, digits, spaces and . _ ( ) + : @ - and must start with a letter or digit",
            name=name,
        )
    return name


def check_description(text: str, what: str = "description") -> str:
    """Return ``text`` if it is free text snapkeep can store and show: bounded, valid Unicode."""
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(f"{what} is {len(text)} characters long; at most {MAX_DESCRIPTION_LENGTH}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid Unicode (a lone surrogate)") from None
    return text


def manual_name(now: datetime) -> str:
    """A manual snapshot taken without a name (SPEC §6: ``snapshot take --system --never --immutable``)."""
    return f"manual_{now:%Y%m%d_%H%M%S}"


def first_free(base: str, taken: Callable[[str], bool]) -> str:
    """``base``, or ``base_2``, ``base_3``… the first that is free: a default name made from the time of day,
    given twice within one second."""
    for name in chain((base,), (f"{base}_{n}" for n in range(2, 10_000))):  # made one by one, as asked
        if not taken(name):
            return name
    raise InvalidInput(f"no free name of the form {base!r}_n; give one")


def pre_restore_name(now: datetime) -> str:
    """SPEC §2: the safety snapshot taken before an in-place restore."""
    return f"pre-restore_{now:%Y%m%d_%H%M%S}"


def restored_vm_name(snapshot_name: str) -> str:
    """SPEC §3: default name of a VM restored from a VM snapshot as new (a long name cut short to fit)."""
    return _suffixed(snapshot_name, " restored")


def numbered_name(original: str, taken: Callable[[str], bool]) -> str:
    """SPEC §3: a VM or tenant restored as new out of a system snapshot: ``<original> (n)``, the first n
    from 1 whose name is free (``original`` cut short so that the suffix fits)."""
    for n in range(1, 10_000):
        name = _suffixed(original, f" ({n})")
        if not taken(name):
            return name
    raise InvalidInput(f"no free name of the form {original!r} (n); give one")


def restored_volume_name(original: str) -> str:
    """SPEC §3: default name of a volume restored as new (a long name cut short to fit)."""
    return _suffixed(original, "_restored")


def _suffixed(base: str, suffix: str) -> str:
    """``base`` + ``suffix``, ``base`` cut short so that the whole is a name no longer than allowed."""
    return base[: MAX_NAME_LENGTH - len(suffix)].rstrip() + suffix
