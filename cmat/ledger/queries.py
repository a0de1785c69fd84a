"""Every question asked of the ledger, answered in SQL here and nowhere else: what was spent
(budgets, the status line), what a task cost, reports by period and dimension, metrics,
alerts and overrides. Callers ask; they do not write SQL.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from cmat.usage import COLUMN, COUNTED_TOKENS, TOKEN_FIELDS


def token_sums(table: str = "") -> str:
    """SQL: the sum of each of the TOKEN_FIELDS, in that order."""
    prefix = f"{table}." if table else ""
    return ", ".join(f"sum({prefix}{COLUMN[kind]})" for kind in TOKEN_FIELDS)


# What a report may group by, and the SQL of each. An agent is the subagent's type for a
# subagent's requests, else the agent the session was run for (CMAT's assigned_agent).
DIMENSION_COLUMNS = {
    "model": "model", "project": "project", "task": "task_id", "enhancement": "enhancement",
    "agent": "CASE WHEN requests.agent = 'main' THEN coalesce(sessions.agent, 'main')"
             " ELSE requests.agent END",
    "task-type": "task_type", "session": "session_id", "user": "user_name",
    "machine": "machine"}
SESSION_DIMENSIONS = ("task", "enhancement", "agent", "task-type")  # need the sessions join
RUN_SQL = "session_id || '/' || coalesce(agent_id, '')"  # a session's main thread, a subagent


ROLLUP_KEYS = ("machine", "user_name", "project", "task_id", "enhancement", "agent",
               "task_type", "project_dir")  # and model: what compaction groups by, a day


def compaction_sql(day: str, chosen: str) -> str:
    """SQL that folds the requests `chosen` selects into request_rollups: one row per `day`
    (an SQL expression of ts), ROLLUP_KEYS and model. A run is counted once per day and keys,
    on the row of the first model (a run on two models is one run)."""
    kinds = [*(COLUMN[kind] for kind in TOKEN_FIELDS), "web_search_requests"]
    source = {"machine": "requests.machine", "user_name": "requests.user_name",
              "agent": DIMENSION_COLUMNS["agent"]}
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


def _in_project(sql: str, params: list, project: str) -> tuple[str, list]:
    """Narrow a query to one project: its folder and every folder inside."""
    return (sql + " AND (project = ? OR substr(project, 1, ?) = ?)",
            [*params, project, len(project) + 1, project + os.sep])


def _tokens_sql(cache: bool) -> str:
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


@dataclass(frozen=True)
class UsageSource:
    """Where reports read usage from: the requests (joined to their sessions only when a
    dimension needs it), or, once compaction folded old requests into rollups, both."""

    table: str
    dimensions: dict[str, str]
    counts: str  # SQL: requests, cost of the priced ones, priced requests
    runs: str  # SQL: how many runs (a session's main thread, or a subagent run)


PLAIN_COUNTS = "count(*), sum(cost_usd), count(cost_usd)"


def usage_source(dimensions: Sequence[str], rollups: bool) -> UsageSource:
    if not rollups:
        joined = set(SESSION_DIMENSIONS) & set(dimensions)
        return UsageSource("requests LEFT JOIN sessions USING (session_id)" if joined
                           else "requests", DIMENSION_COLUMNS, PLAIN_COUNTS,
                           f"count(DISTINCT {RUN_SQL})")
    kinds = ", ".join([*(COLUMN[kind] for kind in TOKEN_FIELDS), "web_search_requests"])
    own = ", ".join(f"requests.{c}" for c in ("ts", "model", "project", "machine",
                                              "user_name"))  # the team's sessions have some
    union = (
        f"(SELECT {own}, session_id, agent_id, task_id,"
        f" enhancement, task_type, {DIMENSION_COLUMNS['agent']} AS agent, {kinds},"
        f" 1 AS n, cost_usd, CASE WHEN cost_usd IS NULL THEN 0 ELSE 1 END AS priced,"
        f" {RUN_SQL} AS run, 0 AS runs FROM requests LEFT JOIN sessions USING (session_id)"
        f" UNION ALL SELECT ts, model, project, machine, user_name, NULL, NULL, task_id,"
        f" enhancement, task_type, agent, {kinds}, requests, cost_usd, priced, NULL, runs"
        f" FROM request_rollups) AS usage")
    return UsageSource(union, {**DIMENSION_COLUMNS, "agent": "agent"},
                       "sum(n), sum(cost_usd), sum(priced)",
                       "count(DISTINCT run) + sum(runs)")


def _offset_sql(first: int, changes: list[tuple[int, int]]) -> str:
    """The zone's UTC offset at `ts`, in SQL: one CASE over its changes."""
    if not changes:
        return str(first)
    cases, previous = [], first
    for moment, offset in changes:
        cases.append(f"WHEN ts < {moment} THEN {previous}")
        previous = offset
    return f"(CASE {' '.join(cases)} ELSE {previous} END)"


def _period_sql(period: str, local: str) -> str:
    if period == "daily":
        return f"date({local}, 'unixepoch')"
    if period == "weekly":  # the Monday that starts the ISO week
        return f"date({local}, 'unixepoch', 'weekday 0', '-6 days')"
    if period == "monthly":
        return f"strftime('%Y-%m', {local}, 'unixepoch')"
    return "session_id"


class LedgerQueries:
    """The ledger's questions; mixed into Ledger, which provides `db` and `query`."""

    db: object

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return self.db.execute(sql, params).fetchall()

    def priced_requests(self, session_id: str) -> int:
        return self.db.execute("SELECT count(cost_usd) FROM requests WHERE session_id = ?",
                               (session_id,)).fetchone()[0]


    def session_totals(self, session_id: str) -> tuple[int, float]:
        """(requests, cost) of one session, subagents included."""
        return self.db.execute("SELECT count(*), coalesce(sum(cost_usd), 0) FROM requests"
                               " WHERE session_id = ?", (session_id,)).fetchone()


    def spend_usd(self, since: float | None = None, project: str | None = None) -> float:
        """USD since a moment, all projects or one (its folder and every folder inside)."""
        sql, params = "SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE ts >= ?", [
            since or 0.0]
        if project is not None:
            sql, params = _in_project(sql, params, project)
        folded, folded_params = "SELECT coalesce(sum(cost_usd), 0) FROM request_rollups" \
                                " WHERE ts >= ?", [since or 0.0]
        if project is not None:
            folded, folded_params = _in_project(folded, folded_params, project)
        return float(self.db.execute(f"SELECT ({sql}) + ({folded})",
                                     [*params, *folded_params]).fetchone()[0])


    def unsynced_spend(self, since: float) -> float:
        """USD since a moment of the requests the last sync did not send (all, never synced)."""
        return float(self.db.execute(
            "SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE seq >= coalesce((SELECT"
            " value FROM meta WHERE key = 'synced_seq'), 0) AND ts >= ?", (since,)).fetchone()[0])

    def spend_tokens(self, since: float, project: str | None = None,
                     cache: bool = False) -> int:
        """Tokens since a moment, all projects or one: input + output, and with `cache`
        cache writes and reads too."""
        sql = f"SELECT coalesce(sum({_tokens_sql(cache)}), 0) FROM requests WHERE ts >= ?"
        params: list = [since]
        if project is not None:
            sql, params = _in_project(sql, params, project)
        return int(self.db.execute(sql, params).fetchone()[0])

    def run_spend(self, session_id: str, agent_id: str | None = None) -> tuple[float, int, int]:
        """(USD, input + output tokens, all tokens) of a run: a whole session (its subagents
        included), or with `agent_id` one subagent run in it."""
        sql = (f"SELECT coalesce(sum(cost_usd), 0), coalesce(sum({_tokens_sql(False)}), 0),"
               f" coalesce(sum({_tokens_sql(True)}), 0) FROM requests WHERE session_id = ?")
        params: tuple = (session_id,)
        if agent_id is not None:
            sql, params = sql + " AND agent_id = ?", (session_id, agent_id)
        usd, io, every = self.db.execute(sql, params).fetchone()
        return float(usd), int(io), int(every)


    def task_spend(self, task_id: str, running: str | None = None) -> float:
        """USD of a task's sessions, and of `running` while it is attributed to no task."""
        return self._attributed_spend("task_id = ?", (task_id,), running)


    def enhancement_spend(self, name: str, project_dir: str, running: str | None = None
                          ) -> float:
        """USD of an enhancement's sessions in one project (another project's enhancement of
        the same name is another enhancement), and of `running` while unattributed."""
        return self._attributed_spend("enhancement = ? AND project_dir = ?",
                                      (name, project_dir), running)


    def _attributed_spend(self, condition: str, params: tuple, running: str | None) -> float:
        # One statement, each half answered from an index (a budget check runs per tool call).
        return float(self.db.execute(
            "SELECT (SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE session_id IN"
            f" (SELECT session_id FROM sessions WHERE {condition}))"
            " + (SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE session_id = ? AND"
            " session_id NOT IN (SELECT session_id FROM sessions WHERE task_id IS NOT NULL))"
            f" + (SELECT coalesce(sum(cost_usd), 0) FROM request_rollups WHERE {condition})",
            (*params, running or "", *params)).fetchone()[0])


    def unpriced_models(self) -> list[dict]:
        """Model ids with requests stored unpriced: requests and tokens of each."""
        return [{"model": model, "requests": requests, "tokens": tokens} for model, requests, tokens
                in self.query("SELECT model, count(*), sum(input_tokens + output_tokens"
                              " + cache_creation_tokens + cache_read_tokens) FROM requests"
                              " WHERE cost_usd IS NULL GROUP BY model ORDER BY 2 DESC")]


    def task_costs(self) -> list[tuple[str, str | None, float]]:
        """Every task's (id, enhancement, USD), most expensive first; compacted requests
        count through their rollups."""
        return self.query(
            "SELECT task_id, max(enhancement), coalesce(sum(cost_usd), 0) FROM ("
            " SELECT s.task_id, s.enhancement, r.cost_usd FROM requests r"
            " JOIN sessions s USING (session_id) WHERE s.task_id IS NOT NULL"
            " UNION ALL SELECT task_id, enhancement, cost_usd FROM request_rollups"
            " WHERE task_id IS NOT NULL) GROUP BY task_id ORDER BY 3 DESC")


    def model_totals(self, task_id: str) -> list[tuple]:
        """Per model of a task's requests: (model, input, output, cache writes, 1-hour writes,
        cache reads, web searches, requests, cost of the priced ones, priced requests)."""
        kinds = ", ".join(COLUMN[kind] for kind in TOKEN_FIELDS)
        return self.query(
            f"SELECT model, {token_sums()}, sum(web_search_requests), sum(requests),"
            " coalesce(sum(cost_usd), 0), sum(priced) FROM ("
            f" SELECT r.model, {', '.join(f'r.{c}' for c in kinds.split(', '))},"
            " r.web_search_requests, 1 AS requests, r.cost_usd,"
            " r.cost_usd IS NOT NULL AS priced FROM requests r JOIN sessions s"
            " USING (session_id) WHERE s.task_id = ?"
            f" UNION ALL SELECT model, {kinds}, web_search_requests, requests, cost_usd, priced"
            " FROM request_rollups WHERE task_id = ?) GROUP BY model", (task_id, task_id))


    def task_sessions(self, task_id: str) -> list[tuple]:
        """The task's sessions in the order they were recorded: (session_id, first ts,
        last ts, requests, cost, transcript)."""
        return self.query(
            "SELECT s.session_id, min(r.ts), max(r.ts), count(r.message_id),"
            " coalesce(sum(r.cost_usd), 0), s.transcript_path FROM sessions s"
            " LEFT JOIN requests r USING (session_id) WHERE s.task_id = ?"
            " GROUP BY s.session_id ORDER BY s.recorded_at, s.rowid", (task_id,))


    def project_tasks(self, project_dir: str) -> list[str]:
        """Every task a session of this project was attributed to."""
        return [row[0] for row in self.query(
            "SELECT DISTINCT task_id FROM sessions WHERE project_dir = ? AND task_id IS NOT NULL",
            (project_dir,))]


    def lagging_tasks(self, project_dir: str) -> list[str]:
        return [row[0] for row in self.query(
            "SELECT task_id FROM queue_sync WHERE project_dir = ?", (project_dir,))]


    # --- what it holds --------------------------------------------------------------------

    def info(self) -> dict:
        """Counts for `cmat ledger info`."""
        requests, sessions, first, last, unpriced = self.query(
            "SELECT count(*), count(DISTINCT session_id), min(ts), max(ts),"
            " count(*) - count(cost_usd) FROM requests")[0]
        files, tracked_bytes = self.query("SELECT count(*), coalesce(sum(size), 0) FROM files")[0]
        attributed, with_task = self.query("SELECT count(*), count(task_id) FROM sessions")[0]
        versions = [v for (v,) in self.query("SELECT DISTINCT catalog_version FROM requests")]
        return {"requests": requests, "sessions": sessions, "unpriced_requests": unpriced,
                "first_ts": first, "last_ts": last, "files_tracked": files,
                "transcript_bytes_tracked": tracked_bytes, "hook_sessions": attributed,
                "hook_sessions_with_task": with_task, "catalog_versions": versions}

    def session_count(self) -> int:
        """Attributed sessions (hooks and `costs extract` record them)."""
        return self.query("SELECT count(*) FROM sessions")[0][0]

    def last_recorded_at(self) -> float | None:
        """When a session was last attributed (a hook or extract ran)."""
        return self.query("SELECT max(recorded_at) FROM sessions")[0][0]

    def priceable_requests(self, exclude_prefix: str) -> list[tuple]:
        """What pricing needs of every request (message ids starting with `exclude_prefix`
        left out): (message_id, model, ts, 5 token kinds, searches, speed, inference_geo)."""
        columns = ", ".join(COLUMN[kind] for kind in TOKEN_FIELDS)
        return self.query(f"SELECT message_id, model, ts, {columns}, web_search_requests, speed,"
                          " inference_geo FROM requests WHERE message_id NOT LIKE ?",
                          (exclude_prefix + "%",))

    # --- reports --------------------------------------------------------------------------

    def report_rows(self, period: str, offsets: tuple[int, list[tuple[int, int]]],
                    dimensions: Sequence[str], since: float | None, until: float | None,
                    project: str | None, machine: str | None = None) -> list[tuple]:
        """Sums per (period, *dimensions, model) of the requests in [since, until) whose
        working directory holds `project`: the 5 token kinds, requests, the cost of the priced
        ones, priced requests, then for sessions first ts, last ts and project.

        `period` is daily, weekly, monthly (in local time: `offsets` are the zone's UTC offset
        at the start and every change of it, see periods.offset_changes) or session;
        `dimensions` are names of DIMENSION_COLUMNS.
        """
        condition, params = report_filter(since, until, project, machine)
        source = usage_source(dimensions, self.has_rollups())
        local = f"(ts + {_offset_sql(*offsets)})"
        group = [_period_sql(period, local), *(source.dimensions[d] for d in dimensions),
                 "model"]
        extra = ", min(ts), max(ts), max(project)" if period == "session" else ""
        return self.query(grouped(group, f"{token_sums()}, {source.counts}{extra}",
                                  source.table, condition), params)

    def has_rollups(self) -> bool:
        """Whether compaction folded old requests into rollups (reports then read both)."""
        return bool(self.query("SELECT 1 FROM request_rollups LIMIT 1"))

    def report_runs(self, period: str, offsets: tuple[int, list[tuple[int, int]]],
                    dimensions: Sequence[str], since: float | None, until: float | None,
                    project: str | None, machine: str | None = None) -> list[tuple]:
        """Runs (a session's main thread, or one subagent run) per (period, *dimensions), as
        report_rows selects and groups them, models together."""
        condition, params = report_filter(since, until, project, machine)
        source = usage_source(dimensions, self.has_rollups())
        local = f"(ts + {_offset_sql(*offsets)})"
        group = [_period_sql(period, local), *(source.dimensions[d] for d in dimensions)]
        return self.query(grouped(group, source.runs, source.table, condition), params)

    def time_span(self, since: float | None, until: float | None, project: str | None,
                  machine: str | None = None) -> tuple[float | None, float | None]:
        """The first and last request in [since, until) of `project` (None, None: none)."""
        condition, params = report_filter(since, until, project, machine)
        table = usage_source((), self.has_rollups()).table
        return self.query(f"SELECT min(ts), max(ts) FROM {table} WHERE {condition}",
                          params)[0]

    def timeline(self, since: float | None = None) -> list[tuple]:
        """Every request from `since` on, oldest first: (ts, model, input, output, cache
        writes, cache reads, cost or None). What 5-hour blocks are cut from."""
        kinds = ", ".join(COLUMN[kind] for kind in COUNTED_TOKENS)
        condition, params = report_filter(since, None, None)
        return self.query(f"SELECT ts, model, {kinds}, cost_usd FROM requests WHERE {condition}"
                          " ORDER BY ts", params)

    def request_times(self, since: float) -> list[float]:
        """When each request from `since` on was made, oldest first (from the ts index)."""
        return [ts for (ts,) in self.query("SELECT ts FROM requests WHERE ts >= ? ORDER BY ts",
                                           (since,))]

    def model_times(self, since: float) -> list[tuple[str, float]]:
        """(model, ts) of each request from `since` on, oldest first."""
        return self.query("SELECT model, ts FROM requests WHERE ts >= ? ORDER BY ts", (since,))

    def recent_sessions(self, since: float, limit: int) -> list[tuple]:
        """The sessions with a request from `since` on and not ended since (SessionEnd),
        latest first: (session_id, project, last ts, cost of the session's priced
        requests)."""
        return self.query(
            "SELECT * FROM (SELECT session_id, max(project), max(ts) AS last,"
            " coalesce(sum(cost_usd), 0) FROM requests WHERE session_id IN"
            " (SELECT session_id FROM requests WHERE ts >= ?) GROUP BY session_id) AS r"
            " WHERE NOT EXISTS (SELECT 1 FROM live_sessions l WHERE"
            " l.session_id = r.session_id AND l.ended_at >= r.last)"
            " ORDER BY last DESC LIMIT ?", (since, limit))

    def model_spend(self, since: float, by_first_use: bool = False) -> list[tuple]:
        """Per model since `since`: (model, then the sum of each of COUNTED_TOKENS, requests,
        cost of the priced ones, priced requests); costliest first, or `by_first_use`."""
        kinds = ", ".join(f"sum({COLUMN[kind]})" for kind in COUNTED_TOKENS)
        order = "min(ts)" if by_first_use else "7 DESC"
        return self.query(f"SELECT model, {kinds}, count(*), coalesce(sum(cost_usd), 0),"
                          f" count(cost_usd) FROM requests WHERE ts >= ? GROUP BY model"
                          f" ORDER BY {order}", (since,))

    # --- insight ---------------------------------------------------------------------------

    def insight_requests(self, since: float | None, until: float | None,
                         project: str | None = None, task: str | None = None,
                         enhancement: str | None = None) -> list[tuple]:
        """Every priced-or-not request of a period, oldest first, with what suggestions and
        estimates weigh: (message_id, session_id, ts, project, model, agent (as reports name
        it), agent_id, 5 token kinds, searches, speed, geo, cost, task_id, enhancement,
        task_type)."""
        condition, params = report_filter(since, until, project)
        for column, value in (("task_id", task), ("enhancement", enhancement)):
            if value is not None:
                condition += f" AND {column} = ?"
                params.append(value)
        kinds = ", ".join(COLUMN[kind] for kind in TOKEN_FIELDS)
        return self.query(
            f"SELECT message_id, session_id, ts, project, model, {DIMENSION_COLUMNS['agent']},"
            f" agent_id, {kinds}, web_search_requests, speed, inference_geo, cost_usd, task_id,"
            f" enhancement, task_type FROM requests LEFT JOIN sessions USING (session_id)"
            f" WHERE {condition} AND message_id NOT LIKE 'cmat-legacy:%' ORDER BY ts", params)

    def task_values(self, name: str) -> list[str]:
        """The agents, task types or enhancements (`name`) of the tasks the ledger holds."""
        column = {"agent": "agent", "task_type": "task_type", "enhancement": "enhancement"}[name]
        return [value for (value,) in self.query(
            f"SELECT DISTINCT {column} FROM sessions WHERE task_id IS NOT NULL"
            f" AND {column} IS NOT NULL ORDER BY 1")]

    def task_costs_by(self, agent: str | None, task_type: str | None,
                      enhancement: str | None) -> list[tuple]:
        """Past tasks matching what is given: (task_id, cost, then the sum of each of the
        TOKEN_FIELDS, requests, priced requests), one row per task."""
        condition, params = ["task_id IS NOT NULL"], []
        for column, value in (("sessions.agent", agent), ("task_type", task_type),
                              ("enhancement", enhancement)):
            if value is not None:
                condition.append(f"{column} = ?")
                params.append(value)
        return self.query(
            f"SELECT task_id, coalesce(sum(cost_usd), 0), {token_sums()}, count(*),"
            f" count(cost_usd) FROM requests JOIN sessions USING (session_id)"
            f" WHERE {' AND '.join(condition)} GROUP BY task_id", params)

    def task_requests(self, task_ids: Sequence[str]) -> list[tuple]:
        """What re-pricing needs of the requests of these tasks: (task_id, model, ts,
        5 token kinds, searches, speed, geo)."""
        kinds = ", ".join(COLUMN[kind] for kind in TOKEN_FIELDS)
        marks = ", ".join("?" for _ in task_ids)
        return self.query(
            f"SELECT task_id, model, ts, {kinds}, web_search_requests, speed, inference_geo"
            f" FROM requests JOIN sessions USING (session_id) WHERE task_id IN ({marks})",
            list(task_ids))

    def transcript_paths(self) -> list[str]:
        """Every transcript file the ledger has read."""
        return [path for (path,) in self.query("SELECT path FROM files")]

    def output_per_request(self) -> float | None:
        """The median output tokens of a request, over the last 1,000 requests."""
        rows = sorted(r[0] for r in self.query(
            "SELECT output_tokens FROM requests ORDER BY ts DESC LIMIT 1000"))
        return float(rows[len(rows) // 2]) if rows else None

    # --- sync -------------------------------------------------------------------------------

    def meta_value(self, key: str) -> int | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta_value(self, key: str, value: int) -> None:
        self.db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
                        " value = excluded.value", (key, value))

    def changed_requests(self, since_seq: int, below_seq: int, after: tuple[int, str],
                         limit: int) -> list[tuple]:
        """Requests written at a version in [since_seq, below_seq), after `after` (seq,
        message id) in that order: REQUEST_COLUMNS then seq; then whether each holds only
        values a request can have (schema.VALID_REQUEST: a sync sends only those)."""
        from cmat.ledger.schema import COLUMN_LIST, VALID_REQUEST

        return self.query(
            f"SELECT {COLUMN_LIST}, seq, {VALID_REQUEST} FROM requests"
            " WHERE seq >= ? AND seq < ? AND (seq > ? OR (seq = ? AND message_id > ?))"
            " ORDER BY seq, message_id LIMIT ?",
            (since_seq, below_seq, after[0], after[0], after[1], limit))

    def changed_sessions(self, since_seq: int, below_seq: int) -> list[tuple]:
        """Sessions attributed at a version in [since_seq, below_seq): SESSION_COLUMNS."""
        from cmat.ledger.schema import SESSION_COLUMNS

        return self.query(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions"
                          " WHERE seq >= ? AND seq < ?", (since_seq, below_seq))

    def deleted_requests(self, since_seq: int, below_seq: int) -> list[str]:
        return [m for (m,) in self.query("SELECT message_id FROM deleted_requests"
                                         " WHERE seq >= ? AND seq < ?", (since_seq, below_seq))]

    def export_rows(self, since: float | None, until: float | None):
        """(column names, a cursor over every request of [since, until) with its session's
        task, enhancement, agent and task type), oldest first."""
        from cmat.ledger.schema import REQUEST_COLUMNS

        condition, params = report_filter(since, until, None)
        columns = ", ".join(f"requests.{c}" for c in REQUEST_COLUMNS)
        cursor = self.db.execute(
            f"SELECT {columns}, task_id, enhancement, sessions.agent, task_type FROM"
            f" requests LEFT JOIN sessions USING (session_id) WHERE {condition} ORDER BY ts",
            params)
        return (*REQUEST_COLUMNS, "task_id", "enhancement", "task_agent", "task_type"), cursor

    # --- metrics --------------------------------------------------------------------------

    def costliest(self, column: str, limit: int) -> set[str]:
        """The `limit` values of a request column (project, model, agent) that cost most."""
        rows = self.query(f"SELECT {column} FROM requests GROUP BY {column}"
                          f" ORDER BY coalesce(sum(cost_usd), 0) DESC LIMIT ?", (limit,))
        return {row[0] for row in rows if row[0] is not None}

    def totals_by_project_model_agent(self) -> list[tuple]:
        """(project, model, agent, USD, requests, then the sum of each of COUNTED_TOKENS)."""
        kinds = ", ".join(COLUMN[kind] for kind in COUNTED_TOKENS)
        sums = ", ".join(f"sum({kind})" for kind in kinds.split(", "))
        # The agent as reports name it (what compaction kept), so that folding requests into
        # rollups moves no sum from one series to another: a counter never goes down.
        return self.query(
            f"SELECT project, model, agent, coalesce(sum(cost_usd), 0), sum(requests), {sums}"
            f" FROM (SELECT project, model, {DIMENSION_COLUMNS['agent']} AS agent, cost_usd,"
            f" 1 AS requests, {kinds} FROM requests LEFT JOIN sessions USING (session_id)"
            f" UNION ALL SELECT project, model, agent, cost_usd, requests, {kinds}"
            " FROM request_rollups) GROUP BY project, model, agent")

    def cost_histogram(self, bounds: Sequence[float]) -> tuple[list[int], int, float]:
        """Priced requests costing at most each bound, all priced requests, and their sum."""
        cases = ", ".join(f"sum(cost_usd <= {float(bound)})" for bound in bounds)
        row = self.query(f"SELECT {cases}, count(cost_usd), coalesce(sum(cost_usd), 0)"
                         " FROM requests")[0]
        return [int(v or 0) for v in row[:len(bounds)]], int(row[len(bounds)]), float(row[-1])

    # --- overrides ------------------------------------------------------------------------

    def override_active(self, scope: str, now: float) -> bool:
        return bool(self.query("SELECT 1 FROM overrides WHERE until > ? AND scope IN ('all', ?)",
                               (now, scope)))

    def add_override(self, scope: str, until: float, who: str, reason: str | None,
                     now: float) -> None:
        """Lift `scope` until `until`. The newest override of a scope decides: one that ends
        sooner (`--for 0m` ends them) shortens those before it (kept, for who and why)."""
        self.db.execute("UPDATE overrides SET until = ? WHERE until > ? AND until > ?"
                        " AND (scope = ? OR ? = 'all')", (max(until, now), until, now, scope,
                                                          scope))
        self.db.execute("INSERT INTO overrides (scope, until, created_at, created_by, reason)"
                        " VALUES (?, ?, ?, ?, ?)", (scope, until, now, who, reason))

    def overrides(self, now: float) -> list[dict]:
        return [{"scope": o[0], "until": o[1], "by": o[2], "reason": o[3]} for o in self.query(
            "SELECT scope, until, created_by, reason FROM overrides WHERE until > ?"
            " ORDER BY until", (now,))]

    # --- alerts ---------------------------------------------------------------------------

    def fire_alert(self, budget: str, period_start: float, threshold: int, level: str,
                   message: str, spent: float, limit: float, now: float,
                   channels: Sequence[str] = ()) -> bool:
        """Record an alert, to be delivered to `channels`; False when it had fired already
        (one per budget, period and threshold, however many hooks race to fire it)."""
        fired = bool(self.db.execute(
            "INSERT OR IGNORE INTO alerts (budget, period_start, threshold, level, message, spent,"
            " limit_value, fired_at, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (budget, period_start, threshold, level, message, spent, limit, now,
             int(not channels))).rowcount)
        if fired:
            self.db.executemany(
                "INSERT INTO alert_deliveries (budget, period_start, threshold, channel)"
                " VALUES (?, ?, ?, ?)",
                [(budget, period_start, threshold, channel) for channel in channels])
        return fired

    def alerts_due(self, max_attempts: int, now: float) -> list[tuple]:
        """Deliveries due for a try: (budget, period_start, threshold, channel, level,
        message, spent, limit, attempts)."""
        return self.query(
            "SELECT d.budget, d.period_start, d.threshold, d.channel, a.level, a.message,"
            " a.spent, a.limit_value, d.attempts FROM alert_deliveries d JOIN alerts a USING"
            " (budget, period_start, threshold) WHERE d.delivered = 0 AND d.attempts < ? AND"
            " d.next_attempt <= ? ORDER BY a.fired_at", (max_attempts, now))

    def alert_delivered(self, key: tuple, channel: str, note: str | None = None) -> None:
        """One channel got the alert (`note`: why it was dropped instead)."""
        self.db.execute("UPDATE alert_deliveries SET delivered = 1, attempts = attempts + 1,"
                        " last_error = ? WHERE budget = ? AND period_start = ? AND"
                        " threshold = ? AND channel = ?", (note, *key, channel))
        self._sum_up_delivery(key)

    def alert_failed(self, key: tuple, channel: str, error: str, next_attempt: float) -> None:
        self.db.execute("UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?,"
                        " next_attempt = ? WHERE budget = ? AND period_start = ? AND"
                        " threshold = ? AND channel = ?", (error, next_attempt, *key, channel))
        self._sum_up_delivery(key)

    def _sum_up_delivery(self, key: tuple) -> None:
        # The alert row tells its channels' story: delivered once every one has it.
        self.db.execute(
            "UPDATE alerts SET (delivered, attempts, next_attempt, last_error) = (SELECT"
            " min(delivered), max(attempts), max(next_attempt),"
            " max(CASE WHEN delivered = 0 THEN channel || ': ' || last_error END)"
            " FROM alert_deliveries d WHERE d.budget = alerts.budget AND"
            " d.period_start = alerts.period_start AND d.threshold = alerts.threshold)"
            " WHERE budget = ? AND period_start = ? AND threshold = ?", key)

    def alerts(self, limit: int = 200) -> list[dict]:
        keys = ("fired_at", "level", "budget", "threshold", "message", "delivered", "attempts",
                "last_error")
        return [dict(zip(keys, row)) for row in self.query(
            f"SELECT {', '.join(keys)} FROM alerts ORDER BY fired_at DESC LIMIT ?", (limit,))]

    def failing_alerts(self) -> list[dict]:
        return [{"budget": b, "threshold": t, "channel": c, "attempts": a, "last_error": e}
                for b, t, c, a, e in self.query(
                    "SELECT budget, threshold, channel, attempts, last_error FROM"
                    " alert_deliveries WHERE delivered = 0 AND last_error IS NOT NULL")]

    # --- sessions at work -------------------------------------------------------------------

    def live_session(self, session_id: str) -> tuple | None:
        """(started_at, last_seen, ended_at) of a session the hooks saw, or None."""
        rows = self.query("SELECT started_at, last_seen, ended_at FROM live_sessions"
                          " WHERE session_id = ?", (session_id,))
        return rows[0] if rows else None

    def touch_live_session(self, session_id: str, project: str, agent: str | None,
                           transcript: str | None, now: float, started: bool) -> None:
        """A hook saw the session at work now; `started`: it (re)starts a stretch of work."""
        self.db.execute(
            "INSERT INTO live_sessions (session_id, project, agent, transcript_path,"
            " started_at, last_seen) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO"
            " UPDATE SET last_seen = excluded.last_seen, ended_at = NULL,"
            " agent = coalesce(excluded.agent, agent),"
            " transcript_path = coalesce(excluded.transcript_path, transcript_path),"
            " started_at = CASE WHEN ? THEN excluded.started_at ELSE started_at END",
            (session_id, project, agent, transcript, now, now, int(started)))

    def end_live_session(self, session_id: str, now: float) -> None:
        """SessionEnd: the session is at work no more (recorded even for a session no budget
        hook saw, so that `cmat live` stops listing it)."""
        self.db.execute("INSERT INTO live_sessions (session_id, started_at, last_seen, ended_at)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
                        " ended_at = excluded.ended_at", (session_id, now, now, now))

    def live_sessions(self, seen_since: float) -> list[tuple]:
        """Sessions not ended and seen by a hook since `seen_since`: (session_id, project,
        agent, transcript_path, started_at, last_seen), latest first."""
        return self.query(
            "SELECT session_id, project, agent, transcript_path, started_at, last_seen FROM"
            " live_sessions WHERE ended_at IS NULL AND last_seen >= ? ORDER BY last_seen DESC",
            (seen_since,))
