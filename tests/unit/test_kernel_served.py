"""Volumes served by the kernel NFS server or by ksmbd are never claimed quiesced: their writers have no descriptors."""

from __future__ import annotations

from pathlib import Path

from snapkeep.writers.pause import kernel_served, smb_served


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


def test_ksmbd_shares_covering_a_volume_are_found_while_ksmbd_is_loaded(tmp_path: Path) -> None:
    volume = tmp_path / "pool" / "datasets" / "volume-1"
    volume.mkdir(parents=True)
    module, conf = tmp_path / "module", tmp_path / "ksmbd.conf"
    conf.write_text(f"[global]\n\tworkgroup = WG\n[docs]\n\tPath = {volume}/reports\n\tread only = no\n")
    assert smb_served(str(volume), [str(conf)], [str(module)]) is None  # not loaded: nothing serves it
    module.mkdir()
    assert smb_served(str(volume), [str(conf)], [str(module)]) == f"ksmbd share {volume}/reports"
    conf.write_text(f"[all]\npath = {tmp_path}/pool\n")
    assert smb_served(str(volume), [str(conf)], [str(module)]) == f"ksmbd share {tmp_path}/pool"
    conf.write_text(f"[other]\npath = {tmp_path}/pool/datasets/volume-10\n")
    assert smb_served(str(volume), [str(conf)], [str(module)]) is None


def test_ksmbd_loaded_with_shares_that_cannot_be_read_is_never_claimed_quiesced(tmp_path: Path) -> None:
    (tmp_path / "module").mkdir()
    reason = smb_served(str(tmp_path), [str(tmp_path / "missing.conf")], [str(tmp_path / "module")])
    assert reason is not None and "cannot be read" in reason
