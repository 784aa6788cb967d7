"""A hostile NAS user for race tests: swaps a folder with symlinks that point elsewhere, as fast as it can.

    python -m tests.swapper RACE LINK [LINK ...]

Exchanges RACE with each LINK in turn (``renameat2(RENAME_EXCHANGE)``), twice per LINK, so that RACE is a
symlink for a moment and then the folder again. On SIGTERM it finishes the pair it is in (RACE is the folder
again when it exits) and prints how many exchanges it made.
"""

from __future__ import annotations

import signal
import sys

from snapkeep.storage.linux import exchange


def main() -> None:
    race, links = sys.argv[1], sys.argv[2:]
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    count = 0
    while not stopping:
        for link in links:
            exchange(race, link)
            exchange(race, link)
            count += 2
    print(count, flush=True)


if __name__ == "__main__":
    main()
