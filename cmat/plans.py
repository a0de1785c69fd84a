"""Subscription plans: how much of a 5-hour window is used, officially or by estimate.

Claude Code gives its status-line command the plan's own figures when it has them
(`rate_limits.five_hour` and `.seven_day`: `used_percentage` and `resets_at`, for Pro and Max
subscribers, once a session has had a response). Those are the truth: cmat shows them and
remembers the last ones seen (with when) so that `cmat limits` can show them outside a session.

Without them, the share of the current 5-hour block is an estimate: the block's input and
output tokens against a plan's allowance. Anthropic publishes no token figures; the presets are
the community's (Claude-Code-Usage-Monitor's), and `custom` is the 90th percentile of your own
past blocks. Every estimate is labelled as one.

The status line reads a payload's figures here on every refresh: `json`, `re` and cmat.paths
(pathlib) are imported only by what writes or reads the remembered figures, or names a family.
"""

from __future__ import annotations

import os

PLAN_TOKENS = {"pro": 19_000, "max5": 88_000, "max20": 220_000}  # input + output per 5 hours
# Weekly allowances as Anthropic announced them (28 July 2025), in hours of use per model
# family; ranges, since the tokens an hour takes depend on the work.
WEEKLY_HOURS = {"pro": {"Sonnet": (40, 80)},
                "max5": {"Sonnet": (140, 280), "Opus": (15, 35)},
                "max20": {"Sonnet": (240, 480), "Opus": (24, 40)}}
ACTIVE_AFTER_REQUEST = 300  # a family is in use until this long after its latest request
CUSTOM_PERCENTILE = 0.9
CUSTOM_MIN_BLOCKS = 5  # fewer past blocks than this say too little about a plan


def official_limits(payload: dict, now: float) -> dict | None:
    """The rate limits of a status-line payload, as {"five_hour": {"used_percent",
    "resets_at"} or None, "seven_day": ..., "observed_at"}; None when it has none (API-key
    users, older Claude Code, a session before its first response). Plain dicts: this runs
    on every refresh of the status line, before anything heavier is imported."""
    limits = payload.get("rate_limits")
    if not isinstance(limits, dict):
        return None
    five, seven = _window(limits.get("five_hour")), _window(limits.get("seven_day"))
    if five is None and seven is None:
        return None
    return {"five_hour": five, "seven_day": seven, "observed_at": now}


def _window(value) -> dict | None:
    if not isinstance(value, dict):
        return None
    used, resets = value.get("used_percentage"), value.get("resets_at")
    if isinstance(used, bool) or not isinstance(used, (int, float)) or not 0 <= used <= 1000:
        return None
    if isinstance(resets, bool) or not isinstance(resets, (int, float)) or resets <= 0:
        resets = None
    return {"used_percent": float(used), "resets_at": float(resets) if resets else None}


def _state_file():
    from cmat import paths

    return paths.state_home() / "rate-limits.json"


def remember(limits: dict) -> None:
    """Keep the latest official figures, for `cmat limits` outside a session; written only
    when they changed or a minute has passed (the status line runs every few seconds)."""
    import json

    path = _state_file()
    try:
        kept = json.loads(path.read_text())
        if all(kept.get(k) == limits[k] for k in ("five_hour", "seven_day")) and \
                limits["observed_at"] - kept.get("observed_at", 0) < 60:
            return
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(limits))
        os.replace(partial, path)  # readers see the old figures or the new, never half
    except OSError:
        pass  # forgetting a figure costs only `cmat limits` outside a session


def last_known() -> dict | None:
    """The last official figures seen, with `observed_at`; None when never seen."""
    import json

    try:
        data = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("observed_at"), (int, float)):
        return None
    return {"five_hour": _window(_as_payload(data.get("five_hour"))),
            "seven_day": _window(_as_payload(data.get("seven_day"))),
            "observed_at": float(data["observed_at"])}


def _as_payload(window) -> dict | None:
    if not isinstance(window, dict):
        return None
    return {"used_percentage": window.get("used_percent"), "resets_at": window.get("resets_at")}


def plan_tokens(plan: str | None, past_blocks: list) -> tuple[int | None, str]:
    """The 5-hour allowance in input + output tokens that estimates are measured against,
    and where it comes from."""
    if plan in PLAN_TOKENS:
        return PLAN_TOKENS[plan], f"{plan} preset (community estimate)"
    if plan == "custom":
        totals = sorted(b.tokens["input"] + b.tokens["output"] for b in past_blocks
                        if not b.gap and not b.active)
        if len(totals) < CUSTOM_MIN_BLOCKS:
            return None, f"custom: only {len(totals)} past blocks, {CUSTOM_MIN_BLOCKS} needed"
        from cmat.stats import percentile

        return int(percentile(totals, CUSTOM_PERCENTILE)), \
            f"custom: 90th percentile of your {len(totals)} past blocks"
    return None, "no plan set (cmat limits --plan, or plan = \"max5\" in the config)"


FAMILIES = ("fable", "mythos", "opus", "sonnet", "haiku")


def family(model: str) -> str:
    """`Opus` for any Opus model id; an unknown model is its own family."""
    import re

    found = re.search("|".join(FAMILIES), model)
    return found.group(0).capitalize() if found else model


def active_hours(model_times) -> dict[str, float]:
    """Hours each model family was in use: each request keeps its family busy until
    ACTIVE_AFTER_REQUEST seconds after it, overlapping stretches counted once.
    `model_times` is (model, ts), oldest first."""
    busy: dict[str, float] = {}
    until_ts: dict[str, float] = {}
    for model, ts in model_times:
        name = family(model)
        end = ts + ACTIVE_AFTER_REQUEST
        busy[name] = busy.get(name, 0.0) + end - max(ts, until_ts.get(name, ts))
        until_ts[name] = end
    return {name: seconds / 3600 for name, seconds in busy.items()}


def block_estimate(block, allowance: int | None) -> float | None:
    """The share of `allowance` the block's input and output tokens have used, in percent."""
    if block is None:
        return None
    return estimate_percent(block.tokens["input"] + block.tokens["output"], allowance)


def estimate_percent(io_tokens: int, allowance: int | None) -> float | None:
    """The share of `allowance` that `io_tokens` (input + output) are, in percent."""
    if not allowance:
        return None
    return io_tokens / allowance * 100


def duration(seconds: float) -> str:
    """`2h10m`: hours and minutes, however many hours."""
    minutes = max(int(seconds // 60), 0)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def until(ts: float | None, now: float) -> str:
    """`2h10m`, `3d4h` or `now` until `ts`."""
    if ts is None:
        return "?"
    seconds = max(ts - now, 0)
    if seconds >= 86400:
        return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600)}h"
    return duration(seconds) if seconds >= 60 else "now"
