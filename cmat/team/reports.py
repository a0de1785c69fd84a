"""Team reports, computed by the team database (GROUP BY in PostgreSQL): the same questions the
local ledger answers for `cmat report` and `cmat costs enhancement`, so the same report code
(reports.compute_report, tasks.enhancement_report) gives the same JSON shapes.

By period (UTC days, ISO weeks, months) and any of user, machine, project and model, a report
reads daily_usage, a few rows a day kept by triggers as requests arrive: it costs the same on
ten million requests as on ten thousand. Grouped by task, enhancement, agent or task type it
reads the requests themselves (and what compaction folded), joined to their sessions.
"""

from __future__ import annotations

from cmat.errors import UsageError
from cmat.ledger.queries import usage_source
from cmat.usage import COLUMN, TOKEN_FIELDS

USAGE_DIMENSIONS = {"user": "NULLIF(user_name, '')", "machine": "NULLIF(machine, '')",
                    "project": "NULLIF(project, '')", "model": "model"}
PERIOD_FORMATS = {"daily": "YYYY-MM-DD", "monthly": "YYYY-MM"}


def _period(period: str, day: str) -> str:
    if period == "weekly":  # the Monday that starts the ISO week, as the local reports say it
        return f"to_char(date_trunc('week', {day}), 'YYYY-MM-DD')"
    if period not in PERIOD_FORMATS:
        raise UsageError("team reports are daily, weekly or monthly")
    return f"to_char({day}, '{PERIOD_FORMATS[period]}')"


def _plain(value):
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class TeamSource:
    """The team database, answering what reports ask of a ledger."""

    def __init__(self, connection):
        self.connection = connection

    def query(self, sql: str, params=()) -> list[tuple]:
        # PostgreSQL sums integers as numeric: back to the ints and floats a ledger gives.
        return [tuple(_plain(v) for v in row)
                for row in self.connection.execute(sql, params).fetchall()]

    @staticmethod
    def _filter(since: float | None, until: float | None, project: str | None,
                machine: str | None, day: str | None = None) -> tuple[str, list]:
        where, params = ["true"], []
        if since is not None:
            where.append(f"{day} >= (to_timestamp(%s) AT TIME ZONE 'UTC')::date" if day
                         else "ts >= %s")
            params.append(since)
        if until is not None:
            where.append(f"{day} < (to_timestamp(%s) AT TIME ZONE 'UTC')::date" if day
                         else "ts < %s")
            params.append(until)
        if project:
            where.append("strpos(project, %s) > 0")
            params.append(project)
        if machine:
            where.append("machine = %s")
            params.append(machine)
        return " AND ".join(where), params

    def time_span(self, since, until, project, machine=None):
        condition, params = self._filter(since, until, project, machine, "day")
        first, last = self.query(f"SELECT min(day), max(day) FROM daily_usage WHERE {condition}"
                                 " AND requests <> 0", params)[0]
        if first is None:
            return None, None
        return (self.query("SELECT extract(epoch FROM %s::date)::float8,"
                           " extract(epoch FROM %s::date)::float8 + 86399", (first, last))[0])

    def report_rows(self, period, offsets, dimensions, since, until, project, machine=None):
        if period == "session":
            raise UsageError("team reports are daily, weekly or monthly")
        sums = ", ".join(f"sum({COLUMN[kind]})" for kind in TOKEN_FIELDS)
        if set(dimensions) <= set(USAGE_DIMENSIONS):
            condition, params = self._filter(since, until, project, machine, "day")
            group = [_period(period, "day"), *(USAGE_DIMENSIONS[d] for d in dimensions), "model"]
            select = ", ".join(f"{expr} AS g{index}" for index, expr in enumerate(group))
            return self.query(
                f"SELECT {select}, {sums}, sum(requests), sum(cost_usd), sum(priced)"
                f" FROM daily_usage WHERE {condition}"
                f" GROUP BY {', '.join(f'g{i}' for i in range(len(group)))}"
                f" HAVING sum(requests) <> 0", params)
        source = usage_source(dimensions, rollups=True)
        condition, params = self._filter(since, until, project, machine)
        group = [_period(period, "(to_timestamp(ts) AT TIME ZONE 'UTC')"),
                 *(source.dimensions[d] for d in dimensions), "model"]
        select = ", ".join(f"{expr} AS g{index}" for index, expr in enumerate(group))
        return self.query(
            f"SELECT {select}, {sums}, {source.counts} FROM {source.table} WHERE {condition}"
            f" GROUP BY {', '.join(f'g{i}' for i in range(len(group)))}", params)

    def report_runs(self, period, offsets, dimensions, since, until, project, machine=None):
        source = usage_source(dimensions, rollups=True)
        condition, params = self._filter(since, until, project, machine)
        group = [_period(period, "(to_timestamp(ts) AT TIME ZONE 'UTC')"),
                 *(source.dimensions[d] for d in dimensions)]
        select = ", ".join(f"{expr} AS g{index}" for index, expr in enumerate(group))
        return self.query(
            f"SELECT {select}, {source.runs} FROM {source.table} WHERE {condition}"
            f" GROUP BY {', '.join(f'g{i}' for i in range(len(group)))}", params)

    # What tasks.enhancement_report asks: a task's totals per model, and its sessions.

    def model_totals(self, task_id: str) -> list[tuple]:
        sums = ", ".join(f"sum({COLUMN[kind]})" for kind in TOKEN_FIELDS)
        return self.query(
            f"SELECT model, {sums}, sum(web_search_requests), sum(n), coalesce(sum(cost_usd), 0),"
            f" sum(priced) FROM {usage_source(('task',), rollups=True).table}"
            f" WHERE task_id = %s GROUP BY model", (task_id,))

    def task_sessions(self, task_id: str) -> list[tuple]:
        return self.query("SELECT session_id FROM sessions WHERE task_id = %s", (task_id,))


def team_report(connection, query) -> dict:
    """`cmat report PERIOD --team`: the local report's JSON, from the team database."""
    import dataclasses

    from cmat.periods import zone
    from cmat.reports import compute_report

    query = dataclasses.replace(query, tz=zone("UTC"))
    query.validate()
    return compute_report(TeamSource(connection), query)
