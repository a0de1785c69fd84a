"""`cmat statusline`: one short line for Claude Code's status bar, built in full.

Claude Code runs the `statusLine` command every few seconds with JSON on stdin (session_id,
transcript_path, cwd, model, workspace, context_window, rate_limits, cost.total_cost_usd). The
line shows this session's exact cost, today's total, the 5-hour window, the current task and
its cost, and the tightest budget as a percentage, coloured at the alert thresholds. It never
fails: on any error it prints a plain placeholder and logs the reason to the hook log.

Most refreshes are drawn from the status-line cache (cmat.claude.statuscache, which also
draws the line). This is the full build behind it: the session's new transcript lines
imported into the ledger (appended bytes only), the figures read from the ledger and the
budgets, and the cache written for the refreshes that follow.
"""

from __future__ import annotations

import os
import sys

from cmat import clock
from cmat.claude import statuscache
from cmat.claude.events import read_stdin

TYPE_CHECKING = False  # `typing` costs more than a refresh drawn from the cache
if TYPE_CHECKING:
    from pathlib import Path

TAIL_REQUESTS = 64  # the session's latest requests, whose copies a refresh may meet again


def run(debug: bool = False) -> int:
    """Print the status line, from the cache when it can (statuscache.answer), else built in
    full; always exit 0 (Claude Code shows whatever we print). Run by hand at a terminal,
    with no payload to read, it says what it is for instead (exit 2)."""
    if sys.stdin is not None and sys.stdin.isatty():
        sys.stderr.write("cmat statusline draws Claude Code's status bar from the JSON Claude "
                         "Code sends it on stdin: cmat hooks install --statusline\n")
        return 2
    raw = read_stdin()
    line = statuscache.answer(raw, debug)
    if line is None:
        line = refresh(raw, debug)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0


def refresh(raw: bytes, debug: bool) -> str:
    """The line, built in full (the cache written for the next refreshes); a placeholder,
    and the reason in the hook log, on any error."""
    import io

    from cmat.claude.payload import payload_project, read_payload

    project = None
    try:
        payload = read_payload(io.BytesIO(raw))
        project = payload_project(payload)
        now = clock.now()
        figures, cache = build(payload, project, now)
        line, session_cost = statuscache.draw(figures, payload, now,
                                              not os.environ.get("NO_COLOR"))
        if cache is not None:
            statuscache.write(cache)
        elif isinstance(payload.get("session_id"), str):
            statuscache.forget(payload["session_id"])
        return line + (statuscache.mismatch(payload, session_cost) if debug else "")
    except Exception as exc:  # the status bar must show something, never a traceback
        from cmat.claude.log import HookLog

        HookLog(project).write(
            "ERROR", "statusline", f"{type(exc).__name__}: {exc}".replace("\n", " | "))
        return "cmat: cost unavailable" + (f" ({type(exc).__name__}: {exc})" if debug else "")


def build(payload: dict, project: Path, now: float) -> tuple[dict, dict | None]:
    """The figures the line shows (statuscache.draw), and the cache that lets the next
    refreshes draw it without the ledger (None when it cannot)."""
    from datetime import datetime, timedelta
    from pathlib import Path

    from cmat import plans
    from cmat.blocks import active_block, cut_blocks
    from cmat.budgets.limits import all_statuses, session_share
    from cmat.catalog import ModelService
    from cmat.ingest import import_session
    from cmat.ledger import Ledger
    from cmat.periods import midnight

    session_id = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    transcript = payload.get("transcript_path")
    path = Path(transcript) if session_id and isinstance(transcript, str) and transcript \
        else None
    official = plans.official_limits(payload, now)
    if official:
        plans.remember(official)
    models = ModelService(project)
    with Ledger(busy_timeout=1.0) as ledger:
        if path is not None:
            import_session(ledger, models, path, session_id)
        # One read of the ledger: the figures and how far the files were read agree even
        # when a hook imports more of the session meanwhile.
        with ledger.snapshot():
            config, context, statuses = all_statuses(project, ledger, now, session_id)
            day = datetime.fromtimestamp(now, context.tz).date()
            day_start = midnight(day, context.tz).timestamp()
            session_requests, session_cost = ledger.session_totals(session_id or "")
            task_id = context.task_id  # the current task, as the budgets found it
            attributed = ledger.attribution(session_id) if session_id else None
            block = active_block(ledger, now)
            allowance = None
            if block is not None and config.plan:
                past = cut_blocks(ledger.block_usage(now - 30 * 86400), now) \
                    if config.plan == "custom" else []
                allowance, _ = plans.plan_tokens(config.plan, past)
            at_work = None
            if config.concurrent_agents is not None:
                from cmat.budgets.concurrency import running

                at_work = (len(running(ledger, config, now)), config.concurrent_agents)
            growable = True  # whether the cache can take the session's new lines
            budgets = []
            for status in statuses:
                try:
                    share = session_share(status.budget, context, config, attributed)
                except ValueError:
                    share, growable = None, False
                budgets.append([status.budget.scope, status.spent, status.budget.limit,
                                *(share or (None, None))])
            attributed_task = attributed[0] if attributed else None
            figures = {
                "session": session_cost,
                "unpriced": session_requests - ledger.priced_requests(session_id or ""),
                "today": ledger.spend_usd(since=day_start), "day_start": day_start,
                "task": [task_id, ledger.task_spend(task_id, session_id)] if task_id else None,
                "task_counts": attributed_task in (None, task_id),  # as task_spend counts it
                "block": None if block is None else {
                    "start": block.start, "end": block.end, "cost": block.cost_usd,
                    "io_tokens": block.tokens["input"] + block.tokens["output"]},
                "allowance": allowance, "at_work": at_work,
                "thresholds": tuple(config.thresholds), "budgets": budgets}
            cache = None
            if path is not None:
                until = min(now + statuscache.CACHE_SECONDS,
                            midnight(day + timedelta(days=1), context.tz).timestamp(),
                            block.end if block is not None else float("inf"))
                cache = _cache(ledger, models, project, payload, path, session_id, now, until)
    if cache is not None:
        cache["figures"], cache["growable"] = figures, growable
    return figures, cache


def _cache(ledger, models, project: Path, payload: dict, path: Path, session_id: str,
           now: float, until: float) -> dict | None:
    """What a refresh needs to bring the figures up to date (statuscache); None when a file
    of the session could not be read yet."""
    from cmat import rates
    from cmat.claude import headroom
    from cmat.claude.runtime import session_reading
    from cmat.periods import utc_day
    from cmat.pricing import pricing_at
    from cmat.request import rank

    reading = session_reading(ledger, project, path, session_id)
    if reading is None:
        return None
    latest = ledger.latest_requests(session_id, TAIL_REQUESTS)
    model = payload.get("model")
    named = {model.get("id")} if isinstance(model, dict) else set()
    prices = {}
    for name in named | set(ledger.session_models(session_id)):
        entry = models.get_by_pattern(name) if isinstance(name, str) else None
        if entry is not None:
            prices[name] = rates.plain(pricing_at(entry, now))
    return {
        "session": session_id, "transcript": payload["transcript_path"],
        "where": statuscache.where(payload), "environment": headroom.environment(),
        "built": now, "until": until,
        "sources": reading[0], "files": reading[1],
        "tail": {key: (rank(bool(sidechain), i + o + w + r), cost or 0.0, i, o, w, r)
                 for key, _, _, sidechain, cost, i, o, w, r in latest},
        "tail_from": min((row[2] for row in latest), default=float("inf")),
        "prices": prices, "price_day": utc_day(now)}
