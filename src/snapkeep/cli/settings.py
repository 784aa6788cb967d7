"""The CLI's configuration, loaded once per command from ``SNAPKEEP_*`` and the command line."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError

from snapkeep.config import Settings
from snapkeep.errors import InvalidInput, Unauthorized

S = TypeVar("S", bound=Settings)


class ClientSettings(Settings):
    """The service's settings plus where to reach it; inherits ``data_dir`` so the token file's place is
    defined once, by the service's own settings."""

    url: str = "http://127.0.0.1:8470"
    token: str | None = None

    def api_token(self) -> str:
        """``SNAPKEEP_TOKEN``, else the admin token file (readable only on the service's host, by root)."""
        if self.token:
            return self.token
        try:
            with open(self.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise Unauthorized(
                f"no API token: set SNAPKEEP_TOKEN, or run where the token file {self.token_file} "
                f"is readable ({exc.strerror})"
            ) from exc
        if not token:
            raise Unauthorized(f"the token file {self.token_file} is empty; set SNAPKEEP_TOKEN")
        return token


def load(cls: type[S], **overrides: Any) -> S:
    """``cls`` from the environment, with the command line's ``overrides`` (``None`` = not given); a bad
    value becomes :class:`InvalidInput` naming the setting, not a traceback."""
    try:
        return cls(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"SNAPKEEP_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"invalid setting: {problems}") from exc
