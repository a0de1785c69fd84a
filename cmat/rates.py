"""A request's cost from its token counts and the prices in force: the one formula, with
nothing imported (the status line prices a session's new lines with it on every refresh).

Rules (see docs/pricing.md, "How costs are computed"):
- a request whose prompt (input + cache writes + cache reads) exceeds a tier's threshold is
  billed entirely, output included, at the highest such tier's prices;
- `speed: "fast"` multiplies every token price by the model's fast multiplier (explicit
  fast prices, in older catalogs, replace them instead);
- `inference_geo` multiplies every token price by the model's multiplier for that geography,
  on top of fast mode;
- cost = input*in + output*out + 5m_writes*w5 + 1h_writes*w1 + reads*rd (times the
  multipliers) + searches*web/1000.

`pricing` is a catalog `Pricing` or anything with its attributes (`plain`/`from_plain` carry
one through a cache); `tokens` anything with TokenCounts' five.
"""

from __future__ import annotations

PER_MTOK = 1_000_000
PRICE_KINDS = ("input", "output", "cache_write", "cache_write_1h", "cache_read")


def select_prices(pricing, prompt: int, speed: str | None = None):
    """The prices that apply to a request whose prompt (input + cache writes + cache reads)
    is `prompt` tokens, and the multiplier fast mode puts on them."""
    if speed == "fast" and pricing.fast is not None:
        return pricing.fast, 1.0
    prices = pricing
    for tier in pricing.tiers:  # increasing thresholds: the last one exceeded wins
        if prompt > tier.above_prompt_tokens:
            prices = tier.prices
    fast = pricing.fast_multiplier if speed == "fast" and pricing.fast_multiplier else 1.0
    return prices, fast


def request_cost(pricing, tokens, web_search_requests: int = 0, speed: str | None = None,
                 inference_geo: str | None = None) -> float:
    return counts_cost(pricing, tokens.input, tokens.output, tokens.cache_creation,
                       tokens.cache_creation_1h, tokens.cache_read, web_search_requests, speed,
                       inference_geo)


def counts_cost(pricing, input_tokens: int, output_tokens: int, cache_creation: int,
                cache_creation_1h: int, cache_read: int, web_search_requests: int = 0,
                speed: str | None = None, inference_geo: str | None = None) -> float:
    """request_cost of the five counts as they are (a first scan prices every request of a
    history: no TokenCounts made for each)."""
    if cache_creation_1h > cache_creation:
        raise ValueError("cache_creation_1h cannot exceed cache_creation (all cache writes)")
    prices, multiplier = select_prices(pricing, input_tokens + cache_creation + cache_read,
                                       speed)
    if inference_geo:
        multiplier *= pricing.geo_multipliers.get(inference_geo, 1.0)
    token_cost = (input_tokens * prices.input + output_tokens * prices.output
                  + (cache_creation - cache_creation_1h) * prices.cache_write
                  + cache_creation_1h * prices.cache_write_1h
                  + cache_read * prices.cache_read)
    return (token_cost * multiplier / PER_MTOK
            + web_search_requests * pricing.web_search_per_1k / 1000)


class Plain:
    """Prices read back from `plain`'s form: attributes, as `request_cost` reads them."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)


def plain(pricing) -> dict:
    """`pricing` as plain values (dicts, lists, numbers), for a cache written with marshal."""
    def prices(p) -> dict:
        return {kind: getattr(p, kind) for kind in PRICE_KINDS}

    return {**prices(pricing), "web_search_per_1k": pricing.web_search_per_1k,
            "tiers": [[tier.above_prompt_tokens, prices(tier.prices)] for tier in pricing.tiers],
            "fast_multiplier": pricing.fast_multiplier,
            "fast": prices(pricing.fast) if pricing.fast is not None else None,
            "geo_multipliers": dict(pricing.geo_multipliers)}


def from_plain(values: dict) -> Plain:
    """The prices `plain` wrote, for `request_cost`."""
    return Plain(**{**values,
                    "tiers": [Plain(above_prompt_tokens=above, prices=Plain(**prices))
                              for above, prices in values["tiers"]],
                    "fast": Plain(**values["fast"]) if values["fast"] is not None else None})
