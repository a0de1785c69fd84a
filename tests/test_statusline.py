"""The status line as Claude Code runs it, and its cache."""

import json
import re
import subprocess
import sys

from cmat import clock
from cmat.statusline import cached_line
from cmat.tasks.queue import QueueService
from tests.helpers import REPO, child_env, cli_run, now_iso, session_costing, user_config
from tests.transcript_factory import TranscriptBuilder, write_session, write_subagent

STATUSLINE = REPO / "hooks" / "cmat-statusline.sh"


def statusline(project, payload, *args, **env):
    result = subprocess.run([str(STATUSLINE), *args], input=json.dumps(payload).encode(),
                            capture_output=True, timeout=60,
                            env=child_env(CLAUDE_PROJECT_DIR=project,
                                          CMAT_PYTHON=sys.executable, **env))
    assert result.returncode == 0 and result.stderr == b""
    return result.stdout.decode().rstrip("\n")


def status_payload(path, session_id, claude_cost=None):
    data = {"session_id": session_id, "transcript_path": str(path), "cwd": "/x",
            "model": {"id": "claude-opus-4-6", "display_name": "Opus"},
            "workspace": {"current_dir": "/x"}}
    if claude_cost is not None:
        data["cost"] = {"total_cost_usd": claude_cost}
    return data


def test_statusline_with_no_task_and_no_budget(project, tmp_path):
    builder, path = session_costing(tmp_path, "s1", 0.25)
    line = statusline(project, status_payload(path, "s1"))
    cost = f"${builder.expected_cost:,.2f}"
    assert re.fullmatch(rf"Opus · \{cost} session · \{cost} today · 5h \{cost} [1-5]h\d\dm", line)


def test_statusline_with_a_task(project, tmp_path):
    task = QueueService(project).add("x")["id"]
    QueueService(project).start(task)
    builder, path = session_costing(tmp_path, "s1", 0.5)
    line = statusline(project, status_payload(path, "s1"))
    assert f"{task} ${builder.expected_cost:,.2f}" in line


def test_statusline_over_budget_is_coloured_unless_no_color(project, tmp_path):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "s1", 1.2)
    line = statusline(project, status_payload(path, "s1"))
    assert "\033[1;31mdaily 120%\033[0m" in line
    plain = statusline(project, status_payload(path, "s1"), NO_COLOR="1")
    assert "\033[" not in plain and plain.endswith("daily 120%")


def test_statusline_at_the_warning_threshold(project, tmp_path):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "s1", 0.85)
    assert "\033[33mdaily 85%" in statusline(project, status_payload(path, "s1"))


def test_statusline_marks_an_unpriced_model(project, tmp_path):
    builder = TranscriptBuilder(session_id="s1")
    builder.now = now_iso(-10)
    builder.response(model="claude-nova-9")
    path = write_session(tmp_path, builder)
    assert "· unpriced session ·" in statusline(project, status_payload(path, "s1"))


def test_statusline_with_an_empty_history(project, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert statusline(project, status_payload(path, "none")) == \
        "Opus · $0.00 session · $0.00 today"


def test_statusline_debug_names_a_disagreement_with_claude_code(project, tmp_path):
    builder, path = session_costing(tmp_path, "s1", 1.0)
    agree = statusline(project, status_payload(path, "s1", builder.expected_cost * 1.01),
                       "--debug")
    assert "Claude Code says" not in agree
    differ = statusline(project, status_payload(path, "s1", builder.expected_cost * 1.5),
                        "--debug")
    assert "Claude Code says $1.50 (+50% vs cmat)" in differ


def test_statusline_never_fails(project):
    result = subprocess.run([str(STATUSLINE)], input=b"not json", capture_output=True,
                            env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_PYTHON=sys.executable))
    assert result.returncode == 0 and result.stdout == b"cmat: cost unavailable\n"


def test_statusline_cache_is_used_while_nothing_changes(project, tmp_path):
    builder, path = session_costing(tmp_path, "s1", 0.5)
    write_subagent(path.parent, "s1", "ag1", "Explore",
                   lambda b, a: (setattr(b, "now", now_iso(-5)),
                                 b.response(sidechain=True, agent_id=a, output=100)))
    payload = status_payload(path, "s1")
    first = cached_line(payload, project, colour=False)
    calls = []

    def build(*args):
        calls.append(args)
        return "fresh", 0.0

    assert cached_line(payload, project, False, build) == first  # from the cache
    assert calls == []
    builder.response(output=10)
    builder.write(path)  # the session grew: built afresh
    assert cached_line(payload, project, False, build) == ("fresh", 0.0)
    assert len(calls) == 1
    builder.response(output=10)
    builder.write(path)
    cached_line(payload, project, False, build, cache_seconds=0)  # cached, already expired
    cached_line(payload, project, False, build)
    assert len(calls) == 3  # an expired entry is rebuilt


def official_payload(path, session_id, five=37.4, seven=12.0):
    now = clock.now()
    return dict(status_payload(path, session_id),
                model={"id": "claude-opus-4-6", "display_name": "Opus 4.6 (1M context)"},
                context_window={"used_percentage": 42, "context_window_size": 1_000_000},
                rate_limits={"five_hour": {"used_percentage": five, "resets_at": now + 7800},
                             "seven_day": {"used_percentage": seven, "resets_at": now + 300000}})


def test_claude_codes_own_limits_are_shown_and_remembered(project, tmp_path):
    _, path = session_costing(tmp_path, "s1", 0.5)
    line = statusline(project, official_payload(path, "s1"), NO_COLOR="1")
    assert line.startswith("Opus 4.6 · ctx 42% · $0.50 session · $0.50 today · 5h 37% 2h")
    shown = json.loads(cli_run("limits", "--json", "--no-scan").output)["official"]
    assert shown["five_hour"]["used_percent"] == 37.4
    assert shown["seven_day"]["used_percent"] == 12.0
    assert "5-hour (Claude Code):   37% used, resets in 2h" in \
        cli_run("limits", "--no-scan").output
    assert "5h 81%" in statusline(project, official_payload(path, "s1", five=81), NO_COLOR="1")


def test_without_official_figures_the_plan_estimate_is_marked_as_one(project, tmp_path):
    user_config('plan = "pro"\n')
    builder, path = session_costing(tmp_path, "s1", 0.19)  # 7,600 output + 10 input tokens
    line = statusline(project, status_payload(path, "s1"), NO_COLOR="1")
    assert re.search(r" · 5h ~40% [1-5]h\d\dm$", line)
    estimate = json.loads(cli_run("limits", "--json", "--no-scan").output)["estimate"]
    assert estimate["allowance_tokens"] == 19_000 and "community estimate" in estimate["basis"]
    assert round(estimate["block"]["used_percent"]) == 40


def test_the_line_fits_80_columns_leaving_out_the_least_important_first(project, tmp_path):
    user_config("[budgets]\ndaily = 100\n")
    task = QueueService(project).add("x")["id"]
    QueueService(project).start(task)
    _, path = session_costing(tmp_path, "s1", 12345.5)
    line = statusline(project, official_payload(path, "s1"), NO_COLOR="1")
    assert len(line) <= 80
    assert "$12,345.50 session" in line and "5h 37%" in line and "daily" in line
    assert task not in line  # the task went first


def test_a_bad_plan_is_refused_with_the_field_named(project):
    user_config('plan = "gold"\n')
    result = cli_run("limits", "--no-scan", code=10)
    assert "plan must be one of pro, max5, max20, custom" in result.stderr


def test_with_only_the_weekly_figure_the_5h_part_is_the_estimate(project, tmp_path):
    user_config('plan = "pro"\n')
    _, path = session_costing(tmp_path, "s1", 0.19)
    payload = official_payload(path, "s1", seven=55.0)
    del payload["rate_limits"]["five_hour"]
    line = statusline(project, payload, NO_COLOR="1")
    assert re.search(r" · 5h ~40% [1-5]h\d\dm$", line)
    shown = json.loads(cli_run("limits", "--json", "--no-scan").output)["official"]
    assert shown["five_hour"] is None and shown["seven_day"]["used_percent"] == 55.0
