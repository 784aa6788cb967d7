"""The OpenAPI document is true: schemathesis drives a real ``snapkeep serve`` from it and finds no 5xx, no
undocumented status, no response outside its schema, no wrong ``Allow`` and no schema-valid request refused.

Bounded and reproducible: a fixed seed, deterministic generation, a few examples per operation, one worker.
It runs on one driver only (btrfs): what it checks is the HTTP layer, which is the same code on both, and the
storage paths it reaches are covered per driver by the other tests. Creating VMs is left out: that would
define domains in the host's shared libvirtd (the VM tests own that); every other VM route is driven.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Mounted, Server, make_traversable_tmp, start_server, stop_server

MAX_EXAMPLES = 10
CONFIG = Path(__file__).with_name("schemathesis.toml")  # the operations where a rule is beyond JSON Schema
SEED = 6


@pytest.fixture
def fuzzed_server(fs: Mounted) -> Iterator[Server]:
    """A server of its own: the fuzzer creates and deletes freely, so it must not share one with other tests."""
    data_dir = make_traversable_tmp("snapkeep-fuzz-")
    server = start_server(data_dir, fs.new_dir("fuzz-pool"))
    try:
        yield server
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)


def seed(server: Server, tmp_path: Path) -> Path:
    """A volume with a file and an immutable snapshot of it (so the fuzzer can reach past "not found" without
    deleting them), named to the fuzzer in a copy of the config."""
    with server.client() as api:
        volume = api.post("/api/v1/volumes", json={"name": "fuzz", "size_limit": "1G"}).json()
        Path(volume["path"], "report.txt").write_text("numbers\n")
        job = api.post(
            "/api/v1/snapshots", params={"wait": 30}, json={"volume": "fuzz", "name": "base", "immutable": True}
        )
        snap_id = job.json()["result"]["snapshot"]["id"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[parameters]\nref = "fuzz"\nsnap_id = "{snap_id}"\n\n' + CONFIG.read_text())
    return config


@pytest.mark.parametrize("fs", ["btrfs"], indirect=True)
def test_the_service_answers_as_its_openapi_document_says(fuzzed_server: Server, tmp_path: Path) -> None:
    config = seed(fuzzed_server, tmp_path)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{fuzzed_server.url}/openapi.json",
        "--header", f"Authorization: Bearer {fuzzed_server.token}",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--generation-deterministic",
        "--workers", "1", "--request-timeout", "60",
        "--phases", "examples,coverage,fuzzing",
        "--exclude-operation-id", "create_vm_api_v1_vms_post",
        "--no-color", "--output-truncate", "false",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    if done.returncode != 0:
        log = Path(fuzzed_server.data_dir, "serve.log").read_text(errors="replace")
        errors = [line for line in log.splitlines() if "Traceback" in line or "Error" in line]
        pytest.fail(done.stdout[-20_000:] + done.stderr[-5_000:] + "\nservice log:\n" + "\n".join(errors[-40:]))
    print(done.stdout[-4000:])  # the counts, shown with -s
