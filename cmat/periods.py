"""Time: the machine's zone or one the user named, and the arithmetic of days, ISO weeks and
months in it (DST included), in one place for budgets, reports and the status line."""

from __future__ import annotations

import functools
import math
import os
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from cmat.errors import UsageError

if TYPE_CHECKING:  # zoneinfo itself (with sysconfig behind it) is loaded where a zone is made:
    from zoneinfo import ZoneInfo  # the recording hooks, which need none, skip ~3 ms

PERIODS = ("daily", "weekly", "monthly")  # what a budget or a report counts by
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=1 << 12)
def epoch_date(days: int) -> str:
    """The date `days` after 1970-01-01, as YYYY-MM-DD. Cached: a history's requests fall on a
    few hundred days, and making the text costs more than the rest of pricing a request."""
    return date.fromordinal(EPOCH_ORDINAL + days).isoformat()


def utc_day(ts: float) -> str:
    """The UTC date of unix time `ts`, as YYYY-MM-DD: the day whose prices a request pays."""
    return epoch_date(int(ts // 86400))


def local_zone() -> ZoneInfo:
    """The machine's IANA zone: $TZ, else /etc/localtime's target, else UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def zone(name: str | None) -> ZoneInfo:
    """The zone called `name`; the machine's when none is given."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not name:
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r}",
                         "use an IANA name such as Europe/Paris") from None


def midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def period_start(period: str, day: date) -> date:
    """The first day of the period holding `day` (weeks start on Monday)."""
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    raise UsageError(f"unknown period {period!r}")


def period_start_back(period: str, day: date, back: int) -> date:
    """The first day of the period `back` periods before the one holding `day`."""
    start = period_start(period, day)
    if period == "monthly":
        months = start.year * 12 + start.month - 1 - back
        return date(months // 12, months % 12 + 1, 1)
    return start - timedelta(days=back * (7 if period == "weekly" else 1))


def period_bounds(period: str, tz: ZoneInfo, now: float) -> tuple[float, datetime]:
    """The start of the current period (unix seconds) and the moment it resets."""
    start = period_start(period, datetime.fromtimestamp(now, tz).date())
    end = {"daily": start + timedelta(days=1), "weekly": start + timedelta(days=7),
           "monthly": (start + timedelta(days=32)).replace(day=1)}[period]
    return midnight(start, tz).timestamp(), midnight(end, tz)


def parse_day(value: str | None, option: str) -> date | None:
    """The day --`option` (since or until) names, as people and ccusage write one: YYYY-MM-DD
    or YYYYMMDD; or a month, YYYY-MM: its first day for --since, its last for --until."""
    if not value:
        return None
    try:
        if len(value) == 7 and value[4] == "-" and value[:4].isdigit() and value[5:].isdigit():
            first = date(int(value[:4]), int(value[5:]), 1)
            if option != "until":
                return first
            return (first.replace(day=28) + timedelta(days=4)).replace(day=1) \
                - timedelta(days=1)
        if len(value) == 8 and value.isdigit():
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--{option} {value!r} is not a day (YYYY-MM-DD or YYYYMMDD) or a "
                         "month (YYYY-MM)") from None


def recent_window(period: str, since: str | None, until: str | None, tz: ZoneInfo,
                  now: float) -> tuple[float | None, float | None]:
    """[start, end) in unix seconds: the days `since` to `until` (parse_day; local, both
    included) when given, else the last `period` ("30d"), else all time ("all")."""
    import re

    first, last = parse_day(since, "since"), parse_day(until, "until")
    if first or last:
        return (midnight(first, tz).timestamp() if first else None,
                midnight(last + timedelta(days=1), tz).timestamp() if last else None)
    if period == "all":
        return None, None
    found = re.fullmatch(r"(\d+)d", period)
    if not found or int(found.group(1)) < 1:
        raise UsageError(f"--period {period!r} is not a period such as 7d, 30d or all")
    return now - int(found.group(1)) * 86400, None


def parse_age(text: str, name: str = "--older-than") -> tuple[int, str]:
    """`90d`, `13m` or `2y`: (how many, "d" | "m" | "y")."""
    import re

    found = re.fullmatch(r"\s*(\d+)\s*([dmy])\s*", text or "")
    if not found or int(found.group(1)) < 1:
        raise UsageError(f"{name} {text!r} is not an age such as 90d, 13m or 2y")
    return int(found.group(1)), found.group(2)


def cutoff(age: str, tz: ZoneInfo, now: float, name: str = "--older-than") -> float:
    """The moment `age` before `now`, at local midnight: months and years by the calendar."""
    count, unit = parse_age(age, name)
    today = datetime.fromtimestamp(now, tz).date()
    if unit == "d":
        day = today - timedelta(days=count)
    else:
        months = count * (12 if unit == "y" else 1)
        year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
        day = date(year, month + 1, min(today.day, 28))
    return midnight(day, tz).timestamp()


def current_range(which: str, tz: ZoneInfo, now: float) -> tuple[date, date]:
    """Today, this ISO week (from Monday) or this month at `now`, as (first day, today)."""
    today = datetime.fromtimestamp(now, tz).date()
    periods = {"today": "daily", "week": "weekly", "month": "monthly"}
    if which not in periods:
        raise UsageError(f"unknown range {which!r}")
    return period_start(periods[which], today), today


def offset_changes(tz: ZoneInfo, start: float, end: float) -> tuple[int, list[tuple[int, int]]]:
    """The zone's UTC offset (seconds) at `start`, and every (second it changes, new offset)
    until `end`: what turns a UTC timestamp into local time, DST included."""
    def offset(ts: float) -> int:
        return int(datetime.fromtimestamp(ts, tz).utcoffset().total_seconds())

    start, end = start - 86400, end + 86400
    changes: list[tuple[int, int]] = []
    current = offset(start)
    day = start
    while day < end:
        following = min(day + 86400, end)
        if offset(following) != current:
            low, high = int(day), int(following)
            while high - low > 1:  # the exact second the offset changes
                middle = (low + high) // 2
                if offset(middle) == current:
                    low = middle
                else:
                    high = middle
            current = offset(high)
            changes.append((high, current))
        day = following
    return offset(start), changes


def iso_utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def js_round(value: float) -> int:
    """Halves rounded up, as JavaScript's Math.round (and so ccusage) rounds them, not to even."""
    return math.floor(value + 0.5)


def iso_utc_ms(ts: float) -> str:
    """Unix seconds as JavaScript's toISOString writes them (and ccusage's JSON): UTC, to the
    millisecond."""
    milliseconds = js_round(ts * 1000)
    moment = datetime.fromtimestamp(milliseconds // 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{milliseconds % 1000:03d}Z"
