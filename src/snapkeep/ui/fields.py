"""Fields of the users' and tokens' forms read as the services take them: a role, and text that may be left
blank (the tenant: blank is the visitor's own scope)."""

from __future__ import annotations

from snapkeep.errors import InvalidInput
from snapkeep.model.principal import Role

ROLES = [role.value for role in Role]


def role(value: object) -> Role:
    try:
        return Role(str(value))
    except ValueError:
        raise InvalidInput(f"the role must be one of {', '.join(ROLES)}", role=str(value)[:32]) from None


def optional(value: object) -> str | None:
    """Blank (or not sent): None."""
    text = str(value or "").strip()
    return text or None
