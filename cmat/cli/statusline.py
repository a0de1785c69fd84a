"""`cmat statusline`: one line for Claude Code's status bar."""

from __future__ import annotations

import click

from cmat.errors import leave


@click.command()
@click.option("--debug", is_flag=True,
              help="Also say when Claude Code's own estimate differs from cmat's by over 5 %.")
def statusline(debug: bool) -> None:
    """One line for Claude Code's status bar (reads Claude Code's JSON on stdin).

    Shows, within 80 columns: the model and context %, this session's exact cost, today's
    total, the 5-hour window (Claude Code's own figure when it gives one, else an estimate
    marked ~) and its reset, the current task and its cost, and the tightest budget as a
    percentage coloured at the alert thresholds (NO_COLOR respected).
    Install it with: cmat hooks install --statusline
    """
    from cmat.statusline import run

    leave(run(debug=debug))
