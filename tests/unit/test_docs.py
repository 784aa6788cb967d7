"""The documents that describe formats and errors are checked against the code, so they cannot drift."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from snapkeep.errors import catalogue_markdown
from snapkeep.model.manifest import Manifest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_error_catalogue_is_generated_from_the_classes() -> None:
    assert (DOCS / "errors.md").read_text() == catalogue_markdown()


def test_format_example_loads_through_the_manifest_model() -> None:
    text = (DOCS / "format.md").read_text()
    example = re.search(r"```json\n(.*?)```", text, re.S)
    assert example is not None
    manifest = Manifest.from_bytes(example.group(1).encode())
    assert manifest.snapshot.name == "before-upgrade" and manifest.objects[0].type == "volume"
    assert manifest.format_version == Manifest.written(manifest.snapshot, manifest.objects).format_version == 1


def test_unknown_manifest_version_is_rejected() -> None:
    text = (DOCS / "format.md").read_text()
    example = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))  # type: ignore[union-attr]
    example["format_version"] = 3
    with pytest.raises(ValidationError, match="unknown manifest format_version"):
        Manifest.model_validate(example)
