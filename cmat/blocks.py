"""5-hour usage blocks: the windows a Claude subscription's usage limit is counted in.

A block starts at the first request after the previous block ended, floored to the hour (UTC),
and lasts BLOCK_SECONDS; a request more than BLOCK_SECONDS after the block's start, or after
the request before it, starts the next one. A silence longer than a block between two requests
is shown as a gap. This is how Claude Code's windows work, and how ccusage cuts them: both
tools give the same starts, ends and token totals (their costs differ where ccusage misprices,
see docs/pricing.md).

Burn rate is measured from the block's first request to its last; the active block's
projection assumes that rate until the block ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cmat.errors import UsageError
from cmat.ledger import Ledger
from cmat.periods import iso_utc, iso_utc_ms, js_round
from cmat.usage import COUNTED_TOKENS

BLOCK_SECONDS = 5 * 3600
RECENT_DAYS = 3  # `--recent`: blocks that started this many days ago or later, and the active one
WARNING_RATIO = 0.8  # a projection above this share of the token limit is a warning
LOOKBACK_SECONDS = 24 * 3600  # how far back the active block's start is looked for


@dataclass
class Block:
    start: float  # unix seconds
    end: float
    last_request: float | None = None  # None for a gap
    active: bool = False
    gap: bool = False
    requests: int = 0
    first_request: float | None = None
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED_TOKENS, 0))
    cost_usd: float = 0.0
    unpriced_requests: int = 0
    models: list[str] = field(default_factory=list)  # in order of first use
    # tokens, cost of the priced requests, unpriced requests
    per_model: dict[str, tuple[int, float, int]] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())

    def add(self, first: float, last: float, model: str, requests: int,
            counts: tuple[int, ...], cost: float | None, priced: int) -> None:
        """Add `requests` of `model` made from `first` to `last` (a row of the ledger's
        block_usage), `cost` the sum of the `priced` ones'."""
        if self.first_request is None:
            self.first_request = first
        self.last_request = last if self.last_request is None else max(self.last_request, last)
        self.requests += requests
        for kind, value in zip(COUNTED_TOKENS, counts):
            self.tokens[kind] += value or 0
        self.unpriced_requests += requests - priced
        self.cost_usd += cost or 0.0
        if model not in self.models:
            self.models.append(model)
        tokens, spent, unpriced = self.per_model.get(model, (0, 0.0, 0))
        self.per_model[model] = (tokens + sum(value or 0 for value in counts),
                                 spent + (cost or 0), unpriced + requests - priced)

    def burn_rate(self) -> dict | None:
        """Tokens per minute (all kinds, and input + output alone) and USD per hour, from the
        first request to the last; None for a gap or a block of one instant."""
        if self.gap or self.first_request is None:
            return None
        minutes = (self.last_request - self.first_request) / 60
        if minutes <= 0:
            return None
        return {"tokens_per_minute": self.total_tokens / minutes,
                "input_output_tokens_per_minute":
                    (self.tokens["input"] + self.tokens["output"]) / minutes,
                "cost_per_hour": self.cost_usd / minutes * 60}

    def projection(self, now: float) -> dict | None:
        """The active block's totals at its end if its burn rate holds (over the time left to
        the second; the minutes left are shown rounded)."""
        rate = self.burn_rate() if self.active else None
        if rate is None:
            return None
        remaining = max(self.end - now, 0) / 60
        return {"total_tokens": js_round(self.total_tokens
                                          + rate["tokens_per_minute"] * remaining),
                "cost_usd": self.cost_usd + rate["cost_per_hour"] / 60 * remaining,
                "remaining_minutes": js_round(remaining)}


def short_model(model: str) -> str:
    """A model id as the narrow views show it: claude-sonnet-4-5-20250929 -> sonnet-4-5."""
    return model.removeprefix("claude-").split("-20")[0]


def _floor_to_hour(ts: float) -> float:
    return ts - ts % 3600


def cut_blocks(usage: list[tuple], now: float) -> list[Block]:
    """Blocks (gaps included) of requests summed as the ledger's `block_usage` sums them:
    rows of (first ts, last ts, model, requests, input, output, cache writes, cache reads,
    cost or None, priced requests), each inside one block, oldest first. A single request
    is a row of its own (first and last its time)."""
    blocks: list[Block] = []
    current: Block | None = None
    for first, last, model, requests, *rest in usage:
        *counts, cost, priced = rest
        if current is not None and (first - current.start > BLOCK_SECONDS
                                    or first - current.last_request > BLOCK_SECONDS):
            blocks.append(_closed(current, now))
            if first - current.last_request > BLOCK_SECONDS:
                blocks.append(Block(current.last_request + BLOCK_SECONDS, first, gap=True))
            current = None
        if current is None:
            start = _floor_to_hour(first)
            current = Block(start, start + BLOCK_SECONDS)
        current.add(first, last, model, requests, counts, cost, priced)
    if current is not None:
        blocks.append(_closed(current, now))
    # A gap starts 5 hours after the last request, which can be after the next block's
    # floored start: shown in order of start, as ccusage does.
    return sorted(blocks, key=lambda block: block.start)


def _closed(block: Block, now: float) -> Block:
    block.active = now - block.last_request < BLOCK_SECONDS and now < block.end
    return block


def active_start(times: list[float], now: float) -> float | None:
    """The start of the block under way, from the times of the requests before it (as
    cut_blocks cuts them), or None when none is under way."""
    start = last = None
    for ts in times:
        if start is None or ts - start > BLOCK_SECONDS or ts - last > BLOCK_SECONDS:
            start = _floor_to_hour(ts)
        last = ts
    if start is None or now - last >= BLOCK_SECONDS or now >= start + BLOCK_SECONDS:
        return None
    return start


def active_block(ledger: Ledger, now: float) -> Block | None:
    """The block under way, summed in SQL: what the status line and `cmat limits` need,
    without reading each request. A block's start depends on the blocks before it: a day
    back finds it unless work never paused for 5 hours in a whole day."""
    start = active_start(ledger.request_times(now - LOOKBACK_SECONDS), now)
    if start is None:
        return None
    first, last = ledger.time_span(start, None, None)
    block = Block(start, start + BLOCK_SECONDS, last_request=last, active=True,
                  first_request=first)
    for model, *rest in ledger.model_spend(start, by_first_use=True):
        *counts, requests, cost, priced = rest
        for kind, value in zip(COUNTED_TOKENS, counts):
            block.tokens[kind] += value or 0
        block.requests += requests
        block.cost_usd += cost
        block.unpriced_requests += requests - priced
        block.models.append(model)
        block.per_model[model] = (sum(value or 0 for value in counts), cost, requests - priced)
    return block


def token_limit(value: str | None, blocks: list[Block]) -> int | None:
    """`--token-limit`: a number of tokens, or `max` for the largest block before the one
    under way."""
    if value is None:
        return None
    if value == "max":  # the largest block before the one under way, as ccusage takes it
        largest = max((b.total_tokens for b in blocks if not b.gap and not b.active), default=0)
        return largest or None
    try:
        limit = int(value)
    except ValueError:
        raise UsageError(f"--token-limit takes a number of tokens or 'max', not {value!r}") \
            from None
    if limit <= 0:
        raise UsageError("--token-limit must be above 0")
    return limit


def limit_status(projected_tokens: int, limit: int) -> str:
    if projected_tokens > limit:
        return "exceeds"
    return "warning" if projected_tokens > limit * WARNING_RATIO else "ok"


def block_json(block: Block, now: float, limit: int | None, breakdown: bool = False) -> dict:
    """A block as `cmat blocks --json` prints it; `breakdown`: with its tokens and cost by
    model."""
    projection = block.projection(now)
    data = {
        "id": ("gap-" if block.gap else "") + iso_utc(block.start),
        "start": iso_utc(block.start), "end": iso_utc(block.end),
        "last_request": iso_utc(block.last_request), "active": block.active, "gap": block.gap,
        "requests": block.requests, "tokens": dict(block.tokens),
        "total_tokens": block.total_tokens, "cost_usd": block.cost_usd,
        "unpriced_requests": block.unpriced_requests, "models": block.models,
        "burn_rate": block.burn_rate() if block.active else None, "projection": projection,
    }
    if breakdown:
        data["per_model"] = [{"model": model, "tokens": tokens, "cost_usd": cost,
                              "unpriced_requests": unpriced}
                             for model, (tokens, cost, unpriced) in block.per_model.items()]
    if limit:
        data["token_limit"] = {"limit": limit, "percent": block.total_tokens / limit * 100}
        if projection:
            data["token_limit"].update(
                projected_percent=projection["total_tokens"] / limit * 100,
                status=limit_status(projection["total_tokens"], limit))
    return data


def ccusage_block(block: Block, now: float, limit: int | None) -> dict:
    """A block in the shape ccusage 20's `blocks --json` prints it, for scripts and status
    bars written for ccusage: camelCase keys, times to the millisecond, the burn rate and
    projection of the block under way (the cost projected to the cent), and with a token
    limit, its status."""
    projection = block.projection(now) if block.active else None
    rate = block.burn_rate() if block.active else None
    data = {
        "id": ("gap-" if block.gap else "") + iso_utc_ms(block.start),
        "startTime": iso_utc_ms(block.start), "endTime": iso_utc_ms(block.end),
        "actualEndTime": None if block.gap else iso_utc_ms(block.last_request),
        "isActive": block.active, "isGap": block.gap, "entries": block.requests,
        "tokenCounts": {"inputTokens": block.tokens["input"],
                        "outputTokens": block.tokens["output"],
                        "cacheCreationInputTokens": block.tokens["cache_creation"],
                        "cacheReadInputTokens": block.tokens["cache_read"]},
        "totalTokens": block.total_tokens, "costUSD": block.cost_usd, "models": block.models,
        "burnRate": rate and {"tokensPerMinute": rate["tokens_per_minute"],
                              "tokensPerMinuteForIndicator":
                                  rate["input_output_tokens_per_minute"],
                              "costPerHour": rate["cost_per_hour"]},
        "projection": projection and {
            "totalTokens": projection["total_tokens"],
            "totalCost": js_round(projection["cost_usd"] * 100) / 100,
            "remainingMinutes": projection["remaining_minutes"]},
    }
    if projection and limit:
        projected = projection["total_tokens"]
        data["tokenLimitStatus"] = {"limit": limit, "projectedUsage": projected,
                                    "percentUsed": projected / limit * 100,
                                    "status": limit_status(projected, limit)}
    return data

