"""5-hour blocks: cut the way Claude Code's windows (and ccusage) cut them."""

import json
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cmat import clock
from cmat.blocks import (
    active_block,
    active_start,
    block_json,
    ccusage_block,
    cut_blocks,
    limit_status,
    token_limit,
)
from cmat.errors import UsageError
from cmat.ledger import Ledger
from cmat.ledger.schema import request_rows
from cmat.periods import iso_utc
from cmat.usage import UsageRecord
from tests.helpers import FIXTURES, cli_run, real_history
from tests.transcript_factory import TranscriptBuilder, write_session


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def request(when: str, output=500, model="claude-sonnet-4-5", cost=0.01):
    """One request as a row of the ledger's block_usage."""
    return (at(when), at(when), model, 1, 1000, output, 0, 0, cost, int(cost is not None))


def test_requests_within_five_hours_of_the_floored_start_share_a_block():
    (block,) = cut_blocks([request("2026-01-01T10:55:30"), request("2026-01-01T13:00"),
                           request("2026-01-01T14:59")], now=at("2026-02-01T00:00"))
    assert block.start == at("2026-01-01T10:00") and block.end == at("2026-01-01T15:00")
    assert block.requests == 3 and block.tokens["output"] == 1500
    assert block.cost_usd == pytest.approx(0.03) and not block.active


def test_a_request_past_the_blocks_end_starts_the_next_block_without_a_gap():
    first, second = cut_blocks([request("2026-01-01T10:10"), request("2026-01-01T14:00"),
                                request("2026-01-01T15:30")], now=at("2026-02-01T00:00"))
    assert (first.start, second.start) == (at("2026-01-01T10:00"), at("2026-01-01T15:00"))
    assert not first.gap and not second.gap


def test_a_silence_longer_than_a_block_is_a_gap_from_five_hours_after_the_last_request():
    first, gap, second = cut_blocks([request("2026-01-01T10:00"), request("2026-01-01T12:00"),
                                     request("2026-01-01T18:30")], now=at("2026-02-01T00:00"))
    assert gap.gap and gap.start == at("2026-01-01T17:00") and gap.end == at("2026-01-01T18:30")
    assert gap.requests == 0 and second.start == at("2026-01-01T18:00")


def test_blocks_are_in_order_of_start_even_when_a_gap_begins_inside_the_next_block():
    blocks = cut_blocks([request("2026-01-01T10:40"), request("2026-01-01T15:50")],
                        now=at("2026-02-01T00:00"))
    assert [(b.gap, b.start) for b in blocks] == [
        (False, at("2026-01-01T10:00")), (False, at("2026-01-01T15:00")),
        (True, at("2026-01-01T15:40"))]


def test_the_active_block_has_a_burn_rate_and_a_projection_to_its_end():
    (block,) = cut_blocks([request("2026-01-01T10:00", output=1000, cost=1.0),
                           request("2026-01-01T11:00", output=1000, cost=1.0)],
                          now=at("2026-01-01T12:00"))
    assert block.active
    rate = block.burn_rate()
    assert rate["tokens_per_minute"] == pytest.approx(4000 / 60)
    assert rate["cost_per_hour"] == pytest.approx(2.0)
    projection = block.projection(at("2026-01-01T12:00"))
    assert projection["remaining_minutes"] == 180
    assert projection["total_tokens"] == 4000 + round(4000 / 60 * 180)
    assert projection["cost_usd"] == pytest.approx(2.0 + 2.0 * 3)


def test_a_block_is_no_longer_active_five_hours_after_its_last_request_or_at_its_end():
    timeline = [request("2026-01-01T10:00")]
    assert cut_blocks(timeline, now=at("2026-01-01T14:59"))[0].active
    assert not cut_blocks(timeline, now=at("2026-01-01T15:00"))[0].active


def test_the_active_start_from_request_times_is_the_start_cut_blocks_finds():
    timeline = [request(f"2026-01-01T{hour:02d}:{minute:02d}") for hour, minute in
                ((1, 10), (4, 0), (6, 20), (9, 0), (10, 59), (11, 30))]
    now = at("2026-01-01T12:00")
    (active,) = [b for b in cut_blocks(timeline, now) if b.active]
    assert active_start([row[0] for row in timeline], now) == active.start == at(
        "2026-01-01T11:00")  # 01:00, 06:00 (06:20 is past 5 hours), then 11:00 (11:30)
    assert active_start([row[0] for row in timeline], at("2026-01-01T17:00")) is None


def test_unpriced_requests_count_their_tokens_not_a_cost():
    (block,) = cut_blocks([request("2026-01-01T10:00", cost=None, model="mystery-1"),
                           request("2026-01-01T10:01")], now=at("2026-02-01T00:00"))
    assert block.unpriced_requests == 1 and block.cost_usd == pytest.approx(0.01)
    assert block.tokens["input"] == 2000
    # By model too (blocks --breakdown, cmat live): the unknown model's cost is no $0.00.
    assert block.per_model["mystery-1"] == (1500, 0.0, 1)
    assert block.per_model["claude-sonnet-4-5"] == (1500, pytest.approx(0.01), 0)
    assert block_json(block, at("2026-02-01T00:00"), None, breakdown=True)["per_model"][0] == {
        "model": "mystery-1", "tokens": 1500, "cost_usd": 0.0, "unpriced_requests": 1}


def test_token_limits():
    blocks = cut_blocks([request("2026-01-01T10:00", output=9000),
                         request("2026-01-02T10:00", output=100)], now=at("2026-02-01T00:00"))
    assert token_limit("max", blocks) == 10_000
    assert token_limit("5000", blocks) == 5000 and token_limit(None, blocks) is None
    for wrong in ("lots", "0", "-3"):
        with pytest.raises(UsageError):
            token_limit(wrong, blocks)
    assert [limit_status(n, 100) for n in (50, 81, 101)] == ["ok", "warning", "exceeds"]


# Requests in the first 40 hours of a day: on the hour (where a block can end), a few
# milliseconds either side of one, or anywhere; of two models, priced or not.
REQUEST_TIMES = st.builds(lambda hour, offset: at("2026-01-01T00:00") + hour * 3600 + offset,
                          st.integers(0, 40),
                          st.sampled_from([0, 0.001, 3599.999]) | st.integers(0, 3599)
                          | st.floats(0, 3599.999).map(lambda s: round(s, 3)))
REQUESTS = st.lists(st.tuples(REQUEST_TIMES, st.sampled_from(["claude-opus-4-6", "claude-haiku-4-5"]),
                              st.integers(0, 5000), st.sampled_from([None, 0.25, 1.5])),
                    max_size=40)


def on(when: str, model="claude-opus-4-6", output=10, cost=0.25):
    return at(f"2026-01-01T{when}"), model, output, cost


@settings(max_examples=100)
@given(REQUESTS, st.integers(0, 50))
# A request exactly at a block's end is the block's; the rest of that hour is the next one's.
@example([on("10:20"), on("15:00:00"), on("15:30")], 30)
# An hour's first request, whatever its model, decides whether a silence came before it.
@example([on("05:15"), on("10:10"), on("10:30", model="claude-haiku-4-5")], 30)
def test_blocks_cut_from_the_ledgers_hourly_sums_are_those_of_each_request(requests, hours):
    now = at("2026-01-01T00:00") + hours * 3600
    records = [UsageRecord(f"msg_{n}", None, "s", iso_utc(ts), model, 7, output, 3, 0, 11, 0,
                           None, None, False, "main", None, "/p", seconds=ts)
               for n, (ts, model, output, _) in enumerate(requests)]
    with tempfile.TemporaryDirectory() as tmp, Ledger(Path(tmp) / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.insert_rows(request_rows(records, [cost for *_, cost in requests], "test"))
        summed = cut_blocks(ledger.block_usage(), now)
    one_by_one = cut_blocks(sorted(((ts, ts, model, 1, 7, output, 3, 11, cost,
                                     int(cost is not None))
                                    for ts, model, output, cost in requests),
                                   key=lambda row: row[0]), now)

    def seen(block):
        return (block.start, block.end, block.gap, block.active, block.requests,
                block.first_request, block.last_request, block.tokens,
                block.unpriced_requests, sorted(block.models),
                {model: (tokens, unpriced)
                 for model, (tokens, _, unpriced) in block.per_model.items()})

    assert [seen(block) for block in summed] == [seen(block) for block in one_by_one]
    assert [block.cost_usd for block in summed] == pytest.approx(
        [block.cost_usd for block in one_by_one])


def test_blocks_of_the_real_fixtures_equal_ccusages(tmp_path, monkeypatch):
    real_history(tmp_path, monkeypatch)
    mine = json.loads(cli_run("blocks", "--json", "-q").output)["blocks"]
    theirs = json.loads((FIXTURES / "ccusage-blocks.json").read_text())["blocks"]
    assert len(mine) == len(theirs) == 13

    def iso(text):
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    for ours, ccusage in zip(mine, theirs):
        assert ours["gap"] == ccusage["isGap"]
        assert abs(iso(ours["start"]) - iso(ccusage["startTime"])) < 1  # cmat: whole seconds
        assert abs(iso(ours["end"]) - iso(ccusage["endTime"])) < 1
        assert ours["requests"] == ccusage["entries"]
        assert ours["total_tokens"] == ccusage["totalTokens"]
        counts = ccusage["tokenCounts"]
        assert ours["tokens"] == {"input": counts["inputTokens"], "output": counts["outputTokens"],
                                  "cache_creation": counts["cacheCreationInputTokens"],
                                  "cache_read": counts["cacheReadInputTokens"]}


def test_json_ccusage_is_what_ccusage_blocks_prints_over_the_same_history(tmp_path,
                                                                          monkeypatch):
    """A script or status bar written for `ccusage blocks --json` reads cmat's unchanged:
    every block, gap and field as ccusage 20.0.24 printed them over the same files (the
    cost to the float's last digits, summed in another order)."""
    real_history(tmp_path, monkeypatch)
    mine = json.loads(cli_run("blocks", "--json=ccusage", "-q").output)
    theirs = json.loads((FIXTURES / "ccusage-blocks.json").read_text())
    assert mine.keys() == {"blocks"}
    for ours, ccusage in zip(mine["blocks"], theirs["blocks"], strict=True):
        assert ours.pop("costUSD") == pytest.approx(ccusage.pop("costUSD"), rel=1e-12)
        assert ours == ccusage
    assert json.loads(cli_run("blocks", "--json=ccusage", "--active", "-q").output) == {
        "blocks": [], "message": "No active block"}


def test_json_ccusage_of_the_block_under_way_projects_as_ccusage_does():
    """ccusage's burn rate, projection (over the time left, tokens and minutes rounded
    halves up, the cost to the cent) and token limit status, worked out by hand."""
    rows = [request("2026-01-01T10:10", output=2000, cost=0.40),
            request("2026-01-01T10:40", output=4000, cost=0.80)]
    now = at("2026-01-01T11:00:30")
    (block,) = cut_blocks(rows, now)
    data = ccusage_block(block, now, 10_000)
    assert data["isActive"] and data["entries"] == 2 and data["actualEndTime"] == \
        "2026-01-01T10:40:00.000Z"
    # 8,000 tokens (2,000 input, 6,000 output) and $1.20 over the 30 minutes between them
    assert data["burnRate"] == {"tokensPerMinute": 8000 / 30,
                                "tokensPerMinuteForIndicator": 8000 / 30,
                                "costPerHour": pytest.approx(2.40)}
    left = (at("2026-01-01T15:00") - now) / 60  # 239.5 minutes
    assert data["projection"] == {"totalTokens": math.floor(8000 + 8000 / 30 * left + 0.5),
                                  "totalCost": round(1.20 + 2.40 / 60 * left, 2),
                                  "remainingMinutes": 240}
    assert data["tokenLimitStatus"] == {
        "limit": 10_000, "projectedUsage": data["projection"]["totalTokens"],
        "percentUsed": data["projection"]["totalTokens"] / 100, "status": "exceeds"}
    # "max" is the largest block before the one under way, as ccusage takes it.
    earlier = request("2025-12-31T10:00", output=500)
    blocks = cut_blocks([earlier, *rows], now)
    assert token_limit("max", blocks) == 1500


def test_the_command_shows_the_active_block_with_its_projection_and_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    builder = TranscriptBuilder(session_id="now")
    stamp = datetime.fromtimestamp(clock.now(), UTC)
    builder.now = stamp.replace(minute=0, second=1).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    builder.response(output=1000, blocks=1)
    builder.now = stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    builder.response(output=1000, blocks=1)
    write_session(tmp_path / "claude" / "projects" / "-p", builder)
    data = json.loads(cli_run("blocks", "--active", "--json", "--token-limit", "100000",
                              "-q").output)
    (block,) = data["blocks"]
    assert block["active"] and block["requests"] == 2
    assert block["token_limit"]["limit"] == 100_000
    with Ledger() as ledger:  # the status line's way: summed in SQL, the same block
        summed = active_block(ledger, clock.now())
    assert iso_utc(summed.start) == block["start"] and summed.tokens == block["tokens"]
    assert (summed.requests, summed.models) == (2, block["models"])
    assert summed.cost_usd == pytest.approx(block["cost_usd"])
    text = cli_run("blocks", "--token-limit", "50000", "-q").output
    assert "ACTIVE" in text and "Active block:" in text and "% used" in text
    # "max" is the largest block before this one: there is none, so no limit (as ccusage).
    assert "% used" not in cli_run("blocks", "--token-limit", "max", "-q").output
    assert max(len(line) for line in text.splitlines()) <= 80


def test_no_active_block_is_said():
    assert "No active block" in cli_run("blocks", "--active", "--no-scan").output


def test_the_blocks_are_kept_in_the_ledger_until_a_request_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    history = tmp_path / "claude" / "projects" / "-p"
    first = TranscriptBuilder(session_id="first")
    first.now = "2026-03-01T10:17:31.123Z"  # a time a float does not hold exactly
    first.response(output=1000, blocks=1)
    write_session(history, first)
    computed = json.loads(cli_run("blocks", "--json", "-q").output)["blocks"]
    with Ledger() as ledger:
        assert ledger.cached_report(b'["blocks"]') is not None
    assert json.loads(cli_run("blocks", "--json", "-q").output)["blocks"] == computed
    later = TranscriptBuilder(session_id="later")
    later.now = "2026-03-01T20:00:00.000Z"
    later.response(output=1000, blocks=1)
    write_session(history, later)
    blocks = json.loads(cli_run("blocks", "--json", "-q").output)["blocks"]
    assert [(b["gap"], b["requests"]) for b in blocks] == [(False, 1), (True, 0), (False, 1)]
    assert blocks[0] == computed[0]
