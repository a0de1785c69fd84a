"""`cmat ledger ...`: the usage ledger itself."""

from __future__ import annotations

from pathlib import Path

import click

from cmat.cli.options import output_options
from cmat.cli.output import emit_json, wrapped


@click.group()
def ledger() -> None:
    """The usage ledger: one row per API request across all projects (SQLite)."""


@ledger.command()
@output_options
def info(as_json: bool) -> None:
    """Where the ledger is and what it holds."""
    from cmat.ledger import Ledger
    from cmat.ledger.schema import SCHEMA_VERSION
    from cmat.reports import iso_utc

    with Ledger() as store:
        held = store.info()
        size = store.path.stat().st_size if store.path.exists() else 0
    first, last = held.pop("first_ts"), held.pop("last_ts")
    data = {"path": str(store.path), "schema_version": SCHEMA_VERSION, "bytes": size,
            "requests": held.pop("requests"), "sessions": held.pop("sessions"),
            "unpriced_requests": held.pop("unpriced_requests"), "first": iso_utc(first),
            "last": iso_utc(last), **held}
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        click.echo(wrapped(f"{key.replace('_', ' ') + ':':28}", str(value)))


@ledger.command()
@output_options
def reprice(as_json: bool) -> None:
    """Price every stored request again with the current catalog (no transcripts needed)."""
    from cmat.catalog import ModelService
    from cmat.ingest import reprice as run_reprice
    from cmat.ledger import Ledger

    models = ModelService()
    with Ledger() as store:
        repriced, unpriced = run_reprice(store, models)
    if as_json:
        emit_json({"repriced": repriced, "unpriced": unpriced,
                   "catalog_version": models.catalog.version})
        return
    click.echo(f"Repriced {repriced:,} requests with catalog {models.catalog.version}"
               + (f"; {unpriced:,} remain unpriced (unknown models)" if unpriced else ""))


@ledger.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--path", "extra_paths", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also import this folder of transcripts (repeatable), as cmat scan --path.")
@output_options
def rebuild(yes: bool, extra_paths: tuple[Path, ...], as_json: bool) -> None:
    """Recreate the ledger from the transcripts on disk, and salvage the old one.

    The way out of a damaged ledger. The old file is never deleted: it is kept beside the
    new one (ledger.db.damaged-<time>, or .previous-<time> when it was healthy), and every
    request it can still be read for comes back, those whose transcripts Claude Code has
    since deleted included, with task attribution, overrides and alerts.
    """
    from cmat import paths
    from cmat.catalog import ModelService
    from cmat.ingest import rebuild as run_rebuild

    path = paths.ledger_file()
    if not yes and not as_json:
        click.confirm(f"Recreate {path} from the transcripts on disk (the old file is kept)?",
                      abort=True)
    models = ModelService()
    result = run_rebuild(path, models, paths.transcript_roots(list(extra_paths)))
    if as_json:
        emit_json(result)
        return
    click.echo(f"Rebuilt {path}: {result['requests']:,} requests from {result['files_read']} "
               f"files, {result['salvaged_requests']:,} more salvaged from the old ledger; "
               f"{result['sessions_carried_over']} hook sessions carried over")
    if result["previous_state"] == "empty":
        click.echo(f"The old ledger was empty (0 bytes); kept as {result['damaged_copy']}")
    elif result["damaged_copy"]:
        click.echo(f"The old ledger is kept as {result['damaged_copy']}")
    if result["unreadable_chunks"]:
        click.echo(f"warning: {result['unreadable_chunks']} parts of the old ledger could not "
                   "be read")
