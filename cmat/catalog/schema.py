"""The catalog's shape: a model's prices and price rules, validated by pydantic when a
catalog file is loaded (load.py), plain frozen dataclasses everywhere else.

Every price is stored explicitly (newer models break the 1.25x / 2x / 0.1x multipliers), in USD
per million tokens. A model's `pricing` is the row in force now; `history` holds earlier rows,
each until the next one's `effective_from`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Annotated


class _Bound:
    """A numeric bound pydantic enforces when it validates a catalog.

    Plain `Annotated` metadata instead of `annotated_types`, whose import (with
    typing_extensions) would add 14 ms to every command's start-up.
    """

    def __init__(self, **bound: float):
        self.bound = bound

    def __get_pydantic_core_schema__(self, source, handler):
        return {**handler(source), **self.bound}


NonNegative = Annotated[float, _Bound(ge=0)]
Positive = Annotated[int, _Bound(gt=0)]
PositiveFloat = Annotated[float, _Bound(gt=0)]


PRICE_FIELDS = ("input", "output", "cache_write", "cache_write_1h", "cache_read")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Prices:
    """USD per million tokens of each kind."""

    __pydantic_config__ = {"extra": "forbid"}

    input: NonNegative
    output: NonNegative
    cache_write: NonNegative
    cache_write_1h: NonNegative
    cache_read: NonNegative


@dataclass(frozen=True)
class Tier:
    """Prices of every token of a request whose prompt (input + cache writes + cache reads)
    exceeds `above_prompt_tokens`: the whole request moves, output included."""

    __pydantic_config__ = {"extra": "forbid"}

    above_prompt_tokens: Positive
    prices: Prices


@dataclass(frozen=True)
class Pricing(Prices):
    """A model's prices from `effective_from` on (a date; None: from the beginning), and what
    changes them for one request: its prompt's length (`tiers`), fast mode (`fast_multiplier`
    times whichever prices apply; `fast`, explicit prices, in older catalogs), where inference
    ran (`geo_multipliers`, by `usage.inference_geo`), and web searches."""

    effective_from: str | None = None
    web_search_per_1k: NonNegative = 10.0
    tiers: tuple[Tier, ...] = ()
    fast_multiplier: PositiveFloat | None = None
    fast: Prices | None = None
    geo_multipliers: dict[str, PositiveFloat] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.effective_from is not None and not _DATE.match(self.effective_from):
            raise ValueError(f"effective_from must be a date such as 2026-10-07, "
                             f"not {self.effective_from!r}")
        thresholds = [tier.above_prompt_tokens for tier in self.tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tiers must have increasing above_prompt_tokens")


@dataclass(frozen=True)
class ModelEntry:
    __pydantic_config__ = {"extra": "forbid"}

    id: str
    name: str
    pattern: str
    pricing: Pricing
    history: tuple[Pricing, ...] = ()  # earlier prices, each in force until the next one
    description: str = ""
    max_tokens: int | None = None
    context_window: int | None = None
    is_default: bool = False
    released: str = ""
    source: str = ""
    # False: prices reported by others (a reseller, another tool) that the provider's own page
    # has not been seen to confirm; `cmat models check` names such models in the history.
    confirmed: bool = True
    last_updated: str = ""
    origin: str = "built-in"  # the layer that brought the model in: built-in, user, project

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("id must not be empty")
        dates = [row.effective_from or "" for row in (*self.history, self.pricing)]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("history and pricing must be in order of effective_from, "
                             "each date once, the current pricing last")

    def pricing_on(self, day: str) -> Pricing:
        """The prices in force on `day` (YYYY-MM-DD, UTC); the earliest before them all."""
        if not self.history:
            return self.pricing
        found = self.history[0]
        for row in (*self.history, self.pricing):
            if (row.effective_from or "") <= day:
                found = row
        return found


@dataclass(frozen=True)
class Catalog:
    version: str
    models: tuple[ModelEntry, ...]
    sources: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what a project's catalog said that was not followed

