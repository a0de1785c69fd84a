"""Compaction keeps every total; exports write every request; retention runs on its own."""

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from cmat import clock
from cmat.ledger import Ledger
from tests.helpers import child_env, cli_run, noon_days_ago, now_iso, rounded, user_config
from tests.transcript_factory import TranscriptBuilder, write_session

SONNET, OPUS = "claude-sonnet-4-5-20250929", "claude-opus-4-6"


@pytest.fixture
def old_and_new(tmp_path, monkeypatch, project):
    """Requests of 15 and 14 months ago (on a task) and of last week."""
    from cmat.attribution import extract
    from cmat.tasks.queue import QueueService

    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("TZ", "UTC")
    task = QueueService(project).add("old work", enhancement="legacy", agent="architect")["id"]
    for name, days_ago in (("old-1", 450), ("old-2", 420), ("new-1", 7)):
        builder = TranscriptBuilder(session_id=name, cwd="/w/app")
        noon = noon_days_ago(days_ago)  # every turn on that one day, whatever the hour now
        for turn in range(4):
            builder.now = now_iso(noon + turn * 600 - clock.now())
            builder.response(model=(SONNET, OPUS)[turn % 2], input=100, output=700 + turn,
                             write_5m=500, read=1000 * turn)
        path = write_session(config / "projects" / f"-{name}", builder)
        if name == "old-1":
            extract(project, task, path)
    cli_run("scan", "-q")
    return task


def reports():
    return {args: json.loads(cli_run("report", *args, "--json", "--no-scan").output)
            for args in (("monthly",), ("daily", "--by", "model"),
                         ("monthly", "--by", "task,agent"), ("monthly", "--by", "user,machine"))}


def test_compaction_keeps_every_report_total_and_budget(old_and_new, project):
    task = old_and_new
    before = reports()
    spent = json.loads(cli_run("costs", "show", task, "--json").output)["total_usd"]
    user_config("[budgets]\ntotal = 1000\n")
    lifetime = json.loads(cli_run("budget", "status", "--json", "--no-scan").output)
    result = json.loads(cli_run("ledger", "compact", "--older-than", "13m", "--json").output)
    assert result["requests"] == 8 and result["rollups"] == 4  # 2 days x 2 models
    with Ledger() as ledger:
        assert ledger.query("SELECT count(*) FROM requests") == [(4,)]
    after = reports()
    for args in before:
        for mine, theirs in zip(rounded(after[args]["rows"]), rounded(before[args]["rows"])):
            assert mine == theirs, (args, {k: (mine[k], theirs.get(k)) for k in mine
                                           if mine[k] != theirs.get(k)})
        assert len(after[args]["rows"]) == len(before[args]["rows"])
        assert rounded(after[args]["total"]) == rounded(before[args]["total"]), args
    by_task = {r["task"]: r["total_usd"] for r in after[("monthly", "--by", "task,agent")]["rows"]}
    assert by_task[task] == pytest.approx(spent)
    from cmat.ledger import Ledger as Opened

    with Opened() as ledger:
        assert ledger.task_spend(task) == pytest.approx(spent)
    now = json.loads(cli_run("budget", "status", "--json", "--no-scan").output)
    assert now["budgets"][0]["spent"] == pytest.approx(lifetime["budgets"][0]["spent"])


def test_only_what_was_synced_is_folded_when_a_team_database_is_set(old_and_new, project):
    user_config("[team]\nurl = 'host=/nowhere dbname=team'\n")
    result = json.loads(cli_run("ledger", "compact", "--older-than", "13m", "--json").output)
    assert result["requests"] == 0  # nothing was ever synced: nothing may go


def test_retention_in_the_config_compacts_on_a_scan_once_a_day(old_and_new, project):
    user_config("[retention]\nolder_than = '13m'\n")
    assert "retention: folded 8 old requests" in cli_run("report", "monthly").stderr
    assert "retention" not in cli_run("report", "monthly").stderr  # once a day
    user_config("[retention]\nolder_than = 'soon'\n")
    assert "retention.older_than 'soon' is not an age" in cli_run("report", "monthly",
                                                                  code=2).stderr


def test_a_report_loads_the_config_s_reader_and_retention_only_when_there_is_a_config(
        old_and_new, project):
    loaded = ("import sys\nfrom cmat.entry import main\nsys.argv = ['cmat', 'report', 'monthly']\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\n"
              "print(sorted(name for name in ('cmat.budgets.config', 'cmat.retention')"
              " if name in sys.modules), file=sys.stderr)")

    def modules() -> str:
        return subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True,
                              env=child_env(CLAUDE_PROJECT_DIR=project)).stderr.splitlines()[-1]

    assert modules() == "[]"
    user_config("[retention]\nolder_than = '13m'\n")
    assert modules() == "['cmat.budgets.config', 'cmat.retention']"


def test_export_writes_every_request_with_its_task(old_and_new, tmp_path):
    task = old_and_new
    out = tmp_path / "archive.csv"
    result = cli_run("ledger", "export", "--format", "csv", "--output", out)
    assert "Wrote 12 requests" in result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 12 and {r["task_id"] for r in rows} == {task, ""}
    assert all(r["time"] == datetime.fromtimestamp(float(r["ts"]), UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z") for r in rows)
    lines = cli_run("ledger", "export", "--format", "jsonl").output.splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["machine"]
    since = now_iso(-30 * 86400)[:10]
    assert len(cli_run("ledger", "export", "--since", since, "--format", "jsonl"
                       ).output.splitlines()) == 4


def test_export_cells_that_look_like_formulas_stay_text(tmp_path, project):
    from cmat.tasks.queue import QueueService

    task = QueueService(project).add("t", enhancement='=HYPERLINK("http://x","y")')["id"]
    builder = TranscriptBuilder(session_id="s", cwd="+cmd|' /C calc'!A0")
    builder.response(output=10)
    from cmat.attribution import extract

    extract(project, task, write_session(tmp_path / "p", builder))
    out = tmp_path / "archive.csv"
    cli_run("ledger", "export", "--format", "csv", "--output", out)
    (row,) = list(csv.DictReader(io.StringIO(out.read_text())))
    assert row["enhancement"] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert row["project"].startswith("'+cmd")
    assert float(row["cost_usd"]) > 0  # numbers untouched
    # A report's CSV holds the same names.
    (row,) = list(csv.DictReader(io.StringIO(cli_run(
        "report", "daily", "--csv", "--by", "enhancement,project", "--no-scan").output)))
    assert row["enhancement"] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert row["project"].startswith("'+cmd") and float(row["total_usd"]) > 0


@pytest.mark.parametrize("target", ["/dev/null", "fifo", "folder", "link-to-device"])
def test_outputs_the_user_names_are_files_never_devices(tmp_path, project, target):
    import os
    import stat

    if target == "fifo":
        path = tmp_path / "f"
        os.mkfifo(path)
    elif target == "folder":
        path = tmp_path
    elif target == "link-to-device":
        path = tmp_path / "l"
        os.symlink("/dev/null", path)
    else:
        path = "/dev/null"
    before = os.stat(path).st_mode
    result = cli_run("ledger", "export", "--output", path, code=2)
    assert any(word in result.stderr for word in ("not a regular file", "is a directory"))
    cli_run("report", "daily", "--no-scan", "--html", path, code=2)
    assert os.stat(path).st_mode == before and not stat.S_ISREG(os.stat("/dev/null").st_mode)


def _counters(project):
    """Every cmat_cost_usd_total series of the metrics endpoint: labels -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    from cmat.metrics import exposition

    return {tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(exposition(project, scan=False).decode())
            for sample in family.samples if sample.name == "cmat_cost_usd_total"}


def test_every_view_of_an_old_task_counts_its_compacted_requests(old_and_new, project):
    from cmat.tasks.queue import QueueService

    task = old_and_new
    shown = json.loads(cli_run("costs", "show", task, "--json").output)
    enhancement = json.loads(cli_run("costs", "enhancement", "legacy", "--json").output)
    cli_run("costs", "sync")
    written = QueueService(project).get(task)["metadata"]["cost_usd"]
    counters = _counters(project)
    listed = cli_run("queue", "list").output
    cli_run("ledger", "compact", "--older-than", "13m")
    after = json.loads(cli_run("costs", "show", task, "--json").output)
    assert after["total_usd"] == pytest.approx(shown["total_usd"]) and after["total_usd"] > 0.05
    session_row = cli_run("costs", "show", task).output.splitlines()[-3]
    assert session_row.split()[1:] == ["compacted", "-", "-"]  # its requests: in the totals
    assert after["tokens"] == shown["tokens"] and after["requests"] == shown["requests"]
    assert json.loads(cli_run("costs", "enhancement", "legacy", "--json").output)[
        "total_usd"] == pytest.approx(enhancement["total_usd"])
    cli_run("costs", "sync")
    assert QueueService(project).get(task)["metadata"]["cost_usd"] == written != "0.0000"
    assert cli_run("queue", "list").output == listed
    later = _counters(project)
    assert later.keys() == counters.keys()  # no series moved or vanished: no counter reset
    assert all(later[k] == pytest.approx(v) for k, v in counters.items())


def test_a_transcript_read_again_after_compaction_is_not_counted_twice(old_and_new, tmp_path):
    before = reports()[("monthly",)]["total"]
    cli_run("ledger", "compact", "--older-than", "13m")
    for path in (tmp_path / "claude" / "projects").rglob("old-*.jsonl"):
        path.write_bytes(path.read_bytes().replace(b'"type"', b'"type" ', 1))  # rewritten
    cli_run("scan", "-q")
    assert rounded(reports()[("monthly",)]["total"]) == rounded(before)
    result = json.loads(cli_run("ledger", "rebuild", "--json").output)
    assert result["salvaged_requests"] == 0  # every request still has its transcript
    assert rounded(reports()[("monthly",)]["total"]) == rounded(before)
    with Ledger() as ledger:
        assert ledger.query("SELECT count(*) FROM requests") == [(4,)]
        assert ledger.query("SELECT count(*) FROM request_rollups") == [(4,)]
