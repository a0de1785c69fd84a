"""`cmat models update`: merge a price file into the user's catalog layer.

Sources: LiteLLM's `model_prices_and_context_window.json` (the Claude models it lists for
Anthropic's own API), or a cmat catalog. Read from a path, or from a URL when the user gives
one (never a network call otherwise). The built-in catalog wins where both price a model,
unless the user prefers the source. Known data errors never leak in: a 1-hour cache write
priced above twice the input price (LiteLLM copied Sonnet's $6 onto Haiku 3, Haiku 3.5 and
Opus 3) is corrected to the rule and reported.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from cmat import paths
from cmat.catalog.edit import catalog_entry, save_user_entries
from cmat.catalog.load import Layer, file_entries, merged_catalog
from cmat.catalog.resolve import ModelService
from cmat.catalog.schema import PRICE_FIELDS
from cmat.errors import CatalogError

PER_TOKEN_TO_MTOK = 1_000_000
FETCH_TIMEOUT_SECONDS = 30
FETCH_LIMIT_BYTES = 64 * 1024 * 1024


def _read_source(source: str) -> tuple[object, str]:
    """The decoded file and a name for it."""
    if source.startswith(("http://", "https://")):
        import urllib.request

        request = urllib.request.Request(source, headers={"User-Agent": "cmat"})
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
                raw = response.read(FETCH_LIMIT_BYTES + 1)
        except OSError as exc:
            raise CatalogError(f"cannot fetch {source}: {exc}") from None
        if len(raw) > FETCH_LIMIT_BYTES:
            raise CatalogError(f"{source} is larger than {FETCH_LIMIT_BYTES >> 20} MiB")
    else:
        try:
            raw = Path(source).expanduser().read_bytes()
        except OSError as exc:
            raise CatalogError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        return orjson.loads(raw), source
    except orjson.JSONDecodeError as exc:
        raise CatalogError(f"{source} is not valid JSON: {exc}") from None


def _per_mtok(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return round(value * PER_TOKEN_TO_MTOK, 6)
    return None


def litellm_entries(doc: dict, name: str) -> tuple[list[dict], list[str]]:
    """cmat entries for the Claude models LiteLLM prices on Anthropic's own API, and what
    was left out and why."""
    entries, skipped = [], []
    for key, row in doc.items():
        if not isinstance(row, dict) or row.get("litellm_provider") != "anthropic":
            continue
        model_id = key.removeprefix("anthropic/")
        if not model_id.startswith("claude-"):
            continue
        input_price = _per_mtok(row.get("input_cost_per_token"))
        output_price = _per_mtok(row.get("output_cost_per_token"))
        if input_price is None or output_price is None:
            skipped.append(f"{model_id}: no input or output price in {name}")
            continue
        entry = catalog_entry(model_id, None, None, input_price, output_price,
                              _per_mtok(row.get("cache_creation_input_token_cost")),
                              _per_mtok(row.get("cache_creation_input_token_cost_above_1hr")),
                              _per_mtok(row.get("cache_read_input_token_cost")),
                              source=f"LiteLLM ({name})")
        long_input = _per_mtok(row.get("input_cost_per_token_above_200k_tokens"))
        long_output = _per_mtok(row.get("output_cost_per_token_above_200k_tokens"))
        if long_input is not None and long_output is not None:
            writes = _per_mtok(row.get("cache_creation_input_token_cost_above_200k_tokens"))
            reads = _per_mtok(row.get("cache_read_input_token_cost_above_200k_tokens"))
            entry["pricing"]["tiers"] = [{"above_prompt_tokens": 200_000, "prices": {
                "input": long_input, "output": long_output,
                "cache_write": long_input * 1.25 if writes is None else writes,
                "cache_write_1h": long_input * 2,
                "cache_read": long_input * 0.1 if reads is None else reads}}]
        entries.append(entry)
    return entries, skipped


def _correct_known_errors(entry: dict) -> str | None:
    """Fix a 1-hour cache write above twice the input price (no model is priced so); returns
    what was corrected."""
    pricing = entry["pricing"]
    rule = pricing["input"] * 2
    if pricing["cache_write_1h"] > rule + 1e-9:
        wrong = pricing["cache_write_1h"]
        pricing["cache_write_1h"] = rule
        return f"{entry['id']}: 1-hour cache write ${wrong:g} -> ${rule:g} (2x input)"
    return None


def update_user_catalog(source: str, *, prefer_source: bool = False,
                        dry_run: bool = False) -> dict:
    doc, name = _read_source(source)
    skipped: list[str] = []
    if isinstance(doc, dict) and "models" in doc:
        incoming = file_entries(Path(name), doc)
    elif isinstance(doc, dict):
        incoming, skipped = litellm_entries(doc, Path(name).name or name)
    else:
        raise CatalogError(f"{name} is neither a cmat catalog nor LiteLLM's price file")
    builtin = ModelService(paths.home(), catalog=merged_catalog(
        [Layer(paths.bundled_catalog(), "built-in")]))
    user = ModelService(paths.home())
    result: dict = {"source": name, "target": str(paths.user_catalog()), "added": [],
                    "changed": [], "corrected": [], "skipped": skipped}
    writes = []
    for entry in incoming:
        corrected = _correct_known_errors(entry) if "pricing" in entry else None
        known = builtin.get_by_pattern(entry["id"])
        if known is not None and not prefer_source:
            result["skipped"].append(f"{entry['id']}: the built-in catalog prices it "
                                     f"({known.id}); --prefer-source takes the source's price")
            continue
        if corrected:
            result["corrected"].append(corrected)
        current = user.get_by_pattern(entry["id"])
        new_prices = tuple(entry["pricing"].get(k) for k in PRICE_FIELDS)
        if current is not None and current.id == entry["id"]:
            old_prices = tuple(getattr(current.pricing, k) for k in PRICE_FIELDS)
            if old_prices == new_prices and current.origin == "user":
                continue
            result["changed"].append(f"{entry['id']}: {_words(old_prices)} -> "
                                     f"{_words(new_prices)}")
        else:
            result["added"].append(f"{entry['id']}: {_words(new_prices)}")
        writes.append(entry)
    if writes and not dry_run:
        save_user_entries(writes)
    return result


def _words(prices: tuple) -> str:
    return "/".join(f"${p:g}" if p is not None else "?" for p in prices)
