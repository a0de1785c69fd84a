import csv
import io
import json
import math
import os
import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cmat import colour, paths
from cmat.attribution import attribute_session, extract
from cmat.blocks import short_model
from cmat.catalog import ModelService
from cmat.catalog.edit import add_model
from cmat.cli import cli
from cmat.cli.output import TerminalProgress
from cmat.ingest import scan
from cmat.ledger import Ledger
from cmat.ledger.schema import CURRENT_SEQ
from cmat.maintenance import reprice
from cmat.pricing import price_records
from cmat.reports import ReportQuery, build_report
from cmat.tasks.queue import QueueService, TaskContext
from cmat.usage import UsageRecord
from tests.helpers import FIXTURES, cli_run, real_fixture, real_history, user_config
from tests.transcript_factory import TranscriptBuilder, write_session, write_subagent


def ledger_with(tmp_path, project, stamped):
    """A ledger holding one request per (timestamp, model, output) in `stamped`."""
    history = tmp_path / "claude" / "projects" / "-home-user-app"
    builder = TranscriptBuilder(session_id="s1", cwd="/home/user/app")
    for stamp, model, output in stamped:
        builder.now = stamp
        builder.response(model=model, output=output, blocks=1)
    write_session(history, builder)
    ledger = Ledger(tmp_path / "ledger.db")
    scan(ledger, ModelService(project), [history.parent])
    return ledger, builder


def keys(report, key="date"):
    return {row[key]: row["tokens"]["output"] for row in report["rows"]}


SONNET = "claude-sonnet-4-5-20250929"


@pytest.mark.parametrize("tz, expected", [
    ("UTC", {"2026-03-01": 3}),
    ("Europe/Paris", {"2026-03-01": 1, "2026-03-02": 2}),  # UTC+1: 23:30 and 00:30 local
    ("America/New_York", {"2026-03-01": 3}),  # UTC-5: 17:30 and 18:30 local
])
def test_days_are_cut_at_local_midnight(tmp_path, project, tz, expected):
    ledger, _ = ledger_with(tmp_path, project, [("2026-03-01T22:30:00.000Z", SONNET, 1),
                                                ("2026-03-01T23:30:00.000Z", SONNET, 2)])
    assert keys(build_report(ledger, ReportQuery("daily", tz=ZoneInfo(tz)))) == expected


def test_days_follow_daylight_saving_changes(tmp_path, project):
    ledger, _ = ledger_with(tmp_path, project, [
        ("2026-03-28T22:30:00.000Z", SONNET, 1),   # Paris UTC+1: 23:30 on the 28th
        ("2026-03-29T22:30:00.000Z", SONNET, 2),   # Paris UTC+2 since 01:00 UTC: 00:30 on the 30th
        ("2026-10-24T22:30:00.000Z", SONNET, 4),   # UTC+2: 00:30 on the 25th
        ("2026-10-25T22:30:00.000Z", SONNET, 8),   # UTC+1 again: 23:30 on the 25th
    ])
    report = build_report(ledger, ReportQuery("daily", tz=ZoneInfo("Europe/Paris")))
    assert keys(report) == {"2026-03-28": 1, "2026-03-30": 2, "2026-10-25": 12}


def test_months_and_weeks(tmp_path, project):
    ledger, _ = ledger_with(tmp_path, project, [
        ("2026-01-31T16:00:00.000Z", SONNET, 1),   # Tokyo: Feb 1st 01:00
        ("2026-02-01T02:00:00.000Z", SONNET, 2),   # Tokyo: Feb 1st 11:00 (a Sunday)
        ("2026-02-02T02:00:00.000Z", SONNET, 4),   # Monday
    ])
    tokyo = ZoneInfo("Asia/Tokyo")
    assert keys(build_report(ledger, ReportQuery("monthly", tz=tokyo)), "month") == {
        "2026-02": 7}
    assert keys(build_report(ledger, ReportQuery("monthly", tz=ZoneInfo("UTC"))), "month") == {
        "2026-01": 1, "2026-02": 6}
    assert keys(build_report(ledger, ReportQuery("weekly", tz=tokyo)), "week") == {
        "2026-01-26": 3, "2026-02-02": 4}


def test_since_and_until_are_local_days_inclusive(tmp_path, project):
    ledger, _ = ledger_with(tmp_path, project, [("2026-03-01T22:30:00.000Z", SONNET, 1),
                                                ("2026-03-01T23:30:00.000Z", SONNET, 2),
                                                ("2026-03-03T12:00:00.000Z", SONNET, 4)])
    paris = ZoneInfo("Europe/Paris")
    report = build_report(ledger, ReportQuery("daily", since=date(2026, 3, 2),
                                              until=date(2026, 3, 2), tz=paris))
    assert keys(report) == {"2026-03-02": 2}


def test_grouping_and_totals(tmp_path, project):
    ledger, builder = ledger_with(tmp_path, project, [
        ("2026-03-01T10:00:00.000Z", SONNET, 1),
        ("2026-03-01T11:00:00.000Z", "claude-opus-4-6", 2),
        ("2026-03-02T10:00:00.000Z", SONNET, 4),
    ])
    report = build_report(ledger, ReportQuery("daily", tz=ZoneInfo("UTC"), by=("model",)))
    assert [(r["date"], r["model"]) for r in report["rows"]] == [
        ("2026-03-01", "claude-opus-4-6"), ("2026-03-01", SONNET), ("2026-03-02", SONNET)]
    assert report["total"]["total_usd"] == pytest.approx(builder.expected_cost, rel=1e-12)
    assert sum(r["total_usd"] for r in report["rows"]) == pytest.approx(report["total"]["total_usd"])
    assert report["total"]["requests"] == 3
    by_project = build_report(ledger, ReportQuery("monthly", tz=ZoneInfo("UTC"),
                                                  by=("project", "agent")))
    assert [(r["project"], r["agent"]) for r in by_project["rows"]] == [("/home/user/app", "main")]


def test_task_and_enhancement_come_from_the_hooks_records(tmp_path, project):
    builder = TranscriptBuilder(session_id="s1")
    builder.response(output=10)
    path = write_session(tmp_path, builder)
    with Ledger() as ledger:
        attribute_session(project, ledger, ModelService(project), path, "s1",
               TaskContext("task_1", "feat"), "session-end")
    with Ledger() as ledger:
        report = build_report(ledger, ReportQuery("daily", tz=ZoneInfo("UTC"),
                                                  by=("enhancement", "task")))
    assert [(r["enhancement"], r["task"]) for r in report["rows"]] == [("feat", "task_1")]


@pytest.fixture
def history(tmp_path, monkeypatch, project):
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("TZ", "UTC")
    builder = TranscriptBuilder(session_id="s1", cwd="/home/user/app")
    builder.now = "2026-03-01T10:00:00.000Z"
    builder.response(output=10)
    builder.response(model="claude-nova-9", output=5)
    main = write_session(config / "projects" / "-home-user-app", builder)
    write_subagent(main.parent, "s1", "ag", "Explore",
                   lambda b, a: (setattr(b, "now", "2026-03-02T10:00:00.000Z"),
                                 b.response(sidechain=True, agent_id=a, output=20)))
    return builder


def test_report_daily_json_shape(history):
    report = json.loads(cli_run("report", "daily", "--json").output)
    assert [row["date"] for row in report["rows"]] == ["2026-03-01", "2026-03-02"]
    for row in report["rows"]:
        assert set(row) >= {"date", "total_usd", "tokens", "requests", "models"}
        assert set(row["tokens"]) >= {"input", "output", "cache_creation", "cache_read"}
    assert set(report["total"]) >= {"total_usd", "tokens", "requests"}
    assert report["total"]["unpriced_models"] == ["claude-nova-9"]
    for period, key in (("weekly", "week"), ("monthly", "month"), ("session", "session")):
        rows = json.loads(cli_run("report", period, "--json", "--no-scan").output)["rows"]
        assert rows and all(key in row for row in rows)


def test_report_csv_and_table(history):
    rows = list(csv.DictReader(io.StringIO(cli_run("report", "daily", "--csv", "--by",
                                                   "agent").output)))
    assert [(r["date"], r["agent"]) for r in rows] == [("2026-03-01", "main"),
                                                      ("2026-03-02", "Explore")]
    assert float(rows[0]["total_usd"]) > 0
    text = cli_run("report", "daily").output
    assert "Total" in text and "claude-nova-9" in text and "Times in UTC" in text


def test_one_session_by_id_as_ccusage_asks_for_it(history):
    """ccusage's `session --id ID`: the session's totals, subagents included, as `cmat costs
    session` prices its transcript, or as the ledger holds them once the transcript is gone;
    an id with neither, or that is no plain name, is said to have none."""
    transcript = Path(os.environ["CLAUDE_CONFIG_DIR"]) / "projects" / "-home-user-app" / "s1.jsonl"
    priced = json.loads(cli_run("costs", "session", transcript, "--json").output)
    by_id = json.loads(cli_run("session", "--id", "s1", "-j").output)
    assert by_id == priced and by_id["requests"] == 3
    assert cli_run("session", "-i", "s1").output.startswith("Session s1  (")
    for unknown in ("s2", "../*", "*"):
        assert "no session" in cli_run("session", "-i", unknown, code=3).stderr
    # Once Claude Code deleted the transcript, the ledger still has the session.
    transcript.unlink()
    kept = json.loads(cli_run("session", "--id", "s1", "-j").output)
    assert {key: kept[key] for key in ("total_usd", "tokens", "requests")} == {
        key: priced[key] for key in ("total_usd", "tokens", "requests")}
    assert (kept["app"], kept["files"]) == ("claude-code", [])


def test_costs_today_week_month(history, monkeypatch):
    assert "No usage recorded" in cli_run("costs", "today").output  # history is from March
    data = json.loads(cli_run("costs", "month", "--json").output)
    assert data["rows"] == []


@pytest.mark.parametrize("args, code, message", [
    (["report", "daily", "--timezone", "Mars/Olympus"], 2, "unknown time zone"),
    (["report", "daily", "--since", "yesterday"], 2, "YYYY-MM-DD or YYYYMMDD"),
    (["report", "daily", "--by", "colour"], 2, "--by takes"),
    (["report", "daily", "--since", "2026-03-02", "--until", "2026-03-01"], 2, "after"),
])
def test_report_argument_errors(history, args, code, message):
    assert message in cli_run(*args, code=code).stderr


def test_a_corrupt_ledger_is_reported_and_rebuilt(history):
    assert cli_run("scan").output.startswith("Scanned 2 files in ")

    ledger_path = paths.ledger_file()
    for suffix in ("-wal", "-shm"):
        ledger_path.with_name(ledger_path.name + suffix).unlink(missing_ok=True)
    ledger_path.write_bytes(b"garbage" * 1000)
    result = cli_run("report", "daily", code=8)
    assert "cmat ledger rebuild" in result.stderr
    rebuilt = json.loads(cli_run("ledger", "rebuild", "--json").output)
    assert rebuilt["requests"] == 3 and rebuilt["damaged_copy"]
    assert json.loads(cli_run("report", "daily", "--json").output)["total"]["requests"] == 3


def test_rebuild_keeps_task_attribution_of_hook_sessions(history, tmp_path, project):
    task_id = QueueService(project).add("x", enhancement="feat")["id"]

    transcript = next((tmp_path / "claude" / "projects").rglob("s1.jsonl"))
    extract(project, task_id, transcript)
    said = cli_run("ledger", "rebuild", "--yes").output
    assert ("3 requests from 2 files, 0 more salvaged from the old ledger; 1 hook session"
            " carried over") in said
    rows = json.loads(cli_run("report", "daily", "--json", "--by", "task").output)["rows"]
    assert {r["task"] for r in rows} == {task_id}
    assert paths.ledger_file().is_file()


def test_ledger_info_and_reprice(history):
    cli_run("scan")
    info = json.loads(cli_run("ledger", "info", "--json").output)
    assert info["requests"] == 3 and info["unpriced_requests"] == 1
    cli_run("models", "add", "claude-nova-9", "--input", "1", "--output", "2")
    repriced = json.loads(cli_run("ledger", "reprice", "--json").output)
    assert (repriced["repriced"], repriced["unpriced"], repriced["changed"],
            repriced["costs_changed"]) == (3, 0, 3, 1)  # Nova's is priced; the rest name it
    assert repriced["catalog_version"].startswith(info["catalog_versions"][0] + "+user.")
    cli_run("models", "set-default", "claude-nova-9")  # a new version, the same prices
    said = cli_run("ledger", "reprice").output
    assert "(0 with a new cost, 3 rewritten)" in said, said


def test_cached_reports_are_never_stale(tmp_path, project):
    ledger, _ = ledger_with(tmp_path, project, [("2026-03-01T10:00:00.000Z", SONNET, 1)])
    query = ReportQuery("daily", tz=ZoneInfo("UTC"))
    first = build_report(ledger, query)
    assert build_report(ledger, query) == first  # served from the cache
    more = TranscriptBuilder(session_id="s2")
    more.now = "2026-03-01T11:00:00.000Z"
    more.response(output=5, blocks=1)
    history = tmp_path / "claude" / "projects" / "-home-user-app"
    write_session(history, more)
    scan(ledger, ModelService(project), [history.parent])
    assert build_report(ledger, query)["total"]["requests"] == 2

    cached = ledger.query("SELECT query FROM report_cache")
    reprice(ledger, ModelService(project))  # the same catalog: nothing changes, the cache stands
    assert cached and all(ledger.cached_report(key) is not None for (key,) in cached)
    add_model("claude-nova-9", name="Nova", pattern=None, input_price=2, output_price=8)
    reprice(ledger, ModelService(project))  # another catalog: every request changes
    assert all(ledger.cached_report(key) is None for (key,) in cached)


def _request(number: int, minute: int, model: str, output: int, project: str) -> UsageRecord:
    stamp = datetime.fromtimestamp(1_774_000_000 + minute * 60, UTC)  # late March on
    subagent = number % 4 == 3  # a subagent's run inside the session
    session = None if number % 5 == 4 else f"s{number % 3}"  # a request of no session
    return UsageRecord(f"msg_{number}", f"req_{number}", session,
                       stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z"), model, 3, output, 0, 0, 10,
                       0, None, None, subagent, "Explore" if subagent else "main",
                       f"a{number % 2}" if subagent else None, project)


WRITES = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 400 * 60),
              st.sampled_from([SONNET, "claude-nova-x"]),
              st.integers(1, 9999), st.sampled_from(["/a", "/b", ""])),
    st.tuples(st.just("better copy"), st.integers(0, 40), st.integers(10_000, 20_000)),
    st.tuples(st.just("delete"), st.integers(0, 40)),
    st.tuples(st.just("delete the last")),
    st.tuples(st.just("reprice"), st.integers(0, 40)),
    # a session attributed (again), to a task or, with None, to none: its earlier requests
    # count for it from then on
    st.tuples(st.just("attribute"), st.integers(0, 3), st.sampled_from(["T1", "T2", None]),
              st.sampled_from(["architect", None]))), min_size=1, max_size=30)


def _joined(ledger: Ledger, query: ReportQuery) -> tuple[list, list]:
    """A report's rows and runs by the sessions' dimensions, summed by one join of the
    requests to their sessions: what report_rows and report_runs must equal, however they
    keep their sums."""
    from cmat.ledger.queries.sql import (
        DIMENSION_COLUMNS,
        RUN_SQL,
        grouped,
        offset_sql,
        period_labels,
        period_sql,
        token_sums,
    )
    from cmat.periods import offset_changes

    offsets = offset_changes(query.tz, *ledger.time_span(None, None, None))
    local = f"(ts + {offset_sql(*offsets)})"
    group = [period_sql(query.period, local), *(DIMENSION_COLUMNS[d] for d in query.by)]
    extra = ", min(ts), max(ts), max(project)" if query.period == "session" else ""
    table = "requests LEFT JOIN sessions USING (session_id)"
    rows = ledger.query(grouped([*group, "model"], f"{token_sums()}, count(*), sum(cost_usd),"
                                f" count(cost_usd){extra}", table, "1 = 1"))
    runs = ledger.query(grouped(group, f"count(DISTINCT {RUN_SQL})", table, "1 = 1"))
    return (period_labels(query.period, rows), period_labels(query.period, runs),
            offsets)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=WRITES, period=st.sampled_from(["daily", "weekly", "session"]),
       by=st.sampled_from([(), ("project",), ("agent",), ("task", "project"),
                           ("enhancement", "agent", "task-type")]),
       zone=st.sampled_from(["UTC", "Europe/Paris"]))
# Requests earlier than those kept: a session's first moves, and an hour's.
@example(writes=[("add", minute, SONNET, 5, "/a") for minute in (300, 1, 2, 10, 299)],
         period="session", by=(), zone="UTC")
# A session attributed after its first requests were summed, then one more request.
@example(writes=[("add", 1, SONNET, 5, "/a"), ("add", 2, SONNET, 5, "/a"),
                 ("attribute", 0, "T1", "architect"), ("add", 3, SONNET, 5, "/a")],
         period="daily", by=("enhancement", "agent", "task-type"), zone="UTC")
def test_kept_report_sums_brought_up_to_date_are_the_sums_anew(tmp_path_factory, project,
                                                                 writes, period, by, zone):
    """A report keeps its sums and, while requests were only added, sums the new ones and
    adds them in: after any write (added, better copies of old ones, deleted, the last one
    deleted and its rowid taken again, repriced, a session attributed), it is the report
    summed anew; so are the hourly sums blocks are cut from. Requests span a change of
    Paris's offset. A report by the sessions' dimensions, its runs too, is the one join of
    the requests to their sessions gives."""
    models = ModelService(project)
    query = ReportQuery(period, tz=ZoneInfo(zone), by=by)
    with Ledger(tmp_path_factory.mktemp("kept") / "l.db") as ledger:
        for number, step in enumerate(writes):
            known = [rowid for (rowid,) in ledger.query("SELECT rowid FROM requests")]
            if step[0] == "add":
                record = _request(number, *step[1:])
                with ledger.transaction():
                    ledger.add_requests([record], price_records([record], models.get_by_pattern),
                                        catalog_version="t")
            elif step[0] == "better copy" and known:
                with ledger.transaction():
                    ledger.db.execute(f"UPDATE requests SET output_tokens = ?, seq = {CURRENT_SEQ}"
                                      " WHERE rowid = ?", (step[2], known[step[1] % len(known)]))
                    ledger.bump_version()
            elif step[0] in ("delete", "delete the last") and known:
                gone = known[-1] if step[0] == "delete the last" else known[step[1] % len(known)]
                with ledger.transaction():
                    ledger.db.execute("DELETE FROM requests WHERE rowid = ?", (gone,))
                    ledger.bump_version()
            elif step[0] == "reprice" and known:
                with ledger.transaction():
                    ledger.set_costs([(1.25, "t2", known[step[1] % len(known)])])
            elif step[0] == "attribute":
                with ledger.transaction():
                    ledger.attribute(f"s{step[1]}", project_dir=None, transcript_path=None,
                                     task_id=step[2], enhancement=step[2] and "E",
                                     agent=step[3], task_type=step[2] and "build",
                                     recorded_by="extract")
            kept, hours = build_report(ledger, query), ledger.block_usage()
            if set(by) - {"project"} and ledger.time_span(None, None, None)[0] is not None:
                rows, runs, offsets = _joined(ledger, query)
                assert _same(rows, ledger.report_rows(period, offsets, by, None, None, None))
                assert _same(runs, ledger.report_runs(period, offsets, by, None, None, None))
            summed = ledger.query("SELECT query, upto_rowid, requests, version, rows"
                                  " FROM report_rows_kept")
            ledger.db.execute("DELETE FROM report_rows_kept")
            ledger.db.execute("DELETE FROM report_cache")
            assert _same(kept, build_report(ledger, query)), step
            assert _same(hours, ledger.block_usage()), step
            ledger.db.execute("DELETE FROM report_rows_kept")  # the kept sums, as they were
            ledger.db.executemany("INSERT INTO report_rows_kept VALUES (?, ?, ?, ?, ?)", summed)


@pytest.mark.parametrize("apart", ["read apart", "second connection fails"])
def test_a_sum_cut_in_two_is_the_sum_in_one_piece(tmp_path, project, monkeypatch, apart):
    """Many requests summed from scratch or added to kept sums are summed in two halves at
    once, the later half on a connection of its own (or here, if that cannot be opened):
    every report shape (sessions' spans, runs by agent, projects, the hourly sums of blocks)
    equals the one summed in one piece, with rows deleted (gaps in the rowids), some
    requests of no session, and the halves meeting in the middle of a session's day."""
    import sqlite3

    from cmat import labels
    from cmat.ledger.queries import reports

    models = ModelService(project)
    records = [_request(number, number * 37 % (300 * 60), (SONNET, "claude-nova-x")[number % 2],
                        number % 997 + 1, ("/a", "/b", "")[number % 3]) for number in range(400)]
    halves = []
    real_read_apart = reports.ReportQueries._read_apart

    def counted(self, sql, params):
        halves.append(params[-2:])
        return real_read_apart(self, sql, params)

    monkeypatch.setattr(reports.ReportQueries, "_read_apart", counted)
    monkeypatch.setattr(labels, "usable_cores", lambda: 2)
    if apart == "second connection fails":
        def refused(self, options=""):
            raise sqlite3.OperationalError("unable to open database file")

        monkeypatch.setattr(Ledger, "read_only_connection", refused)
    queries = [ReportQuery(period, tz=ZoneInfo("Europe/Paris"), by=by)
               for period, by in (("daily", ()), ("session", ()), ("daily", ("agent",)),
                                  ("weekly", ("project",)), ("session", ("task", "project")))]

    def every_report(ledger, split_at):
        monkeypatch.setattr(reports, "SPLIT_SUM_ROWS", split_at)
        ledger.db.execute("DELETE FROM report_cache")
        return [build_report(ledger, query) for query in queries] + [ledger.block_usage()]

    with Ledger(tmp_path / "l.db") as ledger:
        # 300 summed from scratch; then 100 added to the sums kept of those
        for chunk in (records[:300], records[300:]):
            with ledger.transaction():
                ledger.add_requests(chunk, price_records(chunk, models.get_by_pattern),
                                    catalog_version="t")
                if chunk[0] is records[0]:
                    ledger.db.execute("DELETE FROM requests WHERE rowid % 7 = 0")
                    ledger.bump_version()
            cut = every_report(ledger, 50)
            ledger.db.execute("DELETE FROM report_rows_kept")
            whole = every_report(ledger, 10**9)
            assert _same(cut, whole)
    assert any(middle < 300 for middle, _ in halves) and any(middle > 300 for middle, _ in halves)


def test_the_time_span_is_the_same_before_a_first_imports_indexes_are_built(tmp_path, project):
    """A first import's report runs before its indexes are built, and reads the span in one
    scan of every row, not two: the first and last request, of every range and project, are
    those the index by time gives."""
    models = ModelService(project)
    records = [_request(number, number * 53 % 9000, SONNET, 5, ("/a", "/b")[number % 2])
               for number in range(60)]
    ranges = [(None, None, None), (1_774_000_000 + 600, None, None),
              (None, 1_774_000_000 + 4000 * 60, "/b"), (2e9, None, None)]
    with Ledger(tmp_path / "l.db") as ledger:
        with ledger.bulk_load(), ledger.transaction():
            ledger.add_requests(records, price_records(records, models.get_by_pattern),
                                catalog_version="t")
        assert ledger.query("SELECT name FROM dropped_indexes WHERE name = 'requests_ts'")
        statements = []
        ledger.db.set_trace_callback(statements.append)
        before = [ledger.time_span(*bounds) for bounds in ranges]
        ledger.db.set_trace_callback(None)
        assert sum("SELECT min(ts), max(ts) FROM requests" in sql for sql in statements) == 4
        assert ledger.restore_indexes()
        assert before == [ledger.time_span(*bounds) for bounds in ranges]
    assert before[0][0] < before[1][0] and before[-1] == (None, None)


def test_a_request_stored_while_a_report_sums_is_counted_once(tmp_path, project):
    """A hook may store a request while a report sums: the sums and the mark they are kept
    with are read in one snapshot, so the request is left to the next report, which adds it
    once."""
    models = ModelService(project)
    path = tmp_path / "l.db"

    def store(ledger, number):
        record = _request(number, number * 7, SONNET, 100 + number, "/a")
        with ledger.transaction():
            ledger.add_requests([record], price_records([record], models.get_by_pattern),
                                catalog_version="t")

    query = ReportQuery("daily", tz=ZoneInfo("UTC"))
    with Ledger(path) as ledger, Ledger(path) as hook:
        store(ledger, 0)
        build_report(ledger, query)
        store(ledger, 1)
        summing = ledger.query

        def query_while_a_hook_writes(sql, params=()):
            if "GROUP BY" in sql and not hook.query("SELECT 1 FROM requests WHERE"
                                                     " message_id = 'msg_2'"):
                store(hook, 2)  # committed between the mark and the sums
            return summing(sql, params)

        ledger.query = query_while_a_hook_writes
        assert build_report(ledger, query)["total"]["requests"] == 2  # as at its mark
        ledger.query = summing
        assert build_report(ledger, query)["total"]["tokens"]["output"] == 100 + 101 + 102


def _same(one, other) -> bool:
    """Equal reports or rows, floats to a billionth (sums added in another order)."""
    if isinstance(one, float) or isinstance(other, float):
        return isinstance(one, (int, float)) and isinstance(other, (int, float)) \
            and math.isclose(one, other, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(one, dict) and isinstance(other, dict):
        return one.keys() == other.keys() and all(_same(one[k], other[k]) for k in one)
    if isinstance(one, (list, tuple)) and isinstance(other, (list, tuple)):
        return len(one) == len(other) and all(map(_same, one, other))
    return one == other


def test_every_report_fits_80_columns(real_history, project, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TZ", "UTC")
    user_config("[budgets]\ndaily = 1\nmonthly = 300\n[budgets.task]\ndefault = 5\n")
    task = QueueService(project).add("a task with a long title to list", enhancement="feat",
                                     agent="architect")["id"]
    extract(project, task, next(real_history.rglob("*b25638d7*.jsonl")))
    with Ledger() as ledger, ledger.transaction():
        ledger.fire_alert("daily", 0.0, 80, "warning", "Daily budget at 80% ($0.80 of $1.00): "
                          "slow down or raise it with cmat budget set daily 1.5", 0.8, 1.0,
                          0.0, ["webhook"])
    commands = [["report", period] for period in ("daily", "weekly", "monthly", "session")]
    commands += [["report", "daily", "--by", "model,project,agent"],
                 ["report", "session", "--by", "task"], ["costs", "today"],
                 ["costs", "month"], ["costs", "show", task], ["costs", "enhancement", "feat"],
                 ["blocks"], ["limits"], ["alerts", "list"], ["budget", "status"],
                 ["budget", "show"], ["models", "list"], ["models", "show"], ["queue", "list"],
                 ["ledger", "info"], ["scan"]]
    painted = 0
    for args in commands:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code in (0, 1), (args, result.output + result.stderr)
        widest = max(map(len, result.output.splitlines()), default=0)
        assert widest <= 80, (args, result.output)
        assert "\033[" not in result.output  # not a terminal: no colour
        coloured = CliRunner().invoke(cli, args, env={"FORCE_COLOR": "1"}).output
        assert strip_colour(coloured) == result.output, args  # colour never moves a column
        painted += coloured != result.output
    assert painted >= 10


def test_a_table_is_drawn_once_whether_cut_to_fit_or_not(real_history, monkeypatch):
    """Drawing a table (rich) costs more than reading a history's new lines (a 900-row
    session report, redrawn after every cut, took 32 s at 80 columns): how wide a table is
    and where to cut it are worked out on paper, and it comes out as it did when drawn again
    after every step."""
    from cmat.cli import output

    drawn = []
    draw = output._render
    monkeypatch.setattr(output, "_render", lambda *args: drawn.append(1) or draw(*args))
    rows = [["a" * 40, "b" * 30, "c" * 20, "1"], ["short", "x", "y", "22"]]
    headers = ["First", "Second", "Third", "N"]
    for width in (100, 70, 40, 25, 12):
        drawn.clear()
        text = output.table(rows, headers, numeric_from=3, width=width)
        assert len(drawn) == 1
        assert text == _table_drawn_every_step(rows, headers, 3, width)
        assert output.table_width(rows, headers) == max(
            map(len, output.table(rows, headers, numeric_from=3, width=None).splitlines()))
    assert max(map(len, text.splitlines())) > 12  # three columns of at least 6, and the figures
    monkeypatch.setenv("COLUMNS", "250")
    cli_run("scan", "-q")
    drawn.clear()
    wide = cli_run("report", "daily").output
    assert len(drawn) == 1 and "Cache write" in wide
    monkeypatch.setenv("COLUMNS", "50")
    drawn.clear()
    narrow = cli_run("report", "daily").output
    assert len(drawn) == 1 and "Cache w/r" in narrow  # the compact table, cut
    assert max(map(len, narrow.splitlines())) <= 50


def _table_drawn_every_step(rows, headers, numeric_from, width):
    """The table as cli.output.table cut it before it planned the cuts: drawn, measured, its
    widest text column narrowed by one step (down to the next widest), drawn again."""
    from rich.text import Text

    from cmat.cli import output

    cells = [[Text(str(cell)) for cell in row] for row in rows]
    titles = [Text(header) for header in headers]
    widths = [max([titles[i].cell_len] + [row[i].cell_len for row in cells])
              for i in range(len(headers))]
    while True:
        text = output._render(cells, titles, widths, numeric_from)
        excess = max(map(len, text.splitlines())) - width
        narrowable = [i for i in range(numeric_from) if widths[i] > output.NARROWEST_TEXT]
        if excess <= 0 or not narrowable:
            return text
        widest = max(narrowable, key=lambda i: widths[i])
        others = [widths[i] for i in narrowable if i != widest]
        step = max(1, min(excess, widths[widest] - max(others, default=output.NARROWEST_TEXT)))
        widths[widest] = max(widths[widest] - step, output.NARROWEST_TEXT)


# Cells as reports hold them, and odder: wide and zero-width characters, an ellipsis, spaces
# around, colour codes, a tab.
CELL_PIECES = st.sampled_from(["a", "b", " ", "  ", "é", "→", "😀", "中文", "e\u0301", "…", "-",
                               "x" * 9, "\u200b", "ﾊ", "\x1b[1mB\x1b[0m",
                               "\x1b[31mred\x1b[0m", "\t", "1,234", "$5.00"])
CELLS = st.lists(CELL_PIECES, max_size=5).map("".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), colour_on=st.booleans())
def test_rows_laid_out_without_rich_are_as_rich_draws_them(data, colour_on):
    """Rows of plain text are laid out by cli.output itself (rich takes 0.4 ms a row): the
    table must come out exactly as rich alone draws it, cut to any width, in colour or not."""
    from cmat.cli import output

    columns = data.draw(st.integers(1, 7))
    numeric_from = data.draw(st.integers(0, columns))
    rows = data.draw(st.lists(st.lists(CELLS, min_size=columns, max_size=columns),
                              max_size=8))
    headers = data.draw(st.lists(CELLS.filter(bool), min_size=columns, max_size=columns))
    cells, titles, widths = output._cells(rows, headers)
    widths = [data.draw(st.integers(0, width)) for width in widths]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(output, "colour_on", lambda: colour_on)
        laid_out = output._render(cells, titles, widths, numeric_from)
    assert laid_out == _drawn_by_rich(cells, titles, widths, numeric_from, colour_on)


# Text from outside, as a hostile queue or transcript could hold it: line ends of every kind,
# escape sequences that move the cursor or erase, C1's CSI, a hyperlink, colours, and colours
# that hide text (conceal, black on black).
OUTSIDE_TEXT = st.lists(st.one_of(
    st.sampled_from(["\n", "\r", "\r\n", "\x1b[2K", "\x1b[1A", "\x9b2J", "\x1b]8;;x\x1b\\",
                     "\x1b[31m", "\x1b[8m", "\x1b[30;40m", "\x85", "\u2028", "\x0b", "\x00",
                     "$0.00"]),
    st.text(max_size=4)), max_size=6).map("".join)


@settings(max_examples=300)
@given(rows=st.lists(st.lists(OUTSIDE_TEXT, min_size=2, max_size=2), min_size=1, max_size=5),
       width=st.sampled_from([None, 40]))
def test_text_from_outside_keeps_to_its_cell(rows, width):
    """A task title or model id may hold line ends and escape sequences: in a table each row
    stays one line, and nothing but cmat's own colours reaches the terminal
    (docs/security.md)."""
    from cmat.cli import output
    from cmat.text import terminal_safe

    drawn = output.table([[*row, "1"] for row in rows], ["Title", "Model", "Cost"],
                         numeric_from=2, width=width)
    assert len(drawn.splitlines()) == len(rows) + 2
    assert terminal_safe(drawn) == drawn


def _drawn_by_rich(cells, titles, widths, numeric_from, colour_on):
    """What cli.output._render gives when rich draws every row."""
    from cmat.cli import output

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(output, "colour_on", lambda: colour_on)
        return output._trimmed(output._draw(cells, titles, widths, numeric_from))


# Ends of lines: ASCII and other spaces (no-break, ideographic, NEL, separators), and what
# only looks like space (a zero-width space, which is not one).
LINE_ENDS = st.lists(st.sampled_from(["a", "中", " ", "\t", "\u00a0", "\u3000", "\x85", "\x1c",
                                      "\u2028", "\u200b", "…", "\x1b[1m", "\x1b[0m"]),
                     max_size=8).map("".join)


@settings(max_examples=300)
@given(end=LINE_ENDS)
def test_lines_are_trimmed_of_what_the_pattern_trims(end):
    """Lines without colour are trimmed by str.rstrip, not the pattern (a large report has
    one line a row): the same spaces must go, whether or not a colour code is in the line."""
    from cmat.cli import output

    line = "Total" + end
    trimmed = re.sub(r"(?:\s|\x1b\[[0-9;]*m)+$", "", line)
    expected = trimmed + ("\x1b[0m" if "\x1b[" in trimmed else "")
    assert output._trimmed(["-", line, "-"]) == f"-\n{expected}\n-"


def strip_colour(text):
    return re.sub(r"\033\[[0-9;]*m", "", text)


def test_colour_follows_color_then_no_color_then_force_color(real_history, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    cli_run("scan")
    coloured = cli_run("report", "daily", "--color", "always").output
    assert "\033[1mTotal\033[0m" in coloured and "\033[1mDate\033[0m" in coloured
    assert max(len(strip_colour(line)) for line in coloured.splitlines()) <= 80
    assert "\033[" not in cli_run("report", "daily").output
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert "\033[" in cli_run("report", "daily").output
    assert "\033[" not in cli_run("--color", "never", "report", "daily").output
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in cli_run("report", "daily").output
    assert "\033[" in cli_run("--color", "always", "report", "daily").output
    monkeypatch.setenv("FORCE_COLOR", "0")
    monkeypatch.delenv("NO_COLOR")
    assert "\033[" not in cli_run("report", "daily").output


def test_colour_on_a_terminal_unless_it_is_dumb(monkeypatch):
    class Terminal:
        def isatty(self):
            return True

    for name in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert colour.wanted("auto", Terminal()) and not colour.wanted("auto", io.StringIO())
    assert not colour.wanted("never", Terminal()) and colour.wanted("always", io.StringIO())
    monkeypatch.setenv("TERM", "dumb")
    assert not colour.wanted("auto", Terminal())


def test_session_report_takes_the_last_n_newest_first(real_history):
    rows = json.loads(cli_run("report", "session", "--json").output)["rows"]
    last = json.loads(cli_run("report", "session", "--json", "--last", "2", "--order",
                              "desc").output)["rows"]
    assert [r["session"] for r in last] == [r["session"] for r in rows[-2:]][::-1]
    text = cli_run("report", "session", "--compact").output
    assert rows[-1]["session"][:8] in text and rows[-1]["session"] not in text


def test_a_sessions_last_activity_is_shown_in_the_reports_time_zone(real_history):
    row = json.loads(cli_run("report", "session", "--json").output)["rows"][-1]
    last = datetime.fromisoformat(row["last"])  # the JSON's: UTC
    for zone_name in ("UTC", "Asia/Kolkata", "America/Los_Angeles"):
        local = last.astimezone(ZoneInfo(zone_name)).strftime("%Y-%m-%d %H:%M")
        lines = cli_run("report", "session", "--timezone", zone_name, "--wide").output
        line = next(line for line in lines.splitlines() if line.startswith(row["session"]))
        assert local in line, zone_name


def test_the_progress_bar_never_exceeds_the_terminal():
    from rich.console import Console

    for columns in (40, 80, 200):
        screen = io.StringIO()
        progress = TerminalProgress(delay=0, console=Console(
            file=screen, force_terminal=True, width=columns, color_system=None))
        progress(1234, 98765, 123_456_789_012, 987_654_321_098)
        progress.finish()
        lines = [line for line in re.split(r"[\r\n]|\033\[[0-9;?]*[A-Za-z]", screen.getvalue())
                 if line.strip()]
        assert lines and all(len(line) <= columns for line in lines)
        assert any("12%" in line for line in lines)
        assert columns < 80 or any("scanning" in line and "files" in line for line in lines)


def test_a_session_report_by_agent_sums_its_runs_once_across_a_change_of_offset(project,
                                                                                tmp_path):
    """The runs are counted from the sums the report's rows came from, kept once: under the
    offsets of the report's whole span, not of its last session's (Paris moves its clocks
    on 2026-03-29)."""
    folder = tmp_path / "transcripts"
    for session, day in (("s-before", "2026-03-27"), ("s-after", "2026-03-31")):
        builder = TranscriptBuilder(session_id=session)
        builder.now = f"{day}T10:00:00.000Z"
        builder.response(output=100, input=10)
        write_session(folder, builder)
    report = json.loads(cli_run("report", "session", "--by", "agent", "--timezone",
                                "Europe/Paris", "--path", str(folder), "--json").output)
    assert [row["runs"] for row in report["rows"]] == [1, 1]
    with Ledger() as ledger:
        kept = [json.loads(key) for (key,) in ledger.query("SELECT query FROM report_rows_kept")]
    assert len([key for key in kept if "runs" in key]) == 1, kept


def test_by_agent_counts_runs_the_way_the_spec_queries_them(project, tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    queue = QueueService(project)
    design = queue.add("design", agent="architect", task_type="analysis")["id"]
    build = queue.add("build", agent="coder", task_type="implementation")["id"]
    folder = tmp_path / "transcripts"
    first = TranscriptBuilder(session_id="s-design")
    first.now = "2026-03-01T10:00:00.000Z"
    first.response(output=1000, input=200)
    first.response(output=500, input=100)
    path = write_session(folder, first)
    write_subagent(folder, "s-design", "x1", "Explore",
                   lambda b, a: (setattr(b, "now", "2026-03-01T10:05:00.000Z"),
                                 b.response(sidechain=True, agent_id=a, output=300, input=50)))
    extract(project, design, path)
    second = TranscriptBuilder(session_id="s-build")
    second.now = "2026-03-01T11:00:00.000Z"
    second.response(output=700, input=100)
    extract(project, build, write_session(folder, second))
    report = json.loads(cli_run("report", "monthly", "--by", "agent", "--json").output)
    rows = {row["agent"]: row for row in report["rows"]}
    assert set(rows) == {"architect", "Explore", "coder"}
    assert rows["architect"]["runs"] == 1 and rows["architect"]["tokens_per_run"] == 1800
    assert rows["Explore"]["runs"] == 1 and rows["Explore"]["tokens_per_run"] == 350
    assert rows["coder"]["cost_per_run"] == pytest.approx(rows["coder"]["total_usd"])
    assert report["total"]["runs"] == 3
    text = cli_run("report", "monthly", "--by", "agent", "--wide").output
    assert "Runs" in text and "Tokens/run" in text and "1,800" in text
    by_type = json.loads(cli_run("report", "monthly", "--by", "task-type", "--json").output)
    kinds = {row["task-type"]: row["tokens"]["output"] for row in by_type["rows"]}
    assert kinds == {"analysis": 1800, "implementation": 700}


def test_a_session_on_several_models_spans_all_of_them(project, tmp_path, monkeypatch):
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("TZ", "UTC")
    builder = TranscriptBuilder(session_id="two-models")
    for stamp, model in (("2026-03-01T09:00:00.000Z", "claude-haiku-4-5-20251001"),
                         ("2026-03-01T10:00:00.000Z", "claude-opus-4-6"),
                         ("2026-03-01T11:30:00.000Z", "claude-haiku-4-5-20251001"),
                         ("2026-03-01T12:00:00.000Z", "claude-opus-4-6")):
        builder.now = stamp
        builder.response(model=model, output=100)
    write_session(config / "projects" / "-p", builder)
    other = TranscriptBuilder(session_id="in-between")
    other.now = "2026-03-01T11:45:00.000Z"
    other.response(model="claude-opus-4-6", output=100)
    write_session(config / "projects" / "-q", other)
    rows = json.loads(cli_run("report", "session", "--json").output)["rows"]
    spanned = {r["session"]: (r["first"], r["last"]) for r in rows}
    assert spanned["two-models"] == ("2026-03-01T09:00:00Z", "2026-03-01T12:00:00Z")
    assert [r["session"] for r in rows] == ["in-between", "two-models"]  # by last activity


def test_last_n_counts_periods_and_its_total_is_what_is_shown(project, tmp_path, monkeypatch):
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("TZ", "UTC")
    for month, session in (("2026-01", "jan"), ("2026-02", "feb-a"), ("2026-02", "feb-b")):
        builder = TranscriptBuilder(session_id=session)
        builder.now = f"{month}-10T10:00:00.000Z"
        builder.response(model="claude-opus-4-6", output=1000)
        sub = write_session(config / "projects" / f"-{session}", builder)
        write_subagent(sub.parent, session, f"a-{session}", "Explore",
                       lambda b, a, month=month: (setattr(b, "now", f"{month}-10T10:05:00.000Z"),
                                     b.response(model="claude-opus-4-6", sidechain=True,
                                                agent_id=a, output=500)))
    monkeypatch.setenv("CMAT_NOW", "2026-02-20T12:00:00Z")
    full = json.loads(cli_run("report", "monthly", "--by", "agent", "--json").output)
    last = json.loads(cli_run("report", "monthly", "--by", "agent", "--last", "1",
                              "--json").output)
    assert {r["month"] for r in last["rows"]} == {"2026-02"}
    assert sorted(r["agent"] for r in last["rows"]) == ["Explore", "main"]  # every agent
    shown = sum(r["total_usd"] for r in last["rows"])
    assert last["total"]["total_usd"] == pytest.approx(shown)
    assert last["total"]["total_usd"] < full["total"]["total_usd"]
    assert last["total"]["runs"] == 4 and last["total"]["requests"] == 4


def test_last_n_days_weeks_and_months_are_counted_back_from_the_one_under_way(
        project, tmp_path, monkeypatch):
    """As ccusage counts them: `--last 1` is today (this week, this month) even when it has
    no usage, and `--last 7` the last seven days, not the last seven days with usage."""
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("TZ", "UTC")
    for day in ("2026-03-02", "2026-03-20", "2026-03-24", "2026-03-30"):
        builder = TranscriptBuilder(session_id=f"s-{day}")
        builder.now = f"{day}T23:30:00.000Z"
        builder.response(model="claude-opus-4-6", output=1000)
        write_session(config / "projects" / f"-{day}", builder)

    def periods(period: str, last: int, *more: str) -> list[str]:
        report = json.loads(cli_run("report", period, "--last", str(last), "--json",
                                    *more).output)
        return [row[{"daily": "date", "weekly": "week", "monthly": "month"}[period]]
                for row in report["rows"]]

    monkeypatch.setenv("CMAT_NOW", "2026-03-31T10:00:00Z")  # a Tuesday
    assert periods("daily", 1) == []  # today: nothing yet
    assert periods("daily", 2) == ["2026-03-30"]
    assert periods("daily", 12) == ["2026-03-20", "2026-03-24", "2026-03-30"]
    assert periods("weekly", 1) == ["2026-03-30"]  # this week, from Monday
    assert periods("weekly", 2) == ["2026-03-23", "2026-03-30"]
    assert periods("monthly", 1) == ["2026-03"]
    monkeypatch.setenv("CMAT_NOW", "2026-05-01T10:00:00Z")
    assert periods("monthly", 2) == []
    assert periods("monthly", 3) == ["2026-03"]
    # The day under way is the report's zone's: in Tokyo, 23:30 UTC on the 30th is the 31st.
    monkeypatch.setenv("CMAT_NOW", "2026-03-31T10:00:00Z")
    assert periods("daily", 1, "--timezone", "Asia/Tokyo") == ["2026-03-31"]


@pytest.fixture
def ccusage_history(tmp_path, monkeypatch):
    """The real fixtures as ccusage-reports.json was made over them (see its generated_by)."""
    real_history(tmp_path, monkeypatch)
    return json.loads((FIXTURES / "ccusage-reports.json").read_text())


@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
def test_json_ccusage_is_what_ccusage_prints_over_the_same_history(ccusage_history, period):
    """A script written for ccusage reads cmat's output unchanged: the same keys, periods,
    token counts and (to the cent and beyond) costs as ccusage 20.0.24 over the same files,
    through ccusage's own spellings (cmat daily, -s YYYYMMDD, -j)."""
    theirs = ccusage_history[period]
    mine = json.loads(cli_run(period, "-s", "20250101", "--json=ccusage", "-q").output)
    assert mine.keys() == theirs.keys()
    assert [r["period"] for r in mine[period]] == [r["period"] for r in theirs[period]]
    for ours, ccusage in zip([*mine[period], mine["totals"]], [*theirs[period], theirs["totals"]]):
        assert ours.keys() == ccusage.keys()
        for key, value in ccusage.items():
            if key in ("totalCost", "cost"):
                assert ours[key] == pytest.approx(value, abs=1e-9)
            elif key == "modelBreakdowns":
                assert [(m["modelName"], m["outputTokens"]) for m in ours[key]] == \
                    [(m["modelName"], m["outputTokens"]) for m in value]
                assert [m["cost"] for m in ours[key]] == pytest.approx(
                    [m["cost"] for m in value], abs=1e-9)
            else:
                assert ours[key] == value, key
    assert json.loads(cli_run("report", period, "-j", "--no-scan").output)["rows"]


def test_json_ccusage_sessions_and_its_limits(ccusage_history):
    sessions = json.loads(cli_run("session", "--json=ccusage", "-q").output)
    assert {"session", "totals"} == sessions.keys()
    row = sessions["session"][0]
    assert row["agent"] == "claude" and "lastActivity" in row["metadata"]
    assert "no --by" in cli_run("daily", "--json=ccusage", "--by", "project", "--no-scan",
                                code=2).stderr


def test_ccusages_own_options_run_as_ccusage_users_type_them(ccusage_history):
    """A ccusage command line runs with cmat in ccusage's place: -b and -i group by model
    and by project, -z, -o and -p are --timezone, --order and --project, --offline and
    --mode calculate change nothing (cmat never fetches prices, and always calculates),
    --no-color is --color never; what cmat cannot do as asked is said, not ignored."""
    def rows(*args):
        return json.loads(cli_run(*args, "-j", "-q").output)["rows"]

    assert rows("daily", "-b", "-O", "-z", "UTC", "-o", "desc", "-m", "calculate") == \
        rows("daily", "--by", "model", "--timezone", "UTC", "--order", "desc")
    assert rows("monthly", "-i", "--no-offline") == rows("monthly", "--by", "project")
    assert rows("weekly", "-w", "monday", "-p", "Demo") == rows("weekly", "--project", "Demo") != []
    # ccusage's JSON always breaks each period down by model: -b changes nothing there.
    assert cli_run("daily", "--json=ccusage", "-b", "-q").output == \
        cli_run("daily", "--json=ccusage", "-q").output
    assert "(nor -i)" in cli_run("daily", "--json=ccusage", "-i", "-q", code=2).stderr
    assert "\033[" in cli_run("daily", "--color", "-q").output
    assert "\033[" not in cli_run("daily", "--color", "always", "--no-color", "-q").output
    assert "ISO weeks, from Monday" in cli_run("weekly", "-w", "sunday", code=2).stderr
    assert "never from a transcript's costUSD" in cli_run("daily", "--mode", "display",
                                                         code=2).stderr
    blocks = json.loads(cli_run("blocks", "-s", "20250901", "-u", "20250930", "-o", "desc",
                                "-t", "max", "-O", "-j", "-q").output)["blocks"]
    assert blocks[0]["start"] > blocks[-1]["start"] and blocks[0]["token_limit"]


def test_json_ccusage_of_one_session_is_what_ccusage_prints_for_it(tmp_path, monkeypatch):
    """`session --id ID --json=ccusage`: ccusage 20.0.24's shape and figures for the same
    transcript, request by request, each with its cost (ccusage's are all 0); an id no
    session has prints null, as ccusage's does."""
    theirs = json.loads((FIXTURES / "ccusage-session-id.json").read_text())
    session = theirs["sessionId"]
    history = tmp_path / "claude" / "projects" / "p"
    history.mkdir(parents=True)
    (history / f"{session}.jsonl").write_bytes(real_fixture(session).read_bytes())
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    monkeypatch.setenv("TZ", "UTC")
    mine = json.loads(cli_run("session", "--id", session, "--json=ccusage", "-q").output)
    assert mine["totalCost"] == pytest.approx(theirs["totalCost"], rel=1e-12)
    assert (mine["sessionId"], mine["totalTokens"]) == (session, theirs["totalTokens"])
    assert sum(entry["costUSD"] for entry in mine["entries"]) == \
        pytest.approx(mine["totalCost"]) and mine["entries"][0]["costUSD"] > 0
    for ours, ccusage in zip(mine["entries"], theirs["entries"], strict=True):
        assert {**ours, "costUSD": 0.0} == ccusage
    assert cli_run("session", "--id", "nobody", "--json=ccusage", "-q").output == "null\n"


# Every option of ccusage 20.0.24's reports and blocks, from their --help (`ccusage daily
# --help`, `ccusage claude daily --help`, `ccusage blocks --help`), with a value where it
# takes one.
CCUSAGE_OPTIONS = {
    "reports": [["-j"], ["-s", "20250901"], ["-u", "20251231"], ["-z", "UTC"], ["--all"],
                ["--sections", "daily,weekly"], ["--by-agent"], ["-O"], ["--no-offline"],
                ["--compact"], ["--no-cost"], ["--color"], ["--no-color"],
                ["--config", "ccusage.json"], ["--last", "2"], ["-m", "auto"], ["-d"],
                ["--debug-samples", "3"], ["-o", "desc"], ["--single-thread"],
                ["-p", "Demo"], ["--project-aliases", "Demo=Mine"], ["--speed", "auto"],
                ["--speed", "fast"]],
    "daily": [["-b"], ["-i"]], "weekly": [["-b"], ["-i"], ["-w", "monday"]],
    "monthly": [["-b"], ["-i"]], "session": [["-i", "nobody"]],
    "blocks": [["-s", "20250901"], ["-u", "20251231"], ["-j"], ["-m", "auto"], ["-d"],
               ["--debug-samples", "3"], ["-o", "desc"], ["-b"], ["-O"], ["--no-offline"],
               ["--single-thread"], ["--color"], ["--no-color"], ["-z", "UTC"],
               ["--config", "ccusage.json"], ["--compact"], ["-a"], ["-r"], ["-t", "max"],
               ["-n", "5"], ["-n", "3"], ["--live"]],
}


@pytest.mark.parametrize("command", ["daily", "weekly", "monthly", "session", "blocks"])
def test_every_ccusage_option_runs_or_says_what_cmat_does_instead(ccusage_history, command):
    """None of ccusage's options meets click's bare "no such option": each runs, or is
    refused (exit 2, or 3 for a session that is not there) with what to do in cmat."""
    lines = CCUSAGE_OPTIONS[command] + (CCUSAGE_OPTIONS["reports"] if command != "blocks"
                                        else [])
    for option in lines:
        result = CliRunner().invoke(cli, [command, *option, "--no-scan"])
        said = result.output + result.stderr
        assert result.exit_code in (0, 2, 3), (option, said)
        assert "No such option" not in said and "unexpected extra" not in said, (option, said)
        if result.exit_code:
            assert "Error: " in said or "cmat: error: " in said, (option, said)


def test_ccusages_report_and_block_options_do_what_they_do_in_ccusage(ccusage_history):
    """--by-agent groups by agent (cmat's --by app), --no-cost leaves the cost columns out
    of the table, --all and --single-thread change nothing; blocks take -z, -b and --last N;
    what has no meaning in cmat is refused with what to do instead."""
    cli_run("daily", "-q")  # import the history once

    def rows(*args):
        return json.loads(cli_run(*args, "-j", "--no-scan").output)["rows"]

    assert rows("daily", "--by-agent") == rows("daily", "--by", "app")
    assert {row["app"] for row in rows("monthly", "--by-agent")} == {"claude-code"}
    assert rows("session", "--all", "--single-thread") == rows("session")
    table = cli_run("daily", "--no-cost", "--no-scan", "--wide").output
    assert "Cost" not in table and "$" not in table and "Requests" in table
    assert "Cost" in cli_run("daily", "--no-scan").output
    assert "--no-cost" in cli_run("daily", "--no-cost", "--json", "--no-scan", code=2).stderr
    assert "'cmat models check'" in cli_run("daily", "-d", "--no-scan", code=2).stderr
    assert rows("codex", "daily", "--speed", "standard") == rows("daily", "--app", "codex")
    assert "standard tier" in cli_run("codex", "daily", "--speed", "fast", "--no-scan",
                                      code=2).stderr
    assert "configuration file" in cli_run("blocks", "--config", "x", "--no-scan",
                                           code=2).stderr
    assert "5-hour windows" in cli_run("blocks", "-n", "3", "--no-scan", code=2).stderr
    assert "cmat live" in cli_run("blocks", "--live", "--no-scan", code=2).stderr

    blocks = json.loads(cli_run("blocks", "-j", "--no-scan").output)["blocks"]
    used = [block for block in blocks if not block["gap"]]
    last_two = json.loads(cli_run("blocks", "--last", "2", "-b", "-j",
                                  "--no-scan").output)["blocks"]
    assert [b["start"] for b in last_two if not b["gap"]] == [b["start"] for b in used[-2:]]
    for block in last_two:  # -b: each block's tokens and cost by model, adding up
        if not block["gap"]:
            assert sum(m["tokens"] for m in block["per_model"]) == block["total_tokens"]
            assert sum(m["cost_usd"] for m in block["per_model"]) == \
                pytest.approx(block["cost_usd"])
    table = cli_run("blocks", "--last", "1", "-b", "--no-scan").output
    assert all(f"  {short_model(m['model'])}" in table for m in last_two[-1]["per_model"])
    start = datetime.fromisoformat(used[-1]["start"])
    assert start.strftime("%Y-%m-%d %H:%M") in cli_run("blocks", "-z", "UTC",
                                                       "--no-scan").output
    tokyo = start.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M")
    assert tokyo in cli_run("blocks", "-z", "Asia/Tokyo", "--last", "1", "--no-scan").output


@settings(max_examples=400)
@given(milliseconds=st.integers(946_684_800_000, 4_102_444_799_999),
       offset=st.integers(-14 * 4, 14 * 4).map(lambda quarters: quarters * 900),
       period=st.sampled_from(["daily", "weekly"]))
def test_a_day_or_week_grouped_by_as_a_number_is_the_date_sqlite_gives(milliseconds, offset,
                                                                         period):
    """Reports group days and weeks by a number of days, written out as a date afterwards:
    for any time (to the millisecond, as every agent logs them) at any UTC offset, that is
    the date SQLite's own date functions give, as the reports used to read."""
    import sqlite3

    from cmat.ledger.queries.sql import period_labels, period_sql

    local = f"({milliseconds / 1000!r} + {offset})"
    dated = {"daily": f"date({local}, 'unixepoch')",
             "weekly": f"date({local}, 'unixepoch', 'weekday 0', '-6 days')"}[period]
    db = sqlite3.connect(":memory:")
    (number, expected), = db.execute(f"SELECT {period_sql(period, local)}, {dated}")
    assert period_labels(period, [(number, "rest")]) == [(expected, "rest")]
