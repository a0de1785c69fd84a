"""Team reports, computed by the team database (GROUP BY in PostgreSQL): the same questions the
local ledger answers for `cmat report`, `cmat costs show` and `cmat costs enhancement`, so the
same report code (reports.compute_report, tasks.costs) gives the same JSON shapes.

By period (UTC days, ISO weeks, months) and any of user, machine, project and model, a report
reads daily_usage, a few rows a day kept by triggers as requests arrive: it costs the same on
ten million requests as on ten thousand. Grouped by task, enhancement, agent or task type it
reads session_usage (the same per session, agent and run) joined to the sessions, so an
attribution that arrives late still counts. Neither sums the requests themselves, which
compaction may have deleted (a task's sessions take only their first and last request's time
from them).
"""

from __future__ import annotations

from collections.abc import Sequence

from cmat.apps import app_sql, provider_sql
from cmat.errors import TeamDatabaseError, UsageError
from cmat.ledger.queries.source import Offsets
from cmat.ledger.queries.sql import grouped, report_filter
from cmat.team.connect import error_line
from cmat.usage import COLUMN, TOKEN_FIELDS

# The rollups keep a Claude Code request's source as '' (a key cannot be NULL).
USAGE_DIMENSIONS = {"user": "NULLIF(user_name, '')", "machine": "NULLIF(machine, '')",
                    "project": "NULLIF(project, '')", "model": "model",
                    "app": app_sql("NULLIF(source, '')", "strpos"),
                    "provider": provider_sql("NULLIF(source, '')", "strpos")}
# session_usage with whom each session was for: an agent is the subagent's type, else the
# agent the session was run for (as locally, ledger.queries.sql.DIMENSION_COLUMNS).
BY_SESSION = ("(SELECT u.*, s.task_id, s.enhancement, s.task_type, CASE WHEN u.agent = 'main'"
              " THEN coalesce(s.agent, 'main') ELSE u.agent END AS resolved_agent"
              " FROM session_usage u LEFT JOIN sessions s USING (session_id)) AS usage")
SESSION_DIMENSIONS = {**USAGE_DIMENSIONS, "task": "task_id", "enhancement": "enhancement",
                      "agent": "resolved_agent", "task-type": "task_type",
                      "session": "session_id"}
PERIOD_FORMATS = {"daily": "YYYY-MM-DD", "monthly": "YYYY-MM"}


def _period(period: str, day: str) -> str:
    if period == "weekly":  # the Monday that starts the ISO week, as the local reports say it
        return f"to_char(date_trunc('week', {day}), 'YYYY-MM-DD')"
    if period not in PERIOD_FORMATS:
        raise UsageError("team reports are daily, weekly or monthly")
    return f"to_char({day}, '{PERIOD_FORMATS[period]}')"


def _total(column: str) -> str:
    """The sum of an integer column as an integer: PostgreSQL sums bigints as numeric, which
    reaches Python as Decimal (slow to make, and JSON has no such type)."""
    return f"sum({column})::bigint"


INTEGER_TOTALS = ", ".join(_total(COLUMN[kind]) for kind in TOKEN_FIELDS)
# A report's sort or hash of session_usage held in memory, not spilled to disk (4 MB by default,
# a quarter of what 10 M requests' rollups need).
REPORT_WORK_MEM = "64MB"


class TeamSource:
    """The team database, answering what reports ask of a ledger (a ReportSource)."""

    def __init__(self, connection):
        self.connection = connection
        connection.execute(f"SET work_mem = '{REPORT_WORK_MEM}'")  # this connection's alone

    def query(self, sql: str, params=()) -> list[tuple]:
        import psycopg

        try:
            return self.connection.execute(sql, params).fetchall()
        except psycopg.Error as exc:  # a grant missing, a sum out of range: said, not a crash
            raise TeamDatabaseError(f"the team report stopped: {error_line(exc)}",
                                    "the local figures are unchanged: leave out --team for "
                                    "this machine's") from None

    def time_span(self, since: float | None, until: float | None, project: str | None,
                  machine: str | None = None) -> tuple[float | None, float | None]:
        condition, params = report_filter(since, until, project, machine, True, "day")
        first, last = self.query(f"SELECT min(day), max(day) FROM daily_usage WHERE {condition}"
                                 " AND requests <> 0", params)[0]
        if first is None:
            return None, None
        return (self.query("SELECT extract(epoch FROM %s::date)::float8,"
                           " extract(epoch FROM %s::date)::float8 + 86399", (first, last))[0])

    def report_rows(self, period: str, offsets: Offsets, dimensions: Sequence[str],
                    since: float | None, until: float | None, project: str | None,
                    machine: str | None = None) -> list[tuple]:
        if period == "session":
            raise UsageError("team reports are daily, weekly or monthly")
        table, names = ("daily_usage", USAGE_DIMENSIONS) \
            if set(dimensions) <= set(USAGE_DIMENSIONS) else (BY_SESSION, SESSION_DIMENSIONS)
        return self._grouped(period, dimensions, since, until, project, machine, table, names,
                             f"{INTEGER_TOTALS}, {_total('requests')}, sum(cost_usd),"
                             f" {_total('priced')}", True)

    def report_runs(self, period: str, offsets: Offsets, dimensions: Sequence[str],
                    since: float | None, until: float | None, project: str | None,
                    machine: str | None = None) -> list[tuple]:
        return self._grouped(period, dimensions, since, until, project, machine, BY_SESSION,
                             SESSION_DIMENSIONS, "count(DISTINCT session_id || '/' || agent_id)",
                             False)

    def _grouped(self, period, dimensions, since, until, project, machine, table, names,
                 measures: str, with_model: bool) -> list[tuple]:
        missing = [d for d in dimensions if d not in names]
        if missing:
            raise UsageError(f"team reports are not grouped by {', '.join(missing)}: "
                             "leave out --team for this machine's figures")
        condition, params = report_filter(since, until, project, machine, True, "day")
        group = [_period(period, "day"), *(names[d] for d in dimensions),
                 *(["model"] if with_model else [])]
        return self.query(grouped(group, measures, table, condition, "sum(requests) <> 0"),
                          params)

    # What tasks.costs's reports ask: a task's totals per model, and its sessions.

    def model_totals(self, task_id: str) -> list[tuple]:
        return self.query(
            f"SELECT model, {INTEGER_TOTALS}, {_total('web_search_requests')},"
            f" {_total('requests')}, coalesce(sum(cost_usd), 0), {_total('priced')}"
            f" FROM {BY_SESSION}"
            f" WHERE task_id = %s GROUP BY model", (task_id,))

    def task_sessions(self, task_id: str) -> list[tuple]:
        # Requests and cost from the rollup, which keeps what compaction deleted; the first
        # and last request's times from the requests that are left (None once all are gone).
        # No transcript path: it is a path on its own machine.
        return self.query(
            "SELECT s.session_id, (SELECT min(ts) FROM requests r WHERE r.session_id ="
            " s.session_id), (SELECT max(ts) FROM requests r WHERE r.session_id ="
            " s.session_id), coalesce(sum(u.requests), 0)::bigint, coalesce(sum(u.cost_usd), 0),"
            " NULL FROM sessions s LEFT JOIN session_usage u USING (session_id)"
            " WHERE s.task_id = %s GROUP BY s.session_id ORDER BY min(s.recorded_at),"
            " s.session_id", (task_id,))


def team_report(connection, query) -> dict:
    """`cmat report PERIOD --team`: the local report's JSON, from the team database."""
    import dataclasses

    from cmat.periods import zone
    from cmat.reports import compute_report

    query = dataclasses.replace(query, tz=zone("UTC"))
    query.validate()
    return compute_report(TeamSource(connection), query)
