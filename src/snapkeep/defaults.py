"""Where the service keeps its state and listens unless told otherwise, and where it writes the admin token.

Both the service's settings (:mod:`snapkeep.config`) and the CLI need these. They live in a module that imports
nothing, because the CLI must not load pydantic-settings (a quarter of a second) to know them.
"""

from __future__ import annotations

import os

DATA_DIR = "/var/lib/snapkeep"
LISTEN = "127.0.0.1:8470"


def admin_token_file(data_dir: str) -> str:
    """The admin token the service writes at first start; the CLI on the same host reads it."""
    return os.path.join(data_dir, "admin.token")
