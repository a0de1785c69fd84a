"""The budget check answered from the headroom cache: it allows only what the full check
would allow, and leaves every refusal and alert to the full check."""

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmat import clock
from cmat.catalog import ModelService
from cmat.claude import headroom
from cmat.ledger import Ledger
from cmat.pricing import record_cost
from cmat.transcripts.decode import decode_line
from cmat.transcripts.files import SourceFile
from tests.helpers import (
    OPUS,
    PRE_TOOL,
    PROMPT,
    REPO,
    budget_hook,
    budget_payload,
    cli_run,
    earlier_today,
    user_config,
)
from tests.transcript_factory import (
    TranscriptBuilder,
    response_lines,
    write_session,
    write_subagent,
)


def requests_in_ledger() -> int:
    with Ledger() as ledger:
        return ledger.query("SELECT count(*) FROM requests")[0][0]


def spend(builder: TranscriptBuilder, usd: float) -> None:
    """A response costing `usd` (Opus 4.6 output at $25 per million)."""
    builder.now = earlier_today(30)
    builder.response(model=OPUS, output=int(usd * 40_000), blocks=1)


@pytest.fixture
def session(tmp_path, project):
    """A running session that spent $1 today, under a daily budget of $10."""
    user_config("[budgets]\ndaily = 10\n")
    builder = TranscriptBuilder(session_id="running", cwd=str(project))
    spend(builder, 1.0)
    path = write_session(tmp_path / "projects" / "-p", builder)
    return builder, path


def check(project, path, event="PreToolUse", **env):
    script = PRE_TOOL if event == "PreToolUse" else PROMPT
    return budget_hook(script, project, budget_payload(path, "running", event), **env)


def test_far_from_every_limit_a_check_reads_nothing_but_the_cache(session, project, tmp_path):
    builder, path = session
    assert check(project, path) is None  # the full check: imports the session, caches
    assert requests_in_ledger() == 1
    spend(builder, 0.5)
    write_session(path.parent, builder)
    assert check(project, path) is None
    assert check(project, path, "UserPromptSubmit") is None
    assert requests_in_ledger() == 1  # answered from the cache: nothing imported


def test_crossing_an_alert_threshold_or_the_limit_is_the_full_checks(session, project):
    builder, path = session
    check(project, path)
    spend(builder, 4.5)  # $5.50 of $10: past the 50 % threshold
    write_session(path.parent, builder)
    answer = check(project, path)
    assert "Daily budget at 5" in answer["systemMessage"]  # the alert, not a silent pass
    spend(builder, 5.0)
    write_session(path.parent, builder)
    denied = check(project, path)
    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_another_sessions_spend_reaches_the_check_through_the_ledger(session, project,
                                                                     tmp_path, monkeypatch):
    builder, path = session
    check(project, path)
    other = TranscriptBuilder(session_id="elsewhere", cwd=str(project))
    spend(other, 9.5)  # another session, recorded by its own hook or a scan
    write_session(tmp_path / "projects" / "-q", other)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path))
    cli_run("scan", "-q")
    denied = check(project, path)
    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_a_ledger_rebuilt_or_restored_since_is_checked_in_full(session, project, tmp_path,
                                                               monkeypatch):
    from cmat import paths

    builder, path = session
    check(project, path)
    with Ledger() as ledger, ledger.transaction():
        for _ in range(50):  # a long-used ledger: its version is far past a new one's
            ledger.bump_version()
    headroom.forget("running")
    check(project, path)  # a full check: the cache now names that version
    for name in ("", "-wal", "-shm"):  # the ledger made again, with more history in it
        Path(str(paths.ledger_file()) + name).unlink(missing_ok=True)
    other = TranscriptBuilder(session_id="elsewhere", cwd=str(project))
    spend(other, 9.5)
    write_session(tmp_path / "projects" / "-q", other)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path))
    cli_run("scan", "-q")
    denied = check(project, path)
    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_a_changed_config_is_checked_in_full(session, project):
    builder, path = session
    check(project, path)
    user_config("[budgets]\ndaily = 0.5\n")
    denied = check(project, path)
    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_under_run_limits_each_run_has_a_cache_of_its_own(session, project):
    """A run limit: the main thread and each subagent's run have a limit of their own, and so
    a cache of their own, found by the payload's top-level `agent_id`. A run over its limit is
    denied although another run's cache would allow; SessionEnd drops every run's cache."""
    builder, path = session
    user_config("[budgets]\ndaily = 10\n[budgets.run_tokens]\nExplore = 1000\n")
    for agent_id, tokens in (("a1b2c3", 2000), ("d4e5f6", 300)):
        write_subagent(path.parent, "running", agent_id, "Explore",
                       lambda b, agent, tokens=tokens: b.response(
                           sidechain=True, agent_id=agent, output=tokens, blocks=1))

    def call(agent_id=None):
        payload = budget_payload(path, "running", "PreToolUse")
        if agent_id:
            payload.update(agent_id=agent_id, agent_type="Explore")
        answer = budget_hook(PRE_TOOL, project, payload) or {}
        return answer.get("hookSpecificOutput", {}).get("permissionDecision"), \
            requests_in_ledger()

    assert call() == (None, 3)  # full: imports the session and its subagents, caches
    spend(builder, 0.5)
    write_session(path.parent, builder)
    assert call() == (None, 3)  # the main thread's cache: nothing imported
    assert call("d4e5f6") == (None, 4)  # a run of its own: full, then cached
    spend(builder, 0.001)  # 40 tokens: within the 190 left before its 50 % alert
    write_session(path.parent, builder)
    assert call("d4e5f6") == (None, 4)
    assert call("a1b2c3") == ("deny", 5)  # full, although the others' caches would allow
    files = {headroom.cache_file("running"), headroom.cache_file("running", "d4e5f6")}
    assert all(map(os.path.exists, files))
    budget_hook(REPO / "hooks" / "on-session-end-cost.sh", project,
                {"session_id": "running", "transcript_path": str(path), "cwd": "/x",
                 "hook_event_name": "SessionEnd", "reason": "other"})
    assert not any(map(os.path.exists, files))


def test_the_calling_subagent_is_the_payloads_own_agent_id():
    main = json.dumps({"session_id": "s", "tool_input": {"note": '"agent_id": "x"'}})
    assert headroom.calling_agent(main.encode()) is None
    nested = json.dumps({"session_id": "s", "tool_input": {"agent_id": "forged"}})
    assert headroom.calling_agent(nested.encode()) is None
    own = json.dumps({"tool_input": {"agent_id": "forged"}, "agent_id": "a1", "x": 1})
    assert headroom.calling_agent(own.encode()) == "a1"
    with pytest.raises(ValueError):
        headroom.calling_agent(b'{"agent_id": 7}')


def test_an_override_in_the_environment_keeps_every_check_full(session, project):
    builder, path = session
    check(project, path, CMAT_OVERRIDE_LIMIT="testing")
    assert not os.path.exists(headroom.cache_file("running"))


def test_under_a_concurrency_limit_checks_are_answered_for_a_minute(session, project):
    """A concurrency limit: the full check records the session as at work. The checks of the
    next minute, tool calls and prompts, are answered from the cache (that record stays far
    inside `active_minutes`, and a session at work is never held); then the check is full
    again and records the session anew. SessionEnd drops the cache."""
    builder, path = session
    user_config("[budgets]\nconcurrent_agents = 2\n[budgets.session]\ndefault = 10\n")
    start = clock.now()

    def at(seconds, event="PreToolUse"):
        spend(builder, 0.1)
        write_session(path.parent, builder)
        assert check(project, path, event, CMAT_NOW=str(start + seconds)) is None
        with Ledger() as ledger:
            return requests_in_ledger(), ledger.live_session("running")[1] - start

    assert at(0) == (2, 0)  # full: imported, recorded at work
    assert at(30) == (2, 0)  # from the cache
    assert at(40, "UserPromptSubmit") == (2, 0)
    assert at(61) == (5, 61)  # a minute after the last full check: full
    assert at(100, "UserPromptSubmit") == (5, 61)
    budget_hook(REPO / "hooks" / "on-session-end-cost.sh", project,
                {"session_id": "running", "transcript_path": str(path), "cwd": "/x",
                 "hook_event_name": "SessionEnd", "reason": "other"})
    assert not os.path.exists(headroom.cache_file("running"))


def test_the_payloads_leading_fields_are_read_without_a_json_parser():
    raw = json.dumps({"session_id": "s1", "transcript_path": "/t/a b.jsonl", "cwd": "/w",
                      "tool_input": {"session_id": "forged"}}).encode()
    assert headroom.leading_fields(raw) == {"session_id": "s1",
                                            "transcript_path": "/t/a b.jsonl", "cwd": "/w"}
    compact = b'{"session_id":"s1","transcript_path":"/t/x.jsonl","tool_input":{}}'
    assert headroom.leading_fields(compact)["transcript_path"] == "/t/x.jsonl"
    escaped = b'{"session_id":"s1","transcript_path":"/t/\\"x.jsonl"}'
    assert headroom.leading_fields(escaped) == {"session_id": "s1"}  # the full check reads it
    assert headroom.leading_fields(b'[{"session_id":"s1"}]') == {}


MODELS = ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001",
          "claude-sonnet-4-6", "claude-opus-4-8", "claude-mythos-5-2", "gpt-5.5")


@settings(max_examples=200)
@given(model=st.sampled_from(MODELS), input=st.integers(0, 400_000),
       output=st.integers(0, 64_000), write_5m=st.integers(0, 300_000),
       write_1h=st.integers(0, 300_000), read=st.integers(0, 900_000),
       searches=st.integers(0, 20), speed=st.sampled_from([None, "fast", "standard"]),
       geo=st.sampled_from([None, "us", "global"]), blocks=st.integers(1, 3))
def test_the_bound_of_appended_lines_is_never_below_their_price(model, input, output, write_5m,
                                                                write_1h, read, searches,
                                                                speed, geo, blocks):
    models = ModelService(None)
    prices = headroom.price_bounds(models.catalog)
    lines = response_lines(lambda: {"timestamp": "2026-11-20T10:00:00.000Z",
                                    "sessionId": "s", "uuid": "u"},
                           model=model, message_id="m1", request_id="r1", input=input,
                           output=output, write_5m=write_5m, write_1h=write_1h, read=read,
                           searches=searches, blocks=blocks, speed=speed, geo=geo)
    data = b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
    bound, io_tokens, all_tokens = headroom.appended_bound(data, prices)
    record = decode_line(json.dumps(lines[-1]).encode(), SourceFile(Path("t.jsonl")), 0)
    cost = record_cost(record, models.get_by_pattern(record.model)) or 0.0
    assert bound >= cost - 1e-12
    assert io_tokens >= record.input_tokens + record.output_tokens
    assert all_tokens >= record.total_tokens


def test_a_forged_usage_in_a_tools_input_can_only_raise_the_bound():
    prices = headroom.price_bounds(ModelService(None).catalog)
    real = (b'{"type":"assistant","message":{"content":[{"type":"tool_use","input":'
            b'{"usage":{"output_tokens":1,"input_tokens":0}}}],'
            b'"usage":{"input_tokens":10,"output_tokens":50000}}}\n')
    usd, io_tokens, _ = headroom.appended_bound(real, prices)
    assert io_tokens == 50_010
    assert usd >= 50_000 * prices["normal"][1] / 1e6
    torn = real[:-1]  # no newline yet: left for the next read, as the full reader leaves it
    assert headroom.appended_bound(torn, prices) == (0.0, 0, 0)


PAYLOAD_VALUES = st.one_of(st.text(max_size=12), st.integers(), st.none(), st.booleans(),
                           st.lists(st.text(max_size=4), max_size=3),
                           st.dictionaries(st.text(max_size=4), st.text(max_size=4),
                                           max_size=3))


@settings(max_examples=300)
@given(fields=st.dictionaries(st.text(max_size=12), PAYLOAD_VALUES, max_size=8),
       compact=st.booleans())
def test_leading_fields_of_any_payload_are_its_own_values_or_nothing(fields, compact):
    raw = json.dumps(fields, separators=(",", ":") if compact else None).encode()
    found = headroom.leading_fields(raw)
    for key, value in found.items():
        assert fields[key] == value  # never a value the payload does not give that key


@settings(max_examples=300)
@given(raw=st.binary(max_size=300))
def test_any_bytes_are_read_without_a_crash(raw):
    assert all(isinstance(v, str) for v in headroom.leading_fields(raw).values())
    try:  # a payload that is no JSON, or names no run by a plain string, is a full check
        agent = headroom.calling_agent(raw + b'"agent_id"')
    except ValueError:
        agent = None
    assert agent is None or isinstance(agent, str) and agent
    prices = {"normal": (1.0, 2.0, 3.0, 4.0), "worst": (5.0, 6.0, 7.0, 8.0), "search": 0.01,
              "long_at": 200_000}
    usd, io_tokens, all_tokens = headroom.appended_bound(raw + b'"output_tokens":' + raw + b"\n",
                                                         prices)
    assert usd >= 0 and 0 <= io_tokens <= all_tokens


def test_json_that_is_not_json_is_a_value_error_before_the_json_module_is_imported():
    """The C scanner reports a malformed string through json.decoder's error class; before
    `json` is imported (as in a hook) it raised SystemError, which a caller expecting
    ValueError let through."""
    import subprocess
    import sys

    from tests.helpers import child_env

    probe = ("import sys\nfrom cmat.claude.headroom import parse_json\n"
             "assert 'json.decoder' not in sys.modules\n"
             "for text in ['{\"a\": \"x', '{\"a\"', '[1,', '{\"a\": tru']:\n"
             "    try:\n        parse_json(text)\n    except ValueError:\n        continue\n"
             "    raise SystemExit(f'parsed {text!r}')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=child_env(), timeout=60)
    assert done.returncode == 0, done.stderr
