"""Other coding agents beside Claude Code: their logs read into the same ledger, priced from
their own token counts (OpenAI's inclusive counts taken apart, never counted twice), and seen
by every report by app and provider."""

import hashlib
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cmat.apps import codex, gemini, opencode
from cmat.request import InvalidLine, check_request, check_time, timestamp_seconds
from cmat.untrusted import Unreadable
from cmat.usage import APPS
from tests.helpers import (
    PRE_TOOL,
    budget_hook,
    budget_payload,
    cli_run,
    request_indexes,
    user_config,
    wait_for_indexes_built,
)
from tests.transcript_factory import (
    CodexRollout,
    OpenCodeStore,
    TranscriptBuilder,
    mixed_history,
    write_session,
)


@pytest.fixture
def codex_home(tmp_path, monkeypatch):
    home = tmp_path / "codex"
    monkeypatch.setenv("CODEX_HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    return home


def rollout_path(home, rollout: CodexRollout, day: str = "2026/11/20"):
    return home / "sessions" / day / f"rollout-2026-11-20T10-00-00-{rollout.session_id}.jsonl"


def test_inclusive_counts_are_taken_apart_and_a_repeated_event_is_one_request(codex_home):
    rollout = CodexRollout()
    rollout.turn("gpt-5-codex")
    # input 10,000 of which 6,000 cached and 1,000 written; output 800 of which 300 reasoning
    rollout.request(10_000, cached=6_000, writes=1_000, output=800, reasoning=300, repeat=True)
    rollout.turn("gpt-5.1-codex-max")
    rollout.request(20_000, cached=15_000, output=1_200, reasoning=1_000)
    path = rollout.write(rollout_path(codex_home, rollout))
    records, skipped = codex.read(path)
    assert skipped == 0
    assert [(r.model, r.input_tokens, r.cache_read_tokens, r.cache_creation_tokens,
             r.output_tokens) for r in records] == [
        ("gpt-5-codex", 3_000, 6_000, 1_000, 800),  # reasoning is inside the 800
        ("gpt-5.1-codex-max", 5_000, 15_000, 0, 1_200)]
    assert {r.source for r in records} == {"codex:openai"}
    assert {r.session_id for r in records} == {rollout.session_id}
    # By hand: (3,000 x 1.25 + 6,000 x 0.125 + 1,000 x 1.25 + 800 x 10) / 1e6, then
    # (5,000 x 1.25 + 15,000 x 0.125 + 1,200 x 10) / 1e6.
    assert rollout.expected == pytest.approx(0.01375 + 0.020125)
    report = json.loads(cli_run("report", "daily", "--json", "--by", "app,provider").output)
    assert report["total"]["requests"] == 2
    assert report["total"]["total_usd"] == pytest.approx(rollout.expected, abs=1e-12)
    assert {(row["app"], row["provider"]) for row in report["rows"]} == {("codex", "openai")}


def test_blocks_of_a_codex_history_say_blocks_are_claude_codes(codex_home):
    """5-hour blocks are Claude's plan windows: a history of other agents alone has none,
    and says why rather than "no usage"."""
    rollout = CodexRollout()
    rollout.turn("gpt-5-codex")
    rollout.request(10_000, output=800)
    rollout.write(rollout_path(codex_home, rollout))
    shown = cli_run("blocks").output
    assert "No Claude Code usage recorded" in shown and "--by app" in shown
    assert json.loads(cli_run("blocks", "--json", "--no-scan").output)["blocks"] == []


REAL_ROLLOUTS = Path(__file__).parent / "fixtures" / "agents" / "codex"


def test_real_codex_rollouts_count_each_request_once_and_add_up_to_their_final_totals(
        codex_home):
    """Rollouts of real sessions (tests/fixtures/agents/SOURCES.md): every token_count event
    written twice, as Codex does. Their requests must add up to each session's own final
    cumulative totals, and be priced from them by hand."""
    import shutil

    folder = codex_home / "sessions" / "2026" / "02" / "23"
    folder.mkdir(parents=True)
    finals = []
    for rollout in sorted(REAL_ROLLOUTS.glob("*.jsonl")):
        shutil.copy(rollout, folder)
        counts = [line["payload"]["info"]["total_token_usage"]
                  for line in map(json.loads, rollout.read_text().splitlines())
                  if line["payload"].get("type") == "token_count" and line["payload"]["info"]]
        finals.append(counts[-1])
    assert [f["input_tokens"] for f in finals] == [34_469, 298_373]  # the files, unchanged
    report = json.loads(cli_run("report", "daily", "--json", "--by", "app,model").output)
    total = report["total"]
    assert total["requests"] == 1 + 6
    inputs = sum(f["input_tokens"] for f in finals)
    cached = sum(f["cached_input_tokens"] for f in finals)
    output = sum(f["output_tokens"] for f in finals)  # reasoning is inside it
    assert total["tokens"]["input"] == inputs - cached
    assert total["tokens"]["cache_read"] == cached
    assert total["tokens"]["output"] == output
    # gpt-5.3-codex: $1.75 input, $0.175 cached input, $14 output per million.
    assert total["total_usd"] == pytest.approx(
        ((inputs - cached) * 1.75 + cached * 0.175 + output * 14) / 1e6, abs=1e-12)
    assert {(r["app"], r["model"]) for r in report["rows"]} == {("codex", "gpt-5.3-codex")}


def test_older_rollouts_without_the_requests_own_counts_are_priced_from_the_totals(codex_home):
    rollout = CodexRollout()
    rollout.turn("gpt-5-codex")
    rollout.request(1_000, cached=400, output=50, with_last=False)
    rollout.request(3_000, cached=2_500, output=70, with_last=False, repeat=True)
    path = rollout.write(rollout_path(codex_home, rollout))
    records, _ = codex.read(path)
    assert [(r.input_tokens, r.cache_read_tokens, r.output_tokens) for r in records] == [
        (600, 400, 50), (500, 2_500, 70)]


def test_a_growing_or_rewritten_rollout_never_counts_a_request_twice(codex_home):
    rollout = CodexRollout()
    rollout.turn("gpt-5-codex")
    rollout.request(1_000, cached=200, output=10)
    path = rollout_path(codex_home, rollout)
    rollout.write(path, extra=b'{"timestamp":"2026-11-20T10:05:00.000Z","type":"event_m')
    first = json.loads(cli_run("report", "daily", "--json").output)["total"]
    assert first["requests"] == 1  # the torn last line waits for the rest of it
    rollout.request(2_000, cached=1_500, output=30)
    rollout.write(path)  # Codex appended, and the torn line is whole
    cli_run("scan", "-q")
    rollout.write(path)  # rewritten with the same content: read again, nothing added
    total = json.loads(cli_run("report", "daily", "--json").output)["total"]
    assert total["requests"] == 2
    assert total["total_usd"] == pytest.approx(rollout.expected, abs=1e-12)


def test_a_grown_rollout_is_read_from_where_the_last_scan_stopped(codex_home):
    """A rollout grows by a line per event: a scan reads what was appended since the last
    one, from what that read knew there (the session, the model, the last totals, kept in
    the ledger). One rewritten before that point, or whose note in the ledger is not one
    cmat wrote, is read whole again. Nothing is counted twice either way."""
    from cmat.ledger import Ledger

    def scan() -> int:
        return json.loads(cli_run("scan", "--json").output)["bytes_read"]

    def total() -> dict:
        return json.loads(cli_run("report", "daily", "--json", "--no-scan").output)["total"]

    rollout = CodexRollout()
    rollout.turn("gpt-5-codex")
    rollout.request(1_000, cached=200, output=10)
    path = rollout.write(rollout_path(codex_home, rollout))
    assert scan() == path.stat().st_size
    size = path.stat().st_size
    rollout.request(2_000, cached=1_500, output=30, repeat=True)  # the event written twice
    rollout.turn("gpt-5.1-codex-max")
    rollout.request(3_000, cached=2_500, output=50, with_last=False)  # from the totals
    rollout.write(path, extra=b'{"timestamp":"2026-11-20T11:00:00.000Z","type":"event_m')
    assert scan() == path.stat().st_size - size  # the appended lines alone
    assert total()["requests"] == 3
    assert total()["total_usd"] == pytest.approx(rollout.expected, abs=1e-12)
    rollout.request(4_000, cached=3_000, output=70)
    rollout.write(path)  # the torn line is whole: read from its start
    assert scan() == len(_line(rollout)) and total()["requests"] == 4
    assert total()["total_usd"] == pytest.approx(rollout.expected, abs=1e-12)

    # Rewritten in place before where the last read stopped: read whole again.
    first = path.read_bytes()
    path.write_bytes(first.replace(b'"output_tokens":10', b'"output_tokens":1200', 1))
    assert scan() == path.stat().st_size
    assert total()["requests"] == 5  # the changed event has other totals: one more request
    path.write_bytes(first)
    assert scan() == path.stat().st_size and total()["requests"] == 5

    # A note in the ledger that cmat did not write: read whole, nothing counted twice.
    with Ledger() as ledger, ledger.transaction():
        ledger.db.execute("UPDATE files SET carry = ?", (b'["codex-rollout-1", 5]',))
    rollout.request(500, output=5)
    rollout.write(path)
    assert scan() == path.stat().st_size
    assert total()["requests"] == 6
    # The changed event was priced by its own counts, the first request's.
    assert total()["total_usd"] == pytest.approx(rollout.expected + rollout.costs[0],
                                                 abs=1e-12)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(["request", "repeat", "older", "turn",
                                                  "junk"]),
                                st.integers(1, 50_000)), min_size=1, max_size=25),
       lineage=st.sampled_from(["own", "fork", "subagent"]),
       cuts=st.lists(st.floats(0, 1), max_size=8))
def test_a_rollout_read_in_pieces_gives_the_requests_of_one_read(tmp_path, steps, lineage,
                                                                  cuts):
    """However a rollout's growth is cut into reads (mid-line included), the requests read
    from each stop on, from what the read before knew, are those of one read of the whole:
    the same ids, counts, models and sessions, in order."""
    parent = CodexRollout("0199aaaa-0000-7000-8000-00000000000a")
    parent.turn("gpt-5-codex")
    parent.request(5_000, cached=1_000, output=40)
    rollout = parent if lineage == "own" else parent.fork(
        "0199aaaa-0000-7000-8000-00000000000b", subagent=lineage == "subagent")
    for kind, size in steps:
        if kind == "turn":
            rollout.turn("gpt-5.1-codex-max" if size % 2 else "gpt-5-codex")
        elif kind == "junk":  # marked, so read, and not JSON: skipped
            rollout.lines.append('{"type":"event_msg","payload":{"type":"token_count"')
        else:
            rollout.request(size, cached=size // 3, output=size // 10, repeat=kind == "repeat",
                            with_last=kind != "older")
    whole = b"".join((line if isinstance(line, str) else json.dumps(
        line, separators=(",", ":"))).encode() + b"\n" for line in rollout.lines)
    path = tmp_path / f"rollout-{len(cuts)}-{len(steps)}.jsonl"
    path.write_bytes(whole)
    expected, expected_skipped = codex.read(path)
    found, skipped, offset, carry = [], 0, 0, None
    for cut in sorted(int(cut * len(whole)) for cut in cuts) + [len(whole)]:
        path.write_bytes(whole[:cut])
        stopped = offset
        records, lines_skipped, start, offset, carry = codex.read_from(path, offset, carry)
        assert start == stopped  # read on from there, never whole again
        found += records
        skipped += lines_skipped
    assert found == expected and skipped == expected_skipped
    assert offset == len(whole)


@pytest.mark.parametrize("carry", [
    None, b"", b"null", b"not json", b'{"a": 1}', b'["codex-rollout-1"]',
    b'["codex-rollout-0", "s", null, "openai", null, null, null]',
    b'["codex-rollout-1", 7, null, "openai", null, null, null]',
    b'["codex-rollout-1", "s", 7, "openai", null, null, null]',
    b'["codex-rollout-1", "s", null, "openai", null, ["s", "s", "main"], null]',
    b'["codex-rollout-1", "s", null, "openai", null, null, [1, 2, 3]]',
    b'["codex-rollout-1", "s", null, "openai", null, null, [1, 2, 3, -4]]',
    b'["codex-rollout-1", "s", null, "openai", null, null, [1, 2, 3, true]]',
    b'["codex-rollout-1", "s", null, "openai", null, null, [1, 2, 3, 4.5]]',
    b'{"codex-rollout-1": 1, "s": 2, "c": 3, "o": 4, "m": 5, "l": 6, "p": 7}',
    "a text, not bytes", 12])
def test_a_note_of_a_rollout_that_cmat_did_not_write_means_reading_it_whole(tmp_path,
                                                                           carry):
    rollout = CodexRollout()
    rollout.turn("gpt-5-codex")
    rollout.request(1_000, cached=200, output=10)
    rollout.request(2_000, cached=500, output=20)
    path = rollout.write(tmp_path / "rollout.jsonl")
    records, skipped, start, offset, _ = codex.read_from(path, 100, carry)
    assert (records, skipped, start, offset) == (*codex.read(path), 0, path.stat().st_size)


def _line(rollout: CodexRollout) -> bytes:
    return json.dumps(rollout.lines[-1], separators=(",", ":")).encode() + b"\n"


@pytest.mark.parametrize("parent_first", [True, False])
def test_a_forked_or_spawned_codex_session_counts_only_its_own_requests(codex_home,
                                                                      parent_first):
    parent = CodexRollout("0199aaaa-0000-7000-8000-00000000000a")
    parent.turn("gpt-5-codex")
    parent.request(10_000, cached=4_000, output=300)
    parent.request(12_000, cached=9_000, output=200)
    fork = parent.fork("0199aaaa-0000-7000-8000-00000000000b")
    fork.request(15_000, cached=11_000, output=100)
    helper = parent.fork("0199aaaa-0000-7000-8000-00000000000c", subagent=True)
    helper.request(3_000, cached=0, output=50)
    # Read in either order (a rollout's name sorts by when it started).
    names = ("a", "b", "c") if parent_first else ("c", "b", "a")
    for name, rollout in zip(names, (parent, fork, helper)):
        rollout.write(codex_home / "sessions" / "2026" / "11" / "20" / f"rollout-{name}.jsonl")
    report = json.loads(cli_run("report", "daily", "--json").output)["total"]
    assert report["requests"] == 4
    assert report["total_usd"] == pytest.approx(
        parent.expected + fork.expected + helper.expected, abs=1e-12)
    runs = json.loads(cli_run("report", "session", "--json", "--by", "agent").output)
    mine = {(r["session"], r["agent"]): r["requests"] for r in runs["rows"]}
    assert mine[(parent.session_id, "explorer")] == 1  # a subagent's copies never stand
    if parent_first:  # a fork's replayed history stays with the session read first
        assert mine == {(parent.session_id, "main"): 2, (parent.session_id, "explorer"): 1,
                        (fork.session_id, "main"): 1}


def test_codex_home_and_archived_sessions_are_read(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default, elsewhere = CodexRollout(session_id="default-home"), CodexRollout(
        session_id="archived")
    for rollout in (default, elsewhere):
        rollout.turn("gpt-5-codex")
        rollout.request(1_000, output=10)
    default.write(tmp_path / "home" / ".codex" / "sessions" / "2026/11/20" / "rollout-a.jsonl")
    elsewhere.write(tmp_path / "custom" / "archived_sessions" / "rollout-b.jsonl")
    assert json.loads(cli_run("report", "daily", "--json").output)["total"]["requests"] == 1
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "custom"))
    assert json.loads(cli_run("report", "daily", "--json").output)["total"]["requests"] == 2


def test_a_model_the_catalog_does_not_price_is_kept_unpriced_and_named(codex_home):
    rollout = CodexRollout()
    rollout.turn("gpt-9-imaginary")
    rollout.request(5_000, cached=1_000, output=100)
    rollout.write(rollout_path(codex_home, rollout))
    report = json.loads(cli_run("report", "daily", "--json").output)
    assert report["total"]["requests"] == 1 and report["total"]["unpriced_requests"] == 1
    assert report["total"]["tokens"]["input"] == 4_000
    found = cli_run("models", "check", code=1).output
    assert "gpt-9-imaginary: 1 request, 5,100 tokens unpriced" in found


def test_a_codex_session_by_id_is_answered_from_the_ledger(codex_home):
    """ccusage's `session --id` for a session that has no Claude Code transcript: its totals
    as the ledger holds them (the session report's row), said to come from there."""
    rollout = CodexRollout("0199eeee-0000-7000-8000-000000000001")
    rollout.turn("gpt-5-codex")
    rollout.request(10_000, cached=6_000, output=800)
    rollout.request(12_000, cached=9_000, output=200)
    rollout.write(rollout_path(codex_home, rollout))
    row, = json.loads(cli_run("report", "session", "--json").output)["rows"]
    by_id = json.loads(cli_run("codex", "session", "--id", rollout.session_id, "-j").output)
    assert {key: by_id[key] for key in ("total_usd", "tokens", "requests", "models")} == {
        key: row[key] for key in ("total_usd", "tokens", "requests", "models")}
    assert (by_id["session_id"], by_id["app"], by_id["files"]) == (rollout.session_id, "codex",
                                                                  [])
    assert by_id["requests"] == 2 and by_id["started"] == row["first"]
    text = cli_run("session", "-i", rollout.session_id).output
    assert text.startswith(f"Session {rollout.session_id}  (codex, from the ledger)")
    assert "Requests:            2" in text
    # Another agent's session is not one of Claude Code's.
    stderr = cli_run("claude", "session", "-i", rollout.session_id, code=3).stderr
    assert "none in the ledger from claude-code" in stderr


def test_a_mixed_history_is_exact_per_app_and_in_sum_and_after_compaction(
        codex_home, tmp_path, project, isolated_home, monkeypatch):
    monkeypatch.setenv("OPENCODE_DATA_DIR", str(tmp_path / "opencode"))
    monkeypatch.setenv("TZ", "UTC")
    expected = mixed_history(tmp_path / "claude", codex_home, isolated_home,
                             tmp_path / "opencode", str(project))

    def by_app() -> dict:
        report = json.loads(cli_run("report", "daily", "--json", "--by", "app").output)
        assert {row["date"] for row in report["rows"]} == {"2026-11-20"}
        return {row["app"]: (row["requests"], row["total_usd"]) for row in report["rows"]} | {
            "total": (report["total"]["requests"], report["total"]["total_usd"])}

    exact = {app: (requests, pytest.approx(usd, abs=1e-12))
             for app, (requests, usd) in expected.items()} | {
        "total": (sum(n for n, _ in expected.values()),
                  pytest.approx(sum(usd for _, usd in expected.values()), abs=1e-12))}
    assert by_app() == exact
    for app, (requests, usd) in expected.items():  # --app: that agent's requests alone
        only = json.loads(cli_run("report", "daily", "--json", "--app", app,
                                  "--by", "model").output)
        assert (only["total"]["requests"], only["total"]["total_usd"]) == (
            requests, pytest.approx(usd, abs=1e-12))
        assert all("app" not in row for row in only["rows"])
    # ccusage's spelling of the same: `cmat codex daily`, `cmat claude monthly`, ...
    for name, app in zip(("claude", "codex", "gemini", "opencode"), APPS):
        assert json.loads(cli_run(name, "monthly", "-j", "-b").output)["total"]["requests"] \
            == expected[app][0]
    named = cli_run("report", "daily", "--agent", "codex", code=2).stderr  # as others spell it
    assert "take the coding agent as --app" in named and "--by agent" in named
    from prometheus_client.parser import text_string_to_metric_families

    metrics = {family.name: family for family in
               text_string_to_metric_families(cli_run("metrics").output)}
    per_app: dict[str, float] = {}
    for sample in metrics["cmat_cost_usd"].samples:
        if sample.name == "cmat_cost_usd_total":
            per_app[sample.labels["app"]] = per_app.get(sample.labels["app"], 0) + sample.value
    assert per_app == {app: pytest.approx(usd, abs=1e-12) for app, (_, usd) in expected.items()}
    # A Claude plan's 5-hour blocks are Claude Code's alone.
    blocks = json.loads(cli_run("blocks", "--json").output)["blocks"]
    assert sum(block["cost_usd"] for block in blocks) == pytest.approx(
        expected["claude-code"][1], abs=1e-12)
    cli_run("ledger", "compact", "--older-than", "1d")  # every request folded into rollups
    assert by_app() == exact


def test_a_daily_budget_counts_every_agent_and_an_app_budget_one(codex_home, tmp_path,
                                                                 project, isolated_home,
                                                                 monkeypatch):
    monkeypatch.setenv("OPENCODE_DATA_DIR", str(tmp_path / "opencode"))
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("CMAT_NOW", "2026-11-20T18:00:00Z")
    expected = mixed_history(tmp_path / "claude", codex_home, isolated_home,
                             tmp_path / "opencode", str(project))
    transcript = next((tmp_path / "claude" / "projects").rglob("*.jsonl"))
    cli_run("scan", "-q")  # the other agents' spend reaches budgets as of the last scan

    def tool_call():
        answer = budget_hook(PRE_TOOL, project, budget_payload(transcript, "claude-1",
                                                                "PreToolUse"))
        return (answer or {}).get("hookSpecificOutput", {}).get("permissionDecision")

    def status(code=0) -> dict:
        report = json.loads(cli_run("budget", "status", "--json", code=code).output)
        return {b["budget"]: (round(b["spent"], 9), b["exhausted"]) for b in report["budgets"]}

    claude, codex = expected["claude-code"][1], expected["codex"][1]
    # $1: far above Claude Code's own spend, below every agent's together.
    assert claude < 1 < sum(usd for _, usd in expected.values())
    user_config("[budgets]\ndaily = 1.0\n")
    assert tool_call() == "deny"
    user_config("")
    cli_run("budget", "set", "app-daily", "1", "--app", "codex")
    assert status(code=11) == {"app-daily:codex": (round(codex, 9), True)}
    assert tool_call() is None  # Codex's budget is spent; Claude Code adds nothing to it
    cli_run("budget", "set", "app-daily", "0.01", "--app", "claude-code")
    assert tool_call() == "deny"
    cli_run("budget", "unset", "app-daily", "--app", "claude-code")
    cli_run("budget", "set", "app-monthly", "100", "--app", "provider:openai")
    assert status(code=11)["app-monthly:provider:openai"] == (
        round(codex + expected["opencode"][1], 9), False)  # OpenCode's requests were OpenAI's
    assert "--app takes a coding agent" in cli_run(
        "budget", "set", "app-daily", "1", "--app", "cursor", code=2).stderr


def gemini_chat(home, messages, session="5f1c-gemini", jsonl=False):
    folder = home / ".gemini" / "tmp" / "0a1b2c3d" / "chats"
    folder.mkdir(parents=True, exist_ok=True)
    if jsonl:
        path = folder / f"session-{session}.jsonl"
        lines = [{"sessionId": session, "projectHash": "0a1b2c3d",
                  "startTime": "2026-11-21T09:00:00.000Z"}, *messages]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    else:
        path = folder / f"session-{session}.json"
        path.write_text(json.dumps({"sessionId": session, "projectHash": "0a1b2c3d",
                                    "startTime": "2026-11-21T09:00:00.000Z",
                                    "lastUpdated": "2026-11-21T09:05:00.000Z",
                                    "messages": messages}))
    return path


def gemini_message(ident, model, input, cached, output, thoughts=0, tool=0):
    return {"id": ident, "timestamp": "2026-11-21T09:01:00.000Z", "type": "gemini",
            "content": "done", "model": model,
            "tokens": {"input": input, "cached": cached, "output": output,
                       "thoughts": thoughts, "tool": tool,
                       "total": input + output + thoughts + tool}}


@pytest.mark.parametrize("jsonl", [False, True], ids=["json", "jsonl"])
def test_gemini_counts_cached_inside_input_and_thoughts_as_output(isolated_home, tmp_path,
                                                                   monkeypatch, jsonl):
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    user = {"id": "u1", "timestamp": "2026-11-21T09:00:30.000Z", "type": "user",
            "content": "fix it"}
    first = gemini_message("g1", "gemini-2.5-pro", 12_000, 8_000, 400, thoughts=600, tool=50)
    long_prompt = gemini_message("g2", "gemini-2.5-pro", 250_000, 200_000, 1_000)
    messages = [user, first, long_prompt]
    if jsonl:  # written again once its tokens were known: one request
        messages.insert(1, {**first, "tokens": None})
        messages.append(first)
    gemini_chat(isolated_home, messages, jsonl=jsonl)
    report = json.loads(cli_run("report", "daily", "--json", "--by", "app,provider").output)
    # By hand: (4,000 + 50) x 1.25 + 8,000 x 0.125 + (400 + 600) x 10, per million; then the
    # long prompt at the >200k prices: 50,000 x 2.50 + 200,000 x 0.25 + 1,000 x 15.
    expected = (4_050 * 1.25 + 8_000 * 0.125 + 1_000 * 10) / 1e6 \
        + (50_000 * 2.5 + 200_000 * 0.25 + 1_000 * 15) / 1e6
    assert report["total"]["requests"] == 2
    assert report["total"]["tokens"]["input"] == 4_050 + 50_000
    assert report["total"]["tokens"]["cache_read"] == 208_000
    assert report["total"]["tokens"]["output"] == 2_000
    assert report["total"]["total_usd"] == pytest.approx(expected, abs=1e-12)
    assert {(r["app"], r["provider"]) for r in report["rows"]} == {("gemini-cli", "google")}


def test_a_gemini_chat_caught_half_written_is_read_once_it_is_whole(isolated_home, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    path = gemini_chat(isolated_home, [gemini_message("g1", "gemini-2.5-flash", 1_000, 0, 10)])
    whole = path.read_bytes()
    path.write_bytes(whole[:-20])
    assert json.loads(cli_run("report", "daily", "--json").output)["total"]["requests"] == 0
    path.write_bytes(whole)
    scan = json.loads(cli_run("scan", "--json").output)
    assert (scan["requests"], scan["skipped_lines"]) == (1, 0)  # only the row added since
    total = json.loads(cli_run("report", "daily", "--json").output)["total"]
    assert total["requests"] == 1
    assert total["total_usd"] == pytest.approx((1_000 * 0.30 + 10 * 2.50) / 1e6, abs=1e-12)


def test_a_grown_gemini_chat_is_read_on_and_a_rewritten_one_whole(isolated_home, tmp_path,
                                                                  monkeypatch):
    """A `.jsonl` chat grows by lines: a scan reads what was appended since the last one, in
    the session that read found. A `.json` chat is rewritten whole as the chat goes on: it
    is read whole whenever it changed, even where its first and last bytes stayed the same."""
    import os

    from cmat.ledger import Ledger

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))

    def scan() -> int:
        return json.loads(cli_run("scan", "--json").output)["bytes_read"]

    def total() -> dict:
        return json.loads(cli_run("report", "daily", "--json", "--no-scan").output)["total"]

    first = gemini_message("g1", "gemini-2.5-flash", 1_000, 0, 10)
    named = gemini_chat(isolated_home, [first], session="grown", jsonl=True)
    path = named.rename(named.with_name("session-2026-11-21T09-00-5f1c.jsonl"))  # as named
    assert scan() == path.stat().st_size
    size = path.stat().st_size
    second = gemini_message("g2", "gemini-2.5-flash", 2_000, 1_000, 20)
    third = json.dumps(gemini_message("g3", "gemini-2.5-flash", 500, 0, 5))
    with path.open("a") as handle:  # a reply begun, then written again with its tokens
        handle.write(json.dumps({**second, "tokens": None}) + "\n" + json.dumps(second) + "\n"
                     + json.dumps(first) + "\n" + '{"$rewindTo": "g1"}\n' + third[:30])
    assert scan() == path.stat().st_size - size
    assert total()["requests"] == 2
    assert total()["total_usd"] == pytest.approx(
        (1_000 * 0.30 + 10 * 2.50 + 1_000 * 0.30 + 1_000 * 0.03 + 20 * 2.50) / 1e6, abs=1e-12)
    with path.open("a") as handle:  # the torn line is whole: read from its start
        handle.write(third[30:] + "\n")
    assert scan() == len(third) + 1 and total()["requests"] == 3
    with Ledger() as ledger:
        assert {session for (session,) in ledger.query(
            "SELECT DISTINCT session_id FROM requests")} == {"grown"}

    whole = gemini_chat(isolated_home, [first, second], session="whole")
    cli_run("scan", "-q")
    changed = whole.read_bytes().replace(b'"output": 20', b'"output": 90', 1)
    stat = whole.stat()
    whole.write_bytes(changed)  # the same size, head and tail: only the middle changed
    os.utime(whole, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert scan() == whole.stat().st_size
    assert total()["requests"] == 5  # its two replies, the second one's better copy kept
    assert total()["tokens"]["output"] == 10 + 20 + 5 + 10 + 90


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(replies=st.lists(st.tuples(st.sampled_from(["reply", "twice", "user", "set", "junk"]),
                                  st.integers(1, 90_000)), min_size=1, max_size=20),
       cuts=st.lists(st.floats(0, 1), max_size=8))
def test_a_gemini_chat_read_in_pieces_gives_the_requests_of_one_read(tmp_path, replies, cuts):
    """However a `.jsonl` chat's growth is cut into reads (mid-line included), each read
    going on from where the one before stopped, its requests are those of one read of the
    whole, in the session its first line names (not its file's name); a reply written once
    more counts once."""
    lines = [{"sessionId": "8c1f-chat", "projectHash": "0a1b2c3d"}]
    for index, (kind, size) in enumerate(replies):
        reply = gemini_message(f"g{index}", "gemini-2.5-pro", size, size // 3, size // 20)
        lines += {"reply": [{**reply, "tokens": None}, reply], "twice": [reply, reply],
                  "user": [{"id": f"u{index}", "type": "user", "content": "go on"}],
                  "set": [{"$set": {"lastUpdated": "2026-11-21T09:09:00.000Z"}}],
                  "junk": ['{"id": "g", "type": "gemini", "tok']}[kind]
    whole = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                    for line in lines).encode()
    path = tmp_path / f"session-2026-11-21T09-00-{len(cuts)}.jsonl"
    path.write_bytes(whole)
    expected, expected_skipped = gemini.read(path)
    found, skipped, offset, carry = {}, 0, 0, None
    for cut in sorted(int(cut * len(whole)) for cut in cuts) + [len(whole)]:
        path.write_bytes(whole[:cut])
        stopped = offset
        records, lines_skipped, start, offset, carry = gemini.read_from(path, offset, carry)
        assert start == stopped
        found.update((record.message_id, record) for record in records)
        skipped += lines_skipped
    assert list(found.values()) == expected and skipped == expected_skipped
    assert offset == len(whole) and {r.session_id for r in expected} <= {"8c1f-chat"}


@pytest.mark.parametrize("carry", [None, b"", b"[]", b'["gemini-chat-0", "s"]',
                                   b'["gemini-chat-1", 5]', b'["gemini-chat-1", "s", "t"]',
                                   b'{"gemini-chat-1": 1, "s": 2}', "text", 12])
def test_a_note_of_a_chat_that_cmat_did_not_write_means_reading_it_whole(tmp_path, carry):
    path = gemini_chat(tmp_path, [gemini_message("g1", "gemini-2.5-flash", 1_000, 0, 10),
                                  gemini_message("g2", "gemini-2.5-flash", 2_000, 0, 20)],
                       jsonl=True)
    records, skipped, start, offset, _ = gemini.read_from(path, 100, carry)
    assert (records, skipped, start, offset) == (*gemini.read(path), 0, path.stat().st_size)


REAL_CHATS = Path(__file__).parent / "fixtures" / "agents" / "gemini"
# USD per million tokens: uncached input, cached input, output (thoughts included).
GEMINI_PRICES = {"gemini-2.5-flash": (0.30, 0.03, 2.50), "gemini-2.5-pro": (1.25, 0.125, 10),
                 "gemini-3-pro-preview": (2, 0.20, 12), "gemini-3-flash-preview": (0.50, 0.05, 3)}


def test_real_gemini_chats_count_cached_inside_input_and_thoughts_as_output(isolated_home,
                                                                           tmp_path,
                                                                           monkeypatch):
    """Chats of real Gemini CLI sessions (tests/fixtures/agents/SOURCES.md). Each reply's own
    total shows the traps: it is input + output + thoughts + tool, so the cached tokens are
    inside input and the thoughts beside output. Every reply is one request, priced by hand."""
    import shutil

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    replies = []
    for chat in sorted(REAL_CHATS.glob("session-*.json")):
        recorded = json.loads(chat.read_bytes())
        folder = isolated_home / ".gemini" / "tmp" / recorded["projectHash"] / "chats"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(chat, folder)
        replies += [m for m in recorded["messages"] if m["type"] == "gemini"]
    tokens = [reply["tokens"] for reply in replies]
    assert all(t["total"] == t["input"] + t["output"] + t["thoughts"] + t["tool"]
               for t in tokens)
    assert sum(t["cached"] for t in tokens) == 4_955 + 3_094 + 2_956 + 5_714 + 5_559 + 3_167
    report = json.loads(cli_run("report", "daily", "--json", "--by", "app,model").output)
    total = report["total"]
    assert total["requests"] == 2 + 5
    assert total["tokens"]["input"] == sum(t["input"] - t["cached"] + t["tool"] for t in tokens)
    assert total["tokens"]["cache_read"] == sum(t["cached"] for t in tokens)
    assert total["tokens"]["output"] == sum(t["output"] + t["thoughts"] for t in tokens)
    expected = sum((t["input"] - t["cached"]) * GEMINI_PRICES[reply["model"]][0]
                   + t["cached"] * GEMINI_PRICES[reply["model"]][1]
                   + (t["output"] + t["thoughts"]) * GEMINI_PRICES[reply["model"]][2]
                   for reply, t in zip(replies, tokens)) / 1e6
    assert expected == pytest.approx(0.069837175, abs=1e-12)  # the sum worked out on paper
    assert total["total_usd"] == pytest.approx(expected, abs=1e-12)
    assert {(r["app"], r["model"]) for r in report["rows"]} == {
        ("gemini-cli", model) for model in GEMINI_PRICES}


@pytest.fixture
def opencode_home(tmp_path, monkeypatch):
    home = tmp_path / "opencode"
    monkeypatch.setenv("OPENCODE_DATA_DIR", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    return home


def test_each_opencode_step_is_one_request_and_reasoning_is_billed_once(opencode_home):
    store = OpenCodeStore(opencode_home / "opencode.db")
    store.session("ses_main")
    reply = store.message("ses_main", "claude-sonnet-4-5", "anthropic")
    store.step(reply, 3_000, 400, read=20_000, write=5_000)
    store.step(reply, 200, 900, read=25_000)  # a second step of the same reply
    store.session("ses_child", parent="ses_main")
    helper = store.message("ses_child", "gpt-5.1-codex", "openai", agent="explore")
    store.step(helper, 1_000, 300, reasoning=700, read=4_000)
    report = json.loads(cli_run("report", "daily", "--json", "--by", "app,provider").output)
    # By hand: (3,000 x 3 + 400 x 15 + 5,000 x 3.75 + 20,000 x 0.30) / 1e6, then (200 x 3 +
    # 900 x 15 + 25,000 x 0.30) / 1e6, then (1,000 x 1.25 + (300 + 700) x 10 + 4,000 x
    # 0.125) / 1e6: the message's own tokens (its last step's) are never added.
    assert store.expected == pytest.approx(0.03975 + 0.0216 + 0.01175)
    assert report["total"]["requests"] == 3
    assert report["total"]["tokens"]["output"] == 400 + 900 + 1_000
    assert report["total"]["total_usd"] == pytest.approx(store.expected, abs=1e-12)
    assert {(r["app"], r["provider"]) for r in report["rows"]} == {
        ("opencode", "anthropic"), ("opencode", "openai")}
    agents = json.loads(cli_run("report", "session", "--json", "--by", "agent").output)
    assert {(r["session"], r["agent"]) for r in agents["rows"]} == {
        ("ses_main", "main"), ("ses_main", "explore")}  # a child session is a subagent's run


@pytest.mark.parametrize("form", ["today", "sdk5", "first", None])
def test_what_each_opencode_version_meant_by_its_counts_is_told_by_its_total(opencode_home,
                                                                          form):
    store = OpenCodeStore(opencode_home / "opencode.db")
    store.session("ses_1")
    reply = store.message("ses_1", "gpt-5.1-codex", "openai")
    store.step(reply, 2_000, 500, reasoning=1_500, read=30_000, form=form)
    records, skipped, _ = opencode.read_new(opencode_home / "opencode.db", 0)
    assert skipped == 0
    assert [(r.input_tokens, r.output_tokens, r.cache_read_tokens) for r in records] == [
        (2_000, 2_000, 30_000)]


def test_the_database_is_read_by_row_and_one_that_cannot_be_read_later(opencode_home):
    path = opencode_home / "opencode.db"
    store = OpenCodeStore(path)
    store.session("ses_1")
    reply = store.message("ses_1", "claude-sonnet-4-5", "anthropic")
    store.step(reply, 1_000, 100)
    assert json.loads(cli_run("report", "daily", "--json").output)["total"]["requests"] == 1
    # Rows already read are not read again: one spoilt now changes nothing.
    store.db.execute("UPDATE part SET data = '{\"type\": \"step-finish\", \"tokens\": 7'")
    store.step(reply, 2_000, 200, read=1_000)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.close()
    whole = path.read_bytes()
    path.write_bytes(b"not yet a database" * 10)  # caught mid-rewrite: read at the next scan
    assert json.loads(cli_run("scan", "--json").output)["skipped_lines"] == 1
    path.write_bytes(whole)
    scan = json.loads(cli_run("scan", "--json").output)
    assert (scan["requests"], scan["skipped_lines"]) == (1, 0)  # only the row added since
    total = json.loads(cli_run("report", "daily", "--json").output)["total"]
    assert total["requests"] == 2 and total["tokens"]["input"] == 3_000
    assert total["total_usd"] == pytest.approx(store.expected, abs=1e-12)


def test_opencode_before_its_database_is_read_from_its_message_files(opencode_home):
    storage = opencode_home / "storage"

    def write(path, data):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))

    reply = {"id": "msg_1", "sessionID": "ses_old", "role": "assistant",
             "time": {"created": 1_763_800_000_000}, "modelID": "claude-sonnet-4-5",
             "providerID": "anthropic", "path": {"cwd": "/home/me/app"},
             "tokens": {"input": 50, "output": 60, "reasoning": 0,
                        "cache": {"read": 0, "write": 0}}}
    write(storage / "message" / "ses_old" / "msg_1.json", reply)
    for ident, tokens in (("prt_1", {"input": 1_000, "output": 40, "reasoning": 0,
                                     "cache": {"read": 0, "write": 2_000}}),
                          ("prt_2", reply["tokens"])):
        write(storage / "part" / "msg_1" / f"{ident}.json",
              {"id": ident, "type": "step-finish", "tokens": tokens})
    write(storage / "part" / "msg_1" / "prt_3.json", {"id": "prt_3", "type": "text"})
    oldest = reply | {"id": "msg_2"}  # the oldest versions wrote no step-finish part
    write(storage / "message" / "ses_old" / "msg_2.json", oldest)
    write(storage / "message" / "ses_old" / "msg_0.json", {"id": "msg_0", "role": "user"})
    total = json.loads(cli_run("report", "daily", "--json").output)["total"]
    assert total["requests"] == 3
    assert total["tokens"]["input"] == 1_100 and total["tokens"]["output"] == 160
    assert total["total_usd"] == pytest.approx(
        (1_100 * 3 + 160 * 15 + 2_000 * 3.75) / 1e6, abs=1e-12)
    # Once OpenCode moved its files into its database, only the database is read.
    OpenCodeStore(opencode_home / "opencode.db").session("ses_new")
    assert opencode.files() == []


# --- hostile logs: any file another agent (or anybody) wrote is read without a crash, and no
# value a request cannot have reaches the ledger --------------------------------------------

ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                      st.floats(allow_nan=True), st.text(max_size=8))
TIMES = st.one_of(st.sampled_from(["2026-11-20T10:00:00.000Z", "9999-01-01T00:00:00Z",
                                   "1970-01-01T00:00:00Z", "", "yesterday"]), ANY_VALUE)


# A count: most often one a request can have, or just past the range; else any value.
COUNT = st.one_of(st.integers(0, 2**53 + 2), ANY_VALUE)


def _usage(fields) -> dict:
    return st.fixed_dictionaries({}, optional={name: COUNT for name in fields})


CODEX_COUNTS = ("input_tokens", "cached_input_tokens", "cache_write_input_tokens",
                "output_tokens")
CODEX_EVENT = st.fixed_dictionaries({
    "timestamp": TIMES, "type": st.just("event_msg"),
    "payload": st.fixed_dictionaries({"type": st.just("token_count"), "info": st.one_of(
        ANY_VALUE, st.fixed_dictionaries({}, optional={
            "total_token_usage": _usage(CODEX_COUNTS), "last_token_usage": _usage(CODEX_COUNTS)}))})})
GEMINI_MESSAGE = st.fixed_dictionaries({
    "id": st.text(min_size=1, max_size=4), "type": st.just("gemini"), "timestamp": TIMES,
    "model": ANY_VALUE, "tokens": st.one_of(ANY_VALUE, _usage(
        ("input", "cached", "output", "thoughts", "tool")))})


def _plausible(records) -> None:
    for record in records:
        check_request(record.timestamp, record.token_counts)  # raises if not
        # The readers keep the seconds check_request worked out, for the ledger's rows.
        assert record.seconds == timestamp_seconds(record.timestamp), record


@pytest.fixture
def zone_far_from_utc(monkeypatch):
    """The process's local zone five and a half hours from UTC: a naive time read as local
    time anywhere would show."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moment=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30),
                           timezones=st.one_of(st.none(), st.just(UTC), st.builds(
                               timezone, st.timedeltas(timedelta(hours=-23, minutes=-59),
                                                       timedelta(hours=23, minutes=59))))),
       spec=st.sampled_from(["seconds", "milliseconds", "microseconds", "minutes"]),
       zulu=st.booleans())
@example(moment=datetime(2026, 3, 1, 10, tzinfo=UTC), spec="milliseconds", zulu=True)
@example(moment=datetime(2026, 3, 1, 10), spec="seconds", zulu=False)
def test_check_time_gives_the_seconds_timestamp_seconds_gives(zone_far_from_utc, moment, spec,
                                                              zulu):
    """What a reader keeps from the check is what the ledger's rows would have worked out
    from the timestamp itself, to the last bit (naive times are UTC in both)."""
    timestamp = moment.isoformat(timespec=spec)
    if zulu and moment.tzinfo is UTC:
        timestamp = timestamp.replace("+00:00", "Z")
    try:
        seconds = check_time(timestamp)
    except InvalidLine:  # out of range once its offset is applied: no seconds to compare
        return
    assert seconds == timestamp_seconds(timestamp), timestamp


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.one_of(CODEX_EVENT, ANY_VALUE), max_size=6))
def test_any_codex_rollout_is_read_without_a_crash_and_only_plausible_requests_pass(
        tmp_path, events):
    path = tmp_path / "rollout-fuzz.jsonl"
    path.write_bytes(b"".join(json.dumps(event, default=str).encode() + b"\n"
                              for event in events))
    records, skipped = codex.read(path)
    _plausible(records)
    assert skipped >= 0


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.one_of(GEMINI_MESSAGE, ANY_VALUE), max_size=6),
       jsonl=st.booleans())
def test_any_gemini_chat_is_read_without_a_crash_and_only_plausible_requests_pass(
        tmp_path, messages, jsonl):
    if jsonl:
        path = tmp_path / "session-fuzz.jsonl"
        path.write_bytes(b"".join(json.dumps(m, default=str).encode() + b"\n"
                                  for m in messages))
    else:
        path = tmp_path / "session-fuzz.json"
        path.write_text(json.dumps({"sessionId": "s", "messages": messages}, default=str))
    try:
        records, _ = gemini.read(path)
    except Unreadable:  # a .json that does not parse whole (NaN, Infinity): refused, said so
        assert not jsonl
        return
    _plausible(records)


OPENCODE_STEP = st.fixed_dictionaries({"type": st.just("step-finish"), "tokens": st.one_of(
    ANY_VALUE, st.fixed_dictionaries({"input": COUNT, "output": COUNT}, optional={
        "reasoning": COUNT, "total": COUNT,
        "cache": st.one_of(ANY_VALUE, _usage(("read", "write")))}))})
OPENCODE_MESSAGE = st.fixed_dictionaries({"role": st.just("assistant")}, optional={
    "modelID": ANY_VALUE, "providerID": ANY_VALUE, "agent": ANY_VALUE, "path": ANY_VALUE})


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.one_of(OPENCODE_STEP, ANY_VALUE),
                               st.one_of(OPENCODE_MESSAGE, ANY_VALUE),
                               st.one_of(st.integers(0, 5 * 10**12),
                                         st.integers(-2**63, 2**63 - 1), ANY_VALUE)),
                     max_size=5))
def test_any_opencode_database_is_read_without_a_crash_and_only_plausible_requests_pass(
        tmp_path, rows):
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "opencode.db"
    store = OpenCodeStore(path)
    store.session("ses")
    for n, (step, message, created) in enumerate(rows):
        store.db.execute("INSERT INTO message VALUES (?, 'ses', 0, 0, ?)",
                         (f"m{n}", json.dumps(message, default=str)))
        store.db.execute("INSERT INTO part VALUES (?, ?, 'ses', ?, 0, ?)",
                         (f"p{n}", f"m{n}", created if isinstance(created, int) and
                          not isinstance(created, bool) else str(created),
                          json.dumps(step, default=str)))
    records, skipped, cursor = opencode.read_new(path, 0)
    _plausible(records)
    assert cursor == len(rows) and skipped >= 0


def test_a_request_dated_year_9999_or_counting_past_any_real_one_is_skipped(codex_home):
    rollout = CodexRollout()
    rollout.turn("gpt-5-codex")
    rollout.request(1_000, output=10)
    rollout.request(2**60, output=10)  # no request holds 2^60 tokens
    rollout.request(1_000, output=10)
    rollout.lines[-1]["timestamp"] = "9999-12-31T00:00:00.000Z"
    records, skipped = codex.read(rollout.write(rollout_path(codex_home, rollout)))
    assert [r.input_tokens for r in records] == [1_000] and skipped == 2
    report = json.loads(cli_run("report", "monthly", "--json").output)  # still answers
    assert report["total"]["requests"] == 1


def test_a_line_longer_than_any_real_one_is_read_past_not_held(codex_home, monkeypatch):
    monkeypatch.setattr(codex, "CHUNK_SIZE", 64)
    monkeypatch.setattr(codex, "MAX_LINE_BYTES", 1_000)  # scaled down from 128 MiB
    rollout = CodexRollout()
    rollout.turn("gpt-5-codex")
    rollout.request(1_000, output=10)
    path = rollout.write(rollout_path(codex_home, rollout))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], b'{"huge": "' + b"x" * 5_000 + b'"}\n', *lines[1:]]))
    records, skipped = codex.read(path)
    assert [r.input_tokens for r in records] == [1_000] and skipped == 1


_PIECES = st.sampled_from([b'{"type":"event_msg","payload":{"type":"token_count"}}',
                           b'"turn_context"', b'"session_meta"', b"x" * 40, b"", b"\n",
                           b'"token_count" "session_meta"', b"y" * 1_500])


@settings(max_examples=200,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # set, not changed
@given(pieces=st.lists(_PIECES, max_size=30), chunk=st.integers(1, 200),
       before=st.integers(0, 50))
@example(pieces=[b"y" * 1_500, b"\n", b'"turn_context"', b"\n"], chunk=100, before=0)
def test_the_rollout_reader_finds_the_lines_a_plain_split_finds(pieces, chunk, before,
                                                               monkeypatch):
    """Rollouts are searched for their markers chunk by chunk, the other lines never split:
    it yields what splitting the file into lines and keeping those with a marker yields,
    in order, whatever the chunk size; a line over the limit once as None; the unfinished
    last line never (unless it is over the limit already). Read from any offset (`before`
    bytes already read), it knows where its last complete line ends: where the next read
    starts."""
    import io

    monkeypatch.setattr(codex, "CHUNK_SIZE", chunk)  # each example sets its own
    monkeypatch.setattr(codex, "MAX_LINE_BYTES", 1_000)
    data = b"".join(pieces)
    *complete, unfinished = data.split(b"\n")
    expected = [None if len(line) > 1_000 else line for line in complete
                if len(line) > 1_000 or any(marker in line for marker in codex.MARKERS)]
    expected += [None] * (len(unfinished) > 1_000)  # over the limit already: read past
    handle = io.BytesIO(b"z" * before + data)
    handle.seek(before)
    lines = codex._MarkedLines(handle, before)
    found = list(lines)
    assert lines.complete == before + len(data) - len(unfinished)
    # An over-long line is reported as soon as it is known to be one: where it ends, or
    # earlier; so compare the lines found, and the count of over-long ones.
    assert [line for line in found if line is not None] == [
        line for line in expected if line is not None]
    assert found.count(None) == expected.count(None)


@pytest.fixture
def two_workers(monkeypatch) -> list[list]:
    """Every read in two forked workers, however small; the items of each pool started."""
    import cmat.transcripts.parallel as parallel

    pools: list[list] = []
    forked_map = parallel.forked_map

    def recorded(task, items, workers):
        pools.append(list(items))
        return forked_map(task, items, workers)

    monkeypatch.setattr(parallel, "parallel_workers", lambda total: 2)
    monkeypatch.setattr(parallel, "forked_map", recorded)
    return pools


def test_many_logs_read_in_workers_give_the_same_ledger_as_one_process(codex_home, tmp_path,
                                                                        monkeypatch, request):
    rollouts = []
    for index in range(6):
        rollout = CodexRollout(f"0199bbbb-0000-7000-8000-{index:012d}")
        rollout.turn("gpt-5-codex")
        for step in range(1, 4):
            rollout.request(1_000 * step * (index + 1), cached=500 * step, output=40 * step)
        rollout.write(rollout_path(codex_home, rollout))
        rollouts.append(rollout)
    alone = json.loads(cli_run("report", "daily", "--json").output)
    monkeypatch.setenv("CMAT_LEDGER", str(tmp_path / "parallel.db"))
    pools = request.getfixturevalue("two_workers")
    assert json.loads(cli_run("report", "daily", "--json").output) == alone
    assert len(pools) == 1 and len(pools[0]) > 1  # the workers did read them
    for rollout in rollouts:  # grown: read on in the workers from where each read stopped
        rollout.request(9_000, cached=8_000, output=90)
        rollout.write(rollout_path(codex_home, rollout))
    grown = json.loads(cli_run("report", "daily", "--json").output)
    resumed = [log.start for _, group in pools[1] for log in group]
    assert len(resumed) == 6 and all(resumed)
    monkeypatch.setenv("CMAT_LEDGER", str(tmp_path / "anew.db"))  # each read whole
    assert json.loads(cli_run("report", "daily", "--json").output) == grown
    assert grown["total"]["requests"] == alone["total"]["requests"] + 6


def rollout_cost(path: Path) -> tuple[int, float]:
    """(requests, cost) of a real gpt-5.3-codex rollout, from its final cumulative totals:
    $1.75 input, $0.175 cached input, $14 output per million."""
    events = [line["payload"]["info"] for line in map(json.loads, path.read_text().splitlines())
              if line["payload"].get("type") == "token_count" and line["payload"]["info"]]
    final = events[-1]["total_token_usage"]
    cached = final["cached_input_tokens"]
    requests = len({json.dumps(e["total_token_usage"], sort_keys=True) for e in events})
    return requests, ((final["input_tokens"] - cached) * 1.75 + cached * 0.175
                      + final["output_tokens"] * 14) / 1e6


def test_a_task_cmat_ran_on_another_agent_is_recorded_from_that_agents_log(
        codex_home, opencode_home, project, tmp_path):
    """`cmat costs extract TASK LOG` takes a Codex rollout, a Gemini CLI chat or OpenCode's
    database (with the session named) as it takes a Claude Code transcript: the log is
    imported, its session attributed to the task, the queue's cost fields written."""
    import shutil

    from cmat.tasks.queue import QueueService

    task = QueueService(project).add("port the parser")["id"]
    folder = codex_home / "sessions" / "2026" / "02" / "23"
    folder.mkdir(parents=True)
    rollout = Path(shutil.copy(sorted(REAL_ROLLOUTS.glob("*.jsonl"))[-1], folder))
    requests, codex_usd = rollout_cost(rollout)
    assert requests == 6
    cli_run("scan", "-q")  # a scan read it already: extract still knows its session
    first = json.loads(cli_run("costs", "extract", task, rollout, "--json").output)
    assert first["session_id"] == "019c8bfe-ec25-79e0-97d7-bda6a9c575ff"
    assert (first["session_requests"], first["new_requests"]) == (6, 0)
    assert first["session_total_usd"] == pytest.approx(codex_usd, abs=1e-12)
    chat = Path(shutil.copy(REAL_CHATS / "session-2025-12-30T07-24-a1c91f1a.json", tmp_path))
    replies = [m for m in json.loads(chat.read_bytes())["messages"] if m["type"] == "gemini"]
    gemini_usd = sum((t["input"] - t["cached"]) * GEMINI_PRICES[m["model"]][0]
                     + t["cached"] * GEMINI_PRICES[m["model"]][1]
                     + (t["output"] + t["thoughts"]) * GEMINI_PRICES[m["model"]][2]
                     for m in replies for t in [m["tokens"]]) / 1e6
    found = json.loads(cli_run("costs", "extract", task, chat, "--json").output)
    assert (found["session_id"], found["session_requests"]) == (
        "a1c91f1a-1a8b-4f17-96c8-ce5d4b9163a5", 5)
    store = OpenCodeStore(opencode_home / "opencode.db")
    store.session("ses_port")
    store.step(store.message("ses_port", "claude-sonnet-4-5", "anthropic"), 3_000, 400,
               read=20_000)
    database = opencode_home / "opencode.db"
    assert "name the session as SESSION" in cli_run(
        "costs", "extract", task, database, code=2).stderr
    assert "holds session" in cli_run(
        "costs", "extract", task, rollout, "ses_port", code=2).stderr
    assert "holds no session ses_nope" in cli_run(
        "costs", "extract", task, database, "ses_nope", code=2).stderr
    store.session("ses_helper", parent="ses_port")
    assert "name ses_port" in cli_run(
        "costs", "extract", task, database, "ses_helper", code=2).stderr
    opencode = json.loads(cli_run("costs", "extract", task, database, "ses_port",
                                  "--json").output)
    assert opencode["session_requests"] == 1
    total = codex_usd + gemini_usd + store.expected
    assert opencode["total_usd"] == pytest.approx(total, abs=1e-12)
    shown = json.loads(cli_run("costs", "show", task, "--json").output)
    assert {s["session_id"] for s in shown["sessions"]} == {
        "019c8bfe-ec25-79e0-97d7-bda6a9c575ff", "a1c91f1a-1a8b-4f17-96c8-ce5d4b9163a5",
        "ses_port"}
    assert float(QueueService(project).get(task)["metadata"]["cost_usd"]) == pytest.approx(
        total, abs=1e-4)  # the queue's own cost field, as CMAT reads it


def test_costs_session_prices_another_agents_log_without_recording_it(
        codex_home, opencode_home, tmp_path):
    """`cmat costs session LOG` prices a Codex rollout, a Gemini CLI chat or one session of
    OpenCode's database as it prices a Claude Code transcript (it read each as a transcript,
    and printed $0.00); the ledger stays empty."""
    import shutil

    rollout = Path(shutil.copy(sorted(REAL_ROLLOUTS.glob("*.jsonl"))[-1], tmp_path))
    requests, codex_usd = rollout_cost(rollout)
    shown = json.loads(cli_run("costs", "session", rollout, "--json").output)
    assert (shown["session_id"], shown["requests"]) == (
        "019c8bfe-ec25-79e0-97d7-bda6a9c575ff", requests)
    assert shown["total_usd"] == pytest.approx(codex_usd, abs=1e-12)
    chat = REAL_CHATS / "session-2025-12-30T07-24-a1c91f1a.json"
    replies = [m for m in json.loads(chat.read_bytes())["messages"] if m["type"] == "gemini"]
    assert json.loads(cli_run("costs", "session", chat, "--json").output)["requests"] == \
        len(replies)
    store = OpenCodeStore(opencode_home / "opencode.db")
    store.session("ses_a")
    store.step(store.message("ses_a", "claude-sonnet-4-5", "anthropic"), 3_000, 400,
               read=20_000)
    store.session("ses_b")
    store.step(store.message("ses_b", "claude-sonnet-4-5", "anthropic"), 1_000, 100)
    database = opencode_home / "opencode.db"
    assert "--session-id (ses_...)" in cli_run("costs", "session", database, code=2).stderr
    one = json.loads(cli_run("costs", "session", database, "--session-id", "ses_a",
                             "--json").output)
    assert (one["requests"], one["tokens"]["input"]) == (1, 3_000)
    assert "leave --session-id out" in cli_run(
        "costs", "session", rollout, "--session-id", "ses_a", code=2).stderr
    report = json.loads(cli_run("report", "daily", "--json", "--no-scan").output)
    assert report["rows"] == []  # priced, recorded nowhere


@settings(max_examples=300)
@given(head=st.one_of(st.binary(max_size=300), st.builds(
    lambda value: json.dumps(value).encode(), ANY_VALUE)),
    name=st.sampled_from(["rollout-x.jsonl", "session-x.json", "session-x.jsonl", "x.jsonl",
                          "opencode.db"]))
def test_any_first_bytes_are_told_apart_without_a_crash(head, name):
    """What `costs extract` is given is recognised by its first bytes: any bytes are
    someone's or nobody's, never an error; a Claude Code transcript is nobody's."""
    claimed = [reader.APP for reader in (codex, gemini, opencode)
               if reader.claims(Path(name), head)]
    assert len(claimed) <= 1
    transcript = b'{"type":"user","sessionId":"s1","message":{"content":"hi"}}\n'
    assert not any(reader.claims(Path(name), transcript) for reader in (codex, gemini, opencode))


@settings(max_examples=300)
@given(first=st.one_of(st.binary(max_size=200), st.builds(
    lambda value: json.dumps(value).encode(), ANY_VALUE)),
    end=st.sampled_from([b"", b"\n", b"\r\n", b"\n{}\n"]),
    name=st.sampled_from(["rollout-x.jsonl", "session-x.json", "x.jsonl", "opencode.db"]))
@example(first=b"# README", end=b"\n", name="x.jsonl")
@example(first=b'  {"type":"user"}  ', end=b"\n", name="x.jsonl")
def test_any_file_given_by_hand_is_read_or_refused_clearly(first, end, name):
    """A file given to `costs extract` or `costs session` is another agent's log, a Claude
    Code transcript, or refused with a TranscriptError (exit 6), never another error: it is
    refused exactly when nobody claims it and its first ended line is not a JSON object's
    braces."""
    from cmat.errors import TranscriptError
    from cmat.ingest import given_log_reader

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(first + end)
        line, ended, _ = (first + end).lstrip().partition(b"\n")
        line = line.rstrip()
        braces = len(line) >= 2 and line[:1] == b"{" and line[-1:] == b"}"
        claimed = any(reader.claims(path, first + end) for reader in (codex, gemini, opencode))
        try:
            reader = given_log_reader(path)
        except TranscriptError as error:
            assert not claimed and ended and not braces, error.message
        else:
            assert (reader is not None) == claimed
            assert claimed or not ended or braces


def test_a_first_scan_loads_transcripts_and_other_agents_logs_in_one_bulk_load(
        codex_home, tmp_path, monkeypatch):
    """Into an empty ledger, Claude Code's transcripts and the other agents' logs are stored
    with the indexes dropped, and built once at the end: the ledger is the one a scan with
    its indexes in place makes."""
    import cmat.ingest
    from cmat.ledger import Ledger
    from cmat.ledger.schema import REQUEST_COLUMNS

    for index in range(3):
        rollout = CodexRollout(f"0199cccc-0000-7000-8000-{index:012d}")
        rollout.turn("gpt-5-codex")
        rollout.request(1_000 * (index + 1), cached=500, output=40)
        rollout.write(rollout_path(codex_home, rollout))
    builder = TranscriptBuilder(session_id="s-bulk")
    builder.response(output=100)
    write_session(tmp_path / "claude" / "projects" / "-p", builder)
    indexed = json.loads(cli_run("report", "daily", "--json").output)
    monkeypatch.setenv("CMAT_LEDGER", str(tmp_path / "bulk.db"))
    monkeypatch.setattr(cmat.ingest, "BULK_LOAD_BYTES", 1)
    indexes_while_storing = []
    insert_rows = Ledger.insert_rows

    def watched(ledger, rows):
        sources = {row[REQUEST_COLUMNS.index("source")] for row in rows}
        indexes_while_storing.append((len(request_indexes(ledger)), sources))
        insert_rows(ledger, rows)

    monkeypatch.setattr(Ledger, "insert_rows", watched)
    assert json.loads(cli_run("report", "daily", "--json").output) == indexed
    # The transcripts' rows and the Codex rows, stored without the indexes.
    assert {count for count, _ in indexes_while_storing} == {0}
    assert set().union(*(sources for _, sources in indexes_while_storing)) == {"", "codex:openai"}
    with Ledger() as ledger:
        # The report was cached before the build behind the load held the ledger.
        assert ledger.query("SELECT count(*) FROM report_cache") == [(1,)]
        wait_for_indexes_built(ledger.path)
        assert len(request_indexes(ledger)) == 3


def test_a_mixed_history_read_in_workers_and_bulk_loaded_is_exact_per_app(
        codex_home, tmp_path, project, isolated_home, monkeypatch, two_workers):
    """Claude Code's transcripts and the other agents' logs read by one pool of forked
    workers (an OpenCode database alone in its group, files in groups of their own), their
    rows packed, into an empty ledger without its indexes: each agent's requests and cost
    as priced by hand."""
    import cmat.ingest

    monkeypatch.setenv("OPENCODE_DATA_DIR", str(tmp_path / "opencode"))
    monkeypatch.setenv("TZ", "UTC")
    expected = mixed_history(tmp_path / "claude", codex_home, isolated_home,
                             tmp_path / "opencode", str(project))
    for index in range(4):  # more than one group of files
        rollout = CodexRollout(f"0199dddd-0000-7000-8000-{index:012d}", cwd=str(project))
        rollout.turn("gpt-5.5")
        rollout.request(1_000, cached=0, output=100)
        rollout.write(rollout_path(codex_home, rollout))
    monkeypatch.setattr(cmat.ingest, "BULK_LOAD_BYTES", 1)
    report = json.loads(cli_run("report", "daily", "--json", "--by", "app").output)
    codex_requests, codex_usd = expected["codex"]
    expected["codex"] = (codex_requests + 4, codex_usd + 4 * (1_000 * 5 + 100 * 30) / 1e6)
    assert {row["app"]: (row["requests"], pytest.approx(row["total_usd"], abs=1e-12))
            for row in report["rows"]} == expected
    [pool] = two_workers  # one pool: no worker waits for the transcripts' last batch
    transcripts = [value for other, value in pool if not other]
    groups = [value for other, value in pool if other]
    assert pool == [(False, batch) for batch in transcripts] + [(True, group) for group in groups]
    assert transcripts and len(groups) > 2
    assert groups[0][0].cursor is not None and len(groups[0]) == 1  # the database, first


def test_a_gemini_chat_belongs_to_the_project_gemini_cli_recorded(isolated_home, tmp_path):
    """Gemini CLI names a project's folder by a short id, with the path in .project_root and
    in projects.json; an older one by the SHA-256 of the path."""
    gemini_home = isolated_home / ".gemini"
    message = [gemini_message("g1", "gemini-2.5-flash", 1_000, 0, 10)]
    marked = gemini_chat(isolated_home, message, session="marked")
    folder = gemini_home / "tmp" / "0a1b2c3d"
    (folder / ".project_root").write_text("/home/me/app\n")
    legacy_root = "/home/me/old app"
    legacy = gemini_home / "tmp" / hashlib.sha256(legacy_root.encode()).hexdigest() / "chats"
    legacy.mkdir(parents=True)
    (legacy / "session-old.json").write_bytes(marked.read_bytes())
    short = gemini_home / "tmp" / "web-1" / "chats"
    short.mkdir(parents=True)
    (short / "session-web.json").write_bytes(marked.read_bytes())
    unknown = gemini_home / "tmp" / "ffff" / "chats"
    unknown.mkdir(parents=True)
    (unknown / "session-x.json").write_bytes(marked.read_bytes())
    (gemini_home / "projects.json").write_text(json.dumps(
        {"projects": {legacy_root: "old-app", "/srv/web": "web-1", "/x": 5}}))
    found = {path.parent.parent.name: gemini.project_of(path) for path in gemini.files()}
    assert found == {"0a1b2c3d": "/home/me/app", legacy.parent.name: legacy_root,
                     "web-1": "/srv/web", "ffff": None}
    assert {r.cwd for r in gemini.read(marked)[0]} == {"/home/me/app"}
    (folder / ".project_root").write_text("two\nlines")  # not a path Gemini CLI wrote
    assert gemini.project_of(marked) is None


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(marker=st.one_of(st.none(), st.binary(max_size=300)),
       registry=st.one_of(st.none(), st.binary(max_size=300),
                          st.dictionaries(st.text(max_size=20), st.one_of(
                              st.just("some-id"), st.text(max_size=20), st.integers(),
                              st.none()), max_size=4)
                          .map(lambda projects: json.dumps({"projects": projects}).encode())))
@example(marker=b"two\nlines", registry=b'{"projects": {"a\\nb": "some-id"}}')
def test_any_gemini_project_files_name_a_project_or_none(tmp_path, marker, registry):
    """.project_root and projects.json are Gemini CLI's files, read through the safe reader:
    whatever bytes they hold, a chat has a project path or none, never an error."""
    gemini._registered.cache_clear()  # each example's projects.json, however soon rewritten
    gemini_home = tmp_path / ".gemini"
    chat = gemini_home / "tmp" / "some-id" / "chats" / "session-a.json"
    chat.parent.mkdir(parents=True, exist_ok=True)
    for path, content in ((chat.parent.parent / ".project_root", marker),
                          (gemini_home / "projects.json", registry)):
        path.unlink(missing_ok=True)
        if content is not None:
            path.write_bytes(content)
    found = gemini.project_of(chat)
    assert found is None or (isinstance(found, str) and found and "\n" not in found)
