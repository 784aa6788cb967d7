"""Reading a submitted HTML form: text fields, checkboxes and optional values, as the services take them.

An HTML form sends every text field (empty when left blank) and a checkbox only when it is ticked; these
helpers turn that into the values the services expect, so no route repeats the conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from snapkeep.errors import InvalidInput
from snapkeep.model.principal import Role

Fields = Mapping[str, Any]
"""A submitted form, or a query string (a GET form): both are read the same way."""
ROLES = [role.value for role in Role]


def text(form: Fields, name: str, default: str = "") -> str:
    """A text field as typed (surrounding blanks removed); ``default`` when it was not sent."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


def optional(form: Fields, name: str) -> str | None:
    """A text field that may be left blank: None when blank or not sent."""
    return text(form, name) or None


def flag(form: Fields, name: str) -> bool:
    """A checkbox: ticked (sent, with any value but "0" or "false") or not."""
    value = form.get(name)
    return isinstance(value, str) and value not in ("0", "false")


def words(form: Fields, name: str) -> list[str]:
    """A field holding a list typed as words separated by commas or blanks (tags)."""
    return [word for word in text(form, name).replace(",", " ").split() if word]


def role(form: Fields, name: str) -> Role:
    """A role chosen in a select (or typed): one of :data:`ROLES`."""
    value = text(form, name)
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(f"the role must be one of {', '.join(ROLES)}", role=value[:32]) from None
