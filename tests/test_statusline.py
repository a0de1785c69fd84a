"""The status line as Claude Code runs it, and its cache."""

import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from cmat import clock, paths
from cmat.claude import statuscache
from cmat.colour import paint, visible_length
from cmat.request import USAGE_MARKER
from cmat.statusline import build, refresh
from cmat.tasks.queue import QueueService
from tests.helpers import (
    OPUS,
    REPO,
    child_env,
    cli_run,
    earlier_today,
    now_iso,
    session_costing,
    user_config,
)
from tests.transcript_factory import (
    HOSTILE,
    TranscriptBuilder,
    usage_line,
    write_session,
    write_subagent,
)

STATUSLINE = REPO / "hooks" / "cmat-statusline.sh"


@pytest.fixture(autouse=True)
def one_moment(monkeypatch):
    """The line shows the minutes left in a block: a line built and one drawn from the cache
    are compared at one moment, however long a slow machine takes between them."""
    if not os.environ.get("CMAT_NOW"):
        monkeypatch.setenv("CMAT_NOW", str(clock.now()))


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


def test_run_by_hand_at_a_terminal_it_says_what_it_is_for(project):
    import pty

    leader, terminal = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "cmat", "statusline"], stdin=terminal,
                                capture_output=True, timeout=60, env=child_env())
    finally:
        os.close(leader)
        os.close(terminal)
    assert result.returncode == 2 and result.stdout == b""
    assert b"cmat hooks install --statusline" in result.stderr
    assert not paths.hook_log_file().exists()  # a person at a terminal: no error to log


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


def test_ccusages_status_line_options_draw_the_same_line(project, tmp_path):
    """A settings line written for `ccusage statusline --offline ...` works with cmat in its
    place: its options are ignored (an error would blank the bar); -d is --debug."""
    builder, path = session_costing(tmp_path, "s1", 1.0)
    payload = status_payload(path, "s1", builder.expected_cost * 1.5)
    plain = statusline(project, payload)
    assert statusline(project, payload, "--offline", "-B", "emoji", "--refresh-interval", "5",
                      "--no-cache", "--cost-source", "both", "-z", "UTC") == plain
    assert "Claude Code says" in statusline(project, payload, "-O", "-d")
    assert "ccusage's status line" in cli_run("statusline", "--help").output


def test_statusline_never_fails(project):
    result = subprocess.run([str(STATUSLINE)], input=b"not json", capture_output=True,
                            env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_PYTHON=sys.executable))
    assert result.returncode == 0 and result.stdout == b"cmat: cost unavailable\n"


def test_statusline_cache_is_used_while_nothing_changes(project, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    builder, path = session_costing(tmp_path, "s1", 0.5)
    write_subagent(path.parent, "s1", "ag1", "Explore",
                   lambda b, a: (setattr(b, "now", now_iso(-5)),
                                 b.response(sidechain=True, agent_id=a, output=100)))
    raw = json.dumps(status_payload(path, "s1")).encode()
    assert statuscache.answer(raw, False) is None  # no cache yet
    first = refresh(raw, False)
    assert statuscache.answer(raw, False) == first  # drawn from the cache
    write_subagent(path.parent, "s1", "ag2", "Plan",
                   lambda b, a: (setattr(b, "now", now_iso(-4)),
                                 b.response(sidechain=True, agent_id=a, output=100)))
    assert statuscache.answer(raw, False) is None  # a new file: built afresh
    refresh(raw, False)
    assert statuscache.answer(raw, False) is not None
    monkeypatch.setenv("CMAT_NOW", str(clock.now() + statuscache.CACHE_SECONDS + 1))
    assert statuscache.answer(raw, False) is None  # too old: other sessions' spend is due


GROWTH_CONFIG = """timezone = "UTC"
[budgets]
daily = 50
weekly = 60
daily_tokens = 900000
token_count = "all"
[budgets.project]
daily = 40
[budgets.session]
default = 30
[budgets.task]
default = 20
[budgets.app_daily]
claude-code = 45
codex = 1
"""


def growing_session(tmp_path, seconds_ago: float):
    """A session whose last response is cut after its first snapshot, and one subagent."""
    builder = TranscriptBuilder(session_id="s1", cwd="/x")
    builder.now = earlier_today(seconds_ago)
    builder.response(model=OPUS, output=2_000, read=5_000)
    builder.response(model=OPUS, output=3_000, write_5m=1_000, blocks=3)
    path = tmp_path / "transcripts" / "s1.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(builder.lines[:-2]))  # its final snapshots come later
    sub = write_subagent(path.parent, "s1", "ag1", "Explore",
                         lambda b, a: (setattr(b, "now", earlier_today(seconds_ago)),
                                       b.response(sidechain=True, agent_id=a, output=100)))
    return builder, sub, path


def test_a_refresh_after_growth_draws_what_a_full_build_draws(project, tmp_path, monkeypatch):
    """The session's new lines (the rest of a response already counted in part, new
    responses, a sidechain's copy of a counted one, a subagent's) brought into the cached
    figures give every figure a full build gives: the session, today, the task, the 5-hour
    block and each budget's spend."""
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    user_config(GROWTH_CONFIG)
    task = QueueService(project).add("x")["id"]
    QueueService(project).start(task)
    builder, sub, path = growing_session(tmp_path, 20)
    payload = status_payload(path, "s1")
    raw = json.dumps(payload).encode()
    refresh(raw, False)
    builder.now = sub.now = earlier_today(5)
    builder.response(model=OPUS, input=300, output=700, write_1h=3_000, read=9_000)
    builder.response(model=OPUS, output=50, searches=2, speed="fast")
    counted = builder.requests[0]  # a sidechain's copy of it, larger: it never outranks
    builder.response(model=OPUS, output=50_000, blocks=1, sidechain=True,
                     message_id=counted.message_id, billed=False)
    path.write_bytes(b"".join(builder.lines))
    sub.response(sidechain=True, agent_id="ag1", output=400, read=2_000)
    sub.write(path.parent / "s1" / "subagents" / "agent-ag1.jsonl")
    quick = statuscache.up_to_date(payload, clock.now())
    assert quick is not None
    line = statuscache.answer(raw, False)
    full, _ = build(payload, project, clock.now())  # imports the new lines into the ledger
    assert line == refresh(raw, False)
    for figure in ("session", "today", "unpriced", "allowance", "at_work"):
        assert quick[figure] == pytest.approx(full[figure], abs=1e-12), figure
    assert quick["task"][1] == pytest.approx(full["task"][1], abs=1e-12)
    assert quick["block"] == pytest.approx(full["block"], abs=1e-12)
    assert [(b[0], pytest.approx(b[1], abs=1e-12)) for b in quick["budgets"]] == \
        [(b[0], b[1]) for b in full["budgets"]]
    assert {b[0]: b[3] for b in full["budgets"]}["app-daily"] in ("usd", None)
    assert full["session"] == pytest.approx(builder.expected_cost + sub.expected_cost,
                                            abs=1e-12)


def test_with_a_per_run_limit_only_an_unchanged_session_is_drawn_from_the_cache(
        project, tmp_path, monkeypatch):
    """A run's spend is counted by the agent that made each request: new lines are the full
    build's, but a refresh with nothing new is still the cache's."""
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    user_config("[budgets.run]\ndefault = 50\n")
    builder, _, path = growing_session(tmp_path, 20)
    raw = json.dumps(status_payload(path, "s1")).encode()
    built = refresh(raw, False)
    assert statuscache.answer(raw, False) == built
    builder.response(model=OPUS, output=10)
    path.write_bytes(b"".join(builder.lines))
    assert statuscache.answer(raw, False) is None


@pytest.mark.parametrize("growth", ["unpriced model", "another session's line",
                                    "a line from before the latest requests"])
def test_a_growth_the_cache_cannot_take_is_built_in_full(project, tmp_path, monkeypatch,
                                                         growth):
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    builder, _, path = growing_session(tmp_path, 20)
    raw = json.dumps(status_payload(path, "s1")).encode()
    refresh(raw, False)
    if growth == "unpriced model":
        builder.response(model="claude-nova-9", output=10)
    elif growth == "another session's line":
        builder.session_id = "s2"
        builder.response(model=OPUS, output=10)
    else:
        builder.now = now_iso(-3600)  # before the latest requests (or yesterday)
        builder.response(model=OPUS, output=10)
    path.write_bytes(b"".join(builder.lines))
    assert statuscache.answer(raw, False) is None
    assert refresh(raw, False).startswith("Opus")


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


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300)
@given(value=JSON_VALUES, spaced=st.booleans())
def test_the_caches_json_reader_reads_what_the_json_module_reads(value, spaced):
    text = json.dumps(value, indent=1 if spaced else None) + ("\n" if spaced else "")
    assert statuscache.parse_json(text) == json.loads(text)


@settings(max_examples=300)
@given(text=st.text(max_size=40))
def test_the_caches_json_reader_refuses_what_the_json_module_refuses(text):
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            statuscache.parse_json(text)
    else:  # compared as JSON: NaN is not equal to itself
        assert json.dumps(statuscache.parse_json(text)) == json.dumps(expected)


@given(parts=st.lists(st.tuples(st.text(max_size=8), st.sampled_from(
    [None, "green", "bold red", "ok", "exhausted"])), max_size=6),
    junk=st.sampled_from(["", "\033[", "\033[1;", "\033[x", "\033[12"]))
def test_visible_length_leaves_out_colour_codes_alone(parts, junk):
    text = "".join(paint(part, style) for part, style in parts) + junk
    assert visible_length(text) == len(re.sub(r"\033\[[0-9;]*m", "", text))


COSTLY = ("json", "re", "pathlib", "dataclasses", "orjson", "sqlite3", "typing", "msgspec",
          "tomllib", "click", "pydantic")
LOADED = """
import atexit, os, sys
def report():
    names = sorted(m for m in sys.modules if m.split(".")[0] in {costly!r})
    with open({record!r}, "w") as out:
        out.write(" ".join(names))
atexit.register(report)
sys.argv = ["cmat", "statusline"]
from cmat.entry import main
main()
"""


def test_a_refresh_from_the_cache_loads_none_of_the_costly_modules(project, tmp_path,
                                                                   monkeypatch):
    """What makes a refresh cost twice the interpreter's start-up rather than five times:
    with new lines to read, it still loads none of these."""
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    user_config(GROWTH_CONFIG)
    builder, _, path = growing_session(tmp_path, 20)
    payload = json.dumps(status_payload(path, "s1")).encode()
    refresh(payload, False)
    builder.now = earlier_today(5)
    builder.response(model=OPUS, output=70)
    path.write_bytes(b"".join(builder.lines))
    record = tmp_path / "loaded.txt"
    result = subprocess.run([sys.executable, "-P", "-c", LOADED.format(
        costly=COSTLY, record=str(record))], input=payload, capture_output=True, timeout=60,
        env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_NOW=str(clock.now())))
    assert result.returncode == 0 and result.stdout.decode().startswith("Opus")
    assert record.read_text() == ""
    assert statuscache.answer(payload, False) == result.stdout.decode().rstrip("\n")


_GROWTH = st.lists(st.one_of(
    st.tuples(st.just("response"), st.integers(1, 5_000), st.booleans()),
    st.tuples(st.just("snapshot"), st.integers(1, 60_000), st.booleans()),  # of a counted one
    st.tuples(st.just("hostile"), st.sampled_from(sorted(HOSTILE)), st.booleans()),
    st.tuples(st.just("junk"), st.binary(max_size=60), st.booleans()),
), min_size=1, max_size=6)


@settings(max_examples=30,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(growth=_GROWTH, torn=st.booleans())
@example(growth=[("snapshot", 50_000, True)], torn=False)  # a sidechain's larger copy
@example(growth=[("snapshot", 60_000, False), ("response", 10, False)], torn=True)
@example(growth=[("junk", b"{", False), ("response", 10, True)], torn=False)
def test_whatever_a_session_grows_by_the_cache_draws_what_a_full_build_draws_or_nothing(
        project, tmp_path_factory, monkeypatch, growth, torn):
    """The status line reads a session's new lines on its own (not the scan's code): given
    any growth (responses, later snapshots or sidechain copies of counted ones, lines with
    values no request has, bytes that are not JSON, a torn last line) it never raises, and
    whenever it answers from the cache its figures are the ones a full build finds."""
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    monkeypatch.setenv("CMAT_LEDGER", str(tmp_path_factory.mktemp("ledger") / "ledger.db"))
    user_config(GROWTH_CONFIG)
    builder, _, path = growing_session(tmp_path_factory.mktemp("session"), 20)
    payload = status_payload(path, "s1")
    raw = json.dumps(payload).encode()
    refresh(raw, False)
    builder.now = earlier_today(5)
    for kind, value, flag in growth:
        if kind == "response":
            builder.response(model=OPUS, output=value, sidechain=flag, billed=not flag)
        elif kind == "snapshot":
            counted = builder.requests[0]
            builder.response(model=OPUS, output=value, blocks=1, sidechain=flag,
                             message_id=counted.message_id, billed=False)
        elif kind == "hostile":
            line = usage_line(f"msg_hostile_{len(builder.lines)}", **HOSTILE[value])
            line.update(sessionId="s1", timestamp=line["timestamp"] if value.startswith(
                ("timestamp", "no timestamp")) else builder.now)
            builder.lines.append(json.dumps(line).encode() + b"\n")
        else:
            builder.lines.append(value.replace(b"\n", b" ") + USAGE_MARKER + b"\n")
    data = b"".join(builder.lines)
    if torn:
        data += json.dumps(usage_line("msg_torn", sessionId="s1"))[:40].encode()
    path.write_bytes(data)
    line = statuscache.answer(raw, False)  # never raises
    try:
        quick = statuscache.up_to_date(payload, clock.now())
    except ValueError:  # a line no request has: answer() leaves it to the full build
        quick = None
    full, _ = build(payload, project, clock.now())
    event("answered from the cache" if quick is not None else "built in full")
    if quick is None:
        assert line is None
        return
    for figure in ("session", "today", "unpriced", "allowance", "at_work"):
        assert quick[figure] == pytest.approx(full[figure], abs=1e-9), figure
    assert quick["block"] == pytest.approx(full["block"], abs=1e-9)
    assert [(b[0], pytest.approx(b[1], abs=1e-9)) for b in quick["budgets"]] == \
        [(b[0], b[1]) for b in full["budgets"]]
