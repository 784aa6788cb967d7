"""The model's input rules (sizes, expiries, settings, descriptions): what every interface gets, checked here
without a server; tests/integration/test_hostile_input.py sends the same inputs through a real one."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from snapkeep.errors import InvalidExpiry, InvalidInput, InvalidSettings
from snapkeep.model.names import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    check_description,
    check_name,
    first_free,
    manual_name,
    numbered_name,
    restored_vm_name,
    restored_volume_name,
)
from snapkeep.model.settings import MAX_DEPTH, apply_settings, merge_patch
from snapkeep.model.timespec import expiry_after, parse_duration, parse_expiry
from snapkeep.model.units import MAX_SIZE, SIZE_PATTERN, check_volume_size, parse_size
from snapkeep.services.snapshots import TakeRequest

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("10G", 10 << 30),
        ("10 GiB", 10 << 30),
        ("1.5k", 1536),
        ("2Gi", 2 << 30),
        ("7b", 7),
        (MAX_SIZE, MAX_SIZE),
    ],
)
def test_sizes_read_exactly(text: str | int, size: int) -> None:
    assert parse_size(text) == size
    if isinstance(text, str):
        assert re.fullmatch(SIZE_PATTERN, text), "the API schema's pattern accepts what the parser reads"


@pytest.mark.parametrize(
    "text",
    [
        True,
        False,
        0,
        -1,
        MAX_SIZE + 1,
        10**30,
        "99999999999999999999P",
        "9" * 400,
        "\uff11G",
        "\u0665G",
        "1\u212a",
        "0.1",
    ],
)
def test_sizes_out_of_range_not_ascii_or_boolean_are_refused(text: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_size(text)
    if isinstance(text, str) and not text.startswith(("9", "0")):
        assert not re.fullmatch(SIZE_PATTERN, text)


@pytest.mark.parametrize(
    "text", ["9999999d", "99999999999999y", "9999-12-31T23:59:59-14:00", "7" * 10_000 + "d", "\uff17d"]
)
def test_expiries_that_cannot_be_represented_or_are_not_ascii_are_refused(text: str) -> None:
    with pytest.raises(InvalidExpiry):
        parse_expiry(text, NOW)


def test_expiries_within_range_are_read() -> None:
    assert parse_expiry("7d", NOW) == NOW + timedelta(days=7)
    assert parse_expiry("9999-12-31T23:59:59+14:00", NOW) == datetime(9999, 12, 31, 9, 59, 59, tzinfo=UTC)
    assert parse_duration("3 min") == timedelta(minutes=3)


def test_years_of_retention_are_calendar_years_never_shorter() -> None:
    """SOX keeps yearly snapshots 7 years: one taken on 1 January 2026 stays to 1 January 2033 (2,557 days, two
    leap days), not 2,555 days (30 December 2032) as a year of 365 days made it."""
    new_year = datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry_after(new_year, parse_duration("7y")) == datetime(2033, 1, 1, tzinfo=UTC)
    assert TakeRequest("docs", "", keep_for=parse_duration("7y")).expiry(new_year) == datetime(2033, 1, 1, tzinfo=UTC)
    march = datetime(2027, 3, 1, 2, 30, tzinfo=UTC)
    assert expiry_after(march, parse_duration("1y")) == datetime(2028, 3, 1, 2, 30, tzinfo=UTC)  # 366 days
    leap_day = datetime(2028, 2, 29, tzinfo=UTC)
    assert expiry_after(leap_day, parse_duration("1y")) == datetime(2029, 2, 28, tzinfo=UTC)  # 365 days
    assert expiry_after(march, parse_duration("400d")) == march + timedelta(days=400)  # not whole years
    assert parse_expiry("2y", march) == datetime(2029, 3, 1, 2, 30, tzinfo=UTC)
    with pytest.raises(OverflowError):
        expiry_after(datetime(9500, 1, 1, tzinfo=UTC), parse_duration("999y"))


def test_settings_merge_like_rfc_7396() -> None:
    # the examples of RFC 7396 section 3
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
    current = {"x": 1}
    assert apply_settings(current, {"x": None, "y": [None, 2.5]}) == {"y": [None, 2.5]} and current == {"x": 1}


def deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    "patch",
    [
        deep(MAX_DEPTH + 1),
        {"\ud800": 1},
        {"k": "\udcff"},
        {"k": float("nan")},
        {"k": [float("inf")]},
        {"k": 2**64},
        {"": 1},
        {"k" * 129: 1},
        {"k": b"bytes"},
        {"k": {1, 2}},
        {"k": "x" * 70_000},
    ],
)
def test_settings_that_cannot_be_stored_are_refused(patch: dict[str, Any]) -> None:
    with pytest.raises(InvalidSettings):
        apply_settings({}, patch)


def test_settings_up_to_the_limits_are_kept() -> None:
    assert apply_settings({}, deep(MAX_DEPTH)) == deep(MAX_DEPTH)


def test_descriptions_are_bounded_unicode() -> None:
    assert check_description("d" * MAX_DESCRIPTION_LENGTH)
    for bad in ("d" * (MAX_DESCRIPTION_LENGTH + 1), "broken \ud800"):
        with pytest.raises(InvalidInput):
            check_description(bad)


def test_a_volume_size_limit_is_at_least_one_mebibyte() -> None:
    """Below that a filesystem's own metadata would not fit: btrfs then refuses even to change the limit."""
    for too_small in (1, 392, (1 << 20) - 1):
        with pytest.raises(InvalidInput, match="at least 1M"):
            check_volume_size(too_small)
    check_volume_size(1 << 20)


def test_a_default_name_is_the_time_then_the_first_free_number() -> None:
    base = manual_name(datetime(2026, 12, 2, 9, 5, 7, tzinfo=UTC))
    assert base == "manual_20261202_090507"
    assert first_free(base, set().__contains__) == base
    assert first_free(base, {base}.__contains__) == f"{base}_2"
    assert first_free(base, {base, f"{base}_2"}.__contains__) == f"{base}_3"
    with pytest.raises(InvalidInput, match="give one"):
        first_free(base, lambda _name: True)


def test_a_default_name_made_from_a_long_name_is_cut_to_fit() -> None:
    """A name of the longest length allowed, restored as new without a name given: the default fits (before:
    ``restored_vm_name`` and ``restored_volume_name`` made names the restore then refused as too long)."""
    longest = "v" * (MAX_NAME_LENGTH - 1) + "x"
    for made in (restored_vm_name(longest), restored_volume_name(longest), numbered_name(longest, set().__contains__)):
        assert check_name(made) == made and len(made) == MAX_NAME_LENGTH
    assert restored_vm_name("web") == "web restored" and restored_volume_name("docs") == "docs_restored"
