"""`cmat live`: a full-screen view of the 5-hour block under way."""

from __future__ import annotations

from pathlib import Path

import click

from cmat import paths
from cmat.cli.options import project_option


@click.command()
@project_option
@click.option("--interval", type=click.FloatRange(min=0.5), default=3.0, show_default=True,
              help="Seconds between refreshes.")
def live(project: Path | None, interval: float) -> None:
    """A full-screen view of the 5-hour block under way, refreshed every few seconds.

    The block's progress (Claude Code's own figure when the status line has seen one, else
    the estimate against your plan), burn rate, projection and time to reset, the block per
    model, today against the daily budget, and the sessions at work. q or Ctrl-C quits.
    """
    from cmat.live import run

    run(paths.project_dir(project), interval)
