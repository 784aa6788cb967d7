"""Volumes served by the kernel NFS server are never claimed quiesced: its writers have no descriptors."""

from __future__ import annotations

from pathlib import Path

from snapkeep.writers.pause import kernel_served


def test_exports_covering_or_inside_a_volume_are_found(tmp_path: Path) -> None:
    volume = tmp_path / "pool" / "datasets" / "volume-1"
    volume.mkdir(parents=True)
    etab = tmp_path / "etab"
    etab.write_text(f"# exports\n{tmp_path}/pool/datasets/volume-1\t*(rw,sync)\n")
    assert kernel_served(str(volume), [str(etab)]) == str(volume)
    etab.write_text(f"{tmp_path}/pool *(rw)\n")
    assert kernel_served(str(volume), [str(etab)]) == str(tmp_path / "pool")
    etab.write_text(f"{volume}/sub *(rw)\n")
    assert kernel_served(str(volume), [str(etab)]) == str(volume / "sub")


def test_unrelated_exports_and_missing_tables_do_not_count(tmp_path: Path) -> None:
    volume = tmp_path / "volume-1"
    volume.mkdir()
    etab = tmp_path / "etab"
    etab.write_text(f"{tmp_path}/volume-10 *(rw)\n/srv/other *(rw)\n")
    assert kernel_served(str(volume), [str(etab), str(tmp_path / "missing")]) is None
