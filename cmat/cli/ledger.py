"""`cmat ledger ...`: the usage ledger itself."""

from __future__ import annotations

import click

from cmat.cli.options import json_option
from cmat.cli.output import echo, emit_json


@click.group()
def ledger() -> None:
    """The usage ledger: one row per API request across all projects (SQLite)."""


@ledger.command()
@json_option
def info(as_json: bool) -> None:
    """Where the ledger is and what it holds."""
    from cmat.ledger import SCHEMA_VERSION, Ledger
    from cmat.reports import iso_utc

    with Ledger() as store:
        requests, sessions_seen, first, last, unpriced = store.query(
            "SELECT count(*), count(DISTINCT session_id), min(ts), max(ts),"
            " count(*) - count(cost_usd) FROM requests")[0]
        files = store.query("SELECT count(*), coalesce(sum(size), 0) FROM files")[0]
        tracked = store.query("SELECT count(*), count(task_id) FROM sessions")[0]
        versions = [v for (v,) in store.query("SELECT DISTINCT catalog_version FROM requests")]
        size = store.path.stat().st_size if store.path.exists() else 0
        data = {"path": str(store.path), "schema_version": SCHEMA_VERSION, "bytes": size,
                "requests": requests, "sessions": sessions_seen, "unpriced_requests": unpriced,
                "first": iso_utc(first), "last": iso_utc(last), "files_tracked": files[0],
                "transcript_bytes_tracked": files[1], "hook_sessions": tracked[0],
                "hook_sessions_with_task": tracked[1], "catalog_versions": versions}
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        echo(f"{key.replace('_', ' ') + ':':28}{value}")


@ledger.command()
@json_option
def reprice(as_json: bool) -> None:
    """Price every stored request again with the current catalog (no transcripts needed)."""
    from cmat.catalog import ModelService
    from cmat.ledger import Ledger, reprice as run_reprice

    models = ModelService()
    with Ledger() as store:
        repriced, unpriced = run_reprice(store, models)
    if as_json:
        emit_json({"repriced": repriced, "unpriced": unpriced,
                   "catalog_version": models.catalog.version})
        return
    echo(f"Repriced {repriced:,} requests with catalog {models.catalog.version}"
         + (f"; {unpriced:,} remain unpriced (unknown models)" if unpriced else ""))


@ledger.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def rebuild(yes: bool, as_json: bool) -> None:
    """Recreate the ledger from the transcripts on disk.

    The way out of a damaged ledger. Requests whose transcripts Claude Code has since deleted
    are lost; task attribution recorded by the hooks is kept when the old ledger can be read.
    """
    from cmat import paths
    from cmat.catalog import ModelService
    from cmat.ledger import rebuild as run_rebuild
    from cmat.scan import scan, scan_roots

    path = paths.ledger_file()
    if not yes and not as_json:
        click.confirm(f"Recreate {path} from the transcripts on disk?", abort=True)
    models = ModelService()
    result = run_rebuild(path, lambda fresh: scan(fresh, models, scan_roots()))
    if as_json:
        emit_json(result)
        return
    echo(f"Rebuilt {path}: {result['requests']:,} requests from {result['files_read']} files; "
         f"{result['sessions_carried_over']} hook sessions carried over"
         + (f"; the damaged file was kept as {result['damaged_copy']}"
            if result["damaged_copy"] else ""))
