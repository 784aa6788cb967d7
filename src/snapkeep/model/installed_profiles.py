"""The profiles snapkeep installs at first start (SPEC §4); they are editable like any other afterwards.

Where the SPEC names no time, snapshots are taken at midnight: the yearly ones on 1 January, the monthly ones
on the 1st, the weekly ones on Sunday; a year of retention ends on the same date a year on. The SPEC's
periods keep the default minimum of one snapshot held past expiry.
"""

from __future__ import annotations

from datetime import timedelta

from snapkeep.model.profile import Frequency, Period, Profile

SYSTEM_PROFILE = "System Snapshots"  # the installed profile assigned to the system
_YEAR = timedelta(days=365)


def _compliance(name: str, description: str, yearly: timedelta | None, zone: str) -> Profile:
    """SOX and HIPAA differ only in how long their yearly snapshots stay."""
    periods = (
        Period("yearly", Frequency.YEARLY, month=1, day_of_month=1, retention=yearly),
        Period("monthly", Frequency.MONTHLY, day_of_month=1, retention=_YEAR),
        Period("weekly", Frequency.WEEKLY, day_of_week=0, retention=timedelta(days=31)),
        Period("daily", Frequency.DAILY, retention=timedelta(days=7)),
    )
    return Profile("", name, description, None, zone, periods)


def installed_profiles(zone: str = "UTC") -> list[Profile]:
    """System Snapshots (assigned to the system: :data:`SYSTEM_PROFILE`), SOX, HIPAA and NAS Volume Syncs,
    owned by the system, in ``zone``, not yet stored (empty ids)."""
    system = Profile(
        "",
        SYSTEM_PROFILE,
        "hourly kept 3 hours, daily at midnight kept 3 days, daily at noon kept 1 day",
        None,
        zone,
        (
            Period("hourly", Frequency.HOURLY, retention=timedelta(hours=3)),
            Period("daily", Frequency.DAILY, retention=timedelta(days=3)),
            Period("midday", Frequency.DAILY, hour=12, retention=timedelta(days=1)),
        ),
    )
    nas = Profile(
        "",
        "NAS Volume Syncs",
        "daily at 18:00 kept 3 days",
        None,
        zone,
        (Period("daily", Frequency.DAILY, hour=18, retention=timedelta(days=3)),),
    )
    return [
        system,
        _compliance("SOX", "yearly kept 7 years, monthly 1 year, weekly 31 days, daily 7 days", 7 * _YEAR, zone),
        _compliance("HIPAA", "yearly kept forever, monthly 1 year, weekly 31 days, daily 7 days", None, zone),
        nas,
    ]
