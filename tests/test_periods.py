"""Day, week and month bounds in local time."""

from datetime import UTC, date, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmat.errors import UsageError
from cmat.periods import epoch_date, parse_day, period_bounds, period_start_back, utc_day

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


@settings(max_examples=400)
@given(ms=st.integers(946684800_000, 4102444800_000))  # 2000-2100, timed to the millisecond
def test_a_request_is_priced_on_its_utc_day(ms):
    """Pricing looks the day up as a number of days since 1970 (cached, made once a day):
    it is the UTC date of the moment, to the last millisecond before midnight."""
    from cmat.pricing import pricing_at

    midnight = ms // 86_400_000 * 86_400_000
    for moment in (midnight - 1, midnight):  # the last millisecond of a day, the first of the next
        edge = moment / 1000
        assert epoch_date(int(edge // 86400)) == datetime.fromtimestamp(edge, UTC).date().isoformat()
    ts = ms / 1000
    day = datetime.fromtimestamp(ts, UTC).date().isoformat()
    assert utc_day(ts) == day
    seen = []
    pricing_at(SimpleNamespace(pricing_on=seen.append), ts)
    assert seen == [day]


def test_a_period_counted_back_starts_on_its_first_day_across_years():
    day = date(2026, 1, 15)  # a Thursday
    assert period_start_back("monthly", day, 0) == date(2026, 1, 1)
    assert period_start_back("monthly", day, 2) == date(2025, 11, 1)
    assert period_start_back("monthly", day, 13) == date(2024, 12, 1)
    assert period_start_back("weekly", day, 2) == date(2025, 12, 29)
    assert period_start_back("daily", day, 15) == date(2025, 12, 31)


@pytest.mark.parametrize(("value", "option", "day"), [
    ("2025-09-03", "since", date(2025, 9, 3)), ("20250903", "until", date(2025, 9, 3)),
    ("2025-09", "since", date(2025, 9, 1)), ("2025-09", "until", date(2025, 9, 30)),
    ("2024-02", "until", date(2024, 2, 29)), ("2025-02", "until", date(2025, 2, 28)),
    ("2025-12", "until", date(2025, 12, 31)), (None, "since", None), ("", "until", None)])
def test_a_day_is_taken_as_people_and_ccusage_write_it_and_a_month_as_its_edge(value, option,
                                                                             day):
    assert parse_day(value, option) == day


@pytest.mark.parametrize("value", ["2025-13", "2025-00", "2025-9", "yesterday", "2025-02-30",
                                   "202509", "2025-1a"])
def test_what_is_no_day_nor_month_is_refused_with_the_option(value):
    with pytest.raises(UsageError, match=f"--until {value!r} is not a day"):
        parse_day(value, "until")
