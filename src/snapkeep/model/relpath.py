"""Paths inside a volume as users give them: relative, as bytes, checked before anything is looked up.

File names on Linux are bytes; shares written by older SMB/NFS clients hold names that are not UTF-8.
Inside snapkeep a relative path is a tuple of byte components; at the edges it is text (when it is valid
UTF-8) or base64 of its bytes. Shown to people, bytes that are not UTF-8 appear as ``\\xNN`` escapes.
"""

from __future__ import annotations

import base64
import binascii

from snapkeep.errors import InvalidPath

NAME_MAX = 255  # bytes in one component (Linux, btrfs, XFS)
PATH_MAX = 4096  # bytes in a path the kernel accepts, with its terminating NUL


def shown(raw: bytes) -> str:
    """Bytes as text for people and JSON: UTF-8 where they are, ``\\xNN`` escapes where they are not."""
    return raw.decode("utf-8", "backslashreplace")


def from_text(path: str) -> bytes:
    """The bytes of a path given as text; text that is not valid Unicode (a lone surrogate) is refused."""
    try:
        return path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPath(
            "the path is not valid Unicode; give a name that is not UTF-8 as base64 of its bytes (path_b64)",
            path=path.encode("utf-8", "backslashreplace").decode(),
        ) from None


def from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidPath("the path's base64 cannot be decoded", path=text[:80]) from None


def split(raw: bytes) -> tuple[bytes, ...]:
    """The components of a path relative to a volume's root, refusing anything that could climb out of it
    (absolute, ``..``) or that the kernel would refuse (NUL, a component over 255 bytes, over 4,095 bytes)."""
    text = shown(raw)
    if b"\0" in raw:
        raise InvalidPath("a path must not contain NUL", path=text)
    if raw.startswith(b"/"):
        raise InvalidPath(f"{text!r} is absolute; give it relative to the volume's root", path=text)
    if len(raw) >= PATH_MAX:
        raise InvalidPath(f"the path is {len(raw)} bytes long; at most {PATH_MAX - 1}", path=text[:80])
    parts = tuple(p for p in raw.split(b"/") if p not in (b"", b"."))
    if b".." in parts:
        raise InvalidPath(f"{text!r} climbs out with '..'", path=text)
    for part in parts:
        if len(part) > NAME_MAX:
            raise InvalidPath(f"a name in the path is {len(part)} bytes long; at most {NAME_MAX}", path=text[:80])
    return parts
