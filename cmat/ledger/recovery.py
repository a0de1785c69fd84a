"""Getting out of a damaged ledger without losing what it still holds: its state, setting it
aside under a dated name (never deleting it), and salvaging its rows into a fresh ledger.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from cmat.errors import LedgerError
from cmat.ledger.schema import COLUMN_LIST, CURRENT_SEQ, ON_CONFLICT, REQUEST_COLUMNS
from cmat.ledger.store import Ledger

# Kept from the old ledger as they are: what no transcript can rebuild (compacted history
# included: its rollups, and the ids it folded, so that a transcript read again by the rebuild
# is not counted beside its rollup).
SALVAGED_TABLES = ("sessions", "overrides", "alerts", "request_rollups", "compacted_requests")
SALVAGE_CHUNK_ROWS = 5000


def ledger_state(path: Path) -> str:
    """'missing', 'empty' (0 bytes), 'readable' or 'damaged'."""
    try:
        if path.stat().st_size == 0:
            return "empty"
    except FileNotFoundError:
        return "missing"
    try:
        with Ledger(path) as old:
            healthy = old.query("PRAGMA quick_check") == [("ok",)]
    except (LedgerError, sqlite3.DatabaseError):
        return "damaged"
    return "readable" if healthy else "damaged"


def set_aside(path: Path, state: str) -> Path:
    """Move the ledger (with its WAL, which SQLite finds by name) to a dated name beside it."""
    kind = "previous" if state == "readable" else "damaged"
    kept = path.with_name(f"{path.name}.{kind}-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path.with_name(path.name + suffix), kept.with_name(kept.name + suffix))
    return kept


def salvage(fresh: Ledger, old_path: Path) -> tuple[int, int]:
    """Copy what the old ledger still holds into the fresh one: requests (the better copy
    wins, so those re-read from transcripts are unchanged and those whose transcripts are
    gone come back) and the tables no transcript can rebuild. Chunk by chunk, so a damaged
    page loses only its own rows. Returns (requests salvaged, chunks unreadable)."""
    before = fresh.last_request_rowid()
    unreadable = 0
    db = fresh.db
    try:
        db.execute("ATTACH ? AS old", (str(old_path),))
        db.execute("SELECT count(*) FROM old.sqlite_master").fetchone()
    except sqlite3.DatabaseError:  # nothing in it can be read at all
        with contextlib.suppress(sqlite3.DatabaseError):
            db.execute("DETACH old")
        return 0, 1
    try:
        try:
            last = db.execute("SELECT coalesce(max(rowid), 0) FROM old.requests").fetchone()[0]
        except sqlite3.DatabaseError:
            last, unreadable = 0, 1
        start = 0
        # By name: an older ledger lacks the newer columns (NULL in the fresh one).
        theirs = {row[1] for row in db.execute("PRAGMA old.table_info(requests)")}
        select = ", ".join(c if c in theirs else "NULL" for c in REQUEST_COLUMNS)
        while start < last:
            try:
                with fresh.transaction():
                    db.execute(f"INSERT INTO main.requests ({COLUMN_LIST}, seq) SELECT {select},"
                               f" {CURRENT_SEQ}"
                               f" FROM old.requests WHERE rowid > ? AND rowid <= ? {ON_CONFLICT}",
                               (start, start + SALVAGE_CHUNK_ROWS))
            except sqlite3.DatabaseError:
                unreadable += 1
            start += SALVAGE_CHUNK_ROWS
        for table in SALVAGED_TABLES:
            try:
                # By name: an old ledger may be of an older schema, with fewer columns.
                ours = [row[1] for row in db.execute(f"PRAGMA main.table_info({table})")]
                theirs = {row[1] for row in db.execute(f"PRAGMA old.table_info({table})")}
                columns = ", ".join(c for c in ours if c in theirs)
                with fresh.transaction():
                    db.execute(f"INSERT OR IGNORE INTO main.{table} ({columns})"
                               f" SELECT {columns} FROM old.{table}")
            except sqlite3.DatabaseError:
                unreadable += 1
        salvaged = fresh.last_request_rowid() - before
        with fresh.transaction():
            fresh.forget_compacted()
            fresh.bump_version()
    finally:
        db.execute("DETACH old")
    return salvaged, unreadable


