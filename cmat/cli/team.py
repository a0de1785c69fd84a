"""`cmat sync`: push the local ledger to the team database (PostgreSQL)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cmat import clock
from cmat.cli.options import output_options
from cmat.cli.output import count, echo, emit_json
from cmat.cli.report import options, scan_options

team_url_option = click.option(
    "--to", "url", metavar="URL",
    help="The team database: a PostgreSQL URL or conninfo (default: CMAT_TEAM_URL, else "
         "team.url in the config). Passwords come from ~/.pgpass or PGPASSWORD.")


@click.command()
@team_url_option
@output_options
@options(scan_options)
def sync(url: str | None, as_json: bool, no_scan: bool, extra_paths: tuple[Path, ...],
         quiet: bool) -> None:
    """Push this ledger's new and changed rows to the team database.

    Incremental (only what changed since the last sync of this ledger), idempotent (a
    request is unique by its message id; the better copy wins), batched with COPY, and
    resumable: a sync cut short keeps what it sent, and the next one goes on. Rows carry
    this machine's and user's names (CMAT_MACHINE, CMAT_USER; default: the host name and
    the OS user). When the database cannot be reached, nothing local is touched (exit 8).
    Afterwards the team's budgets and totals are cached here for the hooks.
    """
    from cmat.cli.report import scan_first
    from cmat.team.connect import team_url
    from cmat.team.sync import sync as push

    target = team_url(url)
    ledger, _ = scan_first(no_scan, extra_paths, quiet)
    shown = sys.stderr.isatty() and not quiet and not as_json

    def progress(sent: int) -> None:
        if shown:
            sys.stderr.write(f"\rsent {count(sent, 'request')}")
            sys.stderr.flush()

    with ledger:
        result = push(ledger, target, progress)
    if shown:
        sys.stderr.write("\r\033[K")
    _retention_after_sync(target)
    if as_json:
        emit_json(result.to_json())
    elif not quiet:
        echo(f"{result.database}: " + (result.skipped or (
            f"sent {count(result.requests, 'request')}, {count(result.sessions, 'session')}"
            + (f", {count(result.deleted)} deletions" if result.deleted else "")
            + f" in {result.seconds:.1f} s"
            + (f"; {count(result.rejected, 'request')} not sent: values no request can have"
               " (the team database refuses them)" if result.rejected else ""))))


def _retention_after_sync(url: str) -> None:
    """`retention.team_older_than`: the team database compacted after a sync."""
    from cmat import paths
    from cmat.budgets.config import load_config

    config = load_config(paths.project_dir())
    if config.team_retention:
        from cmat.team.compact import compact_team

        compact_team(url, config.team_retention, config.timezone, clock.now())
