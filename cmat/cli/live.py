"""`cmat statusline`, `cmat metrics` and `cmat mcp`: where people already look at spend."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cmat import paths
from cmat.cli.options import project_option


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

    sys.exit(run(debug=debug))


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


@click.group(invoke_without_command=True)
@project_option
@click.option("--no-scan", is_flag=True, help="Use the ledger as it is.")
@click.pass_context
def metrics(ctx: click.Context, project: Path | None, no_scan: bool) -> None:
    """Prometheus metrics: print them once, or serve them (`cmat metrics serve`)."""
    if ctx.invoked_subcommand is None:
        from cmat.metrics import exposition

        sys.stdout.write(exposition(paths.project_dir(project), scan=not no_scan).decode())


@metrics.command()
@click.option("--port", type=int, default=9464, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. 0.0.0.0 lets other hosts scrape, with no "
                   "authentication: anyone who reaches the port reads project paths, model "
                   "names, task ids and costs.")
@project_option
def serve(port: int, host: str, project: Path | None) -> None:
    """Serve /metrics over HTTP until interrupted (transcripts are scanned at most every 10 s).

    One thread per connection, and idle connections time out after 10 s.
    """
    from cmat.metrics import serve as run_server

    run_server(paths.project_dir(project), host, port)


@click.command()
@project_option
def mcp(project: Path | None) -> None:
    """Run the read-only MCP server over stdio (for Claude Code: cmat hooks install --mcp).

    Tools: get_task_cost, get_enhancement_cost, get_cost_report, get_budget_status.
    """
    from cmat.mcp_server import run

    run(paths.project_dir(project))
