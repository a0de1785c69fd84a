"""Reports: spend by day, week, month or session over the whole ledger, grouped by any of
model, project, task, enhancement, agent and session, in any time zone; and one transcript
priced on its own.

Periods are computed inside SQLite (the ledger's report_rows), from the zone's UTC offsets
over the reported range, DST included, so a report over years of history is one aggregate
query; a report is cached in the ledger until a request changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cmat.catalog import ModelService
from cmat.errors import UsageError
from cmat.ledger import Ledger
from cmat.ledger.queries.source import ReportSource
from cmat.ledger.queries.sql import DIMENSION_COLUMNS
from cmat.periods import (
    iso_utc,
    iso_utc_ms,
    local_zone,
    midnight,
    offset_changes,
    period_start_back,
)
from cmat.pricing import summarize
from cmat.transcripts.parallel import ReadOptions
from cmat.transcripts.session import read_session
from cmat.usage import TOKEN_FIELDS

# A report's period, and the key its rows carry it under.
PERIODS = {"daily": "date", "weekly": "week", "monthly": "month", "session": "session"}
# A report's key back to its period: also the name ccusage gives its rows ("daily": [...]).
PERIOD_OF_KEY = {key: period for period, key in PERIODS.items()}
DIMENSIONS = tuple(DIMENSION_COLUMNS)


@dataclass
class ReportQuery:
    period: str = "daily"
    since: date | None = None
    until: date | None = None
    tz: ZoneInfo = field(default_factory=local_zone)
    by: tuple[str, ...] = ()
    project: str | None = None
    machine: str | None = None
    app: str | None = None  # only this coding agent's requests (cmat.apps.APPS)

    def validate(self) -> None:
        if self.period not in PERIODS:
            raise UsageError(f"period must be one of {', '.join(PERIODS)}")
        for name in self.by:
            if name not in DIMENSIONS:
                raise UsageError(f"--by takes {', '.join(DIMENSIONS)}, not {name!r}")
        if self.since and self.until and self.since > self.until:
            raise UsageError("--since is after --until")


def build_report(ledger: Ledger, query: ReportQuery) -> dict:
    """The report for `query`; served from the ledger's cache while no request changed."""
    query.validate()
    key = [query.period, str(query.since), str(query.until), query.tz.key, list(query.by),
           query.project, query.machine, query.app]
    return ledger.cached(key, lambda: compute_report(ledger, query))


def compute_report(source: ReportSource, query: ReportQuery) -> dict:
    """The report for `query` from `source`: the local ledger, or the team database."""
    since = midnight(query.since, query.tz).timestamp() if query.since else None
    until = midnight(query.until + timedelta(days=1), query.tz).timestamp() \
        if query.until else None
    key = PERIODS[query.period]
    report: dict = {"period": key, "timezone": query.tz.key, "group_by": list(query.by),
                    "rows": [], "total": _empty_total()}
    first, last = source.time_span(since, until, query.project, query.machine)
    if first is None:
        report["total"]["unpriced_models"] = []
        return report
    dims = [name for name in query.by if name != key]
    # --app: the rows are grouped by app as well, and only that app's kept.
    asked = [*dims, "app"] if query.app and "app" not in dims else dims
    rows: dict[tuple, dict] = {}
    span: dict[tuple, list[float]] = {}  # a session's first and last request, every model's
    width = len(dims) + 2
    for found in _only_app(source.report_rows(
            query.period, offset_changes(query.tz, first, last), asked, since, until,
            query.project, query.machine), query.app, asked, dims):
        row_key = found[:width - 1]
        model = found[width - 1]
        tokens = dict(zip(TOKEN_FIELDS, (int(v or 0) for v in found[width:width + 5])))
        requests, cost, priced = found[width + 5:width + 8]
        row = rows.get(row_key)
        if row is None:
            row = rows[row_key] = {key: row_key[0], **dict(zip(dims, row_key[1:]))}
            row.update(_empty_total())
            row["models"] = []
            if query.period == "session":  # first and last: set once every model is in
                row.update(first=None, last=None, project=found[width + 10])
        if query.period == "session":  # one SQL row per model: the session spans them all
            begun, ended = span.setdefault(row_key, [found[width + 8], found[width + 9]])
            span[row_key] = [min(begun, found[width + 8]), max(ended, found[width + 9])]
        unpriced = requests - priced
        row["models"].append({"model": model, "total_usd": cost or 0.0, "tokens": tokens,
                              "requests": requests, "unpriced_requests": unpriced})
        for total in (row, report["total"]):
            _add(total, tokens, requests, cost or 0.0, unpriced, model)
    for row_key, (begun, ended) in span.items():
        rows[row_key].update(first=iso_utc(begun), last=iso_utc(ended))
    if "agent" in query.by:  # the spec's view of agents: runs, and tokens and cost per run
        runs = {found[:-1]: found[-1] for found in _only_app(source.report_runs(
            query.period, offset_changes(query.tz, first, last), asked, since, until,
            query.project, query.machine), query.app, asked, dims)}
        report["total"]["runs"] = 0
        for row_key, row in rows.items():
            _per_run(row, runs.get(row_key, 0))
            report["total"]["runs"] += row["runs"]
        _per_run(report["total"], report["total"]["runs"])
    # A request may have no session (CostTracker's): its row sorts as an empty name.
    ordered = sorted(rows.values(), key=lambda r: (r.get("last", ""), r[key] or "") if
                     query.period == "session" else tuple(str(r.get(k) or "") for k in
                                                          [key, *query.by]))
    for row in ordered:
        row["models"].sort(key=lambda m: -m["total_usd"])
        row["unpriced_models"] = sorted(row["unpriced_models"])
    report["rows"] = ordered
    report["total"]["unpriced_models"] = sorted(report["total"]["unpriced_models"])
    return report


def _only_app(found: list[tuple], app: str | None, asked: list[str], dims: list[str]
              ) -> list[tuple]:
    """The rows of `app` alone (all rows when None), without the app column the query added
    to tell them apart (rows: the period, then `asked`, then measures)."""
    if app is None:
        return found
    at = 1 + asked.index("app")
    kept = [row for row in found if row[at] == app]
    return kept if asked == dims else [row[:at] + row[at + 1:] for row in kept]


def _per_run(row: dict, runs: int) -> None:
    tokens = row["tokens"]["input"] + row["tokens"]["output"]
    row.update(runs=runs, tokens_per_run=tokens / runs if runs else 0.0,
               cost_per_run=row["total_usd"] / runs if runs else 0.0)


def _empty_total() -> dict:
    return {"total_usd": 0.0, "tokens": dict.fromkeys(TOKEN_FIELDS, 0), "requests": 0,
            "unpriced_requests": 0, "unpriced_models": set()}


def _add(total: dict, tokens: dict, requests: int, cost: float, unpriced: int, model: str):
    total["total_usd"] += cost
    for name, value in tokens.items():
        total["tokens"][name] += value
    total["requests"] += requests
    if unpriced:
        total["unpriced_requests"] += unpriced
        total["unpriced_models"].add(model)


def last_periods(report: dict, count: int, now: float) -> dict:
    """`report` cut to its last `count` periods, every row of each kept (with --by there are
    several a period), and its total the total of what is kept: what `--last N` shows. Days,
    weeks and months are counted back from the one under way (`now`, in the report's zone),
    as ccusage counts them: `--last 7` is the last seven days, used or not; sessions are the
    `count` most recent."""
    key = report["period"]
    if key == "session":  # rows run from the least recent
        kept: set = set()
        for row in reversed(report["rows"]):
            if row[key] not in kept:
                if len(kept) == count:
                    break
                kept.add(row[key])
    else:
        today = datetime.fromtimestamp(now, ZoneInfo(report["timezone"])).date()
        first = period_start_back(PERIOD_OF_KEY[key], today, count - 1).isoformat()
        first = first[:7] if key == "month" else first  # a month's key is YYYY-MM
        kept = {row[key] for row in report["rows"] if row[key] >= first}  # ISO sorts as time
    rows = [row for row in report["rows"] if row[key] in kept]
    total = _empty_total()
    for row in rows:
        for model in row["models"]:
            _add(total, model["tokens"], model["requests"], model["total_usd"],
                 model["unpriced_requests"], model["model"])
    total["unpriced_models"] = sorted(total["unpriced_models"])
    if "runs" in report["total"]:
        _per_run(total, sum(row["runs"] for row in rows))
    return {**report, "rows": rows, "total": total}


def ccusage_session(session_id: str, requests: list[tuple]) -> dict:
    """One session's requests (Ledger.latest_requests' rows, oldest first) in the shape
    ccusage 20's `session --id ID --json` prints: the session's cost and tokens, then each
    request, with its own cost (ccusage's is a transcript's costUSD, which Claude Code no
    longer writes: 0 for each). Its subagents' requests are the session's, as in every cmat
    report."""
    entries = [{"timestamp": iso_utc_ms(ts), "inputTokens": prompt, "outputTokens": output,
                "cacheCreationTokens": writes, "cacheReadTokens": reads, "model": model,
                "costUSD": cost or 0.0}
               for _, model, ts, _, cost, prompt, output, writes, reads in requests]
    return {"sessionId": session_id, "totalCost": sum(entry["costUSD"] for entry in entries),
            "totalTokens": sum(entry["inputTokens"] + entry["outputTokens"]
                               + entry["cacheCreationTokens"] + entry["cacheReadTokens"]
                               for entry in entries),
            "entries": entries}


def ccusage_shape(report: dict) -> dict:
    """`report` (no --by) in the shape ccusage 20's `--json` has, so that scripts written for
    ccusage read cmat's figures unchanged: per period its token counts (cache writes of both
    lifetimes as cacheCreationTokens), totalTokens, totalCost, modelsUsed and a breakdown per
    model, costliest first; then totals. A session's period is its session id (ccusage keys
    sessions by file)."""
    session = report["period"] == "session"

    def counts(tokens: dict, cost: float) -> dict:
        return {"cacheCreationTokens": tokens["cache_creation"],
                "cacheReadTokens": tokens["cache_read"], "inputTokens": tokens["input"],
                "outputTokens": tokens["output"], "totalCost": cost,
                "totalTokens": sum(tokens[k] for k in ("input", "output", "cache_creation",
                                                       "cache_read"))}

    rows = []
    for row in report["rows"]:
        models = sorted(row["models"], key=lambda m: -m["total_usd"])
        entry = {"agent": "claude" if session else "all", **counts(row["tokens"],
                                                                   row["total_usd"])}
        entry["metadata"] = {"lastActivity": row["last"]} if session else \
            {"agents": ["claude"]}
        entry["modelBreakdowns"] = [
            {"cacheCreationTokens": m["tokens"]["cache_creation"],
             "cacheReadTokens": m["tokens"]["cache_read"], "cost": m["total_usd"],
             "inputTokens": m["tokens"]["input"], "modelName": m["model"],
             "outputTokens": m["tokens"]["output"]} for m in models]
        entry["modelsUsed"] = sorted(m["model"] for m in models)
        entry["period"] = row[report["period"]]
        rows.append(entry)
    return {PERIOD_OF_KEY[report["period"]]: rows,
            "totals": counts(report["total"]["tokens"], report["total"]["total_usd"])}


def project_filter(value: str | None) -> str | None:
    """A --project value: an existing folder is matched by its full path, anything else as a
    substring of the recorded working directory."""
    if value and Path(value).expanduser().is_dir():
        return str(Path(value).expanduser().resolve())
    return value


def session_report(transcript: str | os.PathLike, session_id: str | None = None,
                   models: ModelService | None = None,
                   options: ReadOptions = ReadOptions()) -> dict:
    """The cost of one session (with its subagents), read whole, recorded nowhere: from a
    Claude Code transcript, or another agent's log (a Codex rollout, a Gemini chat, OpenCode's
    database with the session named)."""
    # Here: a report from the ledger, the common case, needs neither.
    from cmat.attribution import app_session_usage
    from cmat.ingest import given_log_reader

    path = Path(transcript)
    reader = given_log_reader(path)
    usage = app_session_usage(path, reader, session_id) if reader is not None \
        else read_session(path, session_id, options=options)
    models = models or ModelService()
    report = summarize(usage.records, models.get_by_pattern, usage.skipped_lines).to_json()
    report.update(session_id=usage.session_id, started=usage.started, ended=usage.ended,
                  files=[str(p) for p in usage.files])
    return report
