"""`cmat optimize` and `cmat estimate` against hand-built histories whose arithmetic is done
here, from the prices typed into the transcript factory (not from the catalog)."""

import json

import pytest

from tests.helpers import cli_run
from tests.transcript_factory import PRICES, TIERS, TranscriptBuilder, write_session, write_subagent

SONNET, OPUS_41 = "claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805"


@pytest.fixture
def history(tmp_path, monkeypatch, project):
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("TZ", "UTC")
    return config / "projects" / "-home-user-app"


def suggestions(kind):
    found = json.loads(cli_run("optimize", "--period", "all", "--json", "-q").output)
    return [s for s in found["suggestions"] if s["kind"] == kind], found


def at(builder, when):
    builder.now = f"2026-03-01T{when}.000Z"
    return builder


def cost(model, input=0, output=0, write_5m=0, write_1h=0, read=0, prices=None):
    p_in, p_w5, p_w1, p_rd, p_out = prices or PRICES[model]
    return (input * p_in + write_5m * p_w5 + write_1h * p_w1 + read * p_rd
            + output * p_out) / 1e6


def test_right_sizing_reprices_the_costly_models_requests_on_the_cheaper_one(history):
    main = TranscriptBuilder(session_id="s-review", cwd="/home/user/app")
    at(main, "10:00:00").response(model=SONNET, output=10)
    path = write_session(history, main)

    def reviews(b, agent):
        for minute in range(6):
            at(b, f"10:{10 + minute:02d}:00").response(model=SONNET, input=1000, output=500,
                                                       sidechain=True, agent_id=agent)
        for minute in range(3):
            at(b, f"10:{30 + minute:02d}:00").response(model=OPUS_41, input=1200, output=500,
                                                       sidechain=True, agent_id=agent)

    write_subagent(path.parent, "s-review", "r1", "code-reviewer", reviews)
    (found,), report = suggestions("model")
    expected = 3 * (cost(OPUS_41, 1200, 500) - cost(SONNET, 1200, 500))
    assert found["savings_usd"] == pytest.approx(expected, rel=1e-12)
    assert found["evidence"]["model"] == OPUS_41 and found["evidence"]["cheaper_model"] == SONNET
    assert found["evidence"]["requests"] == 3 and found["evidence"]["agents"] == ["code-reviewer"]
    assert "candidate to try" in found["action"]
    assert report["potential_savings_usd"] >= found["savings_usd"]


def test_an_expired_cache_written_again_is_priced_as_reads_with_1h_writes(history):
    builder = TranscriptBuilder(session_id="s-cache", cwd="/home/user/app")
    at(builder, "10:00:00").response(model=SONNET, input=5, output=100, write_5m=10_000)
    at(builder, "10:10:00").response(model=SONNET, input=5, output=100, write_5m=12_000,
                                     read=0)
    write_session(history, builder)
    (found,), _ = suggestions("cache-ttl")
    w5, w1, rd = PRICES[SONNET][1], PRICES[SONNET][2], PRICES[SONNET][3]
    expected = (10_000 * (w5 - rd) - 10_000 * (w1 - w5)) / 1e6  # re-written 10k of the 12k
    assert found["savings_usd"] == pytest.approx(expected, rel=1e-12)
    assert found["evidence"]["sessions"] == ["s-cache"]


def test_1h_writes_read_within_5_minutes_paid_a_premium_for_nothing(history):
    builder = TranscriptBuilder(session_id="s-1h", cwd="/home/user/app")
    at(builder, "10:00:00").response(model=SONNET, input=5, output=100, write_1h=20_000)
    at(builder, "10:02:00").response(model=SONNET, input=5, output=100, read=20_000)
    write_session(history, builder)
    (found,), _ = suggestions("cache-1h")
    assert found["savings_usd"] == pytest.approx(
        20_000 * (PRICES[SONNET][2] - PRICES[SONNET][1]) / 1e6, rel=1e-12)
    assert suggestions("cache-ttl")[0] == []


def test_one_session_gets_one_cache_advice_that_says_how(history):
    """Some gaps over 5 minutes (1-hour writes would help) and 1-hour writes read within 5
    minutes (5-minute writes would do) in one session: one advice, the net saving, and the
    Claude Code setting that gives it."""
    builder = TranscriptBuilder(session_id="s-mixed", cwd="/home/user/app")
    at(builder, "10:00:00").response(model=SONNET, input=5, output=100, write_5m=10_000)
    at(builder, "10:10:00").response(model=SONNET, input=5, output=100, write_5m=12_000)
    at(builder, "10:11:00").response(model=SONNET, input=5, output=100, write_1h=1_000,
                                     read=12_000)
    at(builder, "10:12:00").response(model=SONNET, input=5, output=100, read=13_000)
    write_session(history, builder)
    (ttl,), _ = suggestions("cache-ttl")
    assert suggestions("cache-1h")[0] == []
    w5, w1, rd = PRICES[SONNET][1], PRICES[SONNET][2], PRICES[SONNET][3]
    spared = (10_000 * (w5 - rd) - 10_000 * (w1 - w5)) / 1e6
    premium = 1_000 * (w1 - w5) / 1e6
    assert ttl["savings_usd"] == pytest.approx(spared - premium, rel=1e-9)
    assert "ENABLE_PROMPT_CACHING_1H=1" in ttl["action"]


def test_the_long_prompt_premium_is_the_tier_less_the_base_price(history):
    builder = TranscriptBuilder(session_id="s-long", cwd="/home/user/app")
    at(builder, "10:00:00").response(model=SONNET, input=150_000, output=1000, read=60_000)
    at(builder, "10:01:00").response(model=SONNET, input=1000, output=1000, read=60_000)
    write_session(history, builder)
    (found,), _ = suggestions("long-prompt")
    tier = TIERS[SONNET][1]
    expected = cost(SONNET, 150_000, 1000, read=60_000, prices=tier) - cost(
        SONNET, 150_000, 1000, read=60_000)
    assert found["savings_usd"] == pytest.approx(expected, rel=1e-12)
    assert found["evidence"]["requests"] == 1  # the other request stayed under the tier


def test_interrupted_responses_and_discarded_subagents_are_waste(history):
    builder = TranscriptBuilder(session_id="s-cut", cwd="/home/user/app")
    at(builder, "10:00:00").response(model=SONNET, output=2000)
    builder.user("[Request interrupted by user]")
    at(builder, "10:01:00").response(model=SONNET, output=300)  # it called the subagent
    builder.add_line({"type": "user", "sessionId": "s-cut", "timestamp": builder.now,
                      "message": {"role": "user", "content": [
                          {"type": "tool_result", "tool_use_id": "toolu_1",
                           "content": "[Request interrupted by user for tool use]"}]}})
    builder.synthetic_error()
    path = write_session(history, builder)
    write_subagent(path.parent, "s-cut", "sub1", "Explore",
                   lambda b, a: at(b, "10:00:30").response(model=SONNET, output=4000,
                                                           sidechain=True, agent_id=a))
    found, report = suggestions("waste")
    by_title = {s["title"]: s for s in found}
    # The response cut short, and the one whose tool call (the subagent) was interrupted.
    assert by_title["Responses interrupted by the user"]["savings_usd"] == pytest.approx(
        cost(SONNET, 10, 2000) + cost(SONNET, 10, 300), rel=1e-12)
    assert by_title["Subagent runs whose result was thrown away"]["savings_usd"] == \
        pytest.approx(cost(SONNET, 10, 4000), rel=1e-12)
    assert report["api_error_lines"] == 1 and report["sessions_with_api_errors"] == ["s-cut"]


def test_a_session_far_above_its_agents_usual_is_flagged_with_the_excess(history):
    for index in range(20):
        builder = TranscriptBuilder(session_id=f"usual-{index:02d}", cwd="/home/user/app")
        at(builder, f"1{index // 10}:{index % 10:02d}:00").response(model=SONNET, output=1000)
        write_session(history, builder)
    big = TranscriptBuilder(session_id="runaway", cwd="/home/user/app")
    at(big, "12:00:00").response(model=SONNET, output=400_000)
    write_session(history, big)
    (found,), _ = suggestions("runaway")
    usual = cost(SONNET, 10, 1000)
    assert found["savings_usd"] == pytest.approx(cost(SONNET, 10, 400_000) - usual, rel=1e-12)
    assert list(found["evidence"]["session_costs"]) == ["runaway"]


def test_suggestions_are_ranked_by_dollars_and_the_text_says_the_total(history):
    builder = TranscriptBuilder(session_id="s-both", cwd="/home/user/app")
    at(builder, "10:00:00").response(model=SONNET, input=150_000, output=1000, read=60_000)
    at(builder, "10:00:30").response(model=SONNET, input=5, output=100, write_1h=20_000)
    at(builder, "10:01:00").response(model=SONNET, input=5, output=100, read=20_000)
    write_session(history, builder)
    found = json.loads(cli_run("optimize", "--period", "all", "--json", "-q").output)
    savings = [s["savings_usd"] for s in found["suggestions"]]
    assert savings == sorted(savings, reverse=True) and len(savings) == 2
    assert found["potential_savings_usd"] == pytest.approx(sum(savings))
    text = cli_run("optimize", "--period", "all", "--no-scan").output
    assert text.startswith("Potential savings since the start: $")
    assert " 1. " in text and " 2. " in text
    assert cli_run("optimize", "--period", "soon", code=2).stderr.count("7d, 30d or all")
    after = cli_run("optimize", "--since", "2099-01-01", "--no-scan").output
    assert after.strip() == ("No usage recorded since 2099-01-01: --period all looks at the "
                             "whole history.")


def test_optimize_on_the_real_fixtures(real_history):
    found = json.loads(cli_run("optimize", "--period", "all", "--json", "-q").output)
    assert found["requests"] > 0 and found["cost_usd"] > 0
    savings = [s["savings_usd"] for s in found["suggestions"]]
    assert savings == sorted(savings, reverse=True)
    assert found["potential_savings_usd"] == pytest.approx(sum(savings))
    assert all(0 < s <= found["cost_usd"] for s in savings)
    assert cli_run("optimize", "--period", "all", "--no-scan").output.startswith(
        "Potential savings")


# --- estimates --------------------------------------------------------------------------------


def past_tasks(project, tmp_path, outputs, agent="architect", task_type="analysis",
               model=SONNET):
    from cmat.attribution import extract
    from cmat.tasks.queue import QueueService

    ids = []
    for index, output in enumerate(outputs):
        task = QueueService(project).add(f"t{index}", agent=agent, task_type=task_type,
                                         enhancement="feat")["id"]
        builder = TranscriptBuilder(session_id=f"{agent}-{task_type}-{index}")
        at(builder, f"10:{index:02d}:00").response(model=model, input=0, output=output)
        extract(project, task, write_session(tmp_path / "t", builder))
        ids.append(task)
    return ids


def test_the_next_tasks_cost_is_the_median_and_p90_of_past_ones(project, tmp_path):
    past_tasks(project, tmp_path, [1000 * n for n in range(1, 11)])  # $0.015 .. $0.15
    found = json.loads(cli_run("estimate", "--agent", "architect", "--task-type", "analysis",
                               "--model", OPUS_41, "--json", "--no-scan").output)
    assert found["tasks"] == 10 and found["notes"] == []
    assert found["median_usd"] == pytest.approx(cost(SONNET, 0, 5000))
    assert found["p90_usd"] == pytest.approx(cost(SONNET, 0, 9000))
    assert found["model"] == OPUS_41
    assert found["model_p90_usd"] == pytest.approx(cost(OPUS_41, 0, 9000))
    text = cli_run("estimate", "--agent", "architect", "--no-scan").output
    assert "median $0.07, 90th percentile $0.14" in text  # $0.075 is 0.07499... in binary
    assert text.startswith("Past tasks of agent architect: 10\n")
    assert cli_run("estimate", "--no-scan").output.startswith("Past tasks: 10\n")


def test_thin_history_is_said_and_the_match_widened(project, tmp_path):
    past_tasks(project, tmp_path, [1000, 2000, 3000, 4000, 5000, 6000])
    past_tasks(project, tmp_path, [10_000], task_type="testing")
    found = json.loads(cli_run("estimate", "--agent", "architect", "--task-type", "testing",
                               "--json", "--no-scan").output)
    assert found["tasks"] == 7 and found["match"]["task_type"] is None
    assert "widened to agent architect by leaving out task_type" in found["notes"][0]
    # A name no past task has is a typo until shown otherwise: said, never widened in silence.
    nobody = cli_run("estimate", "--agent", "nobody", "--json", "--no-scan", code=2).stderr
    assert "no past task has agent 'nobody'" in nobody and "known: architect" in nobody
    assert "did you mean architect?" in cli_run("estimate", "--agent", "architekt",
                                                "--no-scan", code=2).stderr


def test_budget_check_estimate_refuses_a_task_likely_to_overrun(project, tmp_path):
    from cmat.tasks.queue import QueueService
    from tests.helpers import user_config

    past_tasks(project, tmp_path, [1000 * n for n in range(1, 11)])  # on 2026-03-01
    user_config("[budgets]\ndaily = 0.10\n")  # nothing spent today
    next_task = QueueService(project).add("next", agent="architect", task_type="analysis")["id"]
    assert cli_run("budget", "check", "--task", next_task, "--no-scan").output.startswith("ok")
    refused = cli_run("budget", "check", "--task", next_task, "--estimate", "--no-scan", code=11)
    assert "Daily budget: $0.10 left, less than the task's estimated 90th percentile $0.14" \
        in refused.output


def test_a_prompt_estimate_states_its_calibration(project, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("x" * 3500)
    found = json.loads(cli_run("estimate", "--prompt-file", prompt, "--model", SONNET,
                               "--output-tokens", "500", "--json", "--no-scan").output)
    assert found["tokens"] == 1000 and found["approximate"]
    assert found["total_usd"] == pytest.approx(cost(SONNET, 1000, 500))
    assert "too few of your own requests" in found["calibration"]
    text = cli_run("estimate", "--prompt-file", "-", "--no-scan", input="hello " * 100).output
    assert text.startswith("~172 tokens (600 characters; approximate")


def test_the_calibration_measures_the_users_own_requests(tmp_path):
    from cmat.insight.estimate import calibrate

    builder = TranscriptBuilder(session_id="cal")
    prompt = 10_000
    for turn in range(6):
        builder.user("y" * 2000)  # 2,000 characters that grow the next prompt by 500 tokens
        at(builder, f"10:0{turn}:00").response(model=SONNET, input=0, read=prompt, output=100,
                                               blocks=1)
        prompt += 100 + 500
    found = calibrate([write_session(tmp_path, builder)])
    assert found.samples == 5 and found.chars_per_token == pytest.approx(4.0)


# --- the Python API -----------------------------------------------------------------------


def test_cost_tracker_records_prices_attributes_and_checks(project, tmp_path):
    from cmat import CostTracker
    from cmat.errors import UsageError
    from cmat.tasks.queue import QueueService
    from tests.helpers import user_config

    task = QueueService(project).add("orchestrated", agent="architect",
                                     enhancement="feat")["id"]
    tracker = CostTracker(project)
    first = tracker.record(model=SONNET, input_tokens=1000, output_tokens=200,
                           task_id=task, request_id="req-1", provider="anthropic")
    again = tracker.record(model=SONNET, input_tokens=1000, output_tokens=200,
                           task_id=task, request_id="req-1", provider="anthropic")
    assert first.cost_usd == pytest.approx(cost(SONNET, 1000, 200)) and again == first
    other = tracker.record(model="gpt-5-mini", provider="openai", input_tokens=10,
                           output_tokens=10, task_id=task)
    assert other.cost_usd is None  # not in the catalog: stored, counted as unpriced
    assert tracker.spent(task_id=task) == pytest.approx(first.cost_usd)
    assert tracker.spent(period="daily") == pytest.approx(first.cost_usd)
    assert tracker.spent(enhancement="feat") == pytest.approx(first.cost_usd)
    shown = json.loads(cli_run("costs", "show", task, "--json").output)
    assert shown["total_usd"] == pytest.approx(first.cost_usd)
    assert tracker.can_proceed(0.01, task_id=task)
    user_config("[budgets]\ndaily = 0.005\n")
    assert not tracker.can_proceed(0.01, task_id=task)
    with pytest.raises(UsageError, match="input_tokens must be a whole number"):
        tracker.record(model=SONNET, input_tokens=-1)
    assert tracker.estimate(agent="architect").tasks == 1


def test_cost_tracker_ids_never_collide_and_wrong_types_are_clear_errors(project):
    from cmat import CostTracker
    from cmat.errors import UsageError

    tracker = CostTracker(project)
    first = tracker.record(model="claude-opus-4-6", provider="openai", request_id="eu:r1",
                           input_tokens=10)
    with pytest.raises(UsageError, match="must not contain ':'"):
        tracker.record(model="claude-opus-4-6", provider="openai:eu", request_id="r1",
                       input_tokens=10)
    assert first.message_id == "api:openai:eu:r1"
    for bad in ({"model": 5}, {"model": "claude-opus-4-6", "task_id": ["t"]},
                {"model": "claude-opus-4-6", "request_id": 7},
                {"model": "claude-opus-4-6", "agent": b"x"},
                {"model": "claude-opus-4-6", "input_tokens": "10"},
                {"model": "claude-opus-4-6", "when": object()}):
        with pytest.raises(UsageError):
            tracker.record(**bad)
