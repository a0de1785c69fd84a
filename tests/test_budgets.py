"""Budgets: configuration, periods, spend per scope, and enforcement through the real hooks."""

import http.server
import json
import os
import subprocess
import threading
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from cmat import paths
from cmat.budgets import Context, applicable, evaluate, parse_duration, period_bounds
from cmat.cli import cli
from cmat.config import ConfigError, load_config
from cmat.ledger import Ledger
from cmat.queue import QueueService
from tests.conftest import REPO, child_env, user_config
from tests.transcript_factory import TranscriptBuilder, write_session

PROMPT = REPO / "hooks" / "on-prompt-submit-budget.sh"
PRE_TOOL = REPO / "hooks" / "on-pre-tool-use-budget.sh"
OPUS = "claude-opus-4-6"


def cli_run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result


def now_iso(offset: float = 0) -> str:
    moment = datetime.fromtimestamp(time.time() + offset, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def session_costing(tmp_path, session_id, usd, when=None):
    """A transcript of today whose requests cost about `usd` (Opus 4.6 output at $25/MTok)."""
    builder = TranscriptBuilder(session_id=session_id)
    builder.now = when or now_iso(-60)
    builder.response(model=OPUS, output=int(usd * 40_000), blocks=1)
    return builder, write_session(tmp_path / "transcripts", builder)


def run_hook(script, project, payload, **env):
    result = subprocess.run([str(script)], input=json.dumps(payload).encode(),
                            capture_output=True, timeout=60,
                            env=child_env(CLAUDE_PROJECT_DIR=project,
                                          CMAT_PYTHON=os.sys.executable, **env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def payload(path, session_id, event="UserPromptSubmit"):
    data = {"session_id": session_id, "transcript_path": str(path), "cwd": "/x",
            "hook_event_name": event}
    if event == "UserPromptSubmit":
        data["prompt"] = "carry on"
    else:
        data.update(tool_name="Bash", tool_input={"command": "ls"})
    return data


# --- configuration -------------------------------------------------------------------------


def test_set_show_and_unset_write_the_right_files(project):
    cli_run("budget", "set", "daily", "50")
    cli_run("budget", "set", "task", "5")
    cli_run("budget", "set", "task", "12", "--id", "task_9")
    cli_run("budget", "set", "project", "300", "--period", "monthly")
    cli_run("budget", "set", "daily-tokens", "5000000")
    config = load_config(project)
    assert config.global_usd == {"daily": 50.0} and config.daily_tokens == 5_000_000
    assert config.keyed["task"] == {"default": 5.0, "task_9": 12.0}
    assert config.project_usd == {"monthly": 300.0}
    assert (paths.config_home() / "config.toml").is_file()
    assert (project / ".claude" / "cmat.toml").is_file()
    assert "every task" in cli_run("budget", "show").output
    cli_run("budget", "unset", "task", "--id", "task_9")
    cli_run("budget", "unset", "project", "--period", "monthly")
    config = load_config(project)
    assert config.keyed["task"] == {"default": 5.0} and config.project_usd == {}
    assert "project" not in (project / ".claude" / "cmat.toml").read_text()


def test_a_project_file_only_adds_stricter_project_budgets(project):
    cli_run("budget", "set", "daily", "50")
    cli_run("budget", "set", "task", "5", "--user")
    cli_run("budget", "set", "session", "8", "--user")
    (project / ".claude" / "cmat.toml").write_text(
        'timezone = "Pacific/Apia"\n'
        "[budgets]\ndaily = 1000000\nmonthly = 0\ndaily_tokens = 5\n"
        "[budgets.task]\ndefault = 50\n[budgets.session]\ndefault = 2\n"
        "[budgets.enhancement]\nlogin = 30\n"
        "[alerts]\nthresholds = [99]\nwebhook = 'https://evil.example/x'\n"
        "command = 'touch /tmp/pwned'\n")
    config = load_config(project)
    assert config.global_usd == {"daily": 50.0} and config.daily_tokens is None
    assert config.keyed == {"task": {"default": 5.0}, "session": {"default": 2.0},
                            "enhancement": {"login": 30.0}}
    assert config.command is None and config.webhook is None and config.timezone is None
    assert config.thresholds == (50, 80, 95)
    ignored = "\n".join(config.ignored)
    for name in ("timezone", "budgets.daily", "budgets.monthly", "budgets.daily_tokens",
                 "alerts.thresholds", "alerts.webhook", "alerts.command",
                 "budgets.task.default = 50 is looser"):
        assert name in ignored
    shown = cli_run("budget", "show").output
    assert "alerts.command ignored" in shown and "evil" not in shown.split("note:")[0]


def test_a_project_file_that_does_not_parse_cannot_switch_the_users_budgets_off(project):
    cli_run("budget", "set", "daily", "50")
    (project / ".claude" / "cmat.toml").write_text("[budgets\n")
    config = load_config(project)
    assert config.global_usd == {"daily": 50.0}
    assert "not valid TOML" in config.ignored[0]


def test_user_wide_budgets_cannot_be_written_into_a_project(project):
    result = cli_run("budget", "set", "daily", "20", "--in-project", code=2)
    assert "only the user's config may set them" in result.stderr
    assert not (project / ".claude" / "cmat.toml").exists()


@pytest.mark.parametrize("text, field", [
    ("[budgets]\ndaily = -1\n", "budgets.daily"),
    ("[budgets]\ndaily = 'lots'\n", "budgets.daily"),
    ("[budgets]\nhourly = 3\n", "budgets.hourly"),
    ("[budgets.project]\nweekly = 3\n", "budgets.project.weekly"),
    ("[budgets]\ndaily_tokens = 1.5\n", "budgets.daily_tokens"),
    ("[alerts]\nthresholds = [50, 120]\n", "alerts.thresholds"),
    ("[alerts]\nwebhook = 'ftp://x'\n", "alerts.webhook"),
    ("colour = 'red'\n", "colour"),
    ("[budgets\n", "not valid TOML"),
    ("[budgets]\ndaily = nan\n", "budgets.daily"),
    ("[budgets]\nweekly = inf\n", "budgets.weekly"),
    ("[budgets.task]\ndefault = -inf\n", "budgets.task.default"),
    ("[alerts]\ncommand = []\n", "alerts.command"),
    ("[alerts]\ncommand = 'say \"unterminated'\n", "alerts.command"),
])
def test_invalid_config_is_refused_with_the_field_named(project, text, field):
    user = paths.config_home() / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(text)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(project)


def test_set_refuses_invalid_values_and_writes_nothing(project):
    result = cli_run("budget", "set", "daily", "--", "-5", code=10)
    assert "budgets.daily must be an amount" in result.stderr
    assert not (paths.config_home() / "config.toml").exists()
    assert "--id goes with" in cli_run("budget", "set", "daily", "5", "--id", "x", code=2).stderr


def test_durations():
    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400
    assert parse_duration("1d") == 86400
    with pytest.raises(Exception):
        parse_duration("soon")


# --- periods and spend ---------------------------------------------------------------------


PARIS = ZoneInfo("Europe/Paris")


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize("period, now, start, reset", [
    # The day daylight saving starts is 23 hours long.
    ("daily", "2026-03-29T12:00:00+02:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
    ("daily", "2026-10-25T23:30:00+01:00", "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
    ("weekly", "2026-03-29T12:00:00+02:00", "2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
    ("monthly", "2026-10-31T23:59:00+01:00", "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00"),
    ("monthly", "2026-12-31T10:00:00+01:00", "2026-12-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00"),
])
def test_periods_follow_the_zone_across_dst_and_month_ends(period, now, start, reset):
    begins, resets = period_bounds(period, PARIS, at(now))
    assert begins == at(start)
    assert resets.timestamp() == at(reset)


def _store(tmp_path, project, builder, task=None, enhancement=None, project_dir=None):
    """Record a session the one way every writer does, attributed as given."""
    from cmat.catalog import ModelService
    from cmat.costs import record
    from cmat.queue import TaskContext

    path = write_session(tmp_path / builder.session_id, builder)
    with Ledger() as ledger:
        record(project_dir or project, ledger, ModelService(project), path, builder.session_id,
               TaskContext(task, enhancement), "test")
    return builder.expected_cost


def _spend(session_id, usd, when, cwd="/home/user/project"):
    builder = TranscriptBuilder(session_id=session_id, cwd=cwd)
    builder.now = when
    builder.response(model=OPUS, output=int(usd * 40_000), blocks=1)
    return builder


def test_spend_per_scope(tmp_path, project):
    today = now_iso(-30)
    yesterday = now_iso(-3 * 86400)
    a = _store(tmp_path, project, _spend("a", 1.0, today, str(project)), "t1", "e1")
    b = _store(tmp_path, project, _spend("b", 2.0, yesterday, "/elsewhere"), "t1", "e1")
    # Not attributed yet: the session running now.
    c = _store(tmp_path, project, _spend("running", 0.5, today, str(project / "sub")))
    user_config(
        "[budgets]\ndaily = 10\nmonthly = 100\ndaily_tokens = 1000000000\n"
        "[budgets.project]\ndaily = 10\n[budgets.task]\ndefault = 10\n"
        "[budgets.enhancement]\ne1 = 10\n[budgets.session]\ndefault = 10\n")
    config = load_config(project)
    context = Context(project, ZoneInfo("UTC"), time.time(), "running", "t1", "e1")
    with Ledger() as ledger:
        queries = []
        ledger.db.set_trace_callback(queries.append)
        got = {s.budget.key: s.spent for s in evaluate(ledger, applicable(config, context),
                                                      context)}
        ledger.db.set_trace_callback(None)
        # Budget checks run before every tool call: each must be answered from an index.
        sums = [q for q in queries if q.startswith("SELECT")]
        assert len(sums) == len(got)
        for query in sums:
            plan = " / ".join(row[3] for row in ledger.query("EXPLAIN QUERY PLAN " + query))
            assert "SCAN requests" not in plan, (query, plan)
    assert got["daily"] == pytest.approx(a + c)
    assert got["project-daily"] == pytest.approx(a + c)  # /elsewhere is another project
    assert got["task:t1"] == pytest.approx(a + b + c)  # the running session counts for the task
    assert got["enhancement:e1"] == pytest.approx(a + b + c)
    assert got["session:running"] == pytest.approx(c)
    assert got["daily-tokens"] > 0
    if datetime.now(timezone.utc).day > 3:
        assert got["monthly"] == pytest.approx(a + b + c)


def test_the_running_session_counts_for_its_own_task_and_enhancement_only(tmp_path, project):
    today = now_iso(-30)
    idle = _store(tmp_path, project, _spend("idle-task", 0.2, today), "t-idle", "e-idle")
    other_project = tmp_path / "other"
    elsewhere = _store(tmp_path, project, _spend("other", 3.0, today), "t-other", "e1",
                       project_dir=other_project)
    running = _store(tmp_path, project, _spend("running", 1.0, today))
    user_config("[budgets.task]\nt-idle = 1\nt-now = 5\n"
                "[budgets.enhancement]\ne-idle = 1\ne1 = 10\n")
    from cmat.budgets import status_report

    with Ledger() as ledger:
        report = status_report(project, ledger, "running")
    assert {b["budget"]: b["spent"] for b in report["budgets"]} == pytest.approx({
        "task:t-idle": idle, "task:t-now": 0, "enhancement:e-idle": idle,
        "enhancement:e1": 0})  # another project's e1 is another enhancement
    assert elsewhere and running
    context = Context(project, ZoneInfo("UTC"), time.time(), "running", "t-now", "e1")
    config = load_config(project)
    with Ledger() as ledger:
        got = {s.budget.key: s.spent for s in evaluate(ledger, applicable(config, context),
                                                      context)}
    assert got == pytest.approx({"task:t-now": running, "enhancement:e1": running})


# --- enforcement through the hooks -----------------------------------------------------------


@pytest.fixture
def over_budget(project, tmp_path):
    """Daily budget $1 and a running session that has spent $1.20 today."""
    user_config('timezone = "Europe/Paris"\n'
                                                   "[budgets]\ndaily = 1\n")
    builder, path = session_costing(tmp_path, "run-1", 1.2)
    return builder, path


def test_nothing_configured_means_nothing_said(project, tmp_path):
    _, path = session_costing(tmp_path, "s", 5)
    assert run_hook(PROMPT, project, payload(path, "s")) is None
    assert run_hook(PRE_TOOL, project, payload(path, "s", "PreToolUse")) is None
    assert not paths.ledger_file().exists()  # not even opened


def test_prompt_submit_blocks_with_the_budget_message(project, over_budget):
    _, path = over_budget
    answer = run_hook(PROMPT, project, payload(path, "run-1"))
    assert answer["decision"] == "block"
    lines = answer["reason"].splitlines()
    assert lines[0] == "Daily budget exhausted ($1.00)"
    assert lines[1].startswith("Spent today: $1.2")
    assert lines[2] == "Reset at 00:00 Europe/Paris, or raise it with: cmat budget set daily 1.8"


def test_pre_tool_use_denies_with_the_reason_for_claude_and_the_user(project, over_budget):
    _, path = over_budget
    answer = run_hook(PRE_TOOL, project, payload(path, "run-1", "PreToolUse"))
    decision = answer["hookSpecificOutput"]
    assert decision["hookEventName"] == "PreToolUse"
    assert decision["permissionDecision"] == "deny"
    assert decision["permissionDecisionReason"].startswith("Daily budget exhausted ($1.00)")
    assert answer["systemMessage"].startswith("Daily budget exhausted")


def test_cmat_override_limit_lets_work_continue(project, over_budget):
    _, path = over_budget
    answer = run_hook(PROMPT, project, payload(path, "run-1"), CMAT_OVERRIDE_LIMIT="1")
    assert "decision" not in (answer or {})
    assert "allowed by an override" in answer["systemMessage"]
    tool = run_hook(PRE_TOOL, project, payload(path, "run-1", "PreToolUse"),
                    CMAT_OVERRIDE_LIMIT="1")
    assert "hookSpecificOutput" not in (tool or {})


def test_a_recorded_override_expires(project, over_budget):
    _, path = over_budget
    assert "Budgets (all) are not enforced until" in cli_run("budget", "override", "--for",
                                                             "1h", "--reason", "demo").output
    assert "decision" not in (run_hook(PROMPT, project, payload(path, "run-1")) or {})
    with Ledger() as ledger, ledger.transaction():
        ledger.db.execute("UPDATE overrides SET until = ?", (time.time() - 1,))
    assert run_hook(PROMPT, project, payload(path, "run-1"))["decision"] == "block"
    with Ledger() as ledger:
        who = ledger.query("SELECT created_by, reason FROM overrides")[0]
    assert "@" in who[0] and who[1] == "demo"


def test_the_80_percent_alert_appears_once(project, tmp_path):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "warm", 0.85)
    first = run_hook(PROMPT, project, payload(path, "warm"))
    assert "decision" not in first
    assert first["systemMessage"].startswith("cmat warning: Daily budget at 85%")
    assert run_hook(PROMPT, project, payload(path, "warm")) is None  # fired once
    assert run_hook(PRE_TOOL, project, payload(path, "warm", "PreToolUse")) is None
    fired = json.loads(cli_run("alerts", "list", "--json").output)
    assert sorted(a["threshold"] for a in fired) == [50, 80]


def test_concurrent_hooks_fire_each_alert_once(project, tmp_path):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "many", 0.97)
    env = child_env(CLAUDE_PROJECT_DIR=project, CMAT_PYTHON=os.sys.executable)
    processes = [subprocess.Popen([str(PRE_TOOL)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=env) for _ in range(8)]
    outputs = [p.communicate(json.dumps(payload(path, "many", "PreToolUse")).encode(),
                             timeout=60)[0] for p in processes]
    messages = [json.loads(o)["systemMessage"] for o in outputs if o.strip()]
    assert len(messages) == 1 and "critical" in messages[0]
    with Ledger() as ledger:
        assert ledger.query("SELECT count(*) FROM alerts") == [(3,)]


def test_a_broken_config_never_blocks(project, tmp_path):
    user_config("[budgets]\ndaily = 'oops'\n")
    _, path = session_costing(tmp_path, "s", 5)
    result = subprocess.run([str(PROMPT)], input=json.dumps(payload(path, "s")).encode(),
                            capture_output=True, env=child_env(CLAUDE_PROJECT_DIR=project,
                                                               CMAT_PYTHON=os.sys.executable))
    assert result.returncode == 0 and result.stdout == b""
    assert b"budget not checked, prompt allowed" in result.stderr
    assert "budgets.daily must be" in paths.hook_log_file().read_text()


def test_a_corrupt_ledger_never_blocks(project, tmp_path, over_budget):
    _, path = over_budget
    paths.ledger_file().parent.mkdir(parents=True, exist_ok=True)
    paths.ledger_file().write_bytes(b"junk" * 1000)
    assert run_hook(PRE_TOOL, project, payload(path, "run-1", "PreToolUse")) is None


def test_task_and_session_limits_stop_a_runaway_agent(project, tmp_path):
    task = QueueService(project).add("runaway")["id"]
    (project / ".claude" / "cmat.toml").write_text("[budgets.task]\ndefault = 0.5\n")
    _, path = session_costing(tmp_path, "agent", 0.6)
    answer = run_hook(PRE_TOOL, project, payload(path, "agent", "PreToolUse"),
                      CMAT_CURRENT_TASK_ID=task)
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert f"Task {task} budget exhausted ($0.50)" in answer["systemMessage"]
    (project / ".claude" / "cmat.toml").write_text("[budgets.session]\ndefault = 0.5\n")
    answer = run_hook(PRE_TOOL, project, payload(path, "agent", "PreToolUse"))
    assert "Session agent budget exhausted" in answer["hookSpecificOutput"][
        "permissionDecisionReason"]


def test_budget_status_shows_it_all_and_exits_1_when_exhausted(project, over_budget):
    _, path = over_budget
    run_hook(PROMPT, project, payload(path, "run-1"))  # imports the running session
    result = cli_run("budget", "status", "--no-scan", code=1)
    assert "Daily budget" in result.output and "EXHAUSTED" in result.output
    data = json.loads(cli_run("budget", "status", "--no-scan", "--json", code=1).output)
    daily = data["budgets"][0]
    assert daily["exhausted"] and daily["limit"] == 1 and daily["spent"] > 1
    assert daily["reset_at"].endswith("+01:00") or daily["reset_at"].endswith("+02:00")


def test_extract_fails_on_an_exhausted_task_budget_unless_overridden(project, tmp_path):
    task = QueueService(project).add("limited")["id"]
    (project / ".claude" / "cmat.toml").write_text("[budgets.task]\ndefault = 0.5\n")
    builder, path = session_costing(tmp_path, "x1", 0.6)
    result = cli_run("costs", "extract", task, path, code=11)
    assert "budget exhausted" in result.stderr
    assert QueueService(project).get(task)["metadata"]["cost_usd"]  # recorded all the same
    result = cli_run("costs", "extract", task, path, "--override-limit")
    assert "warning" in result.stderr


# --- alert delivery ---------------------------------------------------------------------------


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        _Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_delivery_and_retry_when_the_server_is_down(project, tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    port = server.server_address[1]
    server.server_close()  # down for now: nothing listens on the port
    user_config(
        f"[budgets]\ndaily = 1\n[alerts]\nwebhook = 'http://127.0.0.1:{port}/hook'\n")
    _, path = session_costing(tmp_path, "hooked", 0.6)
    started = time.monotonic()
    answer = run_hook(PROMPT, project, payload(path, "hooked"))
    assert time.monotonic() - started < 10 and "decision" not in answer  # never blocks
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the detached delivery tried and failed
        with Ledger() as ledger:
            row = ledger.query("SELECT attempts, delivered, last_error FROM alerts")[0]
        if row[0]:
            break
        time.sleep(0.1)
    assert row[0] == 1 and row[1] == 0 and row[2]
    log = paths.hook_log_file()
    while "not delivered" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the delivery process logs once it has recorded the failure
    assert "not delivered" in log.read_text()
    # The server comes up; a later delivery (due once the retry delay passes) succeeds.
    server = http.server.HTTPServer(("127.0.0.1", port), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with Ledger() as ledger, ledger.transaction():
            ledger.db.execute("UPDATE alerts SET next_attempt = 0")
        cli_run("alerts", "deliver")
    finally:
        server.shutdown()
    assert _Receiver.received and "Daily budget at 60%" in _Receiver.received[-1]["text"]
    assert json.loads(cli_run("alerts", "list", "--json").output)[0]["delivered"] == 1


def test_alert_command_receives_the_message(project, tmp_path):
    out = tmp_path / "alert.txt"
    user_config(
        f"[budgets]\ndaily = 1\n[alerts]\ncommand = ['tee', '{out}']\n")
    _, path = session_costing(tmp_path, "cmd", 0.55)
    run_hook(PROMPT, project, payload(path, "cmd"))
    deadline = time.monotonic() + 20
    while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Daily budget at 55%" in out.read_text()


def test_a_cloned_repository_cannot_run_a_command_or_post_anywhere(project, tmp_path):
    marker = tmp_path / "pwned"
    (project / ".claude" / "cmat.toml").write_text(
        "[budgets.session]\ndefault = 1\n"
        f"[alerts]\ncommand = 'touch {marker}'\nwebhook = 'http://127.0.0.1:9/steal'\n")
    _, path = session_costing(tmp_path, "cloned", 0.6)
    answer = run_hook(PROMPT, project, payload(path, "cloned"))
    assert "Session cloned budget" in answer["systemMessage"]  # its stricter budget applies
    time.sleep(1.5)  # a detached delivery, had one started, would have run by now
    assert not marker.exists()
    with Ledger() as ledger:
        assert ledger.query("SELECT delivered FROM alerts") == [(1,)]  # nothing to deliver
    log = paths.hook_log_file().read_text()
    assert "alerts.command ignored" in log and "alerts.webhook ignored" in log


def test_webhook_urls_are_redacted_where_they_are_shown(project, tmp_path):
    from cmat.alerts import redact_url

    assert redact_url("https://hooks.slack.com/services/T0/B1/secret") == \
        "https://hooks.slack.com/services/T0/***"
    assert redact_url("https://user:pw@example.com:8443/hook?token=abc") == \
        "https://example.com:8443/***"
    user_config("[budgets]\ndaily = 1\n[alerts]\n"
                "webhook = 'http://127.0.0.1:9/services/T0/B1/secret'\n")
    shown = cli_run("budget", "show").output + cli_run("budget", "show", "--json").output
    assert "secret" not in shown and "services/T0/***" in shown
    _, path = session_costing(tmp_path, "leak", 0.6)
    run_hook(PROMPT, project, payload(path, "leak"))
    with Ledger() as ledger, ledger.transaction():
        ledger.db.execute("UPDATE alerts SET next_attempt = 0, attempts = 0")
    cli_run("alerts", "deliver", code=1)
    errors = json.dumps(json.loads(cli_run("alerts", "list", "--json").output))
    assert "secret" not in errors
    assert "secret" not in paths.hook_log_file().read_text()


def test_the_raise_hint_names_the_file_that_set_the_limit_and_clears_the_spend(project,
                                                                                tmp_path):
    user_config("[budgets.task]\ndefault = 3\n")
    (project / ".claude" / "cmat.toml").write_text("[budgets.session]\ndefault = 0.2\n"
                                                  "[budgets.task]\ndefault = 0.5\n")
    _, path = session_costing(tmp_path, "hint", 1.0)
    answer = run_hook(PROMPT, project, payload(path, "hint"), CMAT_CURRENT_TASK_ID="t1")
    reason = answer["reason"]
    # The session budget lives in the project's file alone; spent ($1.0x) is far above $0.20.
    assert "Raise it with: cmat budget set session 1.5" in reason
    # The task budget: the project's 0.5 under the user's 3; 1.5 lifts both.
    assert "cmat budget set task 1.5 --user && cmat budget set task 1.5\n" in reason + "\n"
    for command in ("cmat budget set session 1.5", "cmat budget set task 1.5 --user",
                    "cmat budget set task 1.5"):
        cli_run(*command.split()[1:])
    assert "decision" not in (run_hook(PROMPT, project, payload(path, "hint"),
                                       CMAT_CURRENT_TASK_ID="t1") or {})


@pytest.mark.parametrize("value, enforced", [("1", False), ("TRUE", False), ("yes", False),
                                             ("0", True), ("", True), ("maybe", True),
                                             ("2", True), ("on", True)])
def test_only_1_true_or_yes_lifts_budgets(project, tmp_path, value, enforced):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "o", 1.2)
    answer = run_hook(PROMPT, project, payload(path, "o"), CMAT_OVERRIDE_LIMIT=value) or {}
    assert ("decision" in answer) == enforced
    if value in ("maybe", "2", "on"):
        assert "is not 1, true or yes" in answer["systemMessage"]


def test_a_zero_limit_means_nothing_may_be_spent(project, tmp_path):
    note = cli_run("budget", "set", "session", "0").output
    assert "nothing may be spent" in note
    _, path = session_costing(tmp_path, "zero", 0.0)
    answer = run_hook(PROMPT, project, payload(path, "zero"))
    assert answer["decision"] == "block"
    assert "Session zero budget exhausted ($0.00)" in answer["reason"]
