"""Pure pricing: token counts and a catalog entry in, USD out. No I/O, no global state.

The formula and its rules are cmat.rates'; here, the prices in force on a request's day (a
catalog entry's `history`) and the totals of many requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cmat.periods import utc_day
from cmat.rates import counts_cost, request_cost
from cmat.usage import TOKEN_FIELDS, TokenCounts

if TYPE_CHECKING:
    from cmat.catalog.schema import ModelEntry, Pricing
    from cmat.usage import UsageRecord


def pricing_at(entry: ModelEntry, ts: float) -> Pricing:
    """The prices of `entry` in force at unix time `ts` (its UTC day)."""
    return entry.pricing_on(utc_day(ts))


def stored_cost(entry: ModelEntry, ts: float, tokens: TokenCounts, web_search_requests: int = 0,
                speed: str | None = None, inference_geo: str | None = None,
                tiers: bool = True) -> float:
    """The cost of a stored request (its unix time `ts` picks the prices in force that day);
    `tiers=False`: as if the model had no long-prompt tiers (what a tier's premium is
    measured against)."""
    import dataclasses

    pricing = pricing_at(entry, ts)
    if not tiers and pricing.tiers:
        pricing = dataclasses.replace(pricing, tiers=())
    return request_cost(pricing, tokens, web_search_requests, speed, inference_geo)


def _token_dict() -> dict[str, int]:
    return dict.fromkeys(TOKEN_FIELDS, 0)


@dataclass
class Totals:
    """Running totals over priced requests; `total_usd` leaves unpriced requests out."""

    total_usd: float = 0.0
    tokens: dict[str, int] = field(default_factory=_token_dict)
    web_search_requests: int = 0
    requests: int = 0

    def add(self, record: UsageRecord, cost: float | None) -> None:
        tokens = self.tokens
        for kind, value in zip(TOKEN_FIELDS, record.token_counts):
            tokens[kind] += value
        self.web_search_requests += record.web_search_requests
        self.requests += 1
        if cost is not None:
            self.total_usd += cost

    def set(self, sums: Sequence[int], requests: int, cost: float) -> None:
        """Take the ledger's sums: the TOKEN_FIELDS, then web searches."""
        for key, value in zip(self.tokens, sums):
            self.tokens[key] = int(value or 0)
        self.web_search_requests = int(sums[5] or 0)
        self.requests = requests
        self.total_usd = float(cost or 0.0)

    def merge(self, other: Totals) -> None:
        self.total_usd += other.total_usd
        for key, value in other.tokens.items():
            self.tokens[key] = self.tokens.get(key, 0) + value
        self.web_search_requests += other.web_search_requests
        self.requests += other.requests


@dataclass
class ModelTotals(Totals):
    name: str | None = None  # catalog name; None when the model is not priced

    @property
    def priced(self) -> bool:
        return self.name is not None


@dataclass
class CostSummary:
    """Totals of one or more sessions, overall and per transcript model id."""

    totals: Totals = field(default_factory=Totals)
    models: dict[str, ModelTotals] = field(default_factory=dict)
    skipped_lines: int = 0

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(model for model, t in self.models.items() if not t.priced)

    def add(self, record: UsageRecord, entry: ModelEntry | None, cost: float | None) -> None:
        """Add a request priced with `entry` (None: unpriced) at `cost`."""
        self.totals.add(record, cost)
        model = self.models.get(record.model)
        if model is None:
            model = self.models[record.model] = ModelTotals(name=entry.name if entry else None)
        model.add(record, cost)

    def merge(self, other: CostSummary) -> None:
        self.totals.merge(other.totals)
        for model_id, theirs in other.models.items():
            mine = self.models.get(model_id)
            if mine is None:
                mine = self.models[model_id] = ModelTotals(name=theirs.name)
            mine.merge(theirs)
        self.skipped_lines += other.skipped_lines

    def top_model(self) -> tuple[str, ModelTotals] | None:
        """The model with the largest cost (by tokens when nothing is priced)."""
        if not self.models:
            return None
        return max(self.models.items(),
                   key=lambda item: (item[1].total_usd, sum(item[1].tokens.values())))

    def to_json(self) -> dict:
        models = sorted(self.models.items(), key=lambda item: -item[1].total_usd)
        return {
            "total_usd": self.totals.total_usd,
            "tokens": dict(self.totals.tokens),
            "web_search_requests": self.totals.web_search_requests,
            "requests": self.totals.requests,
            "models": [{"model": model_id, "name": t.name,
                        "total_usd": t.total_usd if t.priced else None,
                        "tokens": dict(t.tokens), "web_search_requests": t.web_search_requests,
                        "requests": t.requests} for model_id, t in models],
            "skipped_lines": self.skipped_lines,
            "unpriced_models": self.unpriced_models,
        }


def record_cost(record: UsageRecord, entry: ModelEntry | None) -> float | None:
    """A request's cost with the prices in force on its day; None when its model is unknown."""
    if entry is None:
        return None
    return _cost_at(record, entry.pricing_on(record.timestamp[:10]))


def _cost_at(record: UsageRecord, pricing: Pricing) -> float:
    # Each count by name: unpacking record_counts(record) cost 0.5 us more a request.
    return counts_cost(pricing, record.input_tokens, record.output_tokens,
                       record.cache_creation_tokens, record.cache_creation_1h_tokens,
                       record.cache_read_tokens, record.web_search_requests, record.speed,
                       record.inference_geo)


_UNSEEN = object()  # a model and day whose prices were not looked up yet


def price_records(records: Sequence[UsageRecord], resolve) -> list[float | None]:
    """Each request's cost, with `resolve(model_id) -> ModelEntry | None`, as record_cost
    gives it; the prices in force are looked up once per model and day (a first import
    prices every request of a history)."""
    in_force: dict[tuple[str, str], Pricing | None] = {}
    costs: list[float | None] = []
    for record in records:
        key = (record.model, record.timestamp[:10])
        pricing = in_force.get(key, _UNSEEN)
        if pricing is _UNSEEN:
            entry = resolve(record.model)
            pricing = in_force[key] = entry.pricing_on(key[1]) if entry is not None else None
        costs.append(None if pricing is None else _cost_at(record, pricing))
    return costs


def summarize(records: Sequence[UsageRecord], resolve, skipped_lines: int = 0,
              costs: Sequence[float | None] | None = None) -> CostSummary:
    """Add up `records`, priced with `resolve` unless their `costs` are already known."""
    if costs is None:
        costs = price_records(records, resolve)
    summary = CostSummary(skipped_lines=skipped_lines)
    for record, cost in zip(records, costs):
        summary.add(record, resolve(record.model), cost)
    return summary
