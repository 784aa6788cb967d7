"""Reproducible benchmarks of snapkeep against the bare filesystem operations an operator would use.

Run from the project root, e.g. ``.venv/bin/python -m bench.volume_snapshots --quick``; results go to
``bench/results/``.
"""
