import json
import re
import time
import warnings

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cmat import paths
from cmat.catalog import ModelService
from cmat.catalog.edit import set_default
from cmat.catalog.load import backtracking_risk, iter_layer_errors, load_catalog
from cmat.catalog.resolve import pattern_specificity
from cmat.cli import cli
from cmat.errors import CatalogError, NotFound
from tests.helpers import FIXTURES, REAL_FIXTURES
from tests.transcript_factory import (
    FAST,
    PRICE_CHANGES,
    PRICES,
    TIERS,
    US_ONLY,
    TranscriptBuilder,
    write_session,
)


@pytest.fixture
def service(project):
    return ModelService(project)


@pytest.mark.parametrize("model_id", sorted(PRICES))
def test_every_model_of_the_pricing_facts_has_its_prices(service, model_id):
    entry = service.get_by_pattern(model_id)
    pricing = entry.pricing_on("2026-03-01")
    assert (pricing.input, pricing.cache_write, pricing.cache_write_1h, pricing.cache_read,
            pricing.output) == PRICES[model_id]
    assert pricing.web_search_per_1k == 10
    if model_id in TIERS:
        threshold, prices = TIERS[model_id]
        (tier,) = pricing.tiers
        assert tier.above_prompt_tokens == threshold
        assert (tier.prices.input, tier.prices.cache_write, tier.prices.cache_write_1h,
                tier.prices.cache_read, tier.prices.output) == prices
    else:
        assert pricing.tiers == ()
    multiplier, ended = FAST.get(model_id, (None, None))
    assert pricing.fast_multiplier == multiplier and pricing.fast is None
    if ended:
        assert entry.pricing_on(ended).fast_multiplier is None
    assert pricing.geo_multipliers == ({"us": 1.1} if model_id in US_ONLY else {})
    if model_id in PRICE_CHANGES:
        day, prices = PRICE_CHANGES[model_id]
        now = entry.pricing_on(day)
        assert (now.input, now.cache_write, now.cache_write_1h, now.cache_read,
                now.output) == prices
    if entry.confirmed:  # a price seen on Anthropic's own page names that page first
        assert entry.source.startswith("https://platform.claude.com/docs/en/")
    else:  # a reported one says so, and where it is expected to appear
        assert entry.source.startswith("reported as") and "platform.claude.com" in entry.source


def test_the_catalog_covers_the_current_lineup_and_names_it(service):
    names = {entry.name for entry in service.catalog.models}
    for name in ("Claude Fable 5.1", "Claude Fable 5", "Claude Mythos 5.1", "Claude Mythos 5",
                 "Claude Opus 5.5", "Claude Sonnet 5.5", "Claude Sonnet 5", "Claude Haiku 5.5",
                 "Claude Sonnet 3.5"):
        assert name in names
    assert set(PRICES) <= {service.get_by_pattern(m).id for m in PRICES} | set(PRICES)


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
    ("claude-fable-5-1", "claude-fable-5-1"),
    ("claude-fable-5", "claude-fable-5"),
    ("claude-fable-5-1[1m]", "claude-fable-5-1"),
    ("claude-mythos-5-1", "claude-mythos-5-1"),
    ("claude-opus-5-5", "claude-opus-5-5"),
    ("us.anthropic.claude-opus-5-5", "claude-opus-5-5"),
    ("eu.anthropic.claude-opus-5-5-v1:0", "claude-opus-5-5"),
    ("apac.anthropic.claude-sonnet-5-5-v1:0", "claude-sonnet-5-5"),
    ("global.anthropic.claude-haiku-5-5", "claude-haiku-5-5"),
    ("anthropic.claude-haiku-5-5", "claude-haiku-5-5"),
    ("claude-haiku-5-5@20261007", "claude-haiku-5-5"),
    ("claude-haiku-5-5[1m]", "claude-haiku-5-5"),
    ("claude-sonnet-5", "claude-sonnet-5"),
    ("claude-sonnet-5-5[1m]", "claude-sonnet-5-5"),
    ("claude-opus-5", "claude-opus-5"),
    ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022"),
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
    assert service.get_default().id == "claude-sonnet-5-5"
    assert all(m.source and m.last_updated for m in service.catalog.models)


def test_the_bundled_catalog_passes_the_schema_it_is_trusted_to_pass(project):
    assert list(iter_layer_errors(project)) == []


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


def _write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_the_users_catalog_overrides_fields_of_the_built_in_one(project, monkeypatch,
                                                                 tmp_path):
    _write(paths.user_catalog(), {"models": [{"id": "claude-opus-4-6", "pricing": {"input": 7}}]})
    entry = ModelService(project).get("claude-opus-4-6")
    assert (entry.pricing.input, entry.pricing.output, entry.origin) == (7, 25, "user")
    env_layer = _write(tmp_path / "mine.json",
                       {"models": [{"id": "claude-opus-4-6", "pricing": {"input": 8}}]})
    monkeypatch.setenv("CMAT_MODELS", str(env_layer))  # names the user's layer
    assert ModelService(project).get("claude-opus-4-6").pricing.input == 8


def test_a_project_catalog_adds_models_but_never_reprices_known_ones(project):
    _write(project / ".claude" / "data" / "models.json", {"default_model": "house-model", "models": [
        {"id": "claude-opus-4-6", "pricing": {"input": 70}},
        {"id": "house-model", "name": "House", "pattern": "^house-model$",
         "pricing": {"input": 1, "output": 2, "cache_write": 1.25, "cache_write_1h": 2,
                     "cache_read": 0.1}}]})
    service = ModelService(project)
    assert service.get("claude-opus-4-6").pricing.input == 5
    assert service.get_by_pattern("house-model").name == "House"
    assert service.get_default().id == "house-model"  # a project may set its default
    (note,) = service.catalog.notes
    assert "prices claude-opus-4-6 differently" in note and "never reprice" in note


def test_force_in_a_project_catalog_reprices_nothing(project):
    _write(project / ".claude" / "data" / "models.json", {"models": [
        {"id": "claude-opus-4-6", "force": True, "pricing": {"input": 70}},
        {"id": "claude-opus-4-6-house", "name": "House", "force": True,
         "pattern": "^claude-opus-4-6",
         "pricing": {"input": 70, "output": 1, "cache_write": 1, "cache_write_1h": 1,
                     "cache_read": 1}}]})
    service = ModelService(project)
    assert (service.get("claude-opus-4-6").pricing.input,
            service.get("claude-opus-4-6").origin) == (5, "built-in")
    assert service.get_by_pattern("claude-opus-4-6-20990101").pricing.input == 5
    assert service.get("claude-opus-4-6-house").origin == "project"  # only its own id


@pytest.mark.parametrize("pattern", ["^(a+)+$", "^(?:a|a)*$", "(x*)*y", "^(ab|a)+c", r"(a)\1",
                                     "^(?:[a-z]+-?)+$"])
def test_patterns_that_could_backtrack_for_ever_are_refused(project, pattern):
    _write(project / ".claude" / "data" / "models.json", {"models": [
        {"id": "house", "name": "House", "pattern": pattern,
         "pricing": {"input": 1, "output": 1, "cache_write": 1, "cache_write_1h": 1,
                     "cache_read": 1}}]})
    service = ModelService(project)
    assert service.get_by_pattern("house") is None  # the whole project layer is ignored
    assert any("catastrophic backtracking" in n or "back-reference" in n
               for n in service.catalog.notes)
    started = time.monotonic()
    service.get_by_pattern("a" * 40 + "!")
    assert time.monotonic() - started < 1


def test_every_bundled_pattern_is_linear():
    for entry in orjson.loads(paths.bundled_catalog().read_bytes())["models"]:
        assert backtracking_risk(entry["pattern"]) is None, entry["id"]


@settings(max_examples=300)
@given(pattern=st.text(alphabet="ab()|*+?{}1,:^$.[]-\\", max_size=14))
def test_an_accepted_pattern_matches_a_hostile_id_quickly(pattern):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set": a pattern like any other
            compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return
    if backtracking_risk(pattern) is not None:
        return
    started = time.monotonic()
    for hostile in ("a" * 28 + "!", "ab" * 14 + "!", "a" * 28):
        compiled.search(hostile)
    assert time.monotonic() - started < 0.5


def test_cmat_v10s_own_catalog_is_read_and_its_wrong_haiku_price_not_used(project):
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_bytes((FIXTURES / "cmat-v10" / "data_models.json").read_bytes())
    service = ModelService(project)
    haiku = service.get_by_pattern("claude-haiku-4-5-20251001")
    assert (haiku.pricing.input, haiku.pricing.output) == (1, 5)  # CMAT says 0.25 / 1.25
    assert any("claude-haiku-4.5" in note and "built-in" in note
               for note in service.catalog.notes)
    assert ModelService(project).get_by_pattern("claude-sonnet-4-5-20250929").pricing.input == 3


def test_a_broken_project_catalog_is_ignored_and_said(project):
    _write(project / ".claude" / "data" / "models.json", {"models": [{"id": "x"}]})
    service = ModelService(project)
    assert service.get_by_pattern("claude-opus-4-6").pricing.input == 5
    assert "the project's catalog is ignored" in service.catalog.notes[0]


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
    layer = _write(paths.user_catalog(), {"models": [body]})
    with pytest.raises(CatalogError) as caught:
        load_catalog(project)
    message = str(caught.value)
    assert str(layer) in message and "model x" in message and f"field {field}" in message


def test_invalid_json_catalog_is_reported(project):
    layer = paths.user_catalog()
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
    # The cache is what the next load reads: a mark left in it (a version no layer has) shows.
    data = json.loads(cache.read_text())
    data["version"] = "read-from-the-cache"
    cache.write_text(json.dumps(data))
    assert load_catalog(project).version == "read-from-the-cache"
    _write(paths.user_catalog(), {"models": [{"id": "claude-opus-4-6", "pricing": {"input": 9}}]})
    assert ModelService(project).get("claude-opus-4-6").pricing.input == 9
    assert load_catalog(project).version != "read-from-the-cache"  # validated afresh


def test_damaged_cache_is_ignored(project):
    load_catalog(project)
    (paths.cache_home() / "catalog.json").write_text("garbage")
    assert len(load_catalog(project).models) >= 15


def test_set_default_writes_the_user_catalog_never_the_bundled_one(project):
    bundled = paths.bundled_catalog().read_bytes()
    service = ModelService(project)
    target = set_default(service, "claude-opus-4-6")
    assert target == paths.user_catalog()
    assert paths.bundled_catalog().read_bytes() == bundled
    assert ModelService(project).get_default().id == "claude-opus-4-6"
    set_default(ModelService(project), "claude-haiku-4-5")
    fresh = ModelService(project)
    assert fresh.get_default().id == "claude-haiku-4-5-20251001"
    assert [m.id for m in fresh.catalog.models if m.is_default] == ["claude-haiku-4-5-20251001"]


# --- keeping up, and one price for one request -------------------------------------------------


LITELLM = {
    "claude-3-haiku-20240307": {  # the known data error: Sonnet's $6 copied onto Haiku 3
        "litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 2.5e-07,
        "output_cost_per_token": 1.25e-06, "cache_creation_input_token_cost": 3e-07,
        "cache_creation_input_token_cost_above_1hr": 6e-06, "cache_read_input_token_cost": 3e-08},
    "claude-newthing-1": {
        "litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 7e-06,
        "output_cost_per_token": 3.5e-05, "cache_creation_input_token_cost": 8.75e-06,
        "cache_creation_input_token_cost_above_1hr": 1.4e-05, "cache_read_input_token_cost": 7e-07,
        "input_cost_per_token_above_200k_tokens": 1.4e-05,
        "output_cost_per_token_above_200k_tokens": 5.25e-05},
    "bedrock/anthropic.claude-newthing-1": {"litellm_provider": "bedrock",
                                            "input_cost_per_token": 1},
    "gpt-9": {"litellm_provider": "openai", "input_cost_per_token": 1e-06},
}


def test_update_from_litellm_adds_what_is_new_and_never_overrides_the_built_in(project,
                                                                              tmp_path):

    source = _write(tmp_path / "model_prices_and_context_window.json", LITELLM)
    runner = CliRunner()
    result = runner.invoke(cli, ["models", "update", str(source), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [line.split(":")[0] for line in report["added"]] == ["claude-newthing-1"]
    assert any(line.startswith("claude-3-haiku-20240307: the built-in catalog prices it")
               for line in report["skipped"])
    service = ModelService(project)
    new = service.get_by_pattern("claude-newthing-1")
    assert (new.pricing.input, new.pricing.output, new.pricing.cache_write_1h) == (7, 35, 14)
    assert new.pricing.tiers[0].above_prompt_tokens == 200_000
    assert new.pricing.tiers[0].prices.output == 52.5
    assert service.get_by_pattern("claude-3-haiku-20240307").pricing.cache_write_1h == 0.5
    again = runner.invoke(cli, ["models", "update", str(source)])
    assert "0 added, 0 changed" in again.output
    preferred = json.loads(runner.invoke(cli, ["models", "update", str(source),
                                               "--prefer-source", "--json"]).output)
    assert any("claude-3-haiku-20240307: 1-hour cache write $6 -> $0.5" in line
               for line in preferred["corrected"])
    assert ModelService(project).get_by_pattern(
        "claude-3-haiku-20240307").pricing.cache_write_1h == 0.5  # the error never leaks in
    assert "cmat ledger reprice" in runner.invoke(
        cli, ["models", "update", str(_write(tmp_path / "more.json", {"claude-other-2": dict(
            LITELLM["claude-newthing-1"])}))]).output


def test_a_request_costs_the_same_whichever_folder_the_scan_ran_from(project, tmp_path,
                                                                     monkeypatch):

    history = tmp_path / "claude"
    builder = TranscriptBuilder(session_id="s")
    builder.response(model="claude-haiku-4-5-20251001", input=10_000, output=10_000)
    write_session(history / "projects" / "-p", builder)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(history))
    cmat_project = tmp_path / "cmat-project"
    _write(cmat_project / ".claude" / "data" / "models.json", json.loads(
        (FIXTURES / "cmat-v10" / "data_models.json").read_text()))
    totals = []
    for folder, ledger in ((cmat_project, "a.db"), (tmp_path, "b.db")):
        monkeypatch.chdir(folder)
        monkeypatch.setenv("CMAT_LEDGER", str(tmp_path / ledger))
        result = CliRunner().invoke(cli, ["report", "monthly", "--json"])
        totals.append(json.loads(result.stdout)["total"]["total_usd"])
    assert totals[0] == totals[1] == pytest.approx(builder.expected_cost)


def test_models_check_names_unpriced_models_and_the_command_that_prices_them(project,
                                                                             tmp_path,
                                                                             monkeypatch):

    history = tmp_path / "claude" / "projects"
    for index, path in enumerate(sorted(REAL_FIXTURES.glob("*/*.jsonl"))):
        (history / f"-real{index}").mkdir(parents=True)
        (history / f"-real{index}" / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(history.parent))
    runner = CliRunner()
    clean = runner.invoke(cli, ["models", "check"])
    assert clean.exit_code == 0 and "Every model in the history has a price." in clean.output
    builder = TranscriptBuilder(session_id="n")
    builder.response(model="claude-nova-9", input=100, output=50)
    write_session(history / "-new", builder)
    found = runner.invoke(cli, ["models", "check"])
    assert found.exit_code == 1
    assert ("claude-nova-9: 1 request, 150 tokens unpriced -> cmat models add claude-nova-9 "
            "--input P --output P") in found.output
    runner.invoke(cli, ["models", "add", "claude-nova-9", "--input", "1", "--output", "2"])
    assert "cmat ledger reprice" in runner.invoke(cli, ["models", "check"]).output


def test_set_default_says_when_a_cmat_projects_own_default_applies_here(project):
    layer = project / ".claude" / "data" / "models.json"
    layer.parent.mkdir(parents=True)
    layer.write_bytes((FIXTURES / "cmat-v10" / "data_models.json").read_bytes())
    in_force = ModelService(project).get_default().id
    result = CliRunner().invoke(cli, ["models", "set-default", "claude-haiku-4-5"])
    assert result.exit_code == 0
    assert "applies everywhere but in this project" in result.output
    assert in_force in result.output and str(layer) in result.output
    elsewhere = project.parent / "elsewhere"
    (elsewhere / ".claude").mkdir(parents=True)
    assert ModelService(elsewhere).get_default().id.startswith("claude-haiku-4-5")


def test_models_check_names_models_priced_from_an_unconfirmed_source(project, tmp_path,
                                                                     monkeypatch):
    history = tmp_path / "claude" / "projects"
    builder = TranscriptBuilder(session_id="f52")
    builder.response(model="claude-fable-5-2", input=1000, output=500, read=10_000)
    builder.response(model="claude-fable-5-1", input=10, output=5)
    write_session(history / "-p", builder)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(history.parent))
    result = CliRunner().invoke(cli, ["models", "check"])
    assert result.exit_code == 0  # priced: a note, not a problem
    assert "claude-fable-5-2: 1 request priced as claude-fable-5-2, from an unconfirmed" \
        in result.output
    assert "claude-fable-5-1" not in result.output  # confirmed on Anthropic's own page
    assert "some from an unconfirmed source." in result.output
    data = json.loads(CliRunner().invoke(cli, ["models", "check", "--json", "--no-scan"]).output)
    assert [(r["model"], r["requests"]) for r in data["unconfirmed"]] == [("claude-fable-5-2", 1)]
    report = json.loads(CliRunner().invoke(cli, ["report", "daily", "--json",
                                                 "--no-scan"]).output)
    # $8 / $40, cache reads $0.20 as reported (and the 5.1 request at its confirmed prices)
    assert report["total"]["total_usd"] == pytest.approx(builder.expected_cost)
    assert builder.requests[0].cost == pytest.approx((1000 * 8 + 500 * 40 + 10_000 * 0.2) / 1e6)
    listing = CliRunner().invoke(cli, ["models", "list"]).output
    assert "? prices reported elsewhere, not yet confirmed" in listing
