"""A fault switch for a real ``snapkeep serve`` that a test starts with this folder on ``PYTHONPATH``.

Python imports ``sitecustomize`` at start-up. With ``SKTEST_HOLD_FROZEN`` set to a number of seconds, every
guest freeze the service makes through libvirt is followed by that long a wait before the service goes on
(to pause, capture, resume and thaw): the guest stays really frozen, by its real agent, for that long, so a
test can kill the service inside that window on purpose instead of by luck. Without the variable nothing
is changed. Not part of snapkeep: the service under test never imports this file by itself.
"""

from __future__ import annotations

import os
import time

_HOLD = float(os.environ.get("SKTEST_HOLD_FROZEN") or 0)

if _HOLD > 0:
    from snapkeep.hypervisor.libvirt_host import LibvirtHost

    _freeze = LibvirtHost.freeze

    def _freeze_and_hold(self: LibvirtHost, name: str, timeout: float) -> int:
        frozen = _freeze(self, name, timeout)
        time.sleep(_HOLD)
        return frozen

    LibvirtHost.freeze = _freeze_and_hold  # type: ignore[method-assign]
