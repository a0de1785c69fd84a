"""The limits of the cost-management spec, each through the real hook scripts: token budgets
counting input + output, lifetime totals, and per-run limits by agent (a session, or one
subagent run)."""

import json
import os
import subprocess

import pytest

from cmat import paths
from cmat.tasks.queue import QueueService
from tests.helpers import (
    OPUS,
    PRE_TOOL,
    PROMPT,
    budget_hook,
    budget_payload,
    child_env,
    cli_run,
    earlier_today,
    now_iso,
    session_costing,
    user_config,
)
from tests.transcript_factory import TranscriptBuilder, write_session, write_subagent


def denied(answer):
    return (answer or {}).get("hookSpecificOutput", {}).get("permissionDecisionReason")


def blocked(answer):
    return (answer or {}).get("reason") if (answer or {}).get("decision") == "block" else None


def test_token_budgets_count_input_and_output_unless_told_to_count_cache(project, tmp_path):
    builder = TranscriptBuilder(session_id="t1")
    builder.now = earlier_today(60)
    builder.response(model=OPUS, input=100, output=500, read=200_000, blocks=1)
    path = write_session(tmp_path / "transcripts", builder)
    cli_run("budget", "set", "daily-tokens", "1000")
    assert blocked(budget_hook(PROMPT, project, budget_payload(path, "t1"))) is None  # 600
    status = json.loads(cli_run("budget", "status", "--json", "--no-scan").output)
    daily = next(b for b in status["budgets"] if b["scope"] == "daily-tokens")
    assert daily["spent"] == 600 and "input+output" in daily["label"]
    cli_run("budget", "set", "daily-tokens", "1000", "--count", "all")
    answer = budget_hook(PROMPT, project, budget_payload(path, "t1"))
    assert answer["decision"] == "block"
    assert answer["reason"].startswith("Daily token budget (cache included) exhausted "
                                       "(1,000 tokens)")
    assert "200,600 tokens" in answer["reason"]


def test_a_project_token_budget_counts_that_project_only(project, tmp_path):
    builder = TranscriptBuilder(session_id="p1", cwd=str(project))
    builder.now = earlier_today(60)
    builder.response(model=OPUS, input=100, output=900, blocks=1)
    path = write_session(tmp_path / "transcripts", builder)
    cli_run("budget", "set", "daily-tokens", "500", "--project", "--project", str(project))
    answer = budget_hook(PRE_TOOL, project, budget_payload(path, "p1", "PreToolUse"))
    assert denied(answer).startswith(f"Project daily token budget ({project.name}, "
                                     "input+output) exhausted (500 tokens)")


def test_lifetime_totals_block_whatever_the_day(project, tmp_path):
    _, path = session_costing(tmp_path, "old", 1.2, when=now_iso(-40 * 86400))
    cli_run("budget", "set", "daily", "100")
    assert blocked(budget_hook(PROMPT, project, budget_payload(path, "old"))) is None
    cli_run("budget", "set", "total", "1")
    answer = budget_hook(PROMPT, project, budget_payload(path, "old"))
    assert answer["decision"] == "block"
    lines = answer["reason"].splitlines()
    assert lines[0] == "Lifetime budget exhausted ($1.00)"
    assert lines[1].startswith("Spent so far: $1.2")
    assert lines[2] == "Raise it with: cmat budget set total 1.8 --user"
    cli_run("budget", "unset", "total")
    cli_run("budget", "set", "total", "1", "--project")  # this project's lifetime
    assert blocked(budget_hook(PROMPT, project, budget_payload(path, "old"))) is None  # /x
    assert "project.total" in cli_run("budget", "show").output.replace("project total",
                                                                       "project.total")


def test_a_run_over_its_agents_limit_has_its_tools_denied(project, tmp_path):
    queue = QueueService(project)
    architect = queue.add("design", agent="architect")["id"]
    coder = queue.add("build", agent="coder")["id"]
    cli_run("budget", "set", "run", "5")
    cli_run("budget", "set", "run", "0.5", "--agent", "architect")
    _, path = session_costing(tmp_path, "arch-run", 0.6)
    answer = budget_hook(PRE_TOOL, project, budget_payload(path, "arch-run", "PreToolUse"),
                         CMAT_CURRENT_TASK_ID=architect)
    reason = denied(answer)
    assert reason.startswith("Run budget (architect, session arch-run) exhausted ($0.50)")
    assert "Spent in this run: $0.60" in reason
    assert "cmat budget set run 0.9 --agent architect" in reason
    # The same spend by another agent is within the default.
    _, other = session_costing(tmp_path, "code-run", 0.6)
    assert denied(budget_hook(PRE_TOOL, project, budget_payload(other, "code-run", "PreToolUse"),
                              CMAT_CURRENT_TASK_ID=coder)) is None
    # The orchestrator learns it from `costs extract`: exit 11.
    result = cli_run("costs", "extract", architect, path, "arch-run", code=11)
    assert "Run budget (architect" in result.stderr


def test_only_the_subagent_over_its_limit_is_stopped(project, tmp_path):
    cli_run("budget", "set", "run-tokens", "1000", "--agent", "Explore")
    builder = TranscriptBuilder(session_id="main-1")
    builder.now = earlier_today(60)
    builder.response(model=OPUS, output=50, blocks=1)
    path = write_session(tmp_path / "transcripts", builder)

    def spend(tokens):
        return lambda b, agent: (setattr(b, "now", earlier_today(30)),
                                 b.response(sidechain=True, agent_id=agent, output=tokens,
                                            blocks=1))

    write_subagent(path.parent, "main-1", "a1b2c3", "Explore", spend(2000))
    write_subagent(path.parent, "main-1", "d4e5f6", "Explore", spend(300))

    def tool_call(agent_id=None):
        payload = budget_payload(path, "main-1", "PreToolUse")
        if agent_id:
            payload.update(agent_id=agent_id, agent_type="Explore")
        return denied(budget_hook(PRE_TOOL, project, payload))

    reason = tool_call("a1b2c3")
    assert reason.startswith("Run token budget (Explore, subagent a1b2c3, input+output) "
                             "exhausted (1,000 tokens)")
    assert tool_call("d4e5f6") is None  # the other Explore run is within its limit
    assert tool_call() is None  # the main thread is not an Explore run


@pytest.mark.parametrize("broken, named", [
    ("[budgets.run]\ndefault = 'five'\n", "budgets.run.default must be"),
    ("[budgets.run_tokens]\nExplore = 1.5\n", "budgets.run_tokens.Explore must be a whole"),
    ("[budgets]\ntotal = -1\n", "budgets.total must be"),
    ("[budgets]\ndaily_tokens = 'lots'\n", "budgets.daily_tokens must be"),
    ("[budgets]\ntoken_count = 'some'\n", "budgets.token_count must be one of"),
    ("[budgets]\nconcurrent_agents = 2.5\n", "budgets.concurrent_agents must be a whole"),
    ("[budgets.project]\nweekly = 3\n", "budgets.project.weekly: project budgets are"),
    ("[alerts.messages]\n80 = '{nope}'\n", "{nope} is not a field"),
    ("[alerts.email]\nhost = 'h'\nfrom = 'a@b.c'\nto = 'nobody'\n", "alerts.email.to must"),
])
def test_a_broken_limit_allows_and_names_the_field(project, tmp_path, broken, named):
    user_config("[budgets]\ndaily = 0\n" + broken if broken.startswith("[budgets.") or
                broken.startswith("[alerts") else broken + "daily = 0\n")
    _, path = session_costing(tmp_path, "s", 5)
    for script, event, words in ((PRE_TOOL, "PreToolUse", b"budget not checked, tool allowed"),
                                 (PROMPT, "UserPromptSubmit",
                                  b"budget not checked, prompt allowed")):
        result = subprocess.run([str(script)],
                                input=json.dumps(budget_payload(path, "s", event)).encode(),
                                capture_output=True, env=child_env(
                                    CLAUDE_PROJECT_DIR=project, CMAT_PYTHON=os.sys.executable))
        assert result.returncode == 0  # allowed, though daily = 0, and said so in Claude Code
        answer = json.loads(result.stdout)
        assert set(answer) == {"systemMessage"} and "NOT checked" in answer["systemMessage"]
        assert words in result.stderr
    assert named in paths.hook_log_file().read_text()


def test_budget_status_and_the_status_line_show_a_runs_usage(project, tmp_path):
    from tests.test_statusline import status_payload, statusline

    cli_run("budget", "set", "run", "2")
    _, path = session_costing(tmp_path, "live-1", 0.5)
    budget_hook(PRE_TOOL, project, budget_payload(path, "live-1", "PreToolUse"))
    status = json.loads(cli_run("budget", "status", "--json", "--no-scan").output)
    run = next(b for b in status["budgets"] if b["scope"] == "run")
    assert run["spent"] == pytest.approx(0.5, abs=1e-3) and run["limit"] == 2 and "live-1" in run["label"]
    assert "Run budget (main, session live-1)" in cli_run("budget", "status", "--no-scan").output
    assert statusline(project, status_payload(path, "live-1"), NO_COLOR="1").endswith("run 25%")
