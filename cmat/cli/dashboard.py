"""`cmat dashboard`: the local web dashboard and its JSON API."""

from __future__ import annotations

from pathlib import Path

import click

from cmat.cli.options import project_option


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True,
              help="Port to listen on (0: any free port, printed).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The dashboard has no login: keep it on this "
                   "machine unless a proxy in front of it adds one.")
@click.option("--open", "open_browser", is_flag=True, help="Open it in the default browser.")
@click.option("--no-scan", is_flag=True,
              help="Serve the ledger as it is, without importing new transcript lines.")
@project_option
def dashboard(port: int, host: str, open_browser: bool, no_scan: bool,
              project: Path | None) -> None:
    """A local web dashboard: spend per day by model, per project, task and enhancement,
    budgets, the 5-hour block, alerts and what to change to spend less.

    \b
    The same server answers a JSON API whose figures equal the commands' --json:
      /api/v1/usage?period=daily&by=model   cmat report daily --by model --json
      /api/v1/budgets                       cmat budget status --json
      /api/v1/alerts                        cmat alerts list --json
      /api/v1/suggestions?period=30d        cmat optimize --json
      /api/v1/blocks                        cmat blocks --active --json
    It works offline: the chart library is part of cmat. New transcript lines are imported
    at most every 10 seconds, as pages ask.
    """
    from cmat import paths
    from cmat.dashboard.server import serve

    serve(paths.project_dir(project), host, port, open_browser, not no_scan)
