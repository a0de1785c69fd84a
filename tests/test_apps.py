"""Other coding agents beside Claude Code: their logs read into the same ledger, priced from
their own token counts (OpenAI's inclusive counts taken apart, never counted twice), and seen
by every report by app and provider."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmat.apps import codex, gemini
from cmat.transcripts.decode import check_request
from cmat.untrusted import Unreadable
from tests.helpers import cli_run
from tests.transcript_factory import CodexRollout, TranscriptBuilder, write_session


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


def test_a_mixed_history_is_exact_per_app_and_in_sum_and_after_compaction(codex_home,
                                                                          tmp_path, project):
    claude = TranscriptBuilder(session_id="claude-1", cwd=str(project))
    claude.now = "2026-11-20T09:00:00.000Z"
    claude.response(model="claude-sonnet-4-5-20250929", input=100, output=2_000, read=30_000)
    write_session(tmp_path / "claude" / "projects" / "-p", claude)
    rollout = CodexRollout()
    rollout.turn("gpt-5.5")
    rollout.request(300_000, cached=200_000, output=5_000)  # over 272k: the long-prompt tier
    rollout.request(50_000, cached=40_000, output=1_000)
    rollout.write(rollout_path(codex_home, rollout))
    long_prompt = (100_000 * 10 + 200_000 * 1 + 5_000 * 45) / 1e6  # 2x input, 1.5x output
    codex_usd = long_prompt + (10_000 * 5 + 40_000 * 0.5 + 1_000 * 30) / 1e6

    def by_app() -> dict:
        report = json.loads(cli_run("report", "monthly", "--json", "--by", "app").output)
        return {row["app"]: (row["requests"], row["total_usd"]) for row in report["rows"]} | {
            "total": (report["total"]["requests"], report["total"]["total_usd"])}

    expected = {"claude-code": (1, pytest.approx(claude.expected_cost, abs=1e-12)),
                "codex": (2, pytest.approx(codex_usd, abs=1e-12)),
                "total": (3, pytest.approx(claude.expected_cost + codex_usd, abs=1e-12))}
    assert by_app() == expected
    cli_run("ledger", "compact", "--older-than", "1d")  # every request folded into rollups
    assert by_app() == expected


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
    total = json.loads(cli_run("report", "daily", "--json").output)["total"]
    assert total["requests"] == 1
    assert total["total_usd"] == pytest.approx((1_000 * 0.30 + 10 * 2.50) / 1e6, abs=1e-12)


# --- hostile logs: any file another agent (or anybody) wrote is read without a crash, and no
# value a request cannot have reaches the ledger --------------------------------------------

ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                      st.floats(allow_nan=True), st.text(max_size=8))
TIMES = st.one_of(st.sampled_from(["2026-11-20T10:00:00.000Z", "9999-01-01T00:00:00Z",
                                   "1970-01-01T00:00:00Z", "", "yesterday"]), ANY_VALUE)


def _usage(fields) -> dict:
    return st.fixed_dictionaries({}, optional={name: ANY_VALUE for name in fields})


CODEX_EVENT = st.fixed_dictionaries({
    "timestamp": TIMES, "type": st.just("event_msg"),
    "payload": st.fixed_dictionaries({"type": st.just("token_count"), "info": st.one_of(
        ANY_VALUE, st.fixed_dictionaries({}, optional={
            "total_token_usage": _usage(codex.FIELDS), "last_token_usage": _usage(codex.FIELDS)}))})})
GEMINI_MESSAGE = st.fixed_dictionaries({
    "id": st.text(min_size=1, max_size=4), "type": st.just("gemini"), "timestamp": TIMES,
    "model": ANY_VALUE, "tokens": st.one_of(ANY_VALUE, _usage(
        ("input", "cached", "output", "thoughts", "tool")))})


def _plausible(records) -> None:
    for record in records:
        check_request(record.timestamp, record.token_counts_tuple())  # raises if not


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
