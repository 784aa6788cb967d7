"""Command line for the demo script: ``python -m snapkeep.testguest image|format-disk PATH``.

``image`` builds (or finds in the cache) the test guest and prints its kernel, initrd and command line as
JSON; ``format-disk`` puts an empty ext4 filesystem on an existing raw disk file, keeping its size.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from snapkeep.testguest import build_test_guest, make_data_disk


def main(argv: list[str]) -> int:
    if argv[:1] == ["image"]:
        print(json.dumps(dataclasses.asdict(build_test_guest())))
        return 0
    if argv[:1] == ["format-disk"] and len(argv) == 2:
        make_data_disk(argv[1], os.path.getsize(argv[1]))
        return 0
    print("usage: python -m snapkeep.testguest image | format-disk PATH", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
