"""The ledger's lifecycle: old requests folded into daily rollups (`cmat ledger compact`,
or `retention.older_than` in the config, run by scans), and exports for archives.

Compaction keeps every token and dollar: reports over old periods give the same totals
after it (per day in the time zone it ran with, `timezone` in the config), and budgets count
the rollups. What it gives up is the single request: its session, its message id and its
per-request detail (`cmat optimize` and `costs show`'s per-model table see only what is left).
Where a team database is configured, only what was already synced to it is folded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cmat.ledger import Ledger

AUTO_INTERVAL_SECONDS = 86400  # `retention.older_than` runs at most once a day


@dataclass
class Compacted:
    cutoff: float
    requests: int
    rollups_before: int
    rollups_after: int


def compact(ledger: Ledger, older_than: str, now: float, timezone: str | None = None,
            team_url: str | None = None) -> Compacted:
    from cmat.periods import cutoff, offset_changes, zone

    tz = zone(timezone)
    moment = cutoff(older_than, tz, now)
    below = ledger.meta_value("synced_seq") or 0 if team_url else None
    before = ledger.query("SELECT count(*) FROM request_rollups")[0][0]
    first = ledger.time_span(None, moment, None)[0] or moment
    with ledger.transaction():
        folded = ledger.compact(moment, offset_changes(tz, first, moment), below)
        ledger.set_meta_value("compacted_at", int(now))
    after = ledger.query("SELECT count(*) FROM request_rollups")[0][0]
    return Compacted(moment, folded, before, after)


def compact_when_due(ledger: Ledger, config, now: float) -> Compacted | None:
    """`retention.older_than`, at most once a day (a scan calls this)."""
    if not config.retention:
        return None
    last = ledger.meta_value("compacted_at") or 0
    if now - last < AUTO_INTERVAL_SECONDS:
        return None
    return compact(ledger, config.retention, now, config.timezone, config.team_database)


def export(ledger: Ledger, since: float | None, until: float | None, fmt: str, out) -> int:
    """Write every request of [since, until), with whom its session was for, as CSV or JSON
    lines to the text stream `out`; returns the rows written. Streams: any size. Beside `ts`
    (unix seconds) each request has its `time` in ISO 8601, UTC, which a spreadsheet reads."""
    import csv

    import orjson

    from cmat.periods import iso_utc_ms
    from cmat.text import spreadsheet_safe

    columns, rows = ledger.export_rows(since, until)
    at = columns.index("ts") + 1
    columns = [*columns[:at], "time", *columns[at:]]
    written = 0
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer:
        writer.writerow(columns)
    for row in rows:
        row = (*row[:at], iso_utc_ms(row[at - 1]), *row[at:])
        if writer:
            writer.writerow([spreadsheet_safe(cell) for cell in row])
        else:
            out.write(orjson.dumps(dict(zip(columns, row))).decode() + "\n")
        written += 1
    return written


def export_to(path: Path | None, ledger: Ledger, since, until, fmt: str) -> int:
    """Export to a file (streamed into a temporary file, moved into place once whole) or to
    standard output."""
    import io
    import sys

    if path is None:
        return export(ledger, since, until, fmt, sys.stdout)
    from cmat.fileio import user_output

    with user_output(path) as (handle, _):
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        count = export(ledger, since, until, fmt, text)
        text.flush()
        text.detach()  # the handle is atomic_output's to close
    return count
