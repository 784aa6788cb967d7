"""Where the CLI finds the service: ``SNAPKEEP_URL``, ``SNAPKEEP_TOKEN`` and ``SNAPKEEP_DATA_DIR``.

Read straight from the environment, not through the service's pydantic :class:`~snapkeep.config.Settings`:
loading pydantic-settings took a quarter of a second of every command, for three strings. The defaults are
the service's own (:mod:`snapkeep.defaults`), so on the service's host the CLI needs no configuration.
``snapkeep serve`` still loads the full settings (``serve_cmd``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from snapkeep import defaults
from snapkeep.errors import Unauthorized


@dataclass(frozen=True)
class ClientSettings:
    url: str
    token: str | None
    data_dir: str  # the service's state directory: where its admin token file is

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ClientSettings:
        """The settings ``env`` gives, the defaults for those it leaves unset or empty."""
        return cls(
            url=env.get("SNAPKEEP_URL") or f"http://{defaults.LISTEN}",
            token=env.get("SNAPKEEP_TOKEN") or None,
            data_dir=env.get("SNAPKEEP_DATA_DIR") or defaults.DATA_DIR,
        )

    def api_token(self) -> str:
        """``SNAPKEEP_TOKEN``, else the admin token file (readable only on the service's host, by root)."""
        if self.token:
            return self.token
        token_file = defaults.admin_token_file(self.data_dir)
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise Unauthorized(
                f"no API token: set SNAPKEEP_TOKEN, or run where the token file {token_file} "
                f"is readable ({exc.strerror})"
            ) from exc
        if not token:
            raise Unauthorized(f"the token file {token_file} is empty; set SNAPKEEP_TOKEN")
        return token
