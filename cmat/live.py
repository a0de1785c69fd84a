"""`cmat live`: a full-screen view of the 5-hour block under way, refreshed from the ledger.

Every refresh imports what Claude Code appended since the last one (appended bytes only), then
draws: the block's progress (against Claude Code's own figure when the status line has seen
one, else the plan's estimate, else time elapsed), burn rate, projection and time to reset,
the block per model, today's spend against the daily budget, and the sessions at work in the
last 10 minutes. Drawn with rich (its Live display restores the terminal however the view
ends); fits 80x24; NO_COLOR is honoured by rich itself. `q` or Ctrl-C quits.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cmat import clock, paths, plans
from cmat.blocks import Block, active_block, short_model
from cmat.budgets.limits import all_statuses
from cmat.catalog import ModelService
from cmat.ingest import scan
from cmat.ledger import Ledger
from cmat.money import usd
from cmat.periods import midnight
from cmat.text import terminal_safe

RUNNING_SECONDS = 600  # a session with a request this recent is shown as running
MAX_SESSIONS = 5


@dataclass
class Snapshot:
    now: float
    block: Block | None
    official: dict | None
    allowance: int | None
    basis: str
    today_usd: float
    daily_limit: float | None
    sessions: list[tuple[str, str, float, float]] = field(default_factory=list)


def take_snapshot(ledger: Ledger, models: ModelService, project: Path, now: float) -> Snapshot:
    scan(ledger, models, paths.transcript_roots())
    config, context, statuses = all_statuses(project, ledger, now)
    block = active_block(ledger, now)
    allowance, basis = plans.plan_tokens(config.plan, [])
    today = ledger.spend_usd(since=midnight(datetime.fromtimestamp(now, context.tz).date(),
                                            context.tz).timestamp())
    daily = next((s.budget.limit for s in statuses if s.budget.key == "daily"), None)
    return Snapshot(now, block, plans.last_known(), allowance, basis, today, daily,
                    ledger.recent_sessions(now - RUNNING_SECONDS, MAX_SESSIONS))


def render(snapshot: Snapshot):
    """The screen for `snapshot`, as a rich renderable."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    now, block = snapshot.now, snapshot.block
    lines: list = []
    if block is None:
        lines.append(Text("No 5-hour block under way: nothing used in the last 5 hours."))
    else:
        share, label = _share(snapshot)
        lines.append(Text(f"Block {_clock(block.start)}-{_clock(block.end)}, resets in "
                          f"{plans.until(block.end, now)}   {label}"))
        bar = Table.grid()  # a grid row of its own: a bare bar would share its line
        bar.add_row(ProgressBar(total=100, completed=min(share, 100), width=60))
        lines.append(bar)
        rate = block.burn_rate()
        projection = block.projection(now)
        lines.append(Text(
            f"Used {block.total_tokens:,} tokens, {usd(block.cost_usd)}"
            + (f"   burn {rate['tokens_per_minute']:,.0f} tok/min, "
               f"{usd(rate['cost_per_hour'])}/h" if rate else "")))
        if projection:
            lines.append(Text(f"Projected at reset: {projection['total_tokens']:,} tokens, "
                              + usd(projection["cost_usd"])))
        models = Table(box=None, pad_edge=False, show_edge=False)
        for column, justify in (("Model", "left"), ("Tokens", "right"), ("Cost", "right")):
            models.add_column(column, justify=justify)
        for model, (tokens, cost, unpriced) in list(block.per_model.items())[:4]:
            models.add_row(_outside(short_model(model)[:28]), f"{tokens:,}", usd(cost, unpriced))
        lines.append(models)
    today = f"Today {usd(snapshot.today_usd)}"
    if snapshot.daily_limit:
        today += f" of {usd(snapshot.daily_limit)} daily budget " \
                 f"({snapshot.today_usd / snapshot.daily_limit * 100:.0f}%)"
    lines.append(Text(today))
    sessions = Table(title="Running sessions", box=None, title_justify="left",
                     show_edge=False, pad_edge=False)
    for column, justify in (("Session", "left"), ("Project", "left"), ("Last", "right"),
                            ("Cost", "right")):
        sessions.add_column(column, justify=justify)
    for session_id, project, last, cost in snapshot.sessions:
        sessions.add_row(_outside(session_id[:8]),
                         _outside((project or "-").rstrip("/").rsplit("/", 1)[-1][:24]),
                         f"{int(now - last) // 60}m ago", usd(cost))
    if snapshot.sessions:
        lines.append(sessions)
    else:
        lines.append(Text("No session at work in the last 10 minutes."))
    return Panel(Group(*lines), title=f"cmat live  {_clock(now)}",
                 subtitle="q or Ctrl-C quits")  # as wide as the terminal


def _outside(text: str):
    """A transcript's model id or project, as rich Text: not read as rich's markup (a
    "[link=...]" in a folder's name), and terminal_safe (rich passes escape sequences)."""
    from rich.text import Text

    return Text(terminal_safe(text, False))


def _share(snapshot: Snapshot) -> tuple[float, str]:
    """How far into the limit the block is, and what that figure is."""
    official = snapshot.official
    five = official and official.get("five_hour")
    if five and official["observed_at"] >= snapshot.block.start:
        return five["used_percent"], f"{five['used_percent']:.0f}% (Claude Code)"
    estimate = plans.block_estimate(snapshot.block, snapshot.allowance)
    if estimate is not None:
        return estimate, f"~{estimate:.0f}% (estimate)"
    elapsed = (snapshot.now - snapshot.block.start) / (snapshot.block.end - snapshot.block.start)
    return elapsed * 100, f"{elapsed * 100:.0f}% of the time (no plan set)"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M")


@contextlib.contextmanager
def keys():
    """Single key presses from the terminal (no Enter), restored however the view ends."""
    if not sys.stdin.isatty():
        yield lambda timeout: time.sleep(timeout)
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read(timeout: float) -> str:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 1).decode(errors="replace") if ready else ""

    try:
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run(project: Path, interval: float) -> None:
    """The view, refreshed until `q`; without a terminal (a pipe, a script), the screen once."""
    from rich.console import Console
    from rich.live import Live

    models = ModelService(project)
    console = Console()
    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        with Ledger() as ledger:
            console.print(render(take_snapshot(ledger, models, project, clock.now())))
        return
    with Ledger() as ledger, keys() as read_key, \
            Live(console=console, screen=True, auto_refresh=False) as live:
        try:
            while True:
                live.update(render(take_snapshot(ledger, models, project, clock.now())),
                            refresh=True)
                deadline = time.monotonic() + interval
                while (left := deadline - time.monotonic()) > 0:
                    if read_key(left) in ("q", "Q"):
                        return
        except KeyboardInterrupt:
            return
