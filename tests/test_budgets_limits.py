"""Which budgets apply, what was spent against each, and the hooks that enforce them."""

import json
import os
import subprocess
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmat import clock, paths
from cmat.attribution import attribute_session
from cmat.budgets.config import load_config
from cmat.budgets.limits import (
    Context,
    applicable,
    evaluate,
    parse_duration,
    status_report,
)
from cmat.catalog import ModelService
from cmat.claude.own_files import writes_cmat_files
from cmat.errors import UsageError
from cmat.ledger import Ledger
from cmat.tasks.queue import QueueService, TaskContext
from tests.helpers import (
    OPUS,
    PRE_TOOL,
    PROMPT,
    budget_hook,
    budget_payload,
    child_env,
    cli_run,
    earlier_today,
    session_costing,
    user_config,
)
from tests.transcript_factory import TranscriptBuilder, write_session


def test_durations():
    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400
    assert parse_duration("1d") == 86400
    with pytest.raises(UsageError, match="not a duration such as 30m"):
        parse_duration("soon")


def _store(tmp_path, project, builder, task=None, enhancement=None, project_dir=None):
    """Record a session the one way every writer does, attributed as given."""
    path = write_session(tmp_path / builder.session_id, builder)
    with Ledger() as ledger:
        attribute_session(project_dir or project, ledger, ModelService(project), path, builder.session_id,
               TaskContext(task, enhancement), "test")
    return builder.expected_cost


def _spend(session_id, usd, when, cwd="/home/user/project"):
    builder = TranscriptBuilder(session_id=session_id, cwd=cwd)
    builder.now = when
    builder.response(model=OPUS, output=int(usd * 40_000), blocks=1)
    return builder


NOON = datetime(2026, 3, 15, 12, 0, tzinfo=UTC).timestamp()  # the checks' chosen now


def _at(offset: float) -> str:
    return datetime.fromtimestamp(NOON + offset, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_spend_per_scope(tmp_path, project):
    today = _at(-30)
    yesterday = _at(-3 * 86400)
    a = _store(tmp_path, project, _spend("a", 1.0, today, str(project)), "t1", "e1")
    b = _store(tmp_path, project, _spend("b", 2.0, yesterday, "/elsewhere"), "t1", "e1")
    # Not attributed yet: the session running now.
    c = _store(tmp_path, project, _spend("running", 0.5, today, str(project / "sub")))
    user_config(
        "[budgets]\ndaily = 10\nmonthly = 100\ndaily_tokens = 1000000000\n"
        "[budgets.project]\ndaily = 10\n[budgets.task]\ndefault = 10\n"
        "[budgets.enhancement]\ne1 = 10\n[budgets.session]\ndefault = 10\n")
    config = load_config(project)
    context = Context(project, ZoneInfo("UTC"), NOON, "running", "t1", "e1")
    with Ledger() as ledger:
        queries = []
        ledger.db.set_trace_callback(queries.append)
        got = {s.budget.key: s.spent for s in evaluate(ledger, applicable(config, context),
                                                      context, config)}
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
    assert got["daily-tokens"] == (10 + 40_000) + (10 + 20_000)  # a and c: input + output
    assert got["monthly"] == pytest.approx(a + b + c)


def test_the_running_session_counts_for_its_own_task_and_enhancement_only(tmp_path, project):
    today = earlier_today(30)
    idle = _store(tmp_path, project, _spend("idle-task", 0.2, today), "t-idle", "e-idle")
    other_project = tmp_path / "other"
    elsewhere = _store(tmp_path, project, _spend("other", 3.0, today), "t-other", "e1",
                       project_dir=other_project)
    running = _store(tmp_path, project, _spend("running", 1.0, today))
    user_config("[budgets.task]\nt-idle = 1\nt-now = 5\n"
                "[budgets.enhancement]\ne-idle = 1\ne1 = 10\n")

    with Ledger() as ledger:
        report = status_report(project, ledger, clock.now(), "running")
    assert {b["budget"]: b["spent"] for b in report["budgets"]} == pytest.approx({
        "task:t-idle": idle, "task:t-now": 0, "enhancement:e-idle": idle,
        "enhancement:e1": 0})  # another project's e1 is another enhancement
    with Ledger() as ledger:  # the other project's e1 holds the other project's spend
        assert ledger.enhancement_spend("e1", str(other_project)) == pytest.approx(elsewhere)
    context = Context(project, ZoneInfo("UTC"), clock.now(), "running", "t-now", "e1")
    config = load_config(project)
    with Ledger() as ledger:
        got = {s.budget.key: s.spent for s in evaluate(ledger, applicable(config, context),
                                                      context, config)}
    assert got == pytest.approx({"task:t-now": running, "enhancement:e1": running})


@pytest.fixture
def over_budget(project, tmp_path):
    """Daily budget $1 and a running session that has spent $1.20 today."""
    user_config('timezone = "Europe/Paris"\n'
                                                   "[budgets]\ndaily = 1\n")
    builder, path = session_costing(tmp_path, "run-1", 1.2)
    return builder, path


def test_nothing_configured_means_nothing_said(project, tmp_path):
    _, path = session_costing(tmp_path, "s", 5)
    assert budget_hook(PROMPT, project, budget_payload(path, "s")) is None
    assert budget_hook(PRE_TOOL, project, budget_payload(path, "s", "PreToolUse")) is None
    assert not paths.ledger_file().exists()  # not even opened


def test_prompt_submit_blocks_with_the_budget_message(project, over_budget):
    _, path = over_budget
    answer = budget_hook(PROMPT, project, budget_payload(path, "run-1"))
    assert answer["decision"] == "block"
    lines = answer["reason"].splitlines()
    assert lines[0] == "Daily budget exhausted ($1.00)"
    assert lines[1].startswith("Spent today: $1.2")
    assert lines[2] == "Reset at 00:00 Europe/Paris, or raise it with: cmat budget set daily 1.8"
    assert lines[3] == "Or let work go on for a while: cmat budget override --for 1h"


def test_pre_tool_use_denies_with_the_reason_for_claude_and_the_user(project, over_budget):
    _, path = over_budget
    answer = budget_hook(PRE_TOOL, project, budget_payload(path, "run-1", "PreToolUse"))
    decision = answer["hookSpecificOutput"]
    assert decision["hookEventName"] == "PreToolUse"
    assert decision["permissionDecision"] == "deny"
    assert decision["permissionDecisionReason"].startswith("Daily budget exhausted ($1.00)")
    assert answer["systemMessage"].startswith("Daily budget exhausted")
    # The way on for now is the user's to take: said to them, not in what Claude reads.
    assert "cmat budget override --for 1h" in answer["systemMessage"]
    assert "override" not in decision["permissionDecisionReason"]


def test_cmat_override_limit_lets_work_continue(project, over_budget):
    _, path = over_budget
    answer = budget_hook(PROMPT, project, budget_payload(path, "run-1"), CMAT_OVERRIDE_LIMIT="1")
    assert "decision" not in (answer or {})
    assert "allowed by an override" in answer["systemMessage"]
    tool = budget_hook(PRE_TOOL, project, budget_payload(path, "run-1", "PreToolUse"),
                    CMAT_OVERRIDE_LIMIT="1")
    assert "hookSpecificOutput" not in (tool or {})


def test_a_recorded_override_expires(project, over_budget):
    _, path = over_budget
    assert "Budgets (all) are not enforced until" in cli_run("budget", "override", "--for",
                                                             "1h", "--reason", "demo").output
    assert "decision" not in (budget_hook(PROMPT, project, budget_payload(path, "run-1")) or {})
    with Ledger() as ledger, ledger.transaction():
        ledger.db.execute("UPDATE overrides SET until = ?", (clock.now() - 1,))
    assert budget_hook(PROMPT, project, budget_payload(path, "run-1"))["decision"] == "block"
    with Ledger() as ledger:
        who = ledger.query("SELECT created_by, reason FROM overrides")[0]
    assert "@" in who[0] and who[1] == "demo"


def test_a_broken_config_never_blocks(project, tmp_path):
    user_config("[budgets]\ndaily = 'oops'\n")
    _, path = session_costing(tmp_path, "s", 5)
    result = subprocess.run([str(PROMPT)], input=json.dumps(budget_payload(path, "s")).encode(),
                            capture_output=True, env=child_env(CLAUDE_PROJECT_DIR=project,
                                                               CMAT_PYTHON=os.sys.executable))
    assert result.returncode == 0
    assert "budgets NOT checked" in json.loads(result.stdout)["systemMessage"]  # said loudly
    assert b"budget not checked, prompt allowed" in result.stderr
    assert "budgets.daily must be" in paths.hook_log_file().read_text()
    denied = budget_hook(PROMPT, project, budget_payload(path, "s"), CMAT_BUDGET_ON_ERROR="deny")
    assert denied["decision"] == "block" and "could not check" in denied["reason"]


def test_a_corrupt_ledger_never_blocks(project, tmp_path, over_budget):
    _, path = over_budget
    paths.ledger_file().parent.mkdir(parents=True, exist_ok=True)
    paths.ledger_file().write_bytes(b"junk" * 1000)
    answer = budget_hook(PRE_TOOL, project, budget_payload(path, "run-1", "PreToolUse"))
    assert "hookSpecificOutput" not in answer and "NOT checked" in answer["systemMessage"]
    user_config('timezone = "Europe/Paris"\n[budgets]\ndaily = 1\non_error = "deny"\n')
    answer = budget_hook(PRE_TOOL, project, budget_payload(path, "run-1", "PreToolUse"))
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_a_project_may_ask_for_deny_on_error_but_never_for_allow(project):
    (project / ".claude" / "cmat.toml").write_text('[budgets]\non_error = "deny"\n')
    assert load_config(project).on_error == "deny"
    user_config('[budgets]\non_error = "deny"\n')
    (project / ".claude" / "cmat.toml").write_text('[budgets]\non_error = "allow"\n')
    config = load_config(project)
    assert config.on_error == "deny" and any("on_error ignored" in n for n in config.ignored)


def test_a_tool_input_nested_1000_deep_is_still_checked(project, over_budget):
    _, path = over_budget
    deep = {**budget_payload(path, "run-1", "PreToolUse"), "tool_name": "Write"}
    raw = json.dumps(deep)[:-1] + ', "tool_input": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}"
    result = subprocess.run([str(PRE_TOOL)], input=raw.encode(), capture_output=True, timeout=60,
                            env=child_env(CLAUDE_PROJECT_DIR=project,
                                          CMAT_PYTHON=os.sys.executable))
    assert json.loads(result.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_the_first_prompt_of_a_new_session_is_checked(project, over_budget, tmp_path):
    """Claude Code has not written the new session's transcript yet: it has spent $0, and the
    day's other sessions still exhaust the budget."""
    _, path = over_budget
    budget_hook(PROMPT, project, budget_payload(path, "run-1"))  # the day's spend, recorded
    fresh = budget_payload(tmp_path / "not-yet" / "new.jsonl", "new-session")
    assert budget_hook(PROMPT, project, fresh)["decision"] == "block"


def test_task_and_session_limits_stop_a_runaway_agent(project, tmp_path):
    task = QueueService(project).add("runaway")["id"]
    (project / ".claude" / "cmat.toml").write_text("[budgets.task]\ndefault = 0.5\n")
    _, path = session_costing(tmp_path, "agent", 0.6)
    answer = budget_hook(PRE_TOOL, project, budget_payload(path, "agent", "PreToolUse"),
                      CMAT_CURRENT_TASK_ID=task)
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert f"Task {task} budget exhausted ($0.50)" in answer["systemMessage"]
    (project / ".claude" / "cmat.toml").write_text("[budgets.session]\ndefault = 0.5\n")
    answer = budget_hook(PRE_TOOL, project, budget_payload(path, "agent", "PreToolUse"))
    assert "Session agent budget exhausted" in answer["hookSpecificOutput"][
        "permissionDecisionReason"]


def test_budget_status_shows_it_all_and_exits_1_when_exhausted(project, over_budget):
    _, path = over_budget
    budget_hook(PROMPT, project, budget_payload(path, "run-1"))  # imports the running session
    result = cli_run("budget", "status", "--no-scan", code=11)
    assert "Daily budget" in result.output and "EXHAUSTED" in result.output
    data = json.loads(cli_run("budget", "status", "--no-scan", "--json", code=11).output)
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


def test_the_raise_hint_names_the_file_that_set_the_limit_and_clears_the_spend(project,
                                                                                tmp_path):
    user_config("[budgets.task]\ndefault = 3\n")
    (project / ".claude" / "cmat.toml").write_text("[budgets.session]\ndefault = 0.2\n"
                                                  "[budgets.task]\ndefault = 0.5\n")
    _, path = session_costing(tmp_path, "hint", 1.0)
    answer = budget_hook(PROMPT, project, budget_payload(path, "hint"), CMAT_CURRENT_TASK_ID="t1")
    reason = answer["reason"]
    # The session budget lives in the project's file alone; spent ($1.0x) is far above $0.20.
    assert "Raise it with: cmat budget set session 1.5" in reason
    # The task budget: the project's 0.5 under the user's 3; 1.5 lifts both.
    assert "cmat budget set task 1.5 --user && cmat budget set task 1.5\n" in reason + "\n"
    for command in ("cmat budget set session 1.5", "cmat budget set task 1.5 --user",
                    "cmat budget set task 1.5"):
        cli_run(*command.split()[1:])
    assert "decision" not in (budget_hook(PROMPT, project, budget_payload(path, "hint"),
                                       CMAT_CURRENT_TASK_ID="t1") or {})


@pytest.mark.parametrize("value, enforced", [("1", False), ("TRUE", False), ("yes", False),
                                             ("0", True), ("", True), ("maybe", True),
                                             ("2", True), ("on", True)])
def test_only_1_true_or_yes_lifts_budgets(project, tmp_path, value, enforced):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "o", 1.2)
    answer = budget_hook(PROMPT, project, budget_payload(path, "o"), CMAT_OVERRIDE_LIMIT=value) or {}
    assert ("decision" in answer) == enforced
    if value in ("maybe", "2", "on"):
        assert "is not 1, true or yes" in answer["systemMessage"]


def test_a_zero_limit_means_nothing_may_be_spent(project, tmp_path):
    note = cli_run("budget", "set", "session", "0").output
    assert "nothing may be spent" in note
    _, path = session_costing(tmp_path, "zero", 0.0)
    answer = budget_hook(PROMPT, project, budget_payload(path, "zero"))
    assert answer["decision"] == "block"
    assert "Session zero budget exhausted ($0.00)" in answer["reason"]


@pytest.mark.parametrize("ending", [("--for", "0m"), ("--end",)])
def test_an_override_ends_when_asked(project, over_budget, ending):
    _, path = over_budget
    cli_run("budget", "override", "--for", "2h", "--reason", "release")
    assert "decision" not in (budget_hook(PROMPT, project, budget_payload(path, "run-1")) or {})
    assert "enforced again" in cli_run("budget", "override", *ending).output
    assert budget_hook(PROMPT, project, budget_payload(path, "run-1"))["decision"] == "block"
    with Ledger() as ledger:
        assert len(ledger.query("SELECT * FROM overrides")) == 2  # both kept, for the record
    assert "one of them" in cli_run("budget", "override", code=2).stderr


def test_budget_status_has_no_empty_state_column_while_nothing_is_exhausted(project):
    cli_run("budget", "set", "daily", "100")
    cli_run("budget", "set", "weekly", "500")
    lines = cli_run("budget", "status", "--no-scan").output.splitlines()
    rule = next(line for line in lines if line.startswith("---"))
    bar = next(line for line in lines if line.startswith("Daily budget")).split()[-1]
    assert rule.split()[-1] == "-" * len(bar)  # the bar's column is the last one


def test_inside_claude_code_a_budget_is_tightened_never_loosened(project, monkeypatch):
    """Claude Code gives its Bash tool CLAUDECODE=1: a subagent stopped by its run limit, or
    the main thread it reports to, must not lift the limit with the command its refusal
    names."""
    cli_run("budget", "set", "run", "5", "--agent", "architect")
    cli_run("budget", "set", "daily", "50")
    monkeypatch.setenv("CLAUDECODE", "1")
    refused = cli_run("budget", "set", "run", "10", "--agent", "architect", code=12)
    monkeypatch.setenv("CLAUDECODE", "")  # set empty by a repository's settings: still inside
    assert "terminal of their own" in refused.stderr
    cli_run("budget", "unset", "daily", code=12)
    cli_run("budget", "override", "--for", "1h", code=12)
    cli_run("budget", "set", "daily", "40")  # lower: allowed
    cli_run("budget", "set", "monthly", "500")  # a new budget: allowed
    cli_run("budget", "override", "--end")  # ending an override: allowed
    cli_run("budget", "unset", "weekly")  # nothing to remove: nothing loosened
    cli_run("hooks", "uninstall", code=12)  # the hooks are what enforces them
    cli_run("hooks", "uninstall", "--dry-run")
    config = load_config(project)
    assert config.global_usd == {"daily": 40, "monthly": 500}
    assert config.keyed["run"] == {"architect": 5}
    monkeypatch.delenv("CLAUDECODE")
    cli_run("budget", "set", "daily", "60")  # in your own terminal: as ever
    assert load_config(project).global_usd["daily"] == 60


def test_loosening_is_judged_on_the_value_the_edit_replaces(project, monkeypatch):
    """A limit lowered by somebody else just before `budget set` takes the file's lock is the
    one the new value is held to: read before the lock, 40 would pass against 50."""
    import contextlib

    from cmat.budgets import edit

    config = user_config("[budgets]\ndaily = 50\n")
    real_lock = edit.file_lock

    @contextlib.contextmanager
    def lowered_first(path):
        config.write_text("[budgets]\ndaily = 10\n")  # the user, in another terminal
        with real_lock(path):
            yield

    monkeypatch.setattr(edit, "file_lock", lowered_first)
    monkeypatch.setenv("CLAUDECODE", "1")
    cli_run("budget", "set", "daily", "40", code=12)
    assert load_config(project).global_usd["daily"] == 10


@pytest.mark.parametrize(("tool", "key", "where"), [
    ("Edit", "file_path", "config"), ("Write", "file_path", "ledger"),
    ("MultiEdit", "file_path", "link"), ("NotebookEdit", "notebook_path", "config")])
def test_claudes_file_tools_may_not_write_cmats_files_while_a_budget_holds(
        project, tmp_path, tool, key, where):
    config = user_config("[budgets]\ndaily = 50\n")
    target = {"config": config, "ledger": paths.ledger_file(),
              "link": project / "budgets.toml"}[where]
    if where == "link":
        target.symlink_to(config)  # a link in the project to your config is your config
    call = {"session_id": "s1", "transcript_path": str(tmp_path / "none.jsonl"),
            "cwd": str(project), "hook_event_name": "PreToolUse", "tool_name": tool,
            "tool_input": {key: str(target), "content": "[budgets]\ndaily = 5000\n"}}
    answer = budget_hook(PRE_TOOL, project, call)
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "not Claude's to edit" in answer["hookSpecificOutput"]["permissionDecisionReason"]
    call["tool_input"][key] = str(project / "src" / "budgets.toml")  # any other file: allowed
    assert budget_hook(PRE_TOOL, project, call) is None


def test_a_write_too_large_to_read_whole_is_still_refused(project, tmp_path):
    config = user_config("[budgets]\ndaily = 50\n")
    call = {"session_id": "s1", "transcript_path": str(tmp_path / "none.jsonl"),
            "cwd": str(project), "hook_event_name": "PreToolUse", "tool_name": "Write",
            "tool_input": {"file_path": str(config), "content": "#" * (2 << 20)}}
    answer = budget_hook(PRE_TOOL, project, call)
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"


@settings(max_examples=200)
@given(data=st.binary(max_size=300), tool=st.sampled_from(["Write", "Edit", "NotebookEdit"]))
def test_any_payload_naming_a_file_tool_is_told_apart_without_raising(data, tool):
    raw = b'{"tool_name": "%s", "tool_input": ' % tool.encode() + data
    assert writes_cmat_files(raw) in (True, False)


def test_inside_claude_code_a_model_is_priced_higher_never_lower(project, monkeypatch,
                                                                   tmp_path):
    monkeypatch.setenv("CLAUDECODE", "1")
    refused = cli_run("models", "add", "claude-opus-4-6", "--input", "0", "--output", "0",
                      code=12)
    assert "pricing claude-opus-4-6 lower" in refused.stderr
    cli_run("models", "add", "my-model", "--pattern", "claude", "--input", "9", "--output",
            "9", code=12)  # a pattern may capture other models' ids
    cli_run("models", "add", "claude-opus-4-6", "--input", "50", "--output", "250")  # higher
    cli_run("models", "add", "my-own-model", "--input", "1", "--output", "2")  # a new one
    prices = tmp_path / "prices.json"
    prices.write_text('{"models": []}')
    cli_run("models", "update", str(prices), code=12)
    cli_run("models", "update", str(prices), "--dry-run")
    monkeypatch.delenv("CLAUDECODE")
    cli_run("models", "add", "claude-opus-4-6", "--input", "0", "--output", "0")  # yours
