"""Reports over the ledger: spend by day, week, month or session, grouped by any of model,
project, task, enhancement, agent and session, in any time zone.

Periods are computed inside SQLite: the zone's UTC offsets over the reported range (DST
transitions included) become a CASE expression on the request's timestamp, so a report over
years of history is one aggregate query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from cmat.errors import UsageError
from cmat.ledger import Ledger
from cmat.timezones import local_zone

PERIODS = {"daily": "date", "weekly": "week", "monthly": "month", "session": "session"}
DIMENSIONS = {"model": "model", "project": "project", "task": "task_id",
              "enhancement": "enhancement", "agent": "agent", "session": "session_id"}
ATTRIBUTED = {"task_id", "enhancement"}  # columns of the sessions a request belongs to
TOKEN_SUMS = ("input_tokens", "output_tokens", "cache_creation_tokens",
              "cache_creation_1h_tokens", "cache_read_tokens")
TOKEN_KEYS = ("input", "output", "cache_creation", "cache_creation_1h", "cache_read")


def offset_expression(tz: ZoneInfo, start: float, end: float) -> str:
    """SQL for the zone's UTC offset (seconds) at `ts`, exact over [start, end]."""
    def offset(ts: float) -> int:
        return int(datetime.fromtimestamp(ts, tz).utcoffset().total_seconds())

    start, end = start - 86400, end + 86400
    changes: list[tuple[int, int]] = []  # (first second of the new offset, offset)
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
    first = offset(start)
    if not changes:
        return str(first)
    cases = []
    previous = first
    for moment, new_offset in changes:
        cases.append(f"WHEN ts < {moment} THEN {previous}")
        previous = new_offset
    return f"(CASE {' '.join(cases)} ELSE {previous} END)"


def period_expression(period: str, local: str) -> str:
    if period == "daily":
        return f"date({local}, 'unixepoch')"
    if period == "weekly":  # the Monday that starts the ISO week
        return f"date({local}, 'unixepoch', 'weekday 0', '-6 days')"
    if period == "monthly":
        return f"strftime('%Y-%m', {local}, 'unixepoch')"
    if period == "session":
        return "session_id"
    raise UsageError(f"unknown period {period!r}")


def local_midnight(day: date, tz: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


@dataclass
class ReportQuery:
    period: str = "daily"
    since: date | None = None
    until: date | None = None
    tz: ZoneInfo = field(default_factory=local_zone)
    by: tuple[str, ...] = ()
    project: str | None = None

    def validate(self) -> None:
        if self.period not in PERIODS:
            raise UsageError(f"period must be one of {', '.join(PERIODS)}")
        for name in self.by:
            if name not in DIMENSIONS:
                raise UsageError(f"--by takes {', '.join(DIMENSIONS)}, not {name!r}")
        if self.since and self.until and self.since > self.until:
            raise UsageError("--since is after --until")


def _tokens(row: tuple) -> dict[str, int]:
    return dict(zip(TOKEN_KEYS, (int(v or 0) for v in row)))


def build_report(ledger: Ledger, query: ReportQuery) -> dict:
    """The report for `query`; served from the ledger's cache while no request changed."""
    import orjson

    query.validate()
    key = orjson.dumps([query.period, str(query.since), str(query.until), query.tz.key,
                        list(query.by), query.project])
    version = ledger.version()
    cached = ledger.cached_report(key)
    if cached is not None:
        return orjson.loads(cached)
    report = compute_report(ledger, query)
    ledger.cache_report(key, version, orjson.dumps(report))
    return report


def compute_report(ledger: Ledger, query: ReportQuery) -> dict:
    where, params = ["1"], []
    if query.since:
        where.append("ts >= ?")
        params.append(local_midnight(query.since, query.tz))
    if query.until:
        where.append("ts < ?")
        params.append(local_midnight(query.until + timedelta(days=1), query.tz))
    if query.project:
        where.append("instr(project, ?) > 0")
        params.append(query.project)
    condition = " AND ".join(where)
    bounds = ledger.query(f"SELECT min(ts), max(ts) FROM requests WHERE {condition}", params)[0]
    key = PERIODS[query.period]
    report: dict = {"period": key, "timezone": query.tz.key, "group_by": list(query.by),
                    "rows": [], "total": _empty_total()}
    if bounds[0] is None:
        report["total"]["unpriced_models"] = []
        return report
    local = f"(ts + {offset_expression(query.tz, bounds[0], bounds[1])})"
    dims = [DIMENSIONS[name] for name in query.by if DIMENSIONS[name] != key]
    group = [period_expression(query.period, local), *dims, "model"]
    select = ", ".join(f"{expr} AS g{index}" for index, expr in enumerate(group))
    sums = ", ".join(f"sum({column})" for column in TOKEN_SUMS)
    extra = ", min(ts), max(ts), max(project)" if query.period == "session" else ""
    # Task and enhancement are the attribution of a request's session: joined only when asked.
    source = "requests LEFT JOIN sessions USING (session_id)" if ATTRIBUTED & set(dims) \
        else "requests"
    sql = (f"SELECT {select}, {sums}, count(*), sum(cost_usd), count(cost_usd){extra} "
           f"FROM {source} WHERE {condition} "
           f"GROUP BY {', '.join(f'g{i}' for i in range(len(group)))}")
    rows: dict[tuple, dict] = {}
    width = len(group)
    for found in ledger.query(sql, params):
        row_key = found[:width - 1]
        model = found[width - 1]
        tokens = _tokens(found[width:width + 5])
        requests, cost, priced = found[width + 5:width + 8]
        row = rows.get(row_key)
        if row is None:
            row = rows[row_key] = {key: row_key[0]}
            for name, value in zip([n for n in query.by if DIMENSIONS[n] != key], row_key[1:]):
                row[name] = value
            row.update(_empty_total())
            row["models"] = []
            if query.period == "session":
                row.update(first=iso_utc(found[width + 8]), last=iso_utc(found[width + 9]),
                           project=found[width + 10])
        unpriced = requests - priced
        row["models"].append({"model": model, "total_usd": cost or 0.0, "tokens": tokens,
                              "requests": requests, "unpriced_requests": unpriced})
        for total in (row, report["total"]):
            _add(total, tokens, requests, cost or 0.0, unpriced, model)
    ordered = sorted(rows.values(), key=lambda r: (r.get("last", ""), r[key]) if
                     query.period == "session" else tuple(str(r.get(k) or "") for k in
                                                          [key, *query.by]))
    for row in ordered:
        row["models"].sort(key=lambda m: -m["total_usd"])
        row["unpriced_models"] = sorted(row["unpriced_models"])
    report["rows"] = ordered
    report["total"]["unpriced_models"] = sorted(report["total"]["unpriced_models"])
    return report


def _empty_total() -> dict:
    return {"total_usd": 0.0, "tokens": dict.fromkeys(TOKEN_KEYS, 0), "requests": 0,
            "unpriced_requests": 0, "unpriced_models": set()}


def _add(total: dict, tokens: dict, requests: int, cost: float, unpriced: int, model: str):
    total["total_usd"] += cost
    for name, value in tokens.items():
        total["tokens"][name] += value
    total["requests"] += requests
    if unpriced:
        total["unpriced_requests"] += unpriced
        total["unpriced_models"].add(model)


def iso_utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def current_range(which: str, tz: ZoneInfo) -> tuple[date, date]:
    """Today, this ISO week (from Monday) or this month, in `tz`."""
    today = datetime.now(tz).date()
    if which == "today":
        return today, today
    if which == "week":
        return today - timedelta(days=today.weekday()), today
    if which == "month":
        return today.replace(day=1), today
    raise UsageError(f"unknown range {which!r}")


def project_filter(value: str | None) -> str | None:
    """A --project value: an existing folder is matched by its full path, anything else as a
    substring of the recorded working directory."""
    if value and Path(value).expanduser().is_dir():
        return str(Path(value).expanduser().resolve())
    return value
