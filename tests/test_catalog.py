import json

import pytest

from cmat import paths
from cmat.catalog import ModelService, load_catalog, pattern_specificity
from cmat.errors import CatalogError, NotFound
from tests.transcript_factory import FAST, LONG_CONTEXT, PRICES


@pytest.fixture
def service(project):
    return ModelService(project)


@pytest.mark.parametrize("model_id", sorted(PRICES))
def test_every_model_of_the_pricing_facts_has_its_prices(service, model_id):
    pricing = service.get_by_pattern(model_id).pricing
    p_in, p_w5, p_w1, p_rd, p_out = PRICES[model_id]
    assert (pricing.input, pricing.cache_write, pricing.cache_write_1h, pricing.cache_read,
            pricing.output) == (p_in, p_w5, p_w1, p_rd, p_out)
    assert pricing.web_search_per_1k == 10
    if model_id in LONG_CONTEXT:
        long = pricing.long_context
        assert long.threshold_tokens == 200_000
        assert (long.input, long.cache_write, long.cache_write_1h, long.cache_read,
                long.output) == LONG_CONTEXT[model_id]
    else:
        assert pricing.long_context is None
    if model_id in FAST:
        fast = pricing.fast
        assert (fast.input, fast.cache_write, fast.cache_write_1h, fast.cache_read,
                fast.output) == FAST[model_id]


@pytest.mark.parametrize("transcript_id, expected", [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4-20250514"),
    ("claude-sonnet-4-0", "claude-sonnet-4-20250514"),
    ("claude-opus-4-1-20250805", "claude-opus-4-1-20250805"),
    ("claude-opus-4-20250514", "claude-opus-4-20250514"),
    ("anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1-20250805"),
    ("claude-opus-4-6", "claude-opus-4-6"),
    ("claude-haiku-4-5", "claude-haiku-4-5-20251001"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022"),
    ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet-20250219"),
])
def test_dated_undated_and_prefixed_ids_resolve(service, transcript_id, expected):
    assert service.get_by_pattern(transcript_id).id == expected


@pytest.mark.parametrize("unknown", ["gpt-4o", "claude-sonnet-9", "<synthetic>",
                                     "claude-opus-4-9-20990101", "notclaude-sonnet-4-5"])
def test_unknown_ids_do_not_resolve(service, unknown):
    assert service.get_by_pattern(unknown) is None
    with pytest.raises(NotFound, match="unknown model"):
        service.get(unknown)


def test_bundled_catalog_validates_without_conflicts(service):
    assert service.problems() == []
    assert service.get_default().id == "claude-sonnet-4-6"
    assert all(m.source and m.last_updated for m in service.list_all())


def test_exact_id_beats_a_family_pattern_and_specific_beats_general(project, service):
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_text(json.dumps({"models": [
        {"id": "claude-sonnet-family", "name": "Any Sonnet", "pattern": "claude-sonnet-.*",
         "pricing": {"input": 1, "output": 1, "cache_write": 1, "cache_write_1h": 1,
                     "cache_read": 1}},
        {"id": "claude-sonnet-4-5-preview", "name": "Preview", "pattern": "claude-sonnet-.*",
         "pricing": {"input": 2, "output": 2, "cache_write": 2, "cache_write_1h": 2,
                     "cache_read": 2}}]}))
    service = ModelService(project)
    assert service.get_by_pattern("claude-sonnet-4-5-20250929").name == "Claude Sonnet 4.5"
    assert service.get_by_pattern("claude-sonnet-7").name in ("Any Sonnet", "Preview")
    assert service.get_by_pattern("claude-sonnet-4-5-preview").name == "Preview"  # exact id
    assert any("claimed equally" in p for p in service.problems())
    assert pattern_specificity("claude-sonnet-4-5(?:-\\d{8})?$") > pattern_specificity(
        "claude-sonnet-.*")


def test_project_catalog_overrides_fields_and_cmat_models_overrides_project(project, monkeypatch,
                                                                            tmp_path):
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_text(json.dumps({"models": [{"id": "claude-opus-4-6", "pricing": {"input": 7}}]}))
    assert ModelService(project).get("claude-opus-4-6").pricing.input == 7
    assert ModelService(project).get("claude-opus-4-6").pricing.output == 25  # merged, kept
    env_layer = tmp_path / "mine.json"
    env_layer.write_text(json.dumps({"models": [{"id": "claude-opus-4-6",
                                                 "pricing": {"input": 8}}]}))
    monkeypatch.setenv("CMAT_MODELS", str(env_layer))
    assert ModelService(project).get("claude-opus-4-6").pricing.input == 8


def test_cmat_format_catalog_with_globs_and_no_1h_price_loads(project):
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_text(json.dumps({"models": {"my-model": {
        "name": "Mine", "description": "", "pattern": "my-model*|mine-*", "max_tokens": 1000,
        "api_id": "my-model-1", "pricing": {"input": 2, "output": 4, "cache_write": 2.5,
                                            "cache_read": 0.2, "currency": "USD",
                                            "per_tokens": 1000000}}}}))
    entry = ModelService(project).get_by_pattern("mine-2024")
    assert entry.id == "my-model"
    assert entry.pricing.cache_write_1h == 4  # standard 2x input, never the 5-minute rate


@pytest.mark.parametrize("body, field", [
    ({"id": "x", "name": "X", "pattern": "x", "pricing": {"input": -1, "output": 1,
      "cache_write": 1, "cache_write_1h": 1, "cache_read": 1}}, "pricing.input"),
    ({"id": "x", "name": "X", "pattern": "x(", "pricing": {"input": 1, "output": 1,
      "cache_write": 1, "cache_write_1h": 1, "cache_read": 1}}, "pattern"),
    ({"id": "x", "name": "X", "pattern": "x", "pricing": {"input": 1, "output": "lots",
      "cache_write": 1, "cache_write_1h": 1, "cache_read": 1}}, "pricing.output"),
    ({"id": "x", "name": "X", "pattern": "x", "pricing": {"input": 1}}, "pricing.output"),
    ({"id": "x", "name": "X", "pattern": "x", "colour": "red", "pricing": {"input": 1,
      "output": 1, "cache_write": 1, "cache_write_1h": 1, "cache_read": 1}}, "colour"),
])
def test_broken_catalog_names_file_model_and_field(project, body, field):
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_text(json.dumps({"models": [body]}))
    with pytest.raises(CatalogError) as caught:
        load_catalog(project)
    message = str(caught.value)
    assert str(layer) in message and "model x" in message and f"field {field}" in message


def test_invalid_json_catalog_is_reported(project):
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_text("{not json")
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_catalog(project)


def test_missing_cmat_models_file_is_reported(project, monkeypatch, tmp_path):
    monkeypatch.setenv("CMAT_MODELS", str(tmp_path / "absent.json"))
    with pytest.raises(NotFound, match="CMAT_MODELS"):
        load_catalog(project)


def test_validation_cache_is_used_then_invalidated_by_a_changed_layer(project):
    first = load_catalog(project)
    cache = paths.cache_home() / "catalog.json"
    assert cache.is_file()
    assert load_catalog(project) == first
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_text(json.dumps({"models": [{"id": "claude-opus-4-6", "pricing": {"input": 9}}]}))
    assert ModelService(project).get("claude-opus-4-6").pricing.input == 9


def test_damaged_cache_is_ignored(project):
    load_catalog(project)
    (paths.cache_home() / "catalog.json").write_text("garbage")
    assert len(load_catalog(project).models) >= 15


def test_set_default_writes_the_user_catalog_never_the_bundled_one(project):
    bundled = paths.bundled_catalog().read_bytes()
    service = ModelService(project)
    target = service.set_default("claude-opus-4-6")
    assert target == project / ".claude" / "data" / "models.json"
    assert paths.bundled_catalog().read_bytes() == bundled
    assert ModelService(project).get_default().id == "claude-opus-4-6"
    ModelService(project).set_default("claude-haiku-4-5")
    fresh = ModelService(project)
    assert fresh.get_default().id == "claude-haiku-4-5-20251001"
    assert [m.id for m in fresh.list_all() if m.is_default] == ["claude-haiku-4-5-20251001"]


def test_calculate_cost_public_api(service):
    cost = service.calculate_cost("claude-sonnet-4-5", 1000, 2000, cache_creation_tokens=3000,
                                  cache_read_tokens=4000, cache_creation_1h_tokens=1000,
                                  web_search_requests=2)
    expected = (1000 * 3 + 2000 * 15 + 2000 * 3.75 + 1000 * 6 + 4000 * 0.3) / 1e6 + 0.02
    assert cost == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError):
        service.calculate_cost("claude-sonnet-4-5", 0, 0, cache_creation_tokens=1,
                               cache_creation_1h_tokens=2)
