"""`cmat report ...`, `cmat costs today|week|month` and `cmat scan`: the ledger's reports."""

from __future__ import annotations

import csv
import io
import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import click

from cmat import clock
from cmat.cli.ccusage import (
    ccusage_grouping,
    ccusage_one_session,
    ccusage_options,
    ccusage_reports,
    ccusage_weeks,
    other_agent_option,
)
from cmat.cli.options import (
    OutputFile,
    colour_option,
    json_or_ccusage_option,
    options,
    output_options,
    team_connection,
)
from cmat.cli.output import (
    count,
    echo,
    emit_json,
    local_minute,
    print_session,
    short_count,
    show_session,
    styled,
    table,
    table_width,
    terminal_width,
    times_in,
    wrapped,
)
from cmat.colour import visible_length
from cmat.money import usd
from cmat.usage import APPS, CLAUDE_CODE

PERIOD_TITLES = {"date": "Date", "week": "Week of", "month": "Month", "session": "Session"}


scan_options = [
    click.option("--no-scan", is_flag=True,
                 help="Report from the ledger as it is, without importing new transcript lines."),
    click.option("--path", "extra_paths", multiple=True,
                 type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Also scan this folder of transcripts (repeatable)."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
]
filter_options = [
    click.option("--timezone", "-z", "timezone_name", metavar="IANA",
                 help="Time zone for days, weeks and months (default: the machine's)."),
    click.option("--by", "group_by", multiple=True, metavar="DIM",
                 help="Also group by model, project, task, enhancement, agent, task-type, "
                      "session, user, machine, app or provider (repeatable, or "
                      "comma-separated). agent: the subagent's type, else the task's "
                      "assigned agent, else main; with runs, tokens (input + output) and "
                      "cost per run. app: the coding agent (claude-code, codex, gemini-cli, "
                      "opencode); provider: who served it (anthropic, openai, google, ...)."),
    click.option("--project", "-p", "project", metavar="DIR|TEXT",
                 help="Only this project: a folder, or text found in the working directory."),
    click.option("--machine", metavar="NAME",
                 help="Only what this machine recorded (its CMAT_MACHINE, else host name)."),
    click.option("--app", type=click.Choice(APPS), metavar="APP",
                 help=f"Only this coding agent's requests: {', '.join(APPS)}."),
    other_agent_option,
    click.option("--team", is_flag=True,
                 help="The whole team's usage, from the team database (days in UTC; "
                      "--by may add user and machine)."),
    click.option("--to", "team_url", metavar="URL",
                 help="With --team: the team database (default: CMAT_TEAM_URL, team.url)."),
    colour_option,
    json_or_ccusage_option(" (daily, weekly, monthly, session; no --by)"),
    click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table."),
]
layout_options = [
    click.option("--last", "last", type=click.IntRange(min=1), metavar="N",
                 help="Only the last N days, weeks or months, counted back from the one "
                      "under way (1: today, this week, this month), or the N most recent "
                      "sessions; every row of each, and the total is theirs."),
    click.option("--order", "-o", type=click.Choice(["asc", "desc"]), default="asc",
                 show_default=True, help="Oldest or newest first."),
    click.option("--compact", is_flag=True,
                 help="Fewer, narrower columns (the default when the table would not fit "
                      "the terminal)."),
    click.option("--wide", is_flag=True, help="Every column, however wide the table."),
]
range_options = [
    click.option("--since", "-s",
                 help="First day included (YYYY-MM-DD or YYYYMMDD; YYYY-MM: its first day)."),
    click.option("--until", "-u",
                 help="Last day included (YYYY-MM-DD or YYYYMMDD; YYYY-MM: its last day)."),
]


def scan_first(no_scan: bool, extra_paths: tuple[Path, ...], quiet: bool):
    """Open the ledger and, unless told not to, import what Claude Code wrote since last time."""
    from cmat import paths
    from cmat.catalog import ModelService
    from cmat.catalog.load import unannounced_notes
    from cmat.cli.output import TerminalProgress
    from cmat.ingest import scan
    from cmat.ledger import Ledger

    ledger = Ledger()
    models = ModelService()
    for note in unannounced_notes(models.catalog):
        echo(f"cmat: note: {note}", err=True)
    if not no_scan:
        roots = paths.transcript_roots(list(extra_paths))
        if not has_logs(roots) and not ledger.session_count() and \
                not ledger.info()["requests"]:
            ledger.close()
            raise no_history()
        progress = TerminalProgress() if sys.stderr.isatty() and not quiet else None
        try:
            scan(ledger, models, roots, progress)
        finally:
            if progress:
                progress.finish()
        apply_spooled(ledger)
        _retention(ledger)
    return ledger, models


def _retention(ledger) -> None:
    """`retention.older_than` in the config: old requests folded, at most once a day."""
    from cmat import paths

    project = paths.project_dir()
    if not any(map(os.path.exists, (paths.user_config_file(),
                                    paths.project_config_file(project)))):
        return  # no config, no retention: its reader (6 ms to import) is not loaded
    from cmat.budgets.config import load_config
    from cmat.retention import compact_when_due

    done = compact_when_due(ledger, load_config(project), clock.now())
    if done and done.requests:
        echo(f"cmat: retention: folded {done.requests:,} old requests into daily "
             "rollups", err=True)


def has_logs(roots: list) -> bool:
    """Whether there is anything to read: Claude Code's folders, or another agent's logs."""
    from cmat.ingest import app_readers

    return bool(roots) or any(reader.files() or getattr(reader, "databases", list)()
                              for reader in app_readers())


def no_history():
    """The error for a machine with no coding agent's history: where cmat looked."""
    from cmat import paths
    from cmat.errors import NotFound
    from cmat.ingest import app_readers

    looked = ", ".join(str(folder) for folder in paths.searched_folders())
    others = ", ".join(str(folder) for reader in app_readers() for folder in reader.folders())
    return NotFound(f"no Claude Code history found: looked in {looked} (and for other "
                    f"agents' logs in {others})",
                    "set CLAUDE_CONFIG_DIR to Claude Code's folder, or pass --path FOLDER; "
                    "CODEX_HOME to Codex CLI's, OPENCODE_DATA_DIR to OpenCode's")


def apply_spooled(ledger) -> None:
    """Record what hooks had to leave in the spool (a ledger that was busy or full)."""
    from cmat import spool

    if not spool.waiting():
        return
    from cmat.attribution import apply_spool

    applied, problems = apply_spool(ledger)
    if applied:
        echo(f"cmat: recorded {count(applied, 'session')} the hooks had to leave for later",
             err=True)
    for problem in problems:
        echo(f"cmat: warning: a spooled session is still waiting: {problem}", err=True)


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def run_report(period: str, since: date | None, until: date | None, timezone_name: str | None,
               group_by: tuple[str, ...], project: str | None, as_json: bool, as_csv: bool,
               no_scan: bool, extra_paths: tuple[Path, ...], quiet: bool,
               layout: dict | None = None, machine: str | None = None,
               team: bool = False, team_url: str | None = None, app: str | None = None) -> None:
    """A report; `layout` holds --last, --order, --compact and --wide; `team`: from the
    team database."""
    from cmat.periods import zone
    from cmat.reports import ReportQuery, build_report, project_filter

    query = ReportQuery(period, since, until, zone(timezone_name), _split(group_by),
                        project_filter(project), machine, app)
    query.validate()
    if as_json == "ccusage" and query.by:
        raise click.UsageError("--json=ccusage has no --by (nor -i): ccusage's reports group "
                               "by period")
    layout = layout or {}
    if layout.get("compact") and layout.get("wide"):
        raise click.UsageError("--compact and --wide cannot go together")
    if layout.get("no_cost") and (as_json or as_csv):
        raise click.UsageError("--no-cost leaves the costs out of the table; JSON and CSV "
                               "keep every field")
    if team or team_url:
        from cmat.catalog import ModelService
        from cmat.team.reports import team_report

        with team_connection(team, team_url) as connection:
            report = team_report(connection, query)
        models = ModelService()
    else:
        ledger, models = scan_first(no_scan, extra_paths, quiet)
        with ledger:
            report = build_report(ledger, query)
            if layout.get("html"):
                _write_html(layout["html"], ledger, models, query)
    if layout.get("last"):
        from cmat.reports import last_periods

        report = last_periods(report, layout["last"], clock.now())
    rows = report["rows"]
    if layout.get("order") == "desc":
        rows = rows[::-1]
    report = {**report, "rows": rows}
    if as_json == "ccusage":
        from cmat.reports import ccusage_shape

        emit_json(ccusage_shape(report))
    elif as_json:
        emit_json(report)
    elif as_csv:
        sys.stdout.write(_csv(report))
    else:
        width, wide = terminal_width(), layout.get("wide")
        # The whole table where it fits, and with --wide however wide (every column whole);
        # else the compact one, cut to fit: better short ids and figures than long ones cut.
        no_cost = layout.get("no_cost", False)
        whole = None if layout.get("compact") else _table_parts(report, models, no_cost=no_cost)
        if whole is not None and (wide or not width or whole.width() <= width):
            echo(whole.draw(width=None))
        else:
            echo(_table_parts(report, models, compact=True, no_cost=no_cost).draw(
                width=None if wide else -1))


def _write_html(target: Path, ledger, models, query) -> None:
    from cmat import paths
    from cmat.dashboard.server import page_with_data, snapshot
    from cmat.fileio import user_output

    page = page_with_data(snapshot(ledger, models, paths.project_dir(), query))
    with user_output(target) as (handle, _):
        handle.write(page.encode())
    echo(f"Wrote {target}: the dashboard's charts and tables for this range, in one file "
         "that opens offline", err=True)


def _model_names(row: dict, models) -> str:
    names = []
    for model in row["models"]:
        entry = models.get_by_pattern(model["model"])
        names.append(entry.name.removeprefix("Claude ") if entry else model["model"])
    return ", ".join(dict.fromkeys(names))


@dataclass
class _TableParts:
    """A report's table before it is drawn, and the notes printed under it (`rows` empty:
    `notes` says there was no usage)."""

    rows: list[list]
    headers: list[str]
    numeric_from: int
    notes: str

    def width(self) -> int:
        """How wide it is drawn uncut, notes included; worked out, not drawn."""
        return max([table_width(self.rows, self.headers) if self.rows else 0,
                    *map(visible_length, self.notes.splitlines())])

    def draw(self, width: int | None = -1) -> str:
        """The table (`width` as cli.output.table takes it), then the notes."""
        if not self.rows:
            return self.notes
        return table(self.rows, self.headers, numeric_from=self.numeric_from,
                     width=width) + self.notes


COST_HEADERS = {"Cost", "Cost/run", "$/run"}


def _table_parts(report: dict, models, compact: bool = False, no_cost: bool = False
                 ) -> _TableParts:
    """The report's table; `compact`: short session ids and projects, token counts in
    k/M/B, input/output and cache writes/reads paired, no request count; `no_cost`: without
    its cost columns (ccusage's --no-cost)."""
    parts = _all_table_parts(report, models, compact)
    if not no_cost:
        return parts
    kept = [i for i, header in enumerate(parts.headers) if header not in COST_HEADERS]
    return _TableParts([[row[i] for i in kept] for row in parts.rows],
                       [parts.headers[i] for i in kept], parts.numeric_from, parts.notes)


def _all_table_parts(report: dict, models, compact: bool) -> _TableParts:
    key = report["period"]
    dims = [d for d in report["group_by"] if d != key]
    show_models = "model" not in dims
    headers = [PERIOD_TITLES[key], *[d.capitalize() for d in dims]]
    if key == "session":
        headers += ["Project", "Last" if compact else "Last activity"]
    if show_models:
        headers.append("Models")
    columns = _compact_figures if compact else _figures
    numbers = (["In/Out", "Cache w/r", "Cost"] if compact else
               ["Input", "Output", "Cache write", "Cache read", "Requests", "Cost"])
    if "agent" in report["group_by"]:  # runs: a session's main thread, or a subagent run
        if compact:  # room for the runs: cache figures only in --wide and --json
            numbers = ["In/Out", "Cost", "Runs", "$/run"]
        else:
            numbers += ["Runs", "Tokens/run", "Cost/run"]

        def figures(row: dict) -> list[str]:
            if compact:
                in_out, _, cost = columns(row)
                return [in_out, cost, count(row["runs"]), usd(row["cost_per_run"])]
            return columns(row) + [count(row["runs"]), count(round(row["tokens_per_run"])),
                                   usd(row["cost_per_run"])]
    else:
        figures = columns
    headers += numbers
    rows = []
    for row in report["rows"]:
        line = [row[key], *[row.get(d) if row.get(d) is not None else "-" for d in dims]]
        if key == "session":
            last = row.get("last")
            line += [row.get("project") or "-",
                     local_minute(last, report["timezone"]) if last else "-"]
            if compact:
                line[0] = line[0][:8]
                line[-2] = line[-2].rstrip("/").rsplit("/", 1)[-1][:20]
                line[-1] = line[-1][5:]
        if show_models:
            line.append(_model_names(row, models))
        line += figures(row)
        rows.append(line)
    if not rows:
        return _TableParts([], headers, 0,
                           f"No usage recorded in this range ({report['timezone']}).")
    total = report["total"]
    padding = len(headers) - len(numbers)
    rows.append([styled(cell, "bold") for cell in ["Total", *[""] * (padding - 1),
                                                   *figures(total)]])
    notes = [f"\n\n{times_in(report['timezone'])}"]
    if total["unpriced_models"]:
        notes.append("+? and unpriced: not priced (tokens counted, cost not): "
                     + ", ".join(total["unpriced_models"])
                     + ". Add prices with: cmat models add ID --input P --output P")
    return _TableParts(rows, headers, padding, "\n".join(notes))


def _figures(row: dict) -> list[str]:
    tokens = row["tokens"]
    return [count(tokens["input"]), count(tokens["output"]), count(tokens["cache_creation"]),
            count(tokens["cache_read"]), count(row["requests"]),
            usd(row["total_usd"], row["unpriced_requests"])]


def _compact_figures(row: dict) -> list[str]:
    tokens = row["tokens"]
    return [f"{short_count(tokens['input'])}/{short_count(tokens['output'])}",
            f"{short_count(tokens['cache_creation'])}/{short_count(tokens['cache_read'])}",
            usd(row["total_usd"], row["unpriced_requests"])]


def _csv(report: dict) -> str:
    """The report as CSV, every cell spreadsheet-safe as an export's: a project's folder, a
    task's or enhancement's name, a session's id and a model's are anybody's to choose."""
    from cmat.text import spreadsheet_safe

    key = report["period"]
    dims = [d for d in report["group_by"] if d != key]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([key, *dims, "input", "output", "cache_creation", "cache_creation_1h",
                     "cache_read", "requests", "total_usd", "models"])
    for row in report["rows"]:
        tokens = row["tokens"]
        writer.writerow([spreadsheet_safe(cell) for cell in (
            row[key], *[row.get(d) or "" for d in dims], tokens["input"], tokens["output"],
            tokens["cache_creation"], tokens["cache_creation_1h"], tokens["cache_read"],
            row["requests"], repr(row["total_usd"]),
            ";".join(m["model"] for m in row["models"]))])
    return out.getvalue()


@click.group()
def report() -> None:
    """Spend over your whole history, by day, week, month or session: Claude Code's, and
    Codex CLI's, Gemini CLI's and OpenCode's beside it (--app for one of them).

    Each report first imports what the agents wrote since the last one into the ledger
    (only appended bytes are read), unless --no-scan.
    """


def _period_command(period: str, summary: str) -> click.Command:
    # ccusage's -b and -i group a period's rows by model or project; its session report
    # has neither (-i there names one session).
    ccusage = [ccusage_options, ccusage_reports,
               ccusage_grouping if period != "session" else ccusage_one_session,
               *([ccusage_weeks] if period == "weekly" else [])]

    @options(range_options, filter_options, layout_options, scan_options, *ccusage)
    @click.option("--html", type=OutputFile(), metavar="FILE",
                  help="Also write the dashboard's charts for this range (--since, --until, "
                       "--project) as one self-contained HTML file, to share.")
    def command(since, until, timezone_name, group_by, project, machine, app, team, team_url,
                as_json, as_csv, last, order, compact, wide, no_scan, extra_paths, quiet,
                html, by_agent, no_cost, breakdown=False, instances=False,
                session_id=None) -> None:
        if session_id is not None:
            _one_session(session_id, as_json, app, timezone_name, no_scan, extra_paths, quiet)
            return
        # ccusage's JSON has each period's models whether -b is given or not.
        by_model = breakdown and as_json != "ccusage"
        group_by = (*group_by, *["model"] * by_model, *["project"] * instances,
                    *["app"] * by_agent)
        from cmat.periods import parse_day

        run_report(period, parse_day(since, "since"), parse_day(until, "until"), timezone_name,
                   group_by, project, as_json, as_csv, no_scan, extra_paths, quiet,
                   {"last": last, "order": order, "compact": compact, "wide": wide,
                    "html": html, "no_cost": no_cost}, machine, team, team_url, app)

    return click.command(period, help=summary)(command)


for _period, _summary in (("daily", "Spend per day."), ("weekly", "Spend per ISO week."),
                          ("monthly", "Spend per month."),
                          ("session", "Spend per session, most recent last (--order desc: "
                                      "first; --last N: the N most recent).")):
    report.add_command(_period_command(_period, _summary))
# `cmat daily` is `cmat report daily` (and so on), as ccusage users type it.
period_commands = [report.commands[name] for name in ("daily", "weekly", "monthly", "session")]
daily, weekly, monthly, session = period_commands


def _one_session(session_id: str, as_json: str | None, app: str | None,
                 timezone_name: str | None, no_scan: bool, extra_paths: tuple[Path, ...],
                 quiet: bool) -> None:
    """ccusage's `session --id ID`: that session's totals, from its transcript where Claude
    Code's is on disk (as `cmat costs session`), else as the ledger holds them: another
    agent's session, or one whose transcript Claude Code has deleted."""
    from cmat import paths
    from cmat.errors import NotFound
    from cmat.periods import zone
    from cmat.reports import ReportQuery, build_report
    from cmat.transcripts.files import session_transcript

    if as_json == "ccusage":  # from the ledger, as ccusage prints it: null if none
        from cmat.reports import ccusage_session

        ledger, _ = scan_first(no_scan, extra_paths, quiet)
        with ledger:
            requests = ledger.latest_requests(session_id, -1)[::-1]  # -1: no limit
        emit_json(ccusage_session(session_id, requests) if requests else None)
        return
    roots = paths.transcript_roots(list(extra_paths))
    looked = ""
    if app in (None, CLAUDE_CODE):
        path = session_transcript(roots, session_id)
        if path is not None:
            show_session(path, None, as_json is not None)
            return
        looked = "no transcript of it in " + ", ".join(str(root) for root in roots) + ", and "
    ledger, _ = scan_first(no_scan, extra_paths, quiet)
    with ledger:
        report = build_report(ledger, ReportQuery("session", None, None, zone(timezone_name),
                                                  ("app",), None, None, app))
    row = next((row for row in report["rows"] if row["session"] == session_id), None)
    if row is None:
        raise NotFound(f"no session {session_id!r}: {looked}none in the ledger"
                       + (f" from {app}" if app else ""),
                       "cmat session lists the sessions the ledger holds")
    print_session({**{key: row[key] for key in ("total_usd", "tokens", "requests", "models",
                                                 "unpriced_models")},
                   "session_id": session_id, "app": row["app"], "project": row["project"],
                   "started": row["first"], "ended": row["last"], "files": []},
                  as_json is not None, f"{row['app']}, from the ledger")


def _app_reports(name: str, app: str) -> click.Group:
    """ccusage's `ccusage codex daily` (and so on): the same reports, with --app set."""
    group = click.Group(name, hidden=True,
                        help=f"ccusage's `{name}` reports: cmat report PERIOD --app {app}.",
                        context_settings={"default_map": {command.name: {"app": app}
                                                          for command in period_commands}})
    for command in period_commands:
        group.add_command(command)
    return group


claude, codex, gemini, opencode = (_app_reports(name, app) for name, app in zip(
    ("claude", "codex", "gemini", "opencode"), APPS))


def range_command(which: str, summary: str) -> click.Command:
    """`cmat costs today|week|month`: the current period, day by day, with models."""

    @options(filter_options, scan_options)
    def command(timezone_name, group_by, project, machine, app, team, team_url, as_json,
                as_csv, no_scan, extra_paths, quiet) -> None:
        from cmat.periods import current_range, zone

        since, until = current_range(which, zone(timezone_name), clock.now())
        by = group_by or (("model",) if which == "today" else ())
        run_report("daily", since, until, timezone_name, by, project, as_json, as_csv,
                   no_scan, extra_paths, quiet, None, machine, team, team_url, app)

    return click.command(which, help=summary)(command)


@click.command()
@options(scan_options[1:])
@click.option("--explain", is_flag=True,
              help="List the lines scans skipped (file, line, why) instead of scanning.")
@output_options
def scan(extra_paths: tuple[Path, ...], quiet: bool, explain: bool, as_json: bool) -> None:
    """Import new transcript lines from Claude Code's folders into the ledger.

    A line that is not JSON, or whose usage has values no real request has (a count that is
    negative or too large, a list where an id belongs, a timestamp that is not one), is
    skipped and counted; the rest of the file and of the history is imported. --explain
    names every skipped line.
    """
    from cmat import paths
    from cmat.catalog import ModelService
    from cmat.cli.output import TerminalProgress
    from cmat.ingest import scan as run_scan
    from cmat.ledger import Ledger

    if explain:
        _explain_skips(as_json)
        return
    roots = paths.transcript_roots(list(extra_paths))
    if not has_logs(roots):
        raise no_history()
    progress = TerminalProgress() if sys.stderr.isatty() and not quiet else None
    with Ledger() as ledger:
        try:
            result = run_scan(ledger, ModelService(), roots, progress)
        finally:
            if progress:
                progress.finish()
        apply_spooled(ledger)
    if as_json:
        emit_json({**result.to_json(), "roots": [str(r) for r in roots]})
        return
    echo(wrapped("", f"Scanned {count(result.files_seen, 'file')} in "
                     f"{', '.join(map(str, roots))}: read {count(result.files_read)} "
                     f"({result.bytes_read / 1e6:,.1f} MB), {count(result.requests, 'request')} "
                     f"({result.new_requests:,} new) in {result.seconds:.2f} s"))
    if result.skipped_lines:
        echo(f"{result.skipped_lines:,} lines skipped, see `cmat scan --explain`")


def _line_number(path: str, offset: int) -> int | None:
    """1-based line number of the line starting at `offset` (None if the file is gone)."""
    from cmat.untrusted import Unreadable, open_untrusted

    try:
        handle = open_untrusted(path)
        if handle is None:
            return None
        with handle:
            newlines = 0
            remaining = offset
            while remaining > 0:
                chunk = handle.read(min(remaining, 8 * 1024 * 1024))
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                remaining -= len(chunk)
    except (OSError, Unreadable):
        return None
    return newlines + 1


def _explain_skips(as_json: bool) -> None:
    from cmat.ledger import Ledger

    with Ledger() as ledger:
        rows = ledger.skipped()
    found = [{"path": path, "offset": offset, "line": _line_number(path, offset),
              "reason": reason} for path, offset, reason, _ in rows]
    if as_json:
        emit_json(found)
        return
    if not found:
        echo("No skipped lines.")
        return
    for skip in found:
        where = f"line {skip['line']}" if skip["line"] else f"byte {skip['offset']}"
        echo(f"{skip['path']}:{where}: {skip['reason']}")
