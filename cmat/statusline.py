"""`cmat statusline`: one short line for Claude Code's status bar.

Claude Code runs the `statusLine` command every few seconds with JSON on stdin (session_id,
transcript_path, cwd, model, workspace, cost.total_cost_usd). The line shows this session's
exact cost (its new transcript lines are imported into the ledger first, appended bytes
only), today's total, the current task and its cost, and the tightest budget as a
percentage, coloured at the alert thresholds. It never fails: on any error it prints a plain
placeholder and logs the reason to the hook log.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

RESET = "\033[0m"
COLOURS = {"ok": "\033[32m", "info": "\033[36m", "warning": "\033[33m",
           "critical": "\033[31m", "exhausted": "\033[1;31m"}
SEPARATOR = " · "
MISMATCH_RATIO = 0.05  # --debug reports Claude Code's own estimate when it differs by more


def _colour(text: str, level: str, enabled: bool) -> str:
    return f"{COLOURS[level]}{text}{RESET}" if enabled else text


def budget_level(percent: float, thresholds: list[int]) -> str:
    if percent >= 100:
        return "exhausted"
    from cmat.alerts import level

    reached = [t for t in thresholds if percent >= t]
    return level(max(reached)) if reached else "ok"


def build_line(payload: dict, project: Path, colour: bool, debug: bool) -> str:
    from datetime import datetime

    from cmat.budgets import status_report
    from cmat.catalog import ModelService
    from cmat.hooks import current_task_id
    from cmat.ledger import Ledger
    from cmat.reports import local_midnight
    from cmat.scan import scan_session
    from cmat.timezones import zone

    session_id = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    transcript = payload.get("transcript_path")
    with Ledger(busy_timeout=1.0) as ledger:
        if session_id and isinstance(transcript, str) and transcript:
            scan_session(ledger, ModelService(project), Path(transcript), session_id)
        report = status_report(project, ledger, session_id)
        tz = zone(report["timezone"])
        today_start = local_midnight(datetime.now(tz).date(), tz)
        session_cost, unpriced = ledger.query(
            "SELECT coalesce(sum(cost_usd), 0), count(*) - count(cost_usd) FROM requests"
            " WHERE session_id = ?", (session_id or "",))[0]
        today = ledger.query("SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE ts >= ?",
                             (today_start,))[0][0]
        task_id = current_task_id(project)
        task_cost = None
        if task_id:
            task_cost = ledger.query(
                "SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE task_id = ?"
                " OR (session_id = ? AND task_id IS NULL)", (task_id, session_id or ""))[0][0]
    parts = [f"cmat ${session_cost:,.2f}" + ("+?" if unpriced else "") + " session",
             f"${today:,.2f} today"]
    if task_id:
        parts.append(f"{task_id} ${task_cost:,.2f}")
    tightest = max(report["budgets"], key=lambda b: b["percent"], default=None)
    if tightest:
        level = budget_level(tightest["percent"], report["thresholds"])
        parts.append(_colour(f"{tightest['scope']} {tightest['percent']:.0f}%", level, colour))
    line = SEPARATOR.join(parts)
    claude_cost = (payload.get("cost") or {}).get("total_cost_usd") \
        if isinstance(payload.get("cost"), dict) else None
    if debug and isinstance(claude_cost, (int, float)):
        base = max(abs(session_cost), 1e-9)
        if abs(claude_cost - session_cost) / base > MISMATCH_RATIO:
            line += (f"{SEPARATOR}Claude Code says ${claude_cost:,.2f}"
                     f" ({(claude_cost - session_cost) / base:+.0%} vs cmat)")
    return line


def run(debug: bool = False, stdin=None) -> int:
    """Print the status line; always exit 0 (Claude Code shows whatever we print)."""
    from cmat import paths
    from cmat.hooks import HookLog, hook_project, read_payload

    colour = not os.environ.get("NO_COLOR")
    project = paths.project_dir()
    try:
        payload = read_payload(sys.stdin if stdin is None else stdin)
        project = hook_project(payload)
        line = build_line(payload, project, colour, debug)
    except Exception as exc:  # the status bar must show something, never a traceback
        HookLog.for_project(project).write("ERROR", "statusline",
                                           f"{type(exc).__name__}: {exc}".replace("\n", " | "))
        line = "cmat: cost unavailable" + (f" ({type(exc).__name__}: {exc})" if debug else "")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0
