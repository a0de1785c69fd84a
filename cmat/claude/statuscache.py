"""The status line drawn from what its last full build found: the status-line cache.

A full build (cmat.statusline) imports the session's new lines into the ledger and reads the
figures the line shows: the session's cost, today's, the current task's, the 5-hour block's,
each budget's spend, the agents at work. It writes them down with what it read: how far into
each of the session's transcript files, the session's latest requests, the prices of its
models, and the size and time of every file the figures depend on.

Every refresh then draws the line from those figures and the payload (the model, the context
window and Claude Code's own rate limits change from one refresh to the next), loading only
`os`, `sys`, `marshal`, the standard library's C JSON scanner and small modules of cmat's
(`datetime` too when there are new lines): `json`, `re`, `pathlib`, `dataclasses` and orjson
each cost more than the whole refresh. When the session's files grew, their new lines are read
here by the scan's own rules (cmat.request), priced by its formula (cmat.rates) and added to
every figure they count towards; a copy of a request already counted replaces it only when it
outranks it, as in the ledger. Anything else sends the refresh to a full build: another file
or setting, a model not priced here, a line older than the session's latest requests, a new
day or 5-hour block, CACHE_SECONDS since the build, or new lines where a budget's spend
depends on more than the session (a per-run limit, by the agent that made each request). This
session's figures are exact; other sessions' spend lags by CACHE_SECONDS at most.
"""

from __future__ import annotations

import os
import sys

from cmat import clock
from cmat.claude.events import MAX_STDIN_BYTES
from cmat.claude.headroom import (
    drop,
    environment,
    fingerprint,
    load,
    parse_json,
    session_file,
    session_growth,
    store,
)

FORMAT = f"cmat-statusline-1-py{sys.version_info[0]}.{sys.version_info[1]}"
CACHE_SECONDS = 15.0
SEPARATOR = " · "
WIDTH = 80  # what a status bar shows of a line on a narrow terminal
MISMATCH_RATIO = 0.05  # --debug reports Claude Code's own estimate when it differs by more
UNITS = {"usd": 0, "io": 1, "all": 2}  # what a budget counts of a request


def cache_file(session_id: str) -> str:
    return session_file("statusline", session_id, FORMAT)


def where(payload: dict) -> list:
    """What decides the project (cmat.claude.payload.payload_project): the same values, the
    same project."""
    return [os.environ.get("CLAUDE_PROJECT_DIR"), payload.get("cwd"), os.getcwd()]


# --- the line ------------------------------------------------------------------------------


def draw(figures: dict, payload: dict, now: float, colour: bool) -> tuple[str, float]:
    """The line, from the figures and the payload; and the session's cost it shows."""
    from cmat import plans
    from cmat.colour import paint, percent_level
    from cmat.money import usd

    thresholds = figures["thresholds"]
    task = figures["task"]
    parts = [  # (priority: the lowest goes first when the line is too long, text)
        (2, _model_name(payload)),
        (3, _context(payload)),  # Claude Code shows the model and context itself
        (9, usd(figures["session"], figures["unpriced"]) + " session"),
        (7, f"{usd(figures['today'])} today"),
        (8, _five_hours(plans.official_limits(payload, now), figures, now, colour)),
        (4, f"{task[0]} {usd(task[1])}" if task else None),
    ]
    at_work = figures["at_work"]
    if at_work is not None:
        count, limit = at_work
        parts.append((5, paint(f"agents {count}/{limit}", "exhausted" if count >= limit
                               else percent_level(count / max(limit, 1) * 100, thresholds),
                               colour)))
    if figures["budgets"]:
        scope, percent = max(((scope, _percent(spent, limit))
                              for scope, spent, limit, _, _ in figures["budgets"]),
                             key=lambda found: found[1])
        parts.append((6, paint(f"{scope} {percent:.0f}%", percent_level(percent, thresholds),
                               colour)))
    return fit([(rank, text) for rank, text in parts if text]), figures["session"]


def _percent(spent: float, limit: float) -> float:
    return 100.0 if limit <= 0 else spent / limit * 100  # a limit of 0 is a freeze


def _model_name(payload: dict) -> str | None:
    model = payload.get("model")
    name = model.get("display_name") if isinstance(model, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    return name.split("(")[0].strip()[:20]  # "Opus 4.6 (1M context)" -> "Opus 4.6"


def _context(payload: dict) -> str | None:
    window = payload.get("context_window")
    used = window.get("used_percentage") if isinstance(window, dict) else None
    if isinstance(used, bool) or not isinstance(used, (int, float)):
        return None
    return f"ctx {used:.0f}%"


def _five_hours(official: dict | None, figures: dict, now: float, colour: bool) -> str | None:
    """The 5-hour window: Claude Code's own figure when it gives one (`official`, from the
    payload), else cmat's estimate against the plan (marked ~), else the block's cost."""
    from cmat import plans
    from cmat.colour import paint, percent_level
    from cmat.money import usd

    thresholds = figures["thresholds"]
    five = official and official["five_hour"]
    if five:
        text = f"5h {five['used_percent']:.0f}% {plans.until(five['resets_at'], now)}"
        return paint(text, percent_level(five["used_percent"], thresholds), colour)
    block = figures["block"]
    if block is None:
        return None
    left = plans.until(block["end"], now)
    estimate = plans.estimate_percent(block["io_tokens"], figures["allowance"])
    if estimate is None:
        return f"5h {usd(block['cost'])} {left}"
    return paint(f"5h ~{estimate:.0f}% {left}", percent_level(estimate, thresholds), colour)


def fit(parts: list[tuple[int, str]], width: int = WIDTH) -> str:
    """Join the parts in order, leaving out the least important until the line fits."""
    from cmat.colour import visible_length

    kept = list(parts)
    while len(kept) > 1 and visible_length(SEPARATOR.join(t for _, t in kept)) > width:
        kept.remove(min(kept, key=lambda part: part[0]))
    return SEPARATOR.join(text for _, text in kept)


def mismatch(payload: dict, session_cost: float) -> str:
    """For --debug: Claude Code's own estimate, when it differs from cmat's by over 5 %."""
    from cmat.money import usd

    cost = payload.get("cost")
    claude_cost = cost.get("total_cost_usd") if isinstance(cost, dict) else None
    if not isinstance(claude_cost, (int, float)):
        return ""
    base = max(abs(session_cost), 1e-9)
    if abs(claude_cost - session_cost) / base <= MISMATCH_RATIO:
        return ""
    return (f"{SEPARATOR}Claude Code says {usd(claude_cost)}"
            f" ({(claude_cost - session_cost) / base:+.0%} vs cmat)")


# --- a refresh -----------------------------------------------------------------------------


def answer(raw: bytes, debug: bool) -> str | None:
    """The line from the cache (module docstring); None sends the refresh to a full build.
    Never raises."""
    try:
        return _answer(raw, debug)
    except Exception:  # noqa: BLE001 - any doubt is the full build's to settle
        return None


def _answer(raw: bytes, debug: bool) -> str | None:
    if len(raw) > MAX_STDIN_BYTES:
        return None
    payload = parse_json(raw.decode())
    if not isinstance(payload, dict):
        return None
    now = clock.now()
    figures = up_to_date(payload, now)
    if figures is None:
        return None
    line, session_cost = draw(figures, payload, now, not os.environ.get("NO_COLOR"))
    return line + (mismatch(payload, session_cost) if debug else "")


def up_to_date(payload: dict, now: float) -> dict | None:
    """The cached figures of the payload's session with what its files gained since; None
    when the cache cannot tell them (module docstring)."""
    session = payload.get("session_id")
    if not isinstance(session, str) or not session:
        return None
    cache = load(cache_file(session), FORMAT)
    if cache is None or cache["transcript"] != payload.get("transcript_path") \
            or cache["where"] != where(payload) or cache["environment"] != environment() \
            or not cache["built"] <= now < cache["until"]:
        return None
    if any(fingerprint(path) != (path, size, mtime) for path, size, mtime in cache["files"]):
        return None
    grown = session_growth(cache["sources"])
    if grown is None or (grown and not (cache["growable"] and add_growth(cache, grown))):
        return None
    return cache["figures"]


def add_growth(cache: dict, grown: list[tuple[str, int, bytes]]) -> bool:
    """Add the requests in the files' new bytes to the cached figures (in place); False when
    a line is one the figures cannot take without the ledger (module docstring)."""
    from cmat import rates
    from cmat.request import (
        USAGE_MARKER,
        checked_cache,
        claude_usage,
        rank,
        request_key,
    )

    figures, tail, prices = cache["figures"], cache["tail"], cache["prices"]
    for path, offset, data in grown:
        end = data.rfind(b"\n") + 1  # a torn last line is the next refresh's, as the scan's
        at = 0
        while at < end:
            stop = data.index(b"\n", at) + 1
            line = data[at:stop]
            line_offset, at = offset + at, stop
            if USAGE_MARKER not in line:
                continue
            fields = claude_usage(parse_json(line.decode("utf-8", "replace")))
            if fields.__class__ is not tuple:
                continue  # no usage, or a notice: no cost
            (message_id, request_id, session_id, timestamp, model, input_tokens,
             output_tokens, cache_total, split, cache_read, searches, speed, geo, sidechain,
             _, cwd) = fields
            cache_total, cache_1h, ts = checked_cache(timestamp, input_tokens, output_tokens,
                                                      cache_total, split, cache_read, searches)
            if session_id != cache["session"] or model not in prices \
                    or timestamp[:10] != cache["price_day"]:
                return False
            cost = rates.counts_cost(rates.from_plain(prices[model]), input_tokens,
                                     output_tokens, cache_total, cache_1h, cache_read, searches,
                                     speed, geo)
            counts = (input_tokens, output_tokens, cache_total, cache_read)
            key = request_key(message_id, request_id, path, line_offset)
            copy = (rank(sidechain, sum(counts)), cost, *counts)
            counted = tail.get(key)
            if counted is None:
                if ts < cache["tail_from"]:
                    return False  # older than the latest requests: maybe one counted before
                counted = (0, 0.0, 0, 0, 0, 0)
            elif copy[0] <= counted[0]:
                continue  # an earlier snapshot, or a replay: the copy counted stands
            tail[key] = copy
            if not _add(figures, ts, cwd, [new - old for new, old in zip(copy[1:], counted[1:])]):
                return False
    return True


def _add(figures: dict, ts: float, cwd: str | None, change: list) -> bool:
    """Add one request's change (USD, then input, output, cache write and read tokens) to
    every figure it counts towards."""
    usd, input_tokens, output_tokens, writes, reads = change
    if ts < figures["day_start"]:
        return False
    block = figures["block"]
    if block is None or not block["start"] <= ts < block["end"]:
        return False  # a new block begins: the full build finds it
    figures["session"] += usd
    figures["today"] += usd
    if figures["task"] and figures["task_counts"]:
        figures["task"][1] += usd
    block["cost"] += usd
    block["io_tokens"] += input_tokens + output_tokens
    amounts = (usd, input_tokens + output_tokens, input_tokens + output_tokens + writes + reads)
    for budget in figures["budgets"]:
        unit, project = budget[3], budget[4]
        if unit is None:
            continue
        if project is not None and not (cwd == project or (cwd or "").startswith(
                project.rstrip(os.sep) + os.sep)):
            continue
        budget[1] += amounts[UNITS[unit]]
    return True


# --- written by the full build -------------------------------------------------------------


def write(cache: dict) -> None:
    """Store a full build's figures (headroom.store: whole or not at all)."""
    store(cache_file(cache["session"]), {**cache, "format": FORMAT})


def forget(session_id: str) -> None:
    drop(cache_file(session_id))
