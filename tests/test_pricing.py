import functools
import marshal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmat import rates
from cmat.catalog import ModelService
from cmat.catalog.edit import save_user_entries
from cmat.pricing import request_cost
from cmat.reports import session_report
from cmat.usage import TokenCounts
from tests.transcript_factory import (
    TranscriptBuilder,
    expected_request_cost,
    write_session,
)


@pytest.fixture
def sonnet(project):
    return ModelService(project).get("claude-sonnet-4-5-20250929").pricing


def test_threshold_is_exclusive_and_applies_to_the_whole_input_side(sonnet):
    at = TokenCounts(input=100_000, output=1000, cache_creation=50_000, cache_read=50_000)
    over = TokenCounts(input=100_001, output=1000, cache_creation=50_000, cache_read=50_000)
    assert request_cost(sonnet, at) == pytest.approx(
        expected_request_cost("claude-sonnet-4-5-20250929", 100_000, 1000, 50_000, 0, 50_000))
    premium = request_cost(sonnet, over)
    assert premium == pytest.approx(
        (100_001 * 6 + 1000 * 22.5 + 50_000 * 7.5 + 50_000 * 0.6) / 1e6)


def test_every_token_category_alone_can_cross_the_threshold(sonnet):
    # Tiering each category separately is the known mistake: 150k cache reads + 60k writes.
    tokens = TokenCounts(input=1, output=10, cache_creation=60_000, cache_read=150_000)
    assert request_cost(sonnet, tokens) == pytest.approx(
        (1 * 6 + 10 * 22.5 + 60_000 * 7.5 + 150_000 * 0.6) / 1e6)


def test_one_hour_writes_use_their_own_price(sonnet):
    tokens = TokenCounts(cache_creation=10_000, cache_creation_1h=4_000)
    assert request_cost(sonnet, tokens) == pytest.approx((6_000 * 3.75 + 4_000 * 6) / 1e6)


def test_web_searches_cost_ten_dollars_per_thousand(sonnet):
    assert request_cost(sonnet, TokenCounts(), web_search_requests=3) == pytest.approx(0.03)


def test_fast_mode_uses_the_fast_tier_only_where_the_catalog_has_one(project):
    models = ModelService(project)
    tokens = TokenCounts(input=1000, output=1000)
    opus46 = models.get("claude-opus-4-6").pricing
    assert request_cost(opus46, tokens, speed="fast") == pytest.approx((1000 * 30 + 1000 * 150) / 1e6)
    opus47 = models.get("claude-opus-4-7").pricing
    assert request_cost(opus47, tokens, speed="fast") == request_cost(opus47, tokens)


# --- today's price rules, each through a real transcript, computed by hand --------------------


def _cost_of(tmp_path, project, build):
    builder = TranscriptBuilder(session_id=f"s{len(list(tmp_path.iterdir()))}")
    build(builder)
    return session_report(write_session(tmp_path, builder), models=ModelService(project))


def _one(tmp_path, project, model, when="2026-11-01T10:00:00.000Z", **response):
    def build(builder):
        builder.now = when
        builder.response(model=model, blocks=1, **response)
    return _cost_of(tmp_path, project, build)["total_usd"]


@pytest.mark.parametrize("inputs, expected", [
    # Haiku 5.5: the prompt (input + cache writes + cache reads) up to 100,000 at the base
    # prices; above it every token of the request, output included, at 5x.
    ((59_999, 20_000, 20_000), (59_999 * 0.10 + 20_000 * 0.125 + 20_000 * 0.01 + 2_000 * 0.50)),
    ((60_000, 20_000, 20_000), (60_000 * 0.10 + 20_000 * 0.125 + 20_000 * 0.01 + 2_000 * 0.50)),
    ((60_001, 20_000, 20_000), (60_001 * 0.50 + 20_000 * 0.625 + 20_000 * 0.05 + 2_000 * 2.50)),
], ids=["below", "at", "above"])
def test_haiku_5_5_bills_the_whole_request_at_5x_above_100k(tmp_path, project, inputs, expected):
    fresh, writes, reads = inputs
    cost = _one(tmp_path, project, "claude-haiku-5-5", input=fresh, write_5m=writes, read=reads,
                output=2_000)
    assert cost == pytest.approx(expected / 1e6)


@pytest.mark.parametrize("inputs, premium", [((140_000, 30_000, 30_000), False),
                                             ((140_001, 30_000, 30_000), True)])
def test_sonnet_4_5_moves_to_its_long_context_prices_above_200k(tmp_path, project, inputs,
                                                                 premium):
    fresh, writes, reads = inputs
    prices = (6, 7.50, 0.60, 22.50) if premium else (3, 3.75, 0.30, 15)
    cost = _one(tmp_path, project, "claude-sonnet-4-5-20250929", input=fresh, write_5m=writes,
                read=reads, output=1_000)
    assert cost == pytest.approx((fresh * prices[0] + writes * prices[1] + reads * prices[2]
                                  + 1_000 * prices[3]) / 1e6)


@pytest.mark.parametrize("when, read_price", [("2026-10-06T23:59:59.999Z", 0.20),
                                              ("2026-10-07T00:00:00.000Z", 0.10)])
def test_sonnet_5_5_cache_reads_cost_what_they_cost_that_day(tmp_path, project, when,
                                                               read_price):
    cost = _one(tmp_path, project, "claude-sonnet-5-5", when, input=100, read=1_000_000,
                output=100)
    assert cost == pytest.approx((100 * 2 + 1_000_000 * read_price + 100 * 10) / 1e6)


@pytest.mark.parametrize("model, when, multiplier", [
    ("claude-opus-4-6", "2026-11-01T10:00:00.000Z", 6),
    ("claude-opus-4-7", "2026-07-23T23:59:59.000Z", 6),
    ("claude-opus-4-7", "2026-07-24T00:00:00.000Z", 1),  # fast mode removed that day
    ("claude-opus-4-8", "2026-11-29T23:59:59.000Z", 2),
    ("claude-opus-4-8", "2026-11-30T00:00:00.000Z", 1),  # and from this day for Opus 4.8
    ("claude-opus-5", "2026-11-01T10:00:00.000Z", 2),
])
def test_fast_mode_multiplies_every_token_price_while_offered(tmp_path, project, model, when,
                                                              multiplier):
    cost = _one(tmp_path, project, model, when, input=1_000, write_1h=1_000, read=1_000,
                output=1_000, speed="fast", searches=2)
    tokens = 1_000 * 5 + 1_000 * 10 + 1_000 * 0.50 + 1_000 * 25
    assert cost == pytest.approx(tokens * multiplier / 1e6 + 0.02)  # searches stay $0.01


def test_fast_and_us_only_inference_stack_on_opus_5_5(tmp_path, project):
    cost = _one(tmp_path, project, "claude-opus-5-5", input=1_000, write_5m=1_000, read=1_000,
                output=1_000, speed="fast", geo="us", searches=1)
    tokens = 1_000 * 4 + 1_000 * 5 + 1_000 * 0.20 + 1_000 * 20
    assert cost == pytest.approx(tokens * 2 * 1.1 / 1e6 + 0.01)


@pytest.mark.parametrize("model, premium", [("claude-haiku-5-5", 1.1), ("claude-sonnet-4-6", 1.1),
                                            ("claude-haiku-4-5-20251001", 1),
                                            ("claude-opus-4-5-20251101", 1)])
def test_us_only_inference_costs_1_1x_on_the_models_that_offer_it(tmp_path, project, model,
                                                                  premium):
    base = _one(tmp_path, project, model, input=1_000, output=1_000)
    assert _one(tmp_path, project, model, input=1_000, output=1_000, geo="us") == \
        pytest.approx(base * premium)
    assert _one(tmp_path, project, model, input=1_000, output=1_000, geo="global") == \
        pytest.approx(base)


def test_a_tier_fast_and_residency_stack_on_one_request(tmp_path, project):
    save_user_entries([{
        "id": "claude-test-9", "name": "Test 9", "pattern": "^claude-test-9$",
        "pricing": {"input": 1, "output": 10, "cache_write": 1.25, "cache_write_1h": 2,
                    "cache_read": 0.1, "fast_multiplier": 3, "geo_multipliers": {"us": 1.1},
                    "tiers": [{"above_prompt_tokens": 1_000, "prices": {
                        "input": 2, "output": 20, "cache_write": 2.5, "cache_write_1h": 4,
                        "cache_read": 0.2}}]}}])
    cost = _one(tmp_path, project, "claude-test-9", input=600, read=401, output=100,
                speed="fast", geo="us")
    assert cost == pytest.approx((600 * 2 + 401 * 0.2 + 100 * 20) * 3 * 1.1 / 1e6)


def test_an_unknown_model_is_unpriced_never_zero(tmp_path, project):
    report = _cost_of(tmp_path, project, lambda b: (
        b.response(model="claude-nova-9", input=1_000, output=1_000),
        b.response(model="claude-opus-4-6", input=1_000, output=1_000)))
    (unknown,) = [m for m in report["models"] if m["model"] == "claude-nova-9"]
    assert unknown["total_usd"] is None and unknown["tokens"]["input"] == 1_000
    assert report["unpriced_models"] == ["claude-nova-9"]
    assert report["total_usd"] == pytest.approx((1_000 * 5 + 1_000 * 25) / 1e6)



@functools.cache
def catalog_models():
    return ModelService().catalog.models  # inside a test: the bundled catalog alone


@settings(max_examples=200)
@given(tokens=st.tuples(*[st.integers(0, 2_000_000)] * 4), one_hour_share=st.floats(0, 1),
       searches=st.integers(0, 20), speed=st.sampled_from([None, "fast"]),
       geo=st.sampled_from([None, "us", "global"]), index=st.integers(0, 10**6))
def test_prices_carried_through_a_cache_cost_what_the_catalog_costs(tokens, one_hour_share,
                                                                    searches, speed, geo,
                                                                    index):
    """The status line prices new lines with prices written to its cache (rates.plain) and
    read back (rates.from_plain): every model's every price, tier, fast mode and region."""
    entry = catalog_models()[index % len(catalog_models())]
    pricing = (*entry.history, entry.pricing)[index % (len(entry.history) + 1)]
    input_tokens, output, writes, reads = tokens
    counts = TokenCounts(input_tokens, output, writes, int(writes * one_hour_share), reads)
    carried = rates.from_plain(marshal.loads(marshal.dumps(rates.plain(pricing))))
    assert rates.request_cost(carried, counts, searches, speed, geo) == \
        request_cost(pricing, counts, searches, speed, geo)
