import pytest

from cmat.catalog import ModelService
from cmat.pricing import TokenCounts, request_cost
from tests.transcript_factory import expected_request_cost


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
