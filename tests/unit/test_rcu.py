"""The expedited-grace-period switch around a freeze (storage/rcu.py), on a stand-in for the sysfs knob.

The real knob is exercised by every take of an image volume (tests/integration/test_volume_capture.py).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from snapkeep.engine.intents import Intents
from snapkeep.engine.recovery import release_recorded
from snapkeep.hypervisor import Hypervisor
from snapkeep.storage import rcu


@pytest.fixture
def knob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "rcu_expedited"
    path.write_text("0\n")
    monkeypatch.setattr(rcu, "KNOB", str(path))
    return path


def test_on_inside_and_put_back_after(knob: Path) -> None:
    with rcu.expedited():
        assert knob.read_text() == "1"
        assert rcu.before() == "0"  # what to put back, not what it is now
    assert knob.read_text() == "0"


def test_put_back_after_the_last_of_overlapping_freezes(knob: Path) -> None:
    first_in, second_done = threading.Event(), threading.Event()

    def other() -> None:
        first_in.wait()
        with rcu.expedited():
            pass
        second_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with rcu.expedited():
        first_in.set()
        second_done.wait()
        assert knob.read_text() == "1"  # the other freeze ended, this one has not
    thread.join()
    assert knob.read_text() == "0"


def test_an_operators_setting_is_left_alone(knob: Path) -> None:
    knob.write_text("1\n")
    with rcu.expedited():
        pass
    assert knob.read_text() == "1\n"


def test_put_back_even_when_the_freeze_raises(knob: Path) -> None:
    with pytest.raises(OSError), rcu.expedited():
        raise OSError("freeze failed")
    assert knob.read_text() == "0"


def test_no_knob_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rcu, "KNOB", str(tmp_path / "missing" / "rcu_expedited"))
    with rcu.expedited():
        pass
    assert rcu.before() is None


class NoPool:
    def thaw_one(self, dataset: str) -> int:
        return 0


def recover(run_dir: Path) -> int:
    """What the reconciler does at start-up with the intents of ``run_dir``; the volumes it thawed."""
    no_host: Hypervisor = object()  # type: ignore[assignment]  # no guest intents: never asked
    return release_recorded(Intents(str(run_dir)), NoPool(), no_host).volumes_thawed  # type: ignore[arg-type]


def test_the_reconciler_puts_back_what_a_killed_take_left_on(knob: Path, tmp_path: Path) -> None:
    knob.write_text("1")  # a take was killed inside its freeze
    intent = tmp_path / "run" / "volume-freeze-x.json"
    intent.parent.mkdir()
    intent.write_text(json.dumps({"datasets": ["volume-1"], "rcu_expedited": "0"}))
    recover(intent.parent)
    assert knob.read_text() == "0" and not intent.exists()


def test_an_intent_cut_short_by_a_power_cut_is_dropped(knob: Path, tmp_path: Path) -> None:
    intent = tmp_path / "run" / "volume-freeze-x.json"
    intent.parent.mkdir()
    intent.write_text("")
    assert recover(intent.parent) == 0
    assert not intent.exists()
