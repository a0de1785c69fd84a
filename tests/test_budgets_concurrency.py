"""The concurrency limit through the real hook scripts: three sessions, one of which crashes."""

import json
import os

from cmat import clock
from cmat.ledger import Ledger
from tests.helpers import (
    PRE_TOOL,
    PROMPT,
    REPO,
    budget_hook,
    budget_payload,
    cli_run,
    session_costing,
    user_config,
)

SESSION_END = REPO / "hooks" / "on-session-end-cost.sh"


def prompt(project, path, session_id):
    answer = budget_hook(PROMPT, project, budget_payload(path, session_id)) or {}
    return answer.get("reason") if answer.get("decision") == "block" else None


def test_a_third_session_waits_for_a_slot_and_a_crashed_one_frees_its_own(project, tmp_path):
    user_config("[budgets]\nconcurrent_agents = 2\nactive_minutes = 10\n")
    paths = {name: session_costing(tmp_path, name, 0.01)[1]
             for name in ("alpha-1", "bravo-2", "charlie-3")}
    assert prompt(project, paths["alpha-1"], "alpha-1") is None
    assert prompt(project, paths["bravo-2"], "bravo-2") is None
    assert cli_run("budget", "check", "--start", "--no-scan", code=11).output.startswith(
        "Concurrent agent limit reached: 2 sessions are at work")
    held = prompt(project, paths["charlie-3"], "charlie-3")
    assert held.startswith("Concurrent agent limit reached: 2 sessions are at work, the "
                           "limit is 2 (")
    assert "alpha-1" in held and "bravo-2" in held and "charlie-3" not in held.split("(")[1]
    assert "cmat budget set concurrent-agents 3" in held
    # A session already at work is never held, and its tool calls always run.
    assert prompt(project, paths["alpha-1"], "alpha-1") is None
    assert budget_hook(PRE_TOOL, project, budget_payload(paths["alpha-1"], "alpha-1",
                                                         "PreToolUse")) is None
    # bravo crashes: no SessionEnd, no hook call, its transcript stops growing.
    long_ago = clock.now() - 11 * 60
    with Ledger() as ledger, ledger.transaction():
        ledger.db.execute("UPDATE live_sessions SET last_seen = ? WHERE session_id = ?",
                          (long_ago, "bravo-2"))
    os.utime(paths["bravo-2"], (long_ago, long_ago))
    assert prompt(project, paths["charlie-3"], "charlie-3") is None  # bravo's slot is free
    status = json.loads(cli_run("budget", "status", "--json", "--no-scan").output)
    assert status["concurrency"]["running"] == 2 and status["concurrency"]["full"]
    assert {s["session_id"] for s in status["concurrency"]["sessions"]} == {"alpha-1",
                                                                           "charlie-3"}
    # alpha ends: SessionEnd frees its slot at once.
    ended = {"session_id": "alpha-1", "transcript_path": str(paths["alpha-1"]), "cwd": "/x",
             "hook_event_name": "SessionEnd", "reason": "other"}
    budget_hook(SESSION_END, project, ended)
    assert cli_run("budget", "check", "--start", "--no-scan").output.startswith("ok")
    assert prompt(project, paths["bravo-2"], "bravo-2") is None  # back, and a slot is free
    assert "Concurrent agent sessions" in cli_run("budget", "status", "--no-scan").output


def test_a_session_still_writing_keeps_its_slot_without_hook_calls(project, tmp_path):
    user_config("[budgets]\nconcurrent_agents = 1\nactive_minutes = 10\n")
    _, first = session_costing(tmp_path, "first", 0.01)
    _, second = session_costing(tmp_path, "second", 0.01)
    assert prompt(project, first, "first") is None
    with Ledger() as ledger, ledger.transaction():  # no hook call for a long while...
        ledger.db.execute("UPDATE live_sessions SET last_seen = ?", (clock.now() - 3600,))
    os.utime(first, (clock.now(), clock.now()))  # ...but its transcript grew just now
    assert prompt(project, second, "second").startswith(
        "Concurrent agent limit reached: 1 session is at work, the limit is 1 (")
    cli_run("budget", "override", "--for", "1h", "--scope", "concurrent-agents")
    assert prompt(project, second, "second") is None


def test_a_broken_concurrency_limit_allows(project, tmp_path):
    user_config("[budgets]\nconcurrent_agents = -1\n")
    _, path = session_costing(tmp_path, "s", 0.01)
    assert prompt(project, path, "s") is None


def test_the_status_line_shows_the_sessions_at_work(project, tmp_path):
    from tests.test_statusline import status_payload, statusline

    user_config("[budgets]\nconcurrent_agents = 3\n")
    _, path = session_costing(tmp_path, "one", 0.01)
    assert prompt(project, path, "one") is None
    assert "· agents 1/3" in statusline(project, status_payload(path, "one"), NO_COLOR="1")
