"""The team ledger against a real PostgreSQL server: sync, its reliability, team reports,
team budgets and compaction."""

import json
import random
import re
import signal
import subprocess
import sys
import time
from datetime import datetime

import psycopg
import pytest

from cmat import paths
from cmat.ledger import Ledger
from cmat.ledger.schema import CURRENT_SEQ
from tests.helpers import (
    PROMPT,
    budget_hook,
    budget_payload,
    child_env,
    cli_run,
    rounded,
    user_config,
)
from tests.transcript_factory import TranscriptBuilder, mixed_history, write_session

SONNET, OPUS = "claude-sonnet-4-5-20250929", "claude-opus-4-6"


def history(folder, sessions=3, requests=4, day="2026-03", machine_tag="a", project="/w/app"):
    """Transcripts of `sessions` sessions in `folder` (Claude Code's projects folder)."""
    paths = []
    for index in range(sessions):
        builder = TranscriptBuilder(session_id=f"{machine_tag}-s{index}", cwd=project)
        for turn in range(requests):
            builder.now = f"{day}-{1 + index % 28:02d}T{10 + turn // 60:02d}:{turn % 60:02d}:00.000Z"
            builder.response(model=(SONNET, OPUS)[turn % 2], input=100 * (turn + 1),
                             output=500 + turn, write_5m=1000, read=2000 * turn)
        paths.append(write_session(folder / "projects" / f"-p{index}", builder))
    return paths


@pytest.fixture
def local(tmp_path, monkeypatch, project):
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("CMAT_MACHINE", "laptop")
    monkeypatch.setenv("CMAT_USER", "ana")
    monkeypatch.setenv("TZ", "UTC")
    history(config)
    return config


def remote(url, sql, params=()):
    with psycopg.connect(url) as connection:
        return connection.execute(sql, params).fetchall()


def local_rows(ledger_path=None):
    with Ledger(ledger_path) as ledger:
        return sorted(ledger.query("SELECT message_id, output_tokens, cost_usd, machine,"
                                   " user_name FROM requests"))


def same_sums(database):
    """The rollups triggers keep equal the requests they sum. `database`: a conninfo, or a
    connection whose session (with whatever it changed) is asked."""
    def rows(sql):
        if isinstance(database, psycopg.Connection):
            return database.execute(sql).fetchall()
        return remote(database, sql)

    summed = rows("SELECT sum(output_tokens), count(*), round(sum(cost_usd)::numeric, 9)"
                  " FROM public.requests")
    for rollup in ("daily_usage", "session_usage"):
        assert rows(f"SELECT sum(output_tokens), sum(requests), round(sum(cost_usd)::numeric,"
                    f" 9) FROM public.{rollup}") == summed
    per_quarter_hour = ("SELECT quarter_hour, round(sum(cost_usd)::numeric, 9) FROM {} GROUP BY 1"
                        " HAVING round(sum(cost_usd)::numeric, 9) <> 0 ORDER BY 1")
    assert rows(per_quarter_hour.format("public.quarter_hour_spend")) == rows(
        per_quarter_hour.format("(SELECT (floor(ts / 900) * 900)::bigint AS quarter_hour,"
                                " cost_usd FROM public.requests) r"))


def test_sync_sends_labelled_rows_once_and_then_only_what_changed(local, team_db):
    first = json.loads(cli_run("sync", "--to", team_db, "--json", "-q").output)
    assert first["requests"] == 12 and first["database"].startswith("t_")
    mine = local_rows()
    assert sorted(remote(team_db, "SELECT message_id, output_tokens, cost_usd, machine,"
                                  " user_name FROM requests")) == mine
    assert {(m, u) for *_, m, u in mine} == {("laptop", "ana")}
    again = json.loads(cli_run("sync", "--to", team_db, "--json", "-q").output)
    assert again["requests"] == 0  # nothing changed: nothing sent
    # A session grows: one response is longer than first recorded, and one more arrives.
    builder = TranscriptBuilder(session_id="a-s0", cwd="/w/app")
    builder.now = "2026-03-01T12:00:00.000Z"
    builder.response(model=SONNET, output=9999)
    write_session(local / "projects" / "-p0-more", builder)
    third = json.loads(cli_run("sync", "--to", team_db, "--json", "-q").output)
    assert third["requests"] == 1
    assert sorted(remote(team_db, "SELECT message_id, output_tokens, cost_usd, machine,"
                                  " user_name FROM requests")) == local_rows()
    same_sums(team_db)
    assert "sent 0 requests" in cli_run("sync", "--to", team_db).output


def test_team_reports_equal_the_local_ones_and_group_by_user_and_machine(local, team_db):
    cli_run("sync", "--to", team_db, "-q")
    for args in (["monthly", "--by", "project"], ["daily", "--by", "model"],
                 ["weekly", "--by", "model,project"], ["monthly", "--by", "agent"]):
        mine = json.loads(cli_run("report", *args, "--json", "--no-scan").output)
        team = json.loads(cli_run("report", *args, "--team", "--to", team_db, "--json").output)
        assert rounded(team["rows"]) == rounded(mine["rows"]), args
        assert rounded(team["total"]) == rounded(mine["total"]), args
    by_user = json.loads(cli_run("report", "monthly", "--by", "user,machine", "--team",
                                 "--to", team_db, "--json").output)
    assert [(r["user"], r["machine"]) for r in by_user["rows"]] == [("ana", "laptop")]
    text = cli_run("report", "monthly", "--by", "user", "--team", "--to", team_db).output
    assert "ana" in text and "Times in UTC" in text
    assert "team reports are daily, weekly or monthly" in cli_run(
        "report", "session", "--team", "--to", team_db, code=2).stderr


def _mixed(tmp_path, monkeypatch, project, home) -> dict[str, tuple[int, float]]:
    for name, folder in (("CLAUDE_CONFIG_DIR", "claude"), ("CODEX_HOME", "codex"),
                         ("OPENCODE_DATA_DIR", "opencode")):
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("TZ", "UTC")
    return mixed_history(tmp_path / "claude", tmp_path / "codex", home,
                         tmp_path / "opencode", str(project))


def _team_by_app(team_db) -> dict:
    report = json.loads(cli_run("report", "daily", "--by", "app", "--team", "--to", team_db,
                                "--json").output)
    return {row["app"]: (row["requests"], round(row["total_usd"], 9))
            for row in report["rows"]} | {
        "total": (report["total"]["requests"], round(report["total"]["total_usd"], 9))}


def _expected_by_app(expected) -> dict:
    return {app: (n, round(usd, 9)) for app, (n, usd) in expected.items()} | {
        "total": (sum(n for n, _ in expected.values()),
                  round(sum(usd for _, usd in expected.values()), 9))}


def test_a_mixed_history_is_exact_per_app_in_the_team_database(tmp_path, monkeypatch,
                                                                project, isolated_home,
                                                                team_db):
    expected = _mixed(tmp_path, monkeypatch, project, isolated_home)
    cli_run("sync", "--to", team_db, "-q")
    assert _team_by_app(team_db) == _expected_by_app(expected)
    mine = json.loads(cli_run("report", "monthly", "--by", "app,provider", "--json",
                              "--no-scan").output)
    team = json.loads(cli_run("report", "monthly", "--by", "app,provider", "--team",
                              "--to", team_db, "--json").output)
    assert rounded(team["rows"]) == rounded(mine["rows"])
    codex = json.loads(cli_run("report", "daily", "--app", "codex", "--team", "--to", team_db,
                               "--json").output)["total"]
    assert (codex["requests"], round(codex["total_usd"], 9)) == _expected_by_app(
        expected)["codex"]
    same_sums(team_db)


def test_a_team_database_made_before_sources_moves_its_sums_to_them(tmp_path, monkeypatch,
                                                                     project, isolated_home,
                                                                     team_db):
    from cmat.team import schema

    expected = _mixed(tmp_path, monkeypatch, project, isolated_home)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)  # as the release before wrote it
    cli_run("sync", "--to", team_db, "-q")
    assert remote(team_db, "SELECT count(DISTINCT source) FROM requests") == [(3,)]
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    cli_run("sync", "--to", team_db, "-q")  # migrates: the rollups gain the source
    assert remote(team_db, "SELECT version FROM cmat_schema") == [(len(schema.MIGRATIONS),)]
    assert _team_by_app(team_db) == _expected_by_app(expected)
    same_sums(team_db)


def _id_collations(url):
    return remote(url, "SELECT table_name, column_name, collation_name FROM"
                       " information_schema.columns WHERE table_schema = 'public' AND"
                       " column_name IN ('message_id', 'session_id') ORDER BY 1, 2")


def test_a_team_database_new_or_upgraded_compares_ids_as_bytes(local, team_db, monkeypatch):
    """Whatever the server's locale, ids are compared byte by byte (their indexes never
    depend on the operating system's collation rules), and requests have no index by session
    (no query reads one); a database made before is converted in place, its rows and sums
    kept, and takes the next sync as before."""
    from cmat.team import schema

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 3)  # as the release before wrote it
    cli_run("scan", "-q")
    cli_run("sync", "--to", team_db, "-q", "--no-scan")
    assert {c for *_, c in _id_collations(team_db)} == {None}  # the database's own
    assert remote(team_db, "SELECT to_regclass('requests_session') IS NULL") == [(False,)]
    before = sorted(remote(team_db, "SELECT message_id, session_id, cost_usd FROM requests"))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    cli_run("sync", "--to", team_db, "-q", "--no-scan")
    collations = _id_collations(team_db)  # migration 4's, and those of tables made since
    assert {c for *_, c in collations} == {"C"}
    assert {(table, column) for table, column, _ in collations} >= {
        (table, column) for table, columns in schema.ID_COLUMNS.items() for column in columns}
    assert remote(team_db, "SELECT to_regclass('requests_session') IS NULL") == [(True,)]
    assert sorted(remote(team_db, "SELECT message_id, session_id, cost_usd FROM requests")) \
        == before
    assert remote(team_db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(0,)]
    history(local, sessions=1, requests=3, machine_tag="later")
    assert "sent 3 requests" in cli_run("sync", "--to", team_db).output
    assert sorted(remote(team_db, "SELECT message_id, output_tokens, cost_usd, machine,"
                                  " user_name FROM requests")) == local_rows()
    same_sums(team_db)


def test_two_machines_syncing_at_once_never_duplicate(tmp_path, team_db, project):
    runs = []
    shared = history(tmp_path / "shared", sessions=1, machine_tag="shared")[0]
    for machine in ("laptop", "buildbox"):
        config = tmp_path / machine
        history(config, sessions=4, machine_tag=machine)
        copy = config / "projects" / "-shared" / shared.name  # the same session on both
        copy.parent.mkdir(parents=True)
        copy.write_bytes(shared.read_bytes())
        env = child_env(CLAUDE_CONFIG_DIR=config, CMAT_MACHINE=machine, CMAT_USER="ana",
                        CMAT_LEDGER=tmp_path / f"{machine}.db", CMAT_SYNC_BATCH="5")
        subprocess.run([sys.executable, "-m", "cmat", "scan", "-q"], env=env, check=True)
        runs.append((env, tmp_path / f"{machine}.db"))
    syncs = [subprocess.Popen([sys.executable, "-m", "cmat", "sync", "--to", team_db, "-q"],
                              env=env) for env, _ in runs]
    assert [p.wait(timeout=120) for p in syncs] == [0, 0]
    expected = {m for _, path in runs for m, *_ in local_rows(path)}
    got = [m for (m,) in remote(team_db, "SELECT message_id FROM requests")]
    assert len(got) == len(set(got)) == len(expected) == 4 * 4 * 2 + 4 and set(got) == expected
    same_sums(team_db)


def test_a_sync_killed_anywhere_ends_with_exactly_the_local_rows(tmp_path, team_db, project):
    config = tmp_path / "claude"
    history(config, sessions=40, requests=30)
    env = child_env(CLAUDE_CONFIG_DIR=config, CMAT_MACHINE="laptop", CMAT_USER="ana",
                    CMAT_SYNC_BATCH="37")
    subprocess.run([sys.executable, "-m", "cmat", "scan", "-q"], env=env, check=True)
    rng = random.Random(7)
    for _ in range(5):
        run = subprocess.Popen([sys.executable, "-m", "cmat", "sync", "--to", team_db, "-q"],
                               env=env)
        time.sleep(rng.uniform(0.3, 1.5))
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    subprocess.run([sys.executable, "-m", "cmat", "sync", "--to", team_db, "-q"], env=env,
                   check=True, timeout=120)
    with Ledger() as ledger:
        mine = sorted(ledger.query("SELECT message_id, output_tokens, cost_usd FROM requests"))
    assert len(mine) == 1200
    assert sorted(remote(team_db, "SELECT message_id, output_tokens, cost_usd FROM requests")
                  ) == mine
    same_sums(team_db)


def test_a_merge_that_fails_keeps_the_batches_before_it_and_nothing_after(local, team_db,
                                                                         monkeypatch):
    """A batch is copied on one connection while the one before it is merged on another: a
    merge that fails stops the sync with the batches before it stored, and nothing of it or
    of the batch staged behind it; the next sync sends the rest."""
    from cmat.errors import TeamDatabaseError
    from cmat.team.schema import migrate
    from cmat.team.sync import sync

    cli_run("scan", "-q")
    with Ledger() as ledger:
        order = [m for (m,) in ledger.query("SELECT message_id FROM requests"
                                            " ORDER BY seq, rowid")]
    assert len(order) == 12
    with psycopg.connect(team_db, autocommit=True) as admin:
        migrate(admin)
        admin.execute(f"""CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.message_id = '{order[7]}' THEN RAISE EXCEPTION 'refused'; END IF;
            RETURN NEW; END $$""")
        admin.execute("CREATE TRIGGER refuse_one BEFORE INSERT ON requests FOR EACH ROW"
                      " EXECUTE FUNCTION refuse_one()")
    # Batches of 1, 2, 3, 3 and 3 rows (sync.FIRST_BATCH_SHARE): the fourth fails.
    monkeypatch.setenv("CMAT_SYNC_BATCH", "3")
    with Ledger() as ledger, pytest.raises(TeamDatabaseError, match="refused"):
        sync(ledger, team_db)
    assert sorted(remote(team_db, "SELECT message_id FROM requests")) == [
        (m,) for m in sorted(order[:6])]
    assert remote(team_db, "SELECT count(*) FROM sessions") == [(0,)]
    same_sums(team_db)
    with psycopg.connect(team_db, autocommit=True) as admin:
        admin.execute("DROP TRIGGER refuse_one ON requests")
    with Ledger() as ledger:
        sync(ledger, team_db)
    assert sorted(remote(team_db, "SELECT message_id, output_tokens, cost_usd, machine,"
                                  " user_name FROM requests")) == local_rows()
    same_sums(team_db)


def test_batches_start_small_and_double_up_to_the_batch_size(local, team_db, monkeypatch):
    """The server merges the first batch while the next ones are read and copied: a small
    first batch starts that sooner; the batches double up to CMAT_SYNC_BATCH's size."""
    from cmat.team.sync import sync

    cli_run("scan", "-q")
    monkeypatch.setenv("CMAT_SYNC_BATCH", "16")
    sent: list[int] = []
    with Ledger() as ledger:
        sync(ledger, team_db, progress=sent.append)
    assert sent == [2, 6, 12]  # batches of 2, 4 and the 6 left (16 // FIRST_BATCH_SHARE: 2)
    assert sorted(remote(team_db, "SELECT message_id, output_tokens, cost_usd, machine,"
                                  " user_name FROM requests")) == local_rows()
    same_sums(team_db)


def test_a_database_that_is_down_is_said_and_nothing_local_is_lost(local, tmp_path):
    cli_run("scan", "-q")
    before = local_rows()
    down = f"host={tmp_path / 'nowhere'} dbname=x user=postgres connect_timeout=2"
    result = cli_run("sync", "--to", down, "--no-scan", code=8)
    assert "cannot reach x on" in result.stderr and "nothing was lost" in result.stderr
    assert local_rows() == before
    assert "no team database" in cli_run("sync", "--no-scan", code=10).stderr


def test_a_password_in_the_config_is_refused(project):
    user_config("[team]\nurl = 'postgresql://ana:secret@db.example/team'\n")
    assert "team.url holds a password" in cli_run("budget", "show", code=10).stderr


def test_team_budgets_are_enforced_by_the_hooks_from_the_synced_totals(local, team_db,
                                                                         project, monkeypatch):
    user_config(f"[team]\nurl = '{team_db}'\n")
    cli_run("sync", "-q")
    assert "team-monthly = 0.01" in cli_run("budget", "set", "team-monthly", "0.01",
                                            "--team").output
    # The team's March spend is long past; this month's is what this machine adds now.
    builder = TranscriptBuilder(session_id="now-1", cwd="/w/app")
    from tests.helpers import earlier_today

    builder.now = earlier_today(60)
    builder.response(model=OPUS, output=2000)
    current = write_session(local / "projects" / "-now", builder)
    answer = budget_hook(PROMPT, project, budget_payload(current, "now-1"),
                         CLAUDE_CONFIG_DIR=str(local))
    assert answer["decision"] == "block"
    assert answer["reason"].startswith("Team monthly budget exhausted ($0.01)")
    assert "cmat budget set team-monthly" in answer["reason"] and "--team" in answer["reason"]
    status = json.loads(cli_run("budget", "status", "--json", "--no-scan", code=11).output)
    assert any(b["scope"] == "team-monthly" for b in status["budgets"])
    assert "lives in the team database: add --team" in cli_run(
        "budget", "set", "team-daily", "5", code=2).stderr
    monkeypatch.setenv("CLAUDECODE", "1")  # the agent it holds may not lift it
    cli_run("budget", "set", "team-monthly", "100", "--team", code=12)
    cli_run("budget", "unset", "team-monthly", "--team", code=12)
    cli_run("budget", "set", "team-monthly", "0.005", "--team")  # lower: allowed
    monkeypatch.delenv("CLAUDECODE")
    cli_run("budget", "unset", "team-monthly", "--team")
    assert remote(team_db, "SELECT count(*) FROM team_budgets") == [(0,)]


def test_team_budgets_spend_is_the_teams_from_local_midnight_compacted_or_not(
        tmp_path, monkeypatch, team_db, project):
    """A team budget's period starts at local midnight, here Kathmandu's (UTC+5:45): the
    spend a sync caches for the hooks is what the team's requests cost from that moment on,
    to the cent, requests a second either side of it told apart; compaction since changes
    nothing; and a start between quarter hours (no zone's midnight) is exact too."""
    from cmat.team.budgets import spent_since

    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("CMAT_NOW", "2026-03-18T12:00:00+05:45")  # a Wednesday
    builder = TranscriptBuilder(session_id="around-midnight", cwd="/w/app")
    # Each period's start is 18:15 UTC: of 28 February (month), 15 March (week), 17 March (day).
    for moment in ("02-28T18:14:59.000", "02-28T18:15:00.000", "03-15T18:14:59.500",
                   "03-15T18:15:00.000", "03-17T18:14:59.000", "03-17T18:15:00.000",
                   "03-17T18:29:59.999", "03-18T06:00:00.000"):
        builder.now = f"2026-{moment}Z"
        builder.response(model=OPUS, input=100, output=1000, write_5m=500)
    write_session(config / "projects" / "-w-app", builder)
    user_config(f'timezone = "Asia/Kathmandu"\n[team]\nurl = "{team_db}"\n')
    cli_run("sync", "-q")
    for period in ("daily", "weekly", "monthly"):
        cli_run("budget", "set", f"team-{period}", "1000", "--team")

    def costs_since(start):
        with Ledger() as ledger:
            return ledger.query("SELECT sum(cost_usd) FROM requests WHERE ts >= ?",
                                (start,))[0][0]

    def cached():
        return {period: (start, round(usd, 9)) for period, (start, usd)
                in json.loads(paths.team_cache().read_text())["spent"].items()}

    starts = {"daily": "2026-03-17T18:15:00+00:00", "weekly": "2026-03-15T18:15:00+00:00",
              "monthly": "2026-02-28T18:15:00+00:00"}
    before = cached()
    for period, start in starts.items():
        moment = datetime.fromisoformat(start).timestamp()
        assert before[period][0] == moment
        assert before[period][1] == pytest.approx(costs_since(moment), abs=1e-9), period
    assert costs_since(0) > before["monthly"][1] > before["weekly"][1] > before["daily"][1] > 0
    with psycopg.connect(team_db) as connection:
        between = datetime.fromisoformat("2026-03-17T18:14:58.750+00:00").timestamp()
        assert spent_since(connection, between) == pytest.approx(costs_since(between), abs=1e-9)
        assert spent_since(connection, between) > before["daily"][1]
    assert "Folded 4 requests" in cli_run("ledger", "compact", "--older-than", "1d",
                                          "--team").output
    cli_run("budget", "set", "team-daily", "1000", "--team")  # caches the totals again
    assert cached() == before


def test_costs_enhancement_team_counts_every_machines_sessions(local, team_db, project,
                                                                monkeypatch):
    from cmat.attribution import extract
    from cmat.tasks.queue import QueueService

    task = QueueService(project).add("shared work", enhancement="feat")["id"]
    extract(project, task, next(local.rglob("a-s1.jsonl")))
    cli_run("sync", "--to", team_db, "-q")
    mine = json.loads(cli_run("costs", "enhancement", "feat", "--json").output)
    team = json.loads(cli_run("costs", "enhancement", "feat", "--team", "--to", team_db,
                              "--json").output)
    assert team["total_usd"] == pytest.approx(mine["total_usd"]) and team["total_usd"] > 0
    assert team["tasks"][0]["sessions"] == 1


def test_costs_show_team_gives_the_local_figures_of_every_machines_sessions(local, team_db,
                                                                            project):
    from cmat.attribution import extract
    from cmat.tasks.queue import QueueService

    task = QueueService(project).add("shared work", enhancement="feat")["id"]
    extract(project, task, next(local.rglob("a-s1.jsonl")))
    cli_run("sync", "--to", team_db, "-q")
    mine = json.loads(cli_run("costs", "show", task, "--json").output)
    team = json.loads(cli_run("costs", "show", task, "--team", "--to", team_db,
                              "--json").output)
    assert team["total_usd"] == pytest.approx(mine["total_usd"]) and team["total_usd"] > 0
    assert team["tokens"] == mine["tokens"] and team["title"] == "shared work"
    (local_session,), (team_session,) = mine["sessions"], team["sessions"]
    assert team_session["transcript_path"] is None  # a path on its own machine
    del local_session["transcript_path"], team_session["transcript_path"]
    assert team_session == pytest.approx(local_session)
    # Compacted away, the requests leave their sums and the session, without its times.
    cli_run("ledger", "compact", "--older-than", "1m", "--team", "--to", team_db)
    compacted = json.loads(cli_run("costs", "show", task, "--team", "--to", team_db,
                                   "--json").output)
    assert compacted["total_usd"] == pytest.approx(mine["total_usd"])
    (session,) = compacted["sessions"]
    assert (session["started"], session["requests"]) == (None, local_session["requests"])
    row = cli_run("costs", "show", task, "--team", "--to", team_db).output.splitlines()[-3]
    assert row.split()[1:3] == ["compacted", str(session["requests"])]
    assert "--to goes with --team" in cli_run("costs", "show", task, "--to", team_db,
                                              code=2).stderr


def test_team_compaction_keeps_every_total(local, team_db):
    cli_run("sync", "--to", team_db, "-q")
    before = {args: json.loads(cli_run("report", *args, "--team", "--to", team_db,
                                       "--json").output)
              for args in (("monthly", "--by", "project"), ("daily", "--by", "agent"))}
    assert "Folded 12 requests" in cli_run("ledger", "compact", "--older-than", "1m",
                                           "--team", "--to", team_db).output
    assert remote(team_db, "SELECT count(*) FROM requests") == [(0,)]
    for args, report in before.items():
        after = json.loads(cli_run("report", *args, "--team", "--to", team_db, "--json").output)
        assert after["total"]["total_usd"] == pytest.approx(report["total"]["total_usd"])
        assert after["total"]["tokens"] == report["total"]["tokens"], args


# What INSTALLATION.md grants a member to add and read rows, what it granted before
# migration 6 (session_owners), and before migration 5 (when a member's sync wrote the rollups
# with the member's own privileges).
_MEMBER_ROWS = "GRANT SELECT, INSERT, UPDATE ON requests, sessions, sync_marks TO {role}"
MEMBER_GRANTS = (_MEMBER_ROWS, "GRANT SELECT ON daily_usage, session_usage, quarter_hour_spend,"
                               " session_owners TO {role}")
MEMBER_GRANTS_BEFORE_6 = (_MEMBER_ROWS,
                          "GRANT SELECT ON daily_usage, session_usage, quarter_hour_spend TO {role}")
MEMBER_GRANTS_BEFORE_5 = ("GRANT SELECT, INSERT, UPDATE ON requests, sessions, daily_usage,"
                          " session_usage, sync_marks TO {role}",)


def member_role(team_db, name, grants=MEMBER_GRANTS):
    """A member's login role with exactly INSTALLATION.md's grants; its conninfo."""
    import re

    from cmat.team.schema import migrate

    database = re.search(r"dbname=(\S+)", team_db).group(1)
    role = f"{name}_{database[-6:]}"
    with psycopg.connect(team_db, autocommit=True) as owner:
        migrate(owner)  # the owner creates the tables
        for statement in (
                f"CREATE ROLE {role} LOGIN", f"GRANT USAGE ON SCHEMA public TO {role}",
                *(grant.format(role=role) for grant in grants),
                f"GRANT DELETE ON requests TO {role}",
                f"GRANT SELECT, INSERT ON ledgers TO {role}",
                f"GRANT SELECT ON cmat_schema, team_budgets, compacted_requests TO {role}",
                f"GRANT TEMPORARY ON DATABASE {database} TO {role}"):
            owner.execute(statement)
    return re.sub(r"user=\S+", f"user={role}", team_db)


def test_a_member_role_with_the_documented_grants_can_sync_and_report(local, team_db):
    """INSTALLATION.md's least-privilege role, for real: the owner creates the tables, a
    member with only the documented grants syncs and reads the team report."""
    cli_run("scan", "-q")
    member = member_role(team_db, "m")
    assert "sent 12 requests" in cli_run("sync", "--to", member, "--no-scan").output
    report = json.loads(cli_run("report", "monthly", "--team", "--to", member, "--json").output)
    assert report["total"]["requests"] == 12
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        remote(member, "INSERT INTO team_budgets (scope, limit_usd) VALUES ('x', 1)")


def test_a_team_report_the_server_refuses_is_said_not_a_crash(local, team_db):
    """A member whose grants lack a rollup (the owner revoked it) is told the server's reason,
    with the team database's exit code."""
    cli_run("scan", "-q")
    member = member_role(team_db, "m")
    cli_run("sync", "--to", member, "-q", "--no-scan")
    role = re.search(r"user=(\S+)", member).group(1)
    with psycopg.connect(team_db, autocommit=True) as owner:
        owner.execute(f"REVOKE SELECT ON daily_usage FROM {role}")
    result = cli_run("report", "monthly", "--team", "--to", member, code=8)
    assert "the team report stopped: permission denied for table daily_usage" in result.stderr


@pytest.mark.parametrize("version, grants", [(4, MEMBER_GRANTS_BEFORE_5),
                                             (5, MEMBER_GRANTS_BEFORE_6)])
def test_a_member_granted_before_an_upgrade_syncs_after_the_owner_upgrades(
        local, team_db, project, monkeypatch, version, grants):
    """A member with the grants INSTALLATION.md gave at an earlier schema goes on syncing
    requests and sessions after the owner's upgrade: from migration 5 the rollups are written
    by their trigger as the tables' owner (the spend is counted, and the member may no longer
    write a rollup directly); from migration 6 a session's merge reads session_owners."""
    from cmat.attribution import extract
    from cmat.tasks.queue import QueueService
    from cmat.team import schema

    monkeypatch.setattr(schema, "SCHEMA_VERSION", version)  # as that release wrote it
    member = member_role(team_db, "old", grants=grants)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    with psycopg.connect(team_db, autocommit=True) as owner:
        assert schema.migrate(owner) == version
    assert remote(team_db, "SELECT to_regclass('requests_ts') IS NULL") == [(True,)]
    task = QueueService(project).add("upgraded")["id"]
    extract(project, task, next(local.rglob("a-s1.jsonl")))
    cli_run("scan", "-q")
    assert "sent 12 requests" in cli_run("sync", "--to", member, "--no-scan").output
    assert remote(team_db, "SELECT task_id FROM sessions") == [(task,)]
    same_sums(team_db)
    _refused(member, "UPDATE daily_usage SET cost_usd = 0")  # the triggers write the sums


def _refused(url, *statements):
    """Run `statements` in one session of `url`; assert the last is refused for want of a
    privilege (by a grant or by cmat's triggers). The failed transaction is rolled back."""
    with psycopg.connect(url) as session:
        for statement in statements[:-1]:
            session.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            session.execute(statements[-1])


# A member's session, fuzzed: first what it may set or shadow, then what it may write. {L}
# is a ledger (the member's own, 4242, or the colleague's), {W} which rows a write aims at.
MEMBER_SETTINGS = (
    "SET LOCAL cmat.compacting = 'on'",
    "SET LOCAL search_path = pg_temp, public",
    "CREATE TEMP TABLE ledgers AS SELECT ledger_id, session_user AS owner FROM public.ledgers",
    "CREATE TEMP TABLE compacted_requests AS SELECT message_id FROM public.requests",
    *(f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL)"
      for table in ("daily_usage", "session_usage", "quarter_hour_spend")),
    "CREATE TEMP TABLE session_owners (LIKE public.session_owners INCLUDING ALL);"
    " INSERT INTO session_owners SELECT DISTINCT session_id, 4242 FROM public.requests")
MEMBER_WRITES = (
    "UPDATE requests SET cost_usd = {value} WHERE {W}",
    "UPDATE requests SET ts = ts + 86400.0 * {value} WHERE {W}",
    "UPDATE requests SET ledger_id = {L} WHERE {W}",
    "DELETE FROM requests WHERE {W}",
    "INSERT INTO requests ({columns}, ledger_id) SELECT {forged}, {L} FROM requests WHERE {W}",
    "INSERT INTO compacted_requests SELECT message_id FROM requests WHERE {W}",
    "UPDATE sessions SET task_id = 'elsewhere', ledger_id = {L} WHERE {W}",
    "DELETE FROM sessions WHERE {W}",
    "INSERT INTO sessions (session_id, task_id, ledger_id) SELECT 'mine-' || session_id,"
    " 'elsewhere', {L} FROM sessions WHERE {W}",
    "INSERT INTO sessions (session_id, task_id, ledger_id) SELECT DISTINCT session_id,"
    " 'elsewhere', {L} FROM requests WHERE {W} ON CONFLICT (session_id) DO UPDATE"
    " SET task_id = 'elsewhere', ledger_id = {L}",
    "INSERT INTO session_owners SELECT DISTINCT session_id, {L} FROM requests WHERE {W}"
    " ON CONFLICT (session_id) DO UPDATE SET ledger_id = {L}",
    "DELETE FROM session_owners",
    "UPDATE sync_marks SET seq = seq + 1000000, sessions_seq = 0 WHERE {W}",
    "INSERT INTO sync_marks (ledger_id, machine, user_name, seq) VALUES ({L}, 'm', 'u', 1)"
    " ON CONFLICT (ledger_id) DO UPDATE SET seq = 1000000000000",
    "UPDATE ledgers SET owner = session_user WHERE {W}",
    "INSERT INTO ledgers (ledger_id, owner) VALUES ({L} + 1, session_user)",
    *(f"UPDATE {table} SET cost_usd = 0" for table in ("daily_usage", "session_usage",
                                                       "quarter_hour_spend")),
    "INSERT INTO quarter_hour_spend VALUES (0, -1000000)")


def test_no_member_session_changes_a_colleagues_rows_or_unbalances_the_sums(local, team_db,
                                                                           project):
    """Fuzz, the team member of docs/security.md: any sequence of the settings, shadows and
    writes a member's grants let a session try leaves every row and mark of a colleague's
    ledger as it was, the colleague's sessions theirs (session_owners), and every sum equal
    to the requests (whatever the member did to their own rows). Each example runs in one
    transaction, rolled back after the checks."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from cmat.attribution import extract
    from cmat.ledger.schema import REQUEST_COLUMNS
    from cmat.tasks.queue import QueueService

    task = QueueService(project).add("their work")["id"]
    extract(project, task, next(local.rglob("a-s1.jsonl")))  # a session row to aim at
    cli_run("sync", "--to", team_db, "-q")  # the colleague's (the owner's) ledger
    colleague = remote(team_db, "SELECT ledger_id FROM ledgers")[0][0]
    member = member_role(team_db, "fuzz")
    columns = ", ".join(REQUEST_COLUMNS)
    forged = ", ".join("'mine-' || message_id" if c == "message_id" else c
                       for c in REQUEST_COLUMNS)
    with psycopg.connect(member) as session:  # the member's own ledger, with rows of its own
        session.execute("INSERT INTO ledgers (ledger_id) VALUES (4242)")
        session.execute(f"INSERT INTO requests ({columns}, ledger_id)"
                        f" SELECT {forged}, 4242 FROM requests WHERE ledger_id = {colleague}")
    theirs = {table: f"SELECT * FROM public.{table} WHERE ledger_id = {colleague} ORDER BY 1"
              for table in ("requests", "sessions", "sync_marks", "session_owners")}
    theirs["ledgers"] = f"SELECT ledger_id, owner FROM public.ledgers WHERE ledger_id = {colleague}"
    before = {table: remote(team_db, sql) for table, sql in theirs.items()}
    assert all(before.values())
    aims = ("ledger_id = 4242", f"ledger_id = {colleague}", "true")
    write = st.builds(lambda template, aim, ledger, value: template.format(
        W=aim, L=ledger, value=value, columns=columns, forged=forged),
        st.sampled_from(MEMBER_WRITES), st.sampled_from(aims),
        st.sampled_from((4242, colleague)), st.sampled_from((0, 1, 99999)))

    @settings(max_examples=60,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.sampled_from(MEMBER_SETTINGS), max_size=4, unique=True),
           st.lists(write, min_size=1, max_size=6))
    def member_session(shadows, writes):
        with psycopg.connect(member) as session, session.transaction(force_rollback=True):
            for statement in (*shadows, *writes):
                try:
                    with session.transaction():  # a savepoint: a refusal undoes one statement
                        session.execute(statement)
                except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UniqueViolation,
                        psycopg.errors.CheckViolation, psycopg.errors.NotNullViolation):
                    pass
            session.execute("RESET search_path")
            assert {table: session.execute(sql).fetchall()
                    for table, sql in theirs.items()} == before
            same_sums(session)

    member_session()


def test_a_member_who_upgrades_before_the_owner_is_told_who_must_sync_first(local, team_db):
    """A migration changes tables, which only their owner may: a member's sync says so and
    names the owner, rather than failing on a bare permission error."""
    from cmat.team.schema import SCHEMA_VERSION

    cli_run("scan", "-q")
    member = member_role(team_db, "late")
    owner = remote(team_db, "SELECT current_user")[0][0]
    with psycopg.connect(team_db, autocommit=True) as admin:  # as if the tables were older
        admin.execute("UPDATE cmat_schema SET version = %s", (SCHEMA_VERSION - 1,))
    result = cli_run("sync", "--to", member, "--no-scan", code=8)
    assert (f"tables are at schema {SCHEMA_VERSION - 1} and this cmat needs {SCHEMA_VERSION}"
            in result.stderr)
    assert f"run 'cmat sync' once as {owner} with this cmat" in result.stderr
    assert remote(team_db, "SELECT count(*) FROM requests") == [(0,)]
    with psycopg.connect(team_db, autocommit=True) as admin:
        admin.execute("UPDATE cmat_schema SET version = %s", (SCHEMA_VERSION,))
    assert "sent 12 requests" in cli_run("sync", "--to", member, "--no-scan").output


# --- nobody's labels are trusted (docs/security.md) -------------------------------------------


def test_a_member_posing_as_another_can_never_replace_their_rows(local, team_db, tmp_path):
    ana, eve = member_role(team_db, "ana"), member_role(team_db, "eve")
    cli_run("scan", "-q")
    cli_run("sync", "--to", ana, "-q", "--no-scan")
    before = sorted(remote(team_db, "SELECT message_id, cost_usd, machine, user_name"
                                    " FROM requests"))
    # Eve has a copy of Ana's transcripts, labels herself Ana on Ana's laptop, and makes
    # every request free in her own ledger.
    env = child_env(CLAUDE_CONFIG_DIR=local, CMAT_MACHINE="laptop", CMAT_USER="ana",
                    CMAT_LEDGER=tmp_path / "eve.db")
    subprocess.run([sys.executable, "-m", "cmat", "scan", "-q"], env=env, check=True)
    with Ledger(tmp_path / "eve.db") as forged, forged.transaction():
        forged.db.execute("UPDATE requests SET cost_usd = 0, seq = seq + 1000")
        forged.bump_version()
    subprocess.run([sys.executable, "-m", "cmat", "sync", "--to", eve, "-q", "--no-scan"],
                   env=env, check=True)
    assert sorted(remote(team_db, "SELECT message_id, cost_usd, machine, user_name"
                                  " FROM requests")) == before
    same_sums(team_db)
    # Nor by hand, whatever client she uses: the database itself refuses.
    for statement in ("UPDATE requests SET cost_usd = 0",
                      "DELETE FROM requests",
                      "INSERT INTO sessions (session_id, task_id) VALUES ('a-s0', 'hers')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            remote(eve, statement)
    # A copy of Ana's ledger file is Ana's ledger: Eve's role cannot sync it.
    import shutil

    from cmat import paths

    shutil.copy(paths.ledger_file(), tmp_path / "copied.db")
    copied = child_env(CMAT_LEDGER=tmp_path / "copied.db")
    result = subprocess.run([sys.executable, "-m", "cmat", "sync", "--to", eve, "--no-scan"],
                            env=copied, capture_output=True)
    assert result.returncode == 8 and b"registered to the database role" in result.stderr


@pytest.mark.parametrize("made_at", [6, 5])
def test_a_member_cannot_label_a_colleagues_session_first(local, team_db, project,
                                                         monkeypatch, made_at):
    """A session's attribution is the one sent by its owner, the ledger that sent its first
    request. Eve reads the id of a session Ana is still in among Ana's synced requests and
    labels it as hers first; Ana's label, sent at the session's end, replaces Eve's, which
    neither the sync's own merge nor a write by hand puts back. A database made before
    migration 6 learns each session's owner from its requests, Eve's label already there."""
    from cmat.attribution import extract
    from cmat.tasks.queue import QueueService
    from cmat.team import schema

    monkeypatch.setattr(schema, "SCHEMA_VERSION", made_at)
    grants = MEMBER_GRANTS if made_at == 6 else MEMBER_GRANTS_BEFORE_6
    ana, eve = member_role(team_db, "ana", grants), member_role(team_db, "eve", grants)
    cli_run("scan", "-q")
    cli_run("sync", "--to", ana, "-q", "--no-scan")  # mid-session: requests, no label yet
    with psycopg.connect(eve) as session:
        session.execute("INSERT INTO ledgers (ledger_id) VALUES (4242)")
        session.execute("INSERT INTO sessions (session_id, task_id, ledger_id)"
                        " VALUES ('a-s0', 'hers', 4242)")
    monkeypatch.setattr(schema, "SCHEMA_VERSION", len(schema.MIGRATIONS))
    with psycopg.connect(team_db, autocommit=True) as owner:
        schema.migrate(owner)
    theirs = remote(team_db, "SELECT ledger_id FROM ledgers WHERE ledger_id <> 4242")[0][0]
    assert remote(team_db, "SELECT session_id, ledger_id FROM session_owners ORDER BY 1") == [
        (f"a-s{index}", theirs) for index in range(3)]
    task = QueueService(project).add("Ana's work")["id"]
    extract(project, task, next(local.rglob("a-s0.jsonl")))
    cli_run("sync", "--to", ana, "-q", "--no-scan")
    labels = "SELECT session_id, task_id, ledger_id FROM sessions"
    assert remote(team_db, labels) == [("a-s0", task, theirs)]
    with psycopg.connect(eve) as session:  # Eve's next sync sends her label again
        session.execute("CREATE TEMP TABLE staging_sessions (LIKE sessions)")
        session.execute("INSERT INTO staging_sessions (session_id, task_id, machine, user_name)"
                        " VALUES ('a-s0', 'hers', 'm', 'eve')")
        session.execute(schema.MERGE_SESSIONS, {"ledger": 4242})
    _refused(eve, "UPDATE sessions SET task_id = 'hers', ledger_id = 4242")
    assert remote(team_db, labels) == [("a-s0", task, theirs)]
    team = json.loads(cli_run("report", "monthly", "--by", "task", "--team", "--to", ana,
                              "--json").output)
    assert {row["task"]: row["requests"] for row in team["rows"]} == {task: 4, None: 8}


@pytest.mark.parametrize("batch", ["50000", "2"])
def test_values_no_request_can_have_are_not_sent_and_never_stop_a_sync(local, team_db,
                                                                        monkeypatch, batch):
    """The database refuses the batch that holds them (with "2", batches of one and two rows
    on both connections): the rows it accepts are sent all the same."""
    monkeypatch.setenv("CMAT_SYNC_BATCH", batch)
    cli_run("scan", "-q")
    with Ledger() as ledger, ledger.transaction():
        ids = [m for (m,) in ledger.query("SELECT message_id FROM requests ORDER BY ts")]
        ledger.db.execute("UPDATE requests SET cost_usd = 1e308 WHERE message_id = ?", (ids[0],))
        ledger.db.execute("UPDATE requests SET cost_usd = -5 WHERE message_id = ?", (ids[1],))
        ledger.db.execute("UPDATE requests SET output_tokens = 'many' WHERE message_id = ?",
                          (ids[2],))
    if batch == "2":  # and said so
        said = cli_run("sync", "--to", team_db, "--no-scan").output
        assert re.search(r"sent 9 requests, .*; 3 requests not sent: values no request", said)
    else:
        first = json.loads(cli_run("sync", "--to", team_db, "--json", "-q", "--no-scan").output)
        assert (first["requests"], first["rejected"]) == (9, 3)
    assert remote(team_db, "SELECT count(*) FROM requests WHERE message_id = ANY(%s)",
                  (ids[:3],)) == [(0,)]
    with Ledger() as ledger, ledger.transaction():  # the next change still goes through
        ledger.db.execute(f"UPDATE requests SET cost_usd = 1.5, seq = {CURRENT_SEQ}"
                          " WHERE message_id = ?", (ids[0],))
        ledger.bump_version()
    again = json.loads(cli_run("sync", "--to", team_db, "--json", "-q", "--no-scan").output)
    assert (again["requests"], again["rejected"]) == (1, 0)
    assert remote(team_db, "SELECT cost_usd FROM requests WHERE message_id = %s",
                  (ids[0],)) == [(1.5,)]
    with pytest.raises(psycopg.errors.CheckViolation):
        remote(team_db, "UPDATE requests SET cost_usd = 1e308 WHERE message_id = %s",
               (ids[0],))


def test_a_refused_batch_is_checked_row_by_row_as_the_team_database_checks_it(team_db):
    """Fuzz: schema.accepted, what a sync keeps of a batch the database refused, answers for
    every row what the database answers when the row is copied into a staging table: every
    column given each of values of its type and of others, NULL, a NUL in a text, each
    range's edges and just past them; then rows with several such values. A row it accepts
    that the database refuses would stop every later sync."""
    import math

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from cmat.ledger.schema import REQUEST_COLUMNS
    from cmat.team.schema import accepted, migrate
    from cmat.team.sync import _copy, _prepare
    from cmat.usage import EARLIEST_TS, LATEST_TS, MAX_REQUEST_TOKENS, MAX_REQUEST_USD

    edges = [near for edge in (0, EARLIEST_TS, LATEST_TS, MAX_REQUEST_USD, MAX_REQUEST_TOKENS)
             for near in (edge, edge - 1, edge + 1, float(edge), math.nextafter(edge, -math.inf),
                          math.nextafter(edge, math.inf))]
    odd = [None, "", "x", "12", "\0", "a\0b", b"x", True, 1.5, -0.0, math.inf, -math.inf,
           math.nan, -2**63, 2**63 - 1]
    valid = {column: "x" for column in REQUEST_COLUMNS}
    valid.update({column: 7 for column in REQUEST_COLUMNS if column.endswith("_tokens")},
                 ts=1.75e9, is_sidechain=0, web_search_requests=1, cost_usd=0.25)
    connection = psycopg.connect(team_db, autocommit=True)
    migrate(connection)
    _prepare(connection)

    def agree(changes):
        row = tuple(changes.get(column, valid[column]) for column in REQUEST_COLUMNS)
        connection.execute("BEGIN")
        try:
            _copy(connection, [row])
            taken = True
        except (TypeError, psycopg.DataError, psycopg.IntegrityError):
            taken = False
        finally:
            connection.execute("ROLLBACK")
        assert accepted(row) == taken, changes

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.dictionaries(st.sampled_from(REQUEST_COLUMNS),
                           st.sampled_from(edges + odd) | st.text(max_size=3) | st.floats()
                           | st.integers(-2**63, 2**63 - 1), min_size=2, max_size=4))
    def several(changes):
        agree(changes)

    with connection:
        agree({})
        for column in REQUEST_COLUMNS:
            for value in edges + odd:
                agree({column: value})
        several()


def test_an_interrupted_sync_loses_no_sessions_attribution(local, team_db, project):
    from cmat.attribution import extract
    from cmat.tasks.queue import QueueService
    from cmat.team.sync import sync

    task = QueueService(project).add("shared work", enhancement="feat")["id"]
    for path in sorted(local.rglob("a-s*.jsonl")):
        extract(project, task, path)
    cli_run("scan", "-q")

    def interrupt(sent):
        raise KeyboardInterrupt  # killed after the first batch of requests committed

    with Ledger() as ledger, pytest.raises(KeyboardInterrupt):
        import os as _os

        _os.environ["CMAT_SYNC_BATCH"] = "5"
        try:
            sync(ledger, team_db, progress=interrupt)
        finally:
            del _os.environ["CMAT_SYNC_BATCH"]
    assert remote(team_db, "SELECT count(*) FROM sessions") == [(0,)]
    cli_run("sync", "--to", team_db, "-q", "--no-scan")
    assert remote(team_db, "SELECT count(*) FROM sessions WHERE task_id = %s", (task,)) == [(3,)]
    mine = json.loads(cli_run("costs", "enhancement", "feat", "--json").output)
    team = json.loads(cli_run("costs", "enhancement", "feat", "--team", "--to", team_db,
                              "--json").output)
    assert team["total_usd"] == pytest.approx(mine["total_usd"]) and team["total_usd"] > 0


def test_a_request_sent_again_after_team_compaction_is_not_counted_twice(local, team_db):
    cli_run("scan", "-q")
    cli_run("sync", "--to", team_db, "-q", "--no-scan")
    total = remote(team_db, "SELECT round(sum(cost_usd)::numeric, 6) FROM daily_usage")
    cli_run("ledger", "compact", "--older-than", "1m", "--team", "--to", team_db)
    # A new catalog: every request is priced by it locally, changes, and is sent again.
    cli_run("models", "add", "claude-nova-9", "--input", "1", "--output", "2")
    repriced = json.loads(cli_run("ledger", "reprice", "--json").output)
    assert repriced["changed"] == repriced["repriced"] > 0
    cli_run("sync", "--to", team_db, "-q", "--no-scan")
    assert remote(team_db, "SELECT round(sum(cost_usd)::numeric, 6) FROM daily_usage") == total
    assert remote(team_db, "SELECT count(*) FROM requests") == [(0,)]


def test_session_end_starts_a_detached_sync_when_auto_sync_is_on(local, team_db, project):
    from tests.helpers import REPO

    user_config(f"[team]\nurl = '{team_db}'\nauto_sync = true\n")
    path = next(local.rglob("a-s2.jsonl"))
    payload = {"session_id": "a-s2", "transcript_path": str(path), "cwd": "/w/app",
               "hook_event_name": "SessionEnd", "reason": "other"}
    started = time.monotonic()
    result = subprocess.run([str(REPO / "hooks" / "on-session-end-cost.sh")],
                            input=json.dumps(payload).encode(), capture_output=True, timeout=60,
                            env=child_env(CLAUDE_PROJECT_DIR=project,
                                          CMAT_PYTHON=sys.executable))
    assert result.returncode == 0 and time.monotonic() - started < 10
    deadline = time.monotonic() + 30
    count = sessions = None
    while time.monotonic() < deadline:  # the requests land first, the sessions just after
        if remote(team_db, "SELECT to_regclass('sessions')")[0][0]:
            count = remote(team_db, "SELECT count(*) FROM requests WHERE session_id = 'a-s2'")
            sessions = remote(team_db, "SELECT machine, user_name FROM sessions")
            if count == [(4,)] and sessions:
                break
        time.sleep(0.2)
    assert count == [(4,)]
    assert sessions == [("laptop", "ana")]
