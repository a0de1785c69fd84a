"""Day, week and month bounds in local time."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cmat.periods import period_bounds

PARIS = ZoneInfo("Europe/Paris")


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize("period, now, start, reset", [
    # The day daylight saving starts is 23 hours long.
    ("daily", "2026-03-29T12:00:00+02:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
    ("daily", "2026-10-25T23:30:00+01:00", "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
    ("weekly", "2026-03-29T12:00:00+02:00", "2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
    ("monthly", "2026-10-31T23:59:00+01:00", "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00"),
    ("monthly", "2026-12-31T10:00:00+01:00", "2026-12-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00"),
])
def test_periods_follow_the_zone_across_dst_and_month_ends(period, now, start, reset):
    begins, resets = period_bounds(period, PARIS, at(now))
    assert begins == at(start)
    assert resets.timestamp() == at(reset)
