"""Settings documents (a volume's ``settings``): what may be stored, and how a change is applied.

Settings are free-form JSON that snapkeep stores in the catalog, returns in every listing and copies into
every snapshot's manifest. One bad document would break all three for everyone, so a change is checked
before it is committed: JSON values only (text, finite numbers within 64 bits, booleans, arrays, objects),
text that is valid Unicode, text keys, bounded nesting and size. A change is a JSON merge patch
(RFC 7396): its members replace the stored ones, objects merge member by member, and ``null`` removes a key.
"""

from __future__ import annotations

import json
import math
from typing import Any

from snapkeep.errors import InvalidSettings

MAX_DEPTH = 16  # objects and arrays inside one another
MAX_BYTES = 64 * 1024  # the stored document, as compact JSON
MAX_KEY_LENGTH = 128
_INT_RANGE = (-(1 << 63), (1 << 63) - 1)

SCHEMA_DESCRIPTION = (
    "A JSON merge patch (RFC 7396) of the settings: members replace the stored ones, objects merge member by "
    "member, and null removes a key. Values are text, finite numbers (integers within 64 bits), booleans, "
    f"arrays and objects; keys are 1-{MAX_KEY_LENGTH} characters; at most {MAX_DEPTH} levels deep and "
    f"{MAX_BYTES} bytes as JSON once applied."
)


def _text(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSettings(f"settings: {where} is not valid Unicode (a lone surrogate)", at=where) from None


def _check(value: Any, where: str, depth: int, patch: bool) -> None:
    """Raise :class:`InvalidSettings` unless ``value`` is a JSON value snapkeep can store (``None`` only as a
    member of an object in a patch, where it means "remove")."""
    if depth > MAX_DEPTH:
        raise InvalidSettings(f"settings are nested more than {MAX_DEPTH} levels deep", at=where)
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise InvalidSettings(f"settings: {where} is an integer beyond 64 bits", at=where)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidSettings(f"settings: {where} is {value}; only finite numbers are JSON", at=where)
    elif isinstance(value, str):
        _text(value, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if item is not None:  # null is a value inside an array
                _check(item, f"{where}[{i}]", depth + 1, patch=False)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
                raise InvalidSettings(f"settings: a key in {where} is not text of 1-{MAX_KEY_LENGTH} characters")
            _text(key, f"a key in {where}")
            if item is None and patch:
                continue
            _check(item, f"{where}.{key}", depth + 1, patch)
    else:
        raise InvalidSettings(f"settings: {where} is a {type(value).__name__}, not a JSON value", at=where)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: ``patch`` applied to ``target`` (neither is changed)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_settings(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The settings after ``patch``, checked; :class:`InvalidSettings` (nothing changed) if they cannot be kept."""
    if not isinstance(patch, dict):
        raise InvalidSettings("settings must be a JSON object")
    _check(patch, "settings", 0, patch=True)
    result: dict[str, Any] = merge_patch(current, patch)
    size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise InvalidSettings(f"settings would be {size} bytes as JSON; at most {MAX_BYTES}", size=size)
    return result


# Tenant settings snapkeep itself reads, with their types and the values a tenant has until it sets them.
TENANT_DEFAULTS: dict[str, Any] = {"expose_snapshots": True}  # its parent's system snapshots show to it
PARENT_DECIDES = frozenset({"expose_snapshots"})  # set from above the tenant, never by the tenant itself


def check_known(document: dict[str, Any]) -> None:
    """:class:`InvalidSettings` if a key snapkeep reads holds a value of the wrong type."""
    for key, default in TENANT_DEFAULTS.items():
        if key in document and type(document[key]) is not type(default):
            wanted = type(default).__name__
            raise InvalidSettings(f"settings: {key} must be a {wanted}, not {document[key]!r}", at=key)
