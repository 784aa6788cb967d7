"""``./scripts/setup`` puts the CLI on the PATH (issue 6, defect 13): a link to this checkout's
``.venv/bin/snapkeep``, made once, never over a file that is not such a link."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from snapkeep import __version__

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def setup(bin_dir: Path) -> str:
    done = subprocess.run(
        [str(PROJECT_ROOT / "scripts" / "setup")],
        env={**os.environ, "SNAPKEEP_BIN_DIR": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_setup_links_the_cli_once_and_keeps_foreign_files(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    link = bin_dir / "snapkeep"
    said = setup(bin_dir)
    assert os.readlink(link) == str(PROJECT_ROOT / ".venv" / "bin" / "snapkeep") and str(link) in said
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert version.stdout.strip() == f"snapkeep {__version__}"
    assert setup(bin_dir) == ""  # idempotent, and quiet when nothing changes

    link.unlink()
    link.write_text("#!/bin/sh\necho someone else's\n")
    assert "left alone" in setup(bin_dir)
    assert link.read_text() == "#!/bin/sh\necho someone else's\n"
