"""`cmat statusline`: one line for Claude Code's status bar."""

from __future__ import annotations

import click

from cmat.errors import leave


# ccusage's status line options (--offline, --cache, --visual-burn-rate, ...) are accepted and
# ignored, so its settings line works with cmat in its place: an error would blank the bar.
@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--debug", "-d", is_flag=True,
              help="Also say when Claude Code's own estimate differs from cmat's by over 5 %.")
def statusline(debug: bool) -> None:
    """One line for Claude Code's status bar (reads Claude Code's JSON on stdin).

    Shows, within 80 columns: the model and context %, this session's exact cost, today's
    total, the 5-hour window (Claude Code's own figure when it gives one, else an estimate
    marked ~) and its reset, the current task and its cost, and the tightest budget as a
    percentage coloured at the alert thresholds (NO_COLOR respected).
    Install it with: cmat hooks install --statusline. The options of ccusage's status line
    are accepted, and ignored.
    """
    from cmat.statusline import run

    leave(run(debug=debug))
