"""`cmat ledger ...`: the usage ledger itself."""

from __future__ import annotations

from pathlib import Path

import click

from cmat import clock
from cmat.cli.options import OutputFile, output_options
from cmat.cli.output import count, echo, emit_json, wrapped


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
        echo(wrapped(f"{key.replace('_', ' ') + ':':28}", str(value)))


@ledger.command()
@output_options
def reprice(as_json: bool) -> None:
    """Price every stored request again with the current catalog (no transcripts needed).

    Says how many requests got a new cost, and how many were rewritten: a catalog of another
    version (any change to a layer, a default model set too) rewrites every request it
    prices, and a team sync sends those again."""
    from cmat.catalog import ModelService
    from cmat.ledger import Ledger
    from cmat.maintenance import reprice as run_reprice

    models = ModelService()
    with Ledger() as store:
        repriced, unpriced, changed, costs_changed = run_reprice(store, models)
    if as_json:
        emit_json({"repriced": repriced, "unpriced": unpriced, "changed": changed,
                   "costs_changed": costs_changed, "catalog_version": models.catalog.version})
        return
    # A request is rewritten when its cost or its catalog's version changed: say which, so
    # that a new version alone (a default model set) is not taken for new prices.
    echo(f"Repriced {count(repriced, 'request')} with catalog {models.catalog.version}"
         f" ({costs_changed:,} with a new cost, {changed:,} rewritten)"
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
    from cmat.maintenance import rebuild as run_rebuild

    path = paths.ledger_file()
    if not yes and not as_json:
        click.confirm(f"Recreate {path} from the transcripts on disk (the old file is kept)?",
                      abort=True)
    models = ModelService()
    result = run_rebuild(path, models, paths.transcript_roots(list(extra_paths)))
    if as_json:
        emit_json(result)
        return
    echo(f"Rebuilt {path}: {count(result['requests'], 'request')} from "
         f"{count(result['files_read'], 'file')}, {count(result['salvaged_requests'])} more "
         f"salvaged from the old ledger; {count(result['sessions_carried_over'], 'hook session')}"
         " carried over")
    if result["previous_state"] == "empty":
        echo(f"The old ledger was empty (0 bytes); kept as {result['damaged_copy']}")
    elif result["damaged_copy"]:
        echo(f"The old ledger is kept as {result['damaged_copy']}")
    if result["unreadable_chunks"]:
        echo(f"warning: {result['unreadable_chunks']} parts of the old ledger could not "
             "be read")


@ledger.command()
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Fold requests older than this: 90d, 13m (months) or 2y.")
@click.option("--team", is_flag=True, help="Compact the team database instead.")
@click.option("--to", "team_url", metavar="URL",
              help="With --team: the team database (default: CMAT_TEAM_URL, team.url).")
@output_options
def compact(older_than: str, team: bool, team_url: str | None, as_json: bool) -> None:
    """Fold old requests into daily rollups that keep every token and dollar.

    One row per local day (the configured time zone), machine, user, project, model, task,
    enhancement, agent and task type: reports over old periods give the same totals after,
    and budgets count the rollups; what goes is each request's own detail. With a team
    database configured, only requests already synced to it are folded. `retention` in the
    config (older_than, team_older_than) runs this on its own.
    """
    from cmat import paths
    from cmat.budgets.config import load_config

    config = load_config(paths.project_dir())
    if team:
        from cmat.team.compact import compact_team
        from cmat.team.connect import describe
        from cmat.team.connect import team_url as resolve_url

        target = resolve_url(team_url)
        folded = compact_team(target, older_than, config.timezone, clock.now())
        data = {"database": describe(target), "requests": folded}
    else:
        from cmat.ledger import Ledger
        from cmat.retention import compact as fold

        with Ledger() as opened:
            done = fold(opened, older_than, clock.now(), config.timezone,
                        config.team_database)
        data = {"cutoff": done.cutoff, "requests": done.requests,
                "rollups": done.rollups_after - done.rollups_before}
    if as_json:
        emit_json(data)
    else:
        echo(f"Folded {count(data['requests'], 'request')} older than {older_than}"
             + (f" into {data['rollups']:,} daily rollups" if "rollups" in data else
                f" in {data['database']}"))


@ledger.command()
@click.option("--since", metavar="DAY",
              help="From this day on, local time (YYYY-MM-DD or YYYYMMDD; YYYY-MM: its first).")
@click.option("--until", metavar="DAY",
              help="Up to this day, included (YYYY-MM-DD or YYYYMMDD; YYYY-MM: its last).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv",
              show_default=True)
@click.option("--output", "-o", type=OutputFile(),
              help="Write to this file (whole, then moved into place) instead of stdout.")
def export(since: str | None, until: str | None, fmt: str, output: Path | None) -> None:
    """Every request of a range, with its session's task, enhancement and agent, as CSV or
    JSON lines: for archives before compaction, or for other tools."""

    from cmat.ledger import Ledger
    from cmat.periods import local_zone, recent_window
    from cmat.retention import export_to

    start, end = recent_window("all", since, until, local_zone(), clock.now())
    with Ledger() as opened:
        written = export_to(output, opened, start, end, fmt)
    if output is not None:
        echo(f"Wrote {count(written, 'request')} to {output}", err=True)
