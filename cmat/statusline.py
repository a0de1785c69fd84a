"""`cmat statusline`: one short line for Claude Code's status bar.

Claude Code runs the `statusLine` command every few seconds with JSON on stdin (session_id,
transcript_path, cwd, model, workspace, cost.total_cost_usd). The line shows this session's
exact cost (its new transcript lines are imported into the ledger first, appended bytes
only), today's total, the current task and its cost, and the tightest budget as a
percentage, coloured at the alert thresholds. It never fails: on any error it prints a plain
placeholder and logs the reason to the hook log.

Most refreshes come while nothing has changed, so the line is cached per session, keyed on
`stat` of everything it depends on (the session's transcript files, the current-task marker,
the budget configuration) and kept CACHE_SECONDS at most: a refresh that finds it valid loads
no more than `os` and `json`. The session's own cost is therefore always exact; today's total
and other sessions' spend may lag by up to CACHE_SECONDS.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable  # not typing's: its import costs a refresh ~3 ms
from pathlib import Path

from cmat import clock, paths
from cmat.colour import paint, visible_length
from cmat.money import usd

CACHE_SECONDS = 15.0

SEPARATOR = " · "
SHOWN_FIELDS = ("model", "context_window", "rate_limits")  # payload values the line shows
WIDTH = 80  # what a status bar shows of a line on a narrow terminal
MISMATCH_RATIO = 0.05  # --debug reports Claude Code's own estimate when it differs by more


def build_line(payload: dict, project: Path, colour: bool) -> tuple[str, float]:
    """The line, and the session's cost it shows."""
    from datetime import datetime

    from cmat import plans
    from cmat.blocks import active_block, cut_blocks
    from cmat.budgets.alerts import percent_level
    from cmat.budgets.limits import all_statuses
    from cmat.catalog import ModelService
    from cmat.ingest import import_session
    from cmat.ledger import Ledger
    from cmat.periods import midnight
    from cmat.tasks.queue import current_context

    session_id = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    transcript = payload.get("transcript_path")
    now = clock.now()
    official = plans.official_limits(payload, now)
    if official:
        plans.remember(official)
    with Ledger(busy_timeout=1.0) as ledger:
        if session_id and isinstance(transcript, str) and transcript:
            import_session(ledger, ModelService(project), Path(transcript), session_id)
        config, context, statuses = all_statuses(project, ledger, now, session_id)
        tz = context.tz
        today = ledger.spend_usd(since=midnight(datetime.fromtimestamp(now, tz).date(),
                                                tz).timestamp())
        session_requests, session_cost = ledger.session_totals(session_id or "")
        unpriced = session_requests - ledger.priced_requests(session_id or "")
        task_id = current_context(project, details=False).task_id
        task_cost = ledger.task_spend(task_id, session_id) if task_id else None
        block = active_block(ledger, now)
        at_work = None
        if config.concurrent_agents is not None:
            from cmat.budgets.concurrency import running

            at_work = len(running(ledger, config, now))
        allowance = None
        if block is not None and config.plan and not (official and official["five_hour"]):
            past = cut_blocks(ledger.timeline(now - 30 * 86400), now) \
                if config.plan == "custom" else []
            allowance, _ = plans.plan_tokens(config.plan, past)
    parts = [  # (priority: the lowest goes first when the line is too long, text)
        (2, _model_name(payload)),
        (3, _context(payload)),  # Claude Code shows the model and context itself
        (9, usd(session_cost, unpriced) + " session"),
        (7, f"{usd(today)} today"),
        (8, _five_hours(official, block, allowance, now, config.thresholds, colour)),
        (4, f"{task_id} {usd(task_cost)}" if task_id else None),
    ]
    if at_work is not None:
        limit = config.concurrent_agents
        parts.append((5, paint(f"agents {at_work}/{limit}", "exhausted" if at_work >= limit
                               else percent_level(at_work / max(limit, 1) * 100,
                                                  config.thresholds), colour)))
    tightest = max(statuses, key=lambda status: status.percent, default=None)
    if tightest:
        level = percent_level(tightest.percent, config.thresholds)
        parts.append((6, paint(f"{tightest.budget.scope} {tightest.percent:.0f}%", level,
                                 colour)))
    return fit([(rank, text) for rank, text in parts if text]), session_cost


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


def _five_hours(official: dict | None, block, allowance: int | None, now: float,
                thresholds: tuple[int, ...], colour: bool) -> str | None:
    """The 5-hour window: Claude Code's own figure when it gives one (`official`, from the
    payload), else cmat's estimate against the plan (marked ~), else the block's cost."""
    from cmat import plans
    from cmat.budgets.alerts import percent_level

    five = official and official["five_hour"]
    if five:
        text = f"5h {five['used_percent']:.0f}% {plans.until(five['resets_at'], now)}"
        return paint(text, percent_level(five["used_percent"], thresholds), colour)
    if block is None:
        return None
    left = plans.until(block.end, now)
    estimate = plans.block_estimate(block, allowance)
    if estimate is None:
        return f"5h {usd(block.cost_usd)} {left}"
    return paint(f"5h ~{estimate:.0f}% {left}", percent_level(estimate, thresholds), colour)


def fit(parts: list[tuple[int, str]], width: int = WIDTH) -> str:
    """Join the parts in order, leaving out the least important until the line fits."""
    kept = list(parts)
    while len(kept) > 1 and visible_length(SEPARATOR.join(t for _, t in kept)) > width:
        kept.remove(min(kept, key=lambda part: part[0]))
    return SEPARATOR.join(text for _, text in kept)


def mismatch(payload: dict, session_cost: float) -> str:
    """For --debug: Claude Code's own estimate, when it differs from cmat's by over 5 %."""
    cost = payload.get("cost")
    claude_cost = cost.get("total_cost_usd") if isinstance(cost, dict) else None
    if not isinstance(claude_cost, (int, float)):
        return ""
    base = max(abs(session_cost), 1e-9)
    if abs(claude_cost - session_cost) / base <= MISMATCH_RATIO:
        return ""
    return (f"{SEPARATOR}Claude Code says {usd(claude_cost)}"
            f" ({(claude_cost - session_cost) / base:+.0%} vs cmat)")


def _stat(path: str) -> list:
    try:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return []


def fingerprint(payload: dict, project: Path, colour: bool) -> list:
    """Everything the line depends on, as cheap `stat` results."""
    transcript = payload.get("transcript_path")
    key: list = [str(project), colour, payload.get("session_id"),
                 os.environ.get("CMAT_CURRENT_TASK_ID", ""),
                 *(json.dumps(payload.get(field), sort_keys=True, default=str)
                   for field in SHOWN_FIELDS)]
    if isinstance(transcript, str) and transcript:
        key.append(_stat(transcript))
        subagents = os.path.join(os.path.splitext(transcript)[0], "subagents")
        try:
            with os.scandir(subagents) as entries:
                key.append(sorted([e.name, _stat(e.path)] for e in entries))  # JSON-stable
        except OSError:
            pass
    for path in (paths.current_task_file(project), project / ".claude" / "cmat.toml",
                 paths.config_home() / "config.toml"):
        key.append(_stat(str(path)))
    return key


def _cache_file(session_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in session_id)[:100]
    return paths.cache_home() / "statusline" / f"{safe}.json"


def cached_line(payload: dict, project: Path, colour: bool,
                build: Callable[[dict, Path, bool], tuple[str, float]] | None = None,
                cache_seconds: float = CACHE_SECONDS) -> tuple[str, float]:
    """The line from the cache when still valid, else built (by `build_line`) and cached."""
    session_id = payload.get("session_id") if isinstance(payload.get("session_id"), str) else ""
    key = fingerprint(payload, project, colour)
    cache = _cache_file(session_id or "none")
    try:
        cached = json.loads(cache.read_text())
        if cached["key"] == key and cached["until"] > time.time():
            return cached["line"], cached["session_cost"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    line, session_cost = (build or build_line)(payload, project, colour)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({"key": key, "until": time.time() + cache_seconds,
                                       "line": line, "session_cost": session_cost}))
        os.replace(partial, cache)  # readers see the old entry or the new one, never half
    except OSError:
        pass  # no cache only costs speed
    return line, session_cost


def run(debug: bool = False, stdin=None) -> int:
    """Print the status line; always exit 0 (Claude Code shows whatever we print)."""
    from cmat.claude.payload import payload_project, read_payload

    colour = not os.environ.get("NO_COLOR")
    project = None
    try:
        payload = read_payload(sys.stdin if stdin is None else stdin)
        project = payload_project(payload)
        line, session_cost = cached_line(payload, project, colour)
        if debug:
            line += mismatch(payload, session_cost)
    except Exception as exc:  # the status bar must show something, never a traceback
        from cmat.claude.log import HookLog

        HookLog(project).write(
            "ERROR", "statusline", f"{type(exc).__name__}: {exc}".replace("\n", " | "))
        line = "cmat: cost unavailable" + (f" ({type(exc).__name__}: {exc})" if debug else "")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0
