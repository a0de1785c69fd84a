"""The SQL the ledger's questions are built from: what a report may group by, the filter of
a report's rows, where usage is read from once compaction made rollups; shared with the team
database (cmat.team.reports), which speaks PostgreSQL's dialect of the same questions."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from cmat.apps import app_sql, provider_sql
from cmat.periods import epoch_date
from cmat.usage import COLUMN, COUNTED_TOKENS, TOKEN_FIELDS


def token_sums(table: str = "") -> str:
    """SQL: the sum of each of the TOKEN_FIELDS, in that order."""
    prefix = f"{table}." if table else ""
    return ", ".join(f"sum({prefix}{COLUMN[kind]})" for kind in TOKEN_FIELDS)


# What a report may group by, and the SQL of each. An agent is the subagent's type for a
# subagent's requests, else the agent the session was run for (CMAT's assigned_agent).
# The app (the coding agent: Claude Code, Codex CLI, ...) and provider come from `source`.
DIMENSION_COLUMNS = {
    "model": "model", "project": "project", "task": "task_id", "enhancement": "enhancement",
    "agent": "CASE WHEN requests.agent = 'main' THEN coalesce(sessions.agent, 'main')"
             " ELSE requests.agent END",
    "task-type": "task_type", "session": "session_id", "user": "user_name",
    "machine": "machine", "app": app_sql("source"), "provider": provider_sql("source")}
SESSION_DIMENSIONS = ("task", "enhancement", "agent", "task-type")  # need the sessions join
RUN_SQL = "session_id || '/' || coalesce(agent_id, '')"  # a session's main thread, a subagent


ROLLUP_KEYS = ("machine", "user_name", "project", "task_id", "enhancement", "agent",
               "task_type", "project_dir", "source")  # and model: what compaction groups by, a day


def compaction_sql(day: str, chosen: str) -> str:
    """SQL that folds the requests `chosen` selects into request_rollups: one row per `day`
    (an SQL expression of ts), ROLLUP_KEYS and model. A run is counted once per day and keys,
    on the row of the first model (a run on two models is one run)."""
    kinds = [*(COLUMN[kind] for kind in TOKEN_FIELDS), "web_search_requests"]
    source = {"machine": "requests.machine", "user_name": "requests.user_name",
              "agent": DIMENSION_COLUMNS["agent"], "source": "requests.source"}
    picked = ", ".join(f"{source.get(k, k)} AS {k}" for k in ROLLUP_KEYS)
    keys = ", ".join(ROLLUP_KEYS)
    joined = " AND ".join(f"f.{k} IS p.{k}" for k in ("day", *ROLLUP_KEYS))  # NULL-safe
    return (
        f"INSERT INTO request_rollups (day, ts, {keys}, model, {', '.join(kinds)}, requests,"
        f" priced, cost_usd, runs)"
        f" WITH folded AS (SELECT {day} AS day, ts, {picked}, model, {', '.join(kinds)},"
        f" cost_usd, {RUN_SQL} AS run FROM requests LEFT JOIN sessions USING (session_id)"
        f" WHERE {chosen}),"
        f" per_day AS (SELECT day, {keys}, count(DISTINCT run) AS runs, min(model) AS first"
        f" FROM folded GROUP BY day, {keys})"
        f" SELECT f.day, min(f.ts), {', '.join(f'f.{k}' for k in ROLLUP_KEYS)}, f.model,"
        f" {', '.join(f'sum(f.{k})' for k in kinds)}, count(*), count(f.cost_usd),"
        f" sum(f.cost_usd), max(CASE WHEN f.model = p.first THEN p.runs ELSE 0 END)"
        f" FROM folded f JOIN per_day p ON {joined}"
        f" GROUP BY f.day, {', '.join(f'f.{k}' for k in ROLLUP_KEYS)}, f.model")


def in_project(sql: str, params: list, project: str) -> tuple[str, list]:
    """Narrow a query to one project: its folder and every folder inside."""
    return (sql + " AND (project = ? OR substr(project, 1, ?) = ?)",
            [*params, project, len(project) + 1, project + os.sep])


def tokens_sql(cache: bool) -> str:
    """SQL: the tokens a token budget counts; input + output, or with `cache` every kind."""
    kinds = COUNTED_TOKENS if cache else ("input", "output")
    return " + ".join(COLUMN[kind] for kind in kinds)


def report_filter(since: float | None, until: float | None, project: str | None,
                   machine: str | None = None, postgres: bool = False,
                   day: str | None = None) -> tuple[str, list]:
    """WHERE conditions and parameters of a report's rows, in SQLite's dialect or, with
    `postgres`, PostgreSQL's; `day` (PostgreSQL): bound that date column instead of ts."""
    mark = "%s" if postgres else "?"
    bound = (f"(to_timestamp({mark}) AT TIME ZONE 'UTC')::date" if day else mark)
    where, params = ["1 = 1"], []
    for value, test in ((machine, f"machine = {mark}"),
                        (since, f"{day or 'ts'} >= {bound}"), (until, f"{day or 'ts'} < {bound}"),
                        (project, f"strpos(project, {mark}) > 0" if postgres
                         else f"instr(project, {mark}) > 0")):
        if value is not None and value != "":
            where.append(test)
            params.append(value)
    return " AND ".join(where), params


def grouped(group: Sequence[str], measures: str, table: str, condition: str,
            having: str = "") -> str:
    """SELECT `measures` per distinct value of the `group` expressions (named g0, g1, ...)."""
    select = ", ".join(f"{expr} AS g{index}" for index, expr in enumerate(group))
    return (f"SELECT {select}, {measures} FROM {table} WHERE {condition}"
            f" GROUP BY {', '.join(f'g{i}' for i in range(len(group)))}"
            + (f" HAVING {having}" if having else ""))


PLAIN_COUNTS = "count(*), sum(cost_usd), count(cost_usd)"


@dataclass(frozen=True)
class UsageSource:
    """Where reports read usage once compaction folded old requests into rollups: the
    requests joined to their sessions, and the rollups. (Without rollups, reports read the
    requests alone, and attribute them to sessions per run: ReportQueries._run_rows.)"""

    table: str
    dimensions: dict[str, str]
    counts: str  # SQL: requests, cost of the priced ones, priced requests
    runs: str  # SQL: how many runs (a session's main thread, or a subagent run)


def _with_rollups() -> UsageSource:
    kinds = ", ".join([*(COLUMN[kind] for kind in TOKEN_FIELDS), "web_search_requests"])
    own = ", ".join(f"requests.{c}" for c in ("ts", "model", "project", "machine",
                                              "user_name", "source"))  # sessions have some
    union = (
        f"(SELECT {own}, session_id, agent_id, task_id,"
        f" enhancement, task_type, {DIMENSION_COLUMNS['agent']} AS agent, {kinds},"
        f" 1 AS n, cost_usd, CASE WHEN cost_usd IS NULL THEN 0 ELSE 1 END AS priced,"
        f" {RUN_SQL} AS run, 0 AS runs FROM requests LEFT JOIN sessions USING (session_id)"
        f" UNION ALL SELECT ts, model, project, machine, user_name, source, NULL, NULL, task_id,"
        f" enhancement, task_type, agent, {kinds}, requests, cost_usd, priced, NULL, runs"
        f" FROM request_rollups) AS usage")
    return UsageSource(union, {**DIMENSION_COLUMNS, "agent": "agent"},
                       "sum(n), sum(cost_usd), sum(priced)",
                       "count(DISTINCT run) + sum(runs)")


WITH_ROLLUPS = _with_rollups()


def offset_sql(first: int, changes: list[tuple[int, int]]) -> str:
    """The zone's UTC offset at `ts`, in SQL: one CASE over its changes."""
    if not changes:
        return str(first)
    cases, previous = [], first
    for moment, offset in changes:
        cases.append(f"WHEN ts < {moment} THEN {previous}")
        previous = offset
    return f"(CASE {' '.join(cases)} ELSE {previous} END)"


def period_sql(period: str, local: str) -> str:
    """SQL: the period of a request whose unix time in the report's zone is `local`: a day or
    a week as a number of days since 1970-01-01, a Thursday (`period_labels` writes it out;
    SQLite sorts and compares a whole number far faster than a date's text made for every
    row), a month as its text, or the session."""
    day = f"CAST({local} / 86400 AS INTEGER)"  # a time after 2000: truncating is flooring
    if period == "daily":
        return day
    if period == "weekly":  # the Monday that starts the ISO week
        return f"({day} - ({day} + 3) % 7)"
    if period == "monthly":
        return f"strftime('%Y-%m', {local}, 'unixepoch')"
    return "session_id"


def period_labels(period: str, rows: list[tuple]) -> list[tuple]:
    """`rows` whose first value period_sql made, with a day or week written as its date."""
    if period not in ("daily", "weekly"):
        return rows
    return [(epoch_date(row[0]), *row[1:]) for row in rows]


class Queries:
    """What each group of the ledger's questions stands on; Ledger provides `db`."""

    db: sqlite3.Connection

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return self.db.execute(sql, params).fetchall()
