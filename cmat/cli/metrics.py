"""`cmat metrics`: Prometheus metrics, printed once or served."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cmat import paths
from cmat.cli.options import project_option


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
