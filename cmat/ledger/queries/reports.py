"""Reports by period and dimension, blocks, insight, exports and metrics: read-only questions over the requests and their rollups."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence

import orjson

from cmat import labels
from cmat.apps import app_sql, provider_sql
from cmat.ledger.queries.sql import (
    DIMENSION_COLUMNS,
    PLAIN_COUNTS,
    SESSION_DIMENSIONS,
    WITH_ROLLUPS,
    Queries,
    grouped,
    offset_sql,
    period_labels,
    period_sql,
    report_filter,
    token_sums,
)
from cmat.usage import COLUMN, COUNTED_TOKENS, TOKEN_FIELDS


def _either(pick: Callable) -> Callable:
    """`pick` (min or max) of two values, either of which may be None (SQL's NULL)."""
    return lambda a, b: b if a is None else a if b is None else pick(a, b)


def _add(a, b):
    return b if a is None else a if b is None else a + b


# What a session's row holds after its sums: first ts, last ts, project (min, max, max);
# an hour's of block_usage: first ts, last ts.
SESSION_SPAN = (_either(min), _either(max), _either(max))
SESSION_SPAN_SQL = ", min(ts), max(ts), max(project)"
HOUR_SPAN = (_either(min), _either(max))
# A sum of every row in a range this long or longer is cut in two, read at once (_summer):
# 5,000 requests in 7.2 ms against 8.8, 2,000 in 3.8 ms against 3.6.
SPLIT_SUM_ROWS = 5_000
NOT_ATTRIBUTED = (None, None, None, None)  # a session's task, enhancement, agent, task type


def _period(period: str, offsets: tuple[int, list[tuple[int, int]]]) -> str:
    """SQL: the period of a request, in the report's zone (`offsets`)."""
    return period_sql(period, f"(ts + {offset_sql(*offsets)})")


def _merged(kept: list[tuple], added: list[tuple], width: int,
            spans: tuple[Callable, ...]) -> list[tuple]:
    """Grouped rows (see _brought_up_to_date) of two sets of requests, as one: sums added,
    spans merged, in the order SQLite gives groups (NULL first)."""
    rows = {row[:width]: row for row in kept}
    sums = slice(width, -len(spans) if spans else None)
    for row in added:
        old = rows.get(row[:width])
        if old is None:
            rows[row[:width]] = row
            continue
        rows[row[:width]] = (*row[:width], *map(_add, old[sums], row[sums]),
                             *(merge(a, b) for merge, a, b in zip(
                                 spans, old[len(old) - len(spans):], row[len(row) - len(spans):])))
    return sorted(rows.values(), key=lambda row: [(value is not None, value)
                                                  for value in row[:width]])


class ReportQueries(Queries):
    def report_rows(self, period: str, offsets: tuple[int, list[tuple[int, int]]],
                    dimensions: Sequence[str], since: float | None, until: float | None,
                    project: str | None, machine: str | None = None) -> list[tuple]:
        """Sums per (period, *dimensions, model) of the requests in [since, until) whose
        working directory holds `project`: the 5 token kinds, requests, the cost of the priced
        ones, priced requests, then for sessions first ts, last ts and project.

        `period` is daily, weekly, monthly (in local time: `offsets` are the zone's UTC offset
        at the start and every change of it, see periods.offset_changes) or session;
        `dimensions` are names of DIMENSION_COLUMNS.

        Sums of the requests are kept in the ledger: while requests were only added since,
        the next such report sums those and adds them in (`_brought_up_to_date`). The offsets
        are part of what names kept sums: a report whose span came to cross a change of the
        zone's offset sums anew. A report by a dimension of the sessions (task, enhancement,
        agent, task type) keeps its sums per run and is attributed when it is read
        (`_run_rows`): a session attributed since counts where it now belongs. Once
        compaction folded requests into rollups, every report sums anew.
        """
        extra = SESSION_SPAN_SQL if period == "session" else ""
        if self.has_rollups():
            return self._summed_with_rollups(
                period, offsets, [*dimensions, "model"],
                f"{token_sums()}, {WITH_ROLLUPS.counts}{extra}", since, until, project, machine)
        if set(SESSION_DIMENSIONS) & set(dimensions):
            # The runs' sums, added together where they fall in one row (a task's runs).
            attributed = [(*key, model, *sums) for key, model, _, sums in
                          self._run_rows(period, offsets, dimensions, since, until, project,
                                         machine)]
            return period_labels(period, _merged([], attributed, len(dimensions) + 2,
                                                 SESSION_SPAN if extra else ()))
        return period_labels(period, self._kept_sums(
            period, offsets, [*(DIMENSION_COLUMNS[d] for d in dimensions), "model"],
            [list(dimensions)], since, until, project, machine))

    def _kept_sums(self, period: str, offsets: tuple[int, list[tuple[int, int]]],
                   columns: list[str], named: list, since: float | None, until: float | None,
                   project: str | None, machine: str | None) -> list[tuple]:
        """report_rows' sums (and spans) per period and `columns` (SQL of the requests
        alone), kept under a name made of `named` and the report's bounds."""
        condition, params = report_filter(since, until, project, machine)
        extra = SESSION_SPAN_SQL if period == "session" else ""
        group = [_period(period, offsets), *columns]
        spans = SESSION_SPAN if extra else ()
        key = orjson.dumps([period, offsets, *named, since, until, project, machine])
        return self._brought_up_to_date(key, len(group), spans, self._summer(
            group, f"{token_sums()}, {PLAIN_COUNTS}{extra}", condition, params,
            since is None and until is None, spans))

    def _run_rows(self, period: str, offsets: tuple[int, list[tuple[int, int]]],
                  dimensions: Sequence[str], since: float | None, until: float | None,
                  project: str | None, machine: str | None
                  ) -> Iterator[tuple[tuple, str, tuple | None, tuple]]:
        """The requests' sums per period, the requests' own `dimensions`, run and model,
        kept as report_rows keeps sums, each with its session's attribution as it stands
        now: ((period, *dimensions' values), model, run or None, sums and spans)."""
        own = [name for name in dimensions if name not in SESSION_DIMENSIONS]
        rows = self._kept_sums(period, offsets,
                               [*(DIMENSION_COLUMNS[name] for name in own), "session_id",
                                "agent_id", "agent", "model"],
                               ["runs", own], since, until, project, machine)
        sessions = {session: attribution for session, *attribution in self.query(
            "SELECT session_id, task_id, enhancement, agent, task_type FROM sessions")}
        width = len(own) + 1
        for row in rows:
            session, agent_id, agent, model = row[width:width + 4]
            task, enhancement, assigned, task_type = sessions.get(session, NOT_ATTRIBUTED)
            values = dict(zip(own, row[1:width]), task=task, enhancement=enhancement,
                          **{"task-type": task_type,
                             # as DIMENSION_COLUMNS["agent"]: a subagent's type, else the
                             # agent the session was run for
                             "agent": (assigned or "main") if agent == "main" else agent})
            yield ((row[0], *(values[name] for name in dimensions)), model,
                   None if session is None else (session, agent_id or ""), row[width + 4:])

    def _summer(self, group: list[str], measures: str, condition: str, params: list,
                whole: bool, spans: tuple[Callable, ...] = ()
                ) -> Callable[[int, int], list[tuple]]:
        """summed(low, high): `measures` per distinct `group` of the requests meeting
        `condition` with a rowid in (low, high] (rows, then one value for each of `spans`).
        `whole`: no bound of time, so every row in the range is read; many rows are then
        summed in two halves at once, the later half on a connection of its own in another
        thread (SQLite sums without holding the GIL): 75,000 requests in 77 ms against 136,
        19,000 in 21 ms against 31.

        That connection reads the ledger as it is when it starts: a request changed since
        this one's snapshot is summed as it is now (none added since: those have larger
        rowids), and the sums kept for the next report hold until it finds the change
        (`_only_added`) and sums anew. Only a time-bounded sum leaves the rowid's upper
        bound out: with it, SQLite would walk the rowids rather than the index by time."""
        bounds = "rowid > ? AND rowid <= ?" if whole else "rowid > ?"
        sql = grouped(group, measures, "requests", f"{condition} AND {bounds}")

        def summed(low: int, high: int) -> list[tuple]:
            if not whole:
                return self.query(sql, [*params, low])
            if high - low < SPLIT_SUM_ROWS or labels.usable_cores() < 2:
                return self.query(sql, [*params, low, high])
            middle = (low + high) // 2
            later = self._read_apart(sql, [*params, middle, high])
            return _merged(self.query(sql, [*params, low, middle]), later(), len(group), spans)

        return summed

    def _read_apart(self, sql: str, params: list) -> Callable[[], list[tuple]]:
        """Start reading `sql` on a read-only connection in a thread of its own; the
        returned callable waits for its rows (read here instead if it failed)."""
        import threading

        found: dict[str, list[tuple]] = {}

        def read() -> None:
            with contextlib.suppress(sqlite3.Error), \
                    contextlib.closing(self.read_only_connection()) as db:
                found["rows"] = db.execute(sql, params).fetchall()

        thread = threading.Thread(target=read, name="cmat-sums", daemon=True)
        thread.start()

        def rows() -> list[tuple]:
            thread.join()
            return found["rows"] if "rows" in found else self.query(sql, params)

        return rows

    def _brought_up_to_date(self, key: bytes, width: int, spans: tuple[Callable, ...],
                            summed: Callable[[int, int], list[tuple]]) -> list[tuple]:
        """Grouped rows (`width` values that group them, then sums, then one value for each
        of `spans`, merged with it: min or max) of every request, from those kept under
        `key` and `summed(low, high)`, the rows of the requests with a rowid in (low, high].

        Kept rows stand for the requests up to their rowid only while none of those changed:
        a request updated since, or stored under the rowid of one deleted, has a seq of the
        version then or later (every write stores the version as seq and bumps it in the same
        transaction); one deleted leaves fewer rows than were counted then plus those above
        the rowid (so does a vacuum that renumbered rows)."""
        with contextlib.nullcontext() if self.db.in_transaction else self.snapshot():
            mark = self.rows_mark()
            kept = self.kept_report_rows(key)
            if kept is not None and (kept[0] == mark or self._only_added(kept[0], mark)):
                rows = [tuple(row) for row in orjson.loads(kept[1])]
                if kept[0] == mark:
                    return rows
                rows = _merged(rows, summed(kept[0][0], mark[0]), width, spans)
            else:
                rows = summed(0, mark[0])
        self.keep_report_rows(key, mark, orjson.dumps(rows))
        return rows

    def rows_mark(self) -> tuple[int, int, int]:
        """(largest rowid, rows, requests_version) of the requests: what says whether sums
        kept from them still stand (the table's last row, the count of an index's entries,
        and a value; none reads every row, even while a bulk load's indexes are not built)."""
        return self.query("SELECT coalesce((SELECT max(rowid) FROM requests), 0),"
                          " (SELECT count(*) FROM requests),"
                          " (SELECT value FROM meta WHERE key = 'requests_version')")[0]

    def _only_added(self, then: tuple[int, int, int], now: tuple[int, int, int]) -> bool:
        """Whether, from rows_mark `then` to `now`, requests were only added: none of the rows
        up to the rowid of `then` was changed or deleted."""
        upto_rowid, rows, version = then
        added = self.query("SELECT count(*) FROM requests WHERE rowid > ?", (upto_rowid,))[0][0]
        changed = self.query("SELECT 1 FROM requests WHERE seq >= ? AND rowid <= ? LIMIT 1",
                             (version, upto_rowid))
        return not changed and now[1] == rows + added

    def has_rollups(self) -> bool:
        """Whether compaction folded old requests into rollups (reports then read both)."""
        return bool(self.query("SELECT 1 FROM request_rollups LIMIT 1"))

    def report_runs(self, period: str, offsets: tuple[int, list[tuple[int, int]]],
                    dimensions: Sequence[str], since: float | None, until: float | None,
                    project: str | None, machine: str | None = None) -> list[tuple]:
        """Runs (a session's main thread, or one subagent run) per (period, *dimensions), as
        report_rows selects and groups them, models together."""
        if self.has_rollups():
            return self._summed_with_rollups(period, offsets, dimensions, WITH_ROLLUPS.runs,
                                             since, until, project, machine)
        runs: dict[tuple, set] = {}
        for key, _, run, _ in self._run_rows(period, offsets, dimensions, since, until,
                                             project, machine):
            runs.setdefault(key, set()).update([run] if run else [])
        return period_labels(period, sorted(
            ((*key, len(found)) for key, found in runs.items()),
            key=lambda row: [(value is not None, value) for value in row[:-1]]))

    def _summed_with_rollups(self, period: str, offsets: tuple[int, list[tuple[int, int]]],
                             dimensions: Sequence[str], measures: str, since: float | None,
                             until: float | None, project: str | None, machine: str | None
                             ) -> list[tuple]:
        """`measures` per period and `dimensions` of the requests and the rollups, summed
        anew (nothing is kept once compaction folded requests)."""
        condition, params = report_filter(since, until, project, machine)
        group = [_period(period, offsets), *(WITH_ROLLUPS.dimensions[d] for d in dimensions)]
        return period_labels(period, self.query(grouped(group, measures, WITH_ROLLUPS.table,
                                                        condition), params))

    def time_span(self, since: float | None, until: float | None, project: str | None,
                  machine: str | None = None) -> tuple[float | None, float | None]:
        """The first and last request in [since, until) of `project` (None, None: none)."""
        condition, params = report_filter(since, until, project, machine)
        table = WITH_ROLLUPS.table if self.has_rollups() else "requests"
        if table == "requests" and self.query(
                "SELECT 1 FROM dropped_indexes WHERE name = 'requests_ts'"):
            # No index by time yet (a first import's, built behind its report): both in one
            # scan of every row, not two.
            return self.query(f"SELECT min(ts), max(ts) FROM requests WHERE {condition}",
                              params)[0]
        # Apart: SQLite reads min() or max() alone from the ts index, both together by
        # scanning every row (25 ms of each report at 300,000 requests).
        return self.query(f"SELECT (SELECT min(ts) FROM {table} WHERE {condition}),"
                          f" (SELECT max(ts) FROM {table} WHERE {condition})",
                          (*params, *params))[0]

    # A Claude plan's 5-hour blocks and weekly hours are Claude Code's alone: the three below
    # read its requests only (no source), never another agent's.

    def block_usage(self, since: float | None = None) -> list[tuple]:
        """Claude Code's requests from `since` on, summed per hour and model, oldest first:
        (first ts, last ts, model, requests, input, output, cache writes, cache reads, cost
        of the priced ones or None, priced requests). What 5-hour blocks are cut from
        (blocks.cut_blocks): a block starts on the hour and ends on one, so one hour's
        requests share a block, all but those made exactly on the hour, which may close the
        block before: they are summed apart, and come first. The sums of the whole history
        (no `since`: `cmat blocks`) are kept as a report's are (`_brought_up_to_date`); a
        window that moves with the clock is summed anew."""
        kinds = ", ".join(f"sum({COLUMN[kind]})" for kind in COUNTED_TOKENS)
        condition, params = report_filter(since, None, None)
        hour = "CAST(ts AS INTEGER) / 3600"  # whole seconds, then whole hours: exact
        summed = self._summer([hour, f"ts = {hour} * 3600", "model"],
                              f"count(*), {kinds}, sum(cost_usd), count(cost_usd), min(ts),"
                              " max(ts)", f"{condition} AND source IS NULL", params,
                              since is None, HOUR_SPAN)
        rows = summed(0, 0) if since is not None else self._brought_up_to_date(
            orjson.dumps(["blocks"]), 3, HOUR_SPAN, summed)
        rows.sort(key=lambda row: (row[0], -row[1], row[-2], row[2]))  # on the hour first
        return [(first, last, model, *sums) for _, _, model, *sums, first, last in rows]

    def request_times(self, since: float) -> list[float]:
        """When each Claude Code request from `since` on was made, oldest first."""
        return [ts for (ts,) in self.query("SELECT ts FROM requests WHERE ts >= ? AND source"
                                           " IS NULL ORDER BY ts", (since,))]

    def model_times(self, since: float) -> list[tuple[str, float]]:
        """(model, ts) of each Claude Code request from `since` on, oldest first."""
        return self.query("SELECT model, ts FROM requests WHERE ts >= ? AND source IS NULL"
                          " ORDER BY ts", (since,))

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

    def output_per_request(self) -> float | None:
        """The median output tokens of a request, over the last 1,000 requests."""
        rows = sorted(r[0] for r in self.query(
            "SELECT output_tokens FROM requests ORDER BY ts DESC LIMIT 1000"))
        return float(rows[len(rows) // 2]) if rows else None

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

    def totals_by_project_model_agent(self) -> list[tuple]:
        """(project, model, agent, app, provider, USD, requests, then the sum of each of
        COUNTED_TOKENS)."""
        kinds = ", ".join(COLUMN[kind] for kind in COUNTED_TOKENS)
        sums = ", ".join(f"sum({kind})" for kind in kinds.split(", "))
        # The agent as reports name it (what compaction kept), so that folding requests into
        # rollups moves no sum from one series to another: a counter never goes down.
        return self.query(
            f"SELECT project, model, agent, {app_sql()}, {provider_sql()},"
            f" coalesce(sum(cost_usd), 0), sum(requests), {sums}"
            f" FROM (SELECT project, model, {DIMENSION_COLUMNS['agent']} AS agent, source,"
            f" cost_usd, 1 AS requests, {kinds} FROM requests LEFT JOIN sessions"
            f" USING (session_id) UNION ALL SELECT project, model, agent, source, cost_usd,"
            f" requests, {kinds} FROM request_rollups) GROUP BY project, model, agent, source")

    def cost_histogram(self, bounds: Sequence[float]) -> tuple[list[int], int, float]:
        """Priced requests costing at most each bound, all priced requests, and their sum."""
        cases = ", ".join(f"sum(cost_usd <= {float(bound)})" for bound in bounds)
        row = self.query(f"SELECT {cases}, count(cost_usd), coalesce(sum(cost_usd), 0)"
                         " FROM requests")[0]
        return [int(v or 0) for v in row[:len(bounds)]], int(row[len(bounds)]), float(row[-1])

    def models_used(self) -> list[dict]:
        """Every model id of the history, with its requests (compacted ones included)."""
        return [{"model": model, "requests": requests} for model, requests in self.query(
            "SELECT model, sum(n) FROM (SELECT model, count(*) AS n FROM requests GROUP BY"
            " model UNION ALL SELECT model, sum(requests) FROM request_rollups GROUP BY model)"
            " GROUP BY model ORDER BY 2 DESC, 1")]

    def unpriced_models(self) -> list[dict]:
        """Model ids with requests stored unpriced: requests and tokens of each."""
        return [{"model": model, "requests": requests, "tokens": tokens} for model, requests, tokens
                in self.query("SELECT model, count(*), sum(input_tokens + output_tokens"
                              " + cache_creation_tokens + cache_read_tokens) FROM requests"
                              " WHERE cost_usd IS NULL GROUP BY model ORDER BY 2 DESC")]
