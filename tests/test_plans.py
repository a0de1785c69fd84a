"""Plans: weekly hours per model family, and `cmat limits`'s weekly view."""

import json

from cmat import plans
from tests.helpers import cli_run, now_iso, user_config
from tests.transcript_factory import TranscriptBuilder, write_session

OPUS, SONNET = "claude-opus-4-6", "claude-sonnet-4-5-20250929"


def test_a_family_is_in_use_until_five_minutes_after_its_latest_request():
    times = [(OPUS, 0), (OPUS, 60), (SONNET, 90),  # Opus 0..360, Sonnet 90..390
             (OPUS, 1000),                          # a new stretch: 1000..1300
             (SONNET, 10_000), (SONNET, 10_299)]    # 10000..10599
    hours = plans.active_hours(times)
    assert hours["Opus"] * 3600 == 360 + 300
    assert hours["Sonnet"] * 3600 == 300 + 599
    assert plans.active_hours([]) == {}


def test_families_are_named_by_model_id():
    assert plans.family("claude-opus-4-6") == "Opus"
    assert plans.family("anthropic.claude-sonnet-5-5-v1:0") == "Sonnet"
    assert plans.family("gpt-5") == "gpt-5"


def test_the_weekly_view_sets_hours_in_use_beside_the_plans_weekly_hours(project, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    user_config('plan = "max5"\n')
    builder = TranscriptBuilder(session_id="w1")
    for minutes_ago in (600, 598, 590):  # Opus busy 600..593 and 590..585 min ago
        builder.now = now_iso(-minutes_ago * 60)
        builder.response(model=OPUS, output=100, blocks=1)
    builder.now = now_iso(-120)
    builder.response(model=SONNET, output=100, blocks=1)
    write_session(tmp_path / "claude" / "projects" / "-p", builder)
    data = json.loads(cli_run("limits", "--json", "--quiet").output)
    week = {row["family"]: row for row in data["last_7_days"]}
    assert week["Opus"]["active_hours"] == round(12 / 60, 2)
    assert week["Opus"]["plan_weekly_hours"] == [15, 35]
    assert week["Sonnet"]["active_hours"] == round(5 / 60, 2)
    assert week["Sonnet"]["plan_weekly_hours"] == [140, 280]
    text = cli_run("limits", "--no-scan").output
    assert "Opus" in text and "0.2" in text and "15-35 h" in text and "140-280 h" in text
    assert max(len(line) for line in text.splitlines()) <= 80
