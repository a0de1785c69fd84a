"""The ledger's schema: its tables, as numbered migrations recorded in PRAGMA user_version
(each one transaction, tested from every older schema), and the one definition of a request's
columns that every write derives from.

    requests        one row per API request (by message.id), priced, with its tokens
    sessions        who a session is for: (session -> task, enhancement, agent, project)
    files           how far each transcript was read (incremental import)
    skipped_lines   lines an import skipped, and why
    overrides       budgets lifted for a while (who, when, why)
    alerts          budget alerts fired
    alert_deliveries  each alert's delivery to each channel
    live_sessions   sessions at work, for the concurrency limit
    report_cache    reports, until a request changes
    report_rows_kept  a report's sums, brought up to date with the requests added since
    queue_sync      task queues whose cost fields lag the ledger
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from cmat.errors import LedgerError
from cmat.request import timestamp_seconds
from cmat.usage import COLUMN, TOKEN_FIELDS, rank_sql

if TYPE_CHECKING:
    from cmat.usage import UsageRecord

LEGACY_PREFIX = "cmat-legacy:"  # message ids of figures CMAT wrote before cmat (store_legacy)


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, and a migration must be one transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _m001_requests(db: sqlite3.Connection) -> None:
    _run_script(db, """
        CREATE TABLE requests (
            message_id TEXT PRIMARY KEY,
            request_id TEXT,
            session_id TEXT,
            ts REAL NOT NULL,                 -- unix seconds, UTC
            project TEXT,                     -- the cwd Claude Code recorded
            model TEXT NOT NULL,
            agent TEXT NOT NULL,              -- 'main' or the subagent's type
            agent_id TEXT,
            is_sidechain INTEGER NOT NULL,
            task_id TEXT,
            enhancement TEXT,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_creation_tokens INTEGER NOT NULL,
            cache_creation_1h_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL,
            web_search_requests INTEGER NOT NULL,
            speed TEXT,
            cost_usd REAL,                    -- NULL: the model is not in the catalog
            catalog_version TEXT
        );
        CREATE INDEX requests_ts ON requests (ts);
        CREATE INDEX requests_session ON requests (session_id);
        CREATE INDEX requests_task ON requests (task_id);
        CREATE TABLE files (
            path TEXT PRIMARY KEY,
            device INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            offset INTEGER NOT NULL,          -- just past the last complete line read
            head BLOB                         -- first bytes, to tell a replaced file
        );
    """)


def _m002_sessions(db: sqlite3.Connection) -> None:
    _run_script(db, """
        CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            project_dir TEXT,
            transcript_path TEXT,
            task_id TEXT,                     -- NULL: an untracked session
            enhancement TEXT,
            recorded_at REAL NOT NULL,
            recorded_by TEXT NOT NULL         -- 'session-end', 'subagent-stop', 'extract'
        );
        CREATE INDEX sessions_task ON sessions (task_id);
    """)


def _m003_report_cache(db: sqlite3.Connection) -> None:
    _run_script(db, """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta VALUES ('requests_version', 0);
        CREATE TABLE report_cache (
            query BLOB PRIMARY KEY,
            version INTEGER NOT NULL,         -- requests_version the body was computed at
            body BLOB NOT NULL
        )
    """)


def _m004_budgets(db: sqlite3.Connection) -> None:
    # Covering indexes: the budget sums run before every tool call and read only an index.
    _run_script(db, """
        DROP INDEX requests_ts;
        DROP INDEX requests_session;
        DROP INDEX requests_task;
        CREATE INDEX requests_ts ON requests (ts, project, cost_usd, input_tokens,
            output_tokens, cache_creation_tokens, cache_read_tokens);
        CREATE INDEX requests_session ON requests (session_id, task_id, cost_usd);
        CREATE INDEX requests_task ON requests (task_id, cost_usd);
        CREATE INDEX requests_enhancement ON requests (enhancement, cost_usd);
        CREATE TABLE overrides (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL,              -- 'all', or a budget scope such as 'daily'
            until REAL NOT NULL,
            created_at REAL NOT NULL,
            created_by TEXT NOT NULL,
            reason TEXT
        );
        CREATE TABLE alerts (
            budget TEXT NOT NULL,             -- the budget's key, such as 'daily' or 'task:ID'
            period_start REAL NOT NULL,       -- 0 for budgets without a period
            threshold INTEGER NOT NULL,       -- percent
            level TEXT NOT NULL,
            message TEXT NOT NULL,
            spent REAL NOT NULL,
            limit_value REAL NOT NULL,
            fired_at REAL NOT NULL,
            delivered INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL DEFAULT 0,
            last_error TEXT,
            PRIMARY KEY (budget, period_start, threshold)
        )
    """)


def _m005_partial_indexes(db: sqlite3.Connection) -> None:
    # Most requests (all those found only by scanning) belong to no task: indexing just the
    # attributed ones keeps `task_id = ?` lookups and makes a cold scan's index build cheaper.
    _run_script(db, """
        DROP INDEX requests_task;
        DROP INDEX requests_enhancement;
        CREATE INDEX requests_task ON requests (task_id, cost_usd) WHERE task_id IS NOT NULL;
        CREATE INDEX requests_enhancement ON requests (enhancement, cost_usd)
            WHERE enhancement IS NOT NULL
    """)


def _m006_skips_and_dropped_indexes(db: sqlite3.Connection) -> None:
    # Lines a scan skipped, so `cmat scan --explain` can name them; the indexes a bulk load
    # dropped, written in the transaction that drops them, so a killed load is repaired later;
    # and the bytes before a file's offset, to tell a file rewritten in place.
    _run_script(db, """
        CREATE TABLE skipped_lines (
            path TEXT NOT NULL,
            offset INTEGER NOT NULL,          -- where the line starts in the file
            reason TEXT NOT NULL,
            seen_at REAL NOT NULL,
            PRIMARY KEY (path, offset)
        );
        CREATE TABLE dropped_indexes (name TEXT PRIMARY KEY, sql TEXT NOT NULL);
        ALTER TABLE files ADD COLUMN tail BLOB
    """)


def _m007_attribution_of_its_own(db: sqlite3.Connection) -> None:
    # A request's task was a column every import rewrote; it is now a row per session
    # (`sessions`), and a task's cost is a join: one truth, whoever imported the request.
    _run_script(db, """
        ALTER TABLE sessions ADD COLUMN agent TEXT;
        INSERT INTO sessions (session_id, task_id, enhancement, recorded_at, recorded_by)
            SELECT session_id, max(task_id), max(enhancement), 0, 'migrated' FROM requests
            WHERE task_id IS NOT NULL AND session_id IS NOT NULL GROUP BY session_id
            ON CONFLICT (session_id) DO UPDATE SET
                task_id = coalesce(sessions.task_id, excluded.task_id),
                enhancement = coalesce(sessions.enhancement, excluded.enhancement);
        DROP INDEX IF EXISTS requests_task;
        DROP INDEX IF EXISTS requests_enhancement;
        DROP INDEX IF EXISTS requests_session;
        DELETE FROM dropped_indexes
            WHERE name IN ('requests_task', 'requests_enhancement', 'requests_session');
        ALTER TABLE requests DROP COLUMN task_id;
        ALTER TABLE requests DROP COLUMN enhancement;
        CREATE INDEX requests_session ON requests (session_id, cost_usd);
        CREATE INDEX sessions_enhancement ON sessions (enhancement, project_dir)
            WHERE enhancement IS NOT NULL;
        CREATE TABLE queue_sync (
            project_dir TEXT NOT NULL,        -- a task queue whose cost fields lag the ledger
            task_id TEXT NOT NULL,
            since REAL NOT NULL,
            PRIMARY KEY (project_dir, task_id)
        )
    """)


def _m008_inference_geo(db: sqlite3.Connection) -> None:
    # Where inference ran: US-only inference is billed at a premium on newer models.
    _run_script(db, "ALTER TABLE requests ADD COLUMN inference_geo TEXT")


def _m009_runs_and_channels(db: sqlite3.Connection) -> None:
    # Sessions at work now (for the concurrency limit), an alert's delivery per channel (each
    # channel has thresholds of its own), a task's type beside its agent (reports), and where
    # a request came from when not from a transcript (`CostTracker.record`: "api:<provider>").
    _run_script(db, """
        CREATE TABLE live_sessions (
            session_id TEXT PRIMARY KEY,
            project TEXT,
            agent TEXT,
            transcript_path TEXT,             -- its growth also says the session is at work
            started_at REAL NOT NULL,
            last_seen REAL NOT NULL,          -- the last prompt or tool call a hook saw
            ended_at REAL                     -- SessionEnd, or NULL while at work
        );
        CREATE TABLE alert_deliveries (
            budget TEXT NOT NULL,
            period_start REAL NOT NULL,
            threshold INTEGER NOT NULL,
            channel TEXT NOT NULL,            -- 'webhook', 'command' or 'email'
            delivered INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL DEFAULT 0,
            last_error TEXT,
            PRIMARY KEY (budget, period_start, threshold, channel)
        );
        INSERT INTO alert_deliveries (budget, period_start, threshold, channel, attempts,
                                      next_attempt, last_error)
            SELECT budget, period_start, threshold, channel, attempts, next_attempt, last_error
            FROM alerts, (SELECT 'webhook' AS channel UNION ALL SELECT 'command')
            WHERE delivered = 0;
        ALTER TABLE sessions ADD COLUMN task_type TEXT;
        ALTER TABLE requests ADD COLUMN source TEXT
    """)


def _m010_labels_and_changes(db: sqlite3.Connection) -> None:
    # Each request knows the machine and user it was recorded by (a team's ledgers meet in
    # one database); each request and session knows the requests_version it last changed at
    # (`seq`), so a sync pushes only what changed since its mark, and requests deleted here
    # leave a tombstone for it. Compacted history lives in request_rollups.
    from cmat import labels

    _run_script(db, """
        ALTER TABLE requests ADD COLUMN machine TEXT;
        ALTER TABLE requests ADD COLUMN user_name TEXT;
        ALTER TABLE requests ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sessions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX requests_seq ON requests (seq, message_id);
        CREATE INDEX sessions_seq ON sessions (seq);
        CREATE TABLE deleted_requests (
            message_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        );
        CREATE TABLE request_rollups (
            day TEXT NOT NULL,                -- the local day (compaction's time zone)
            ts REAL NOT NULL,                 -- the group's first request
            machine TEXT, user_name TEXT, project TEXT, model TEXT NOT NULL,
            task_id TEXT, enhancement TEXT, agent TEXT, task_type TEXT, project_dir TEXT,
            input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
            cache_creation_tokens INTEGER NOT NULL, cache_creation_1h_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL, web_search_requests INTEGER NOT NULL,
            requests INTEGER NOT NULL, priced INTEGER NOT NULL, cost_usd REAL,
            runs INTEGER NOT NULL           -- sessions' main threads and subagent runs
        );
        CREATE INDEX request_rollups_ts ON request_rollups (ts)
    """)
    db.execute("UPDATE requests SET machine = ?, user_name = ?", (labels.machine(),
                                                                   labels.user()))
    db.execute("INSERT INTO meta VALUES ('ledger_id', abs(random()))")


def _m011_compacted_ids(db: sqlite3.Connection) -> None:
    # The message ids compaction folded into request_rollups: a transcript read again (rewritten
    # in place, or by `ledger rebuild`) must not bring them back to be counted twice.
    _run_script(db, """
        CREATE TABLE compacted_requests (message_id TEXT PRIMARY KEY) WITHOUT ROWID
    """)


def _m012_impossible_times(db: sqlite3.Connection) -> None:
    # A request dated after 2100 (an older CostTracker took year 9999) broke every report;
    # such rows are set aside, kept but never counted. Every road in now refuses them.
    from cmat.usage import LATEST_TS

    _run_script(db, f"""
        CREATE TABLE set_aside_requests AS SELECT * FROM requests WHERE 0;
        INSERT INTO set_aside_requests SELECT * FROM requests WHERE ts >= {LATEST_TS};
        DELETE FROM requests WHERE ts >= {LATEST_TS}
    """)


# Made by the first compaction (a ledger that never compacts pays nothing per insert): a
# request compaction folded away is never stored again.
GUARD_COMPACTED = """
    CREATE TRIGGER IF NOT EXISTS requests_not_compacted BEFORE INSERT ON requests
    WHEN EXISTS (SELECT 1 FROM compacted_requests WHERE message_id = NEW.message_id)
    BEGIN SELECT RAISE(IGNORE); END
"""


def _m013_rollup_sources(db: sqlite3.Connection) -> None:
    # Which coding agent (and provider) made the requests a rollup folds: `source`, as the
    # requests have it (NULL: Claude Code), so reports by app and provider see compacted days.
    columns = {row[1] for row in db.execute("PRAGMA table_info(request_rollups)")}
    if "source" not in columns:  # a ledger taken back to an older version keeps its column
        _run_script(db, "ALTER TABLE request_rollups ADD COLUMN source TEXT")


def _m014_changes_in_row_order(db: sqlite3.Connection) -> None:
    # A sync reads what changed by version, and within one version in the table's own order
    # (rowid, which every index holds): by message id, each row was a jump to a random page
    # of the table. The index loses its text column, so every write pays less for it too.
    _run_script(db, """
        DROP INDEX IF EXISTS requests_seq;
        DELETE FROM dropped_indexes WHERE name = 'requests_seq';
        CREATE INDEX requests_seq ON requests (seq)
    """)


def _m015_file_states_apart(db: sqlite3.Connection) -> None:
    # Every scan reads each known file's state, and a row of `files` is mostly its marks (the
    # head and tail blobs): an index that holds the state alone is read in their place, a
    # twentieth of the pages.
    _run_script(db, "CREATE INDEX IF NOT EXISTS files_state ON files (path, device, inode, size,"
                    " mtime_ns, offset)")


def _m016_report_rows_kept(db: sqlite3.Connection) -> None:
    # A report's grouped sums over the requests as they were up to a row (and how many rows
    # there were, at which requests_version): a report after new requests sums only the new
    # ones, where it summed the whole history again (0.16 s of a report at 1.2 GB, growing
    # with it).
    _run_script(db, """
        CREATE TABLE IF NOT EXISTS report_rows_kept (
            query BLOB PRIMARY KEY,
            upto_rowid INTEGER NOT NULL,      -- the largest rowid summed
            requests INTEGER NOT NULL,        -- how many rows there were
            version INTEGER NOT NULL,         -- requests_version then
            rows BLOB NOT NULL                -- the grouped sums, JSON
        )
    """)


def _m017_resumable_logs(db: sqlite3.Connection) -> None:
    # What another agent's reader knew where it stopped in a log it reads line by line (a
    # Codex rollout: whose session, which model, the last totals), so that a grown log is
    # read from there rather than whole (cmat.apps.codex.read_from).
    if "carry" not in {row[1] for row in db.execute("PRAGMA table_info(files)")}:
        _run_script(db, "ALTER TABLE files ADD COLUMN carry BLOB")  # (as in _m013)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_requests, _m002_sessions, _m003_report_cache, _m004_budgets, _m005_partial_indexes,
    _m006_skips_and_dropped_indexes, _m007_attribution_of_its_own, _m008_inference_geo,
    _m009_runs_and_channels, _m010_labels_and_changes, _m011_compacted_ids,
    _m012_impossible_times, _m013_rollup_sources, _m014_changes_in_row_order,
    _m015_file_states_apart, _m016_report_rows_kept, _m017_resumable_logs]
SCHEMA_VERSION = len(MIGRATIONS)

REQUEST_COLUMNS = ("message_id", "request_id", "session_id", "ts", "project", "model", "agent",
                   "agent_id", "is_sidechain", *(COLUMN[kind] for kind in TOKEN_FIELDS),
                   "web_search_requests", "speed", "cost_usd", "catalog_version", "inference_geo",
                   "source", "machine", "user_name")
# The type of each column, and whether it may be NULL: the one definition the team database's
# tables are made from too (cmat/team/schema.py); a test holds SQLite's table to it.
COLUMN_TYPES = {"message_id": "TEXT", "request_id": "TEXT", "session_id": "TEXT",
                "ts": "REAL", "project": "TEXT", "model": "TEXT", "agent": "TEXT",
                "agent_id": "TEXT", "is_sidechain": "INTEGER",
                **{COLUMN[kind]: "INTEGER" for kind in TOKEN_FIELDS},
                "web_search_requests": "INTEGER", "speed": "TEXT", "cost_usd": "REAL",
                "catalog_version": "TEXT", "inference_geo": "TEXT", "source": "TEXT",
                "machine": "TEXT", "user_name": "TEXT"}
NOT_NULL = {"ts", "model", "agent", "is_sidechain", *(COLUMN[kind] for kind in TOKEN_FIELDS),
            "web_search_requests"}
# Text a request may lack. Rows (request_rows) carry '' for it, never None, and SQLite stores
# '' as NULL (UPSERT, and pack_rows for the rows workers hand over): the sqlite3 module binds
# None through its adaptation protocol, which made None a third of what packing a row costs a
# worker; no such text means anything when empty.
OPTIONAL_TEXT = frozenset(name for name, kind in COLUMN_TYPES.items()
                          if kind == "TEXT" and name not in NOT_NULL and name != "message_id")


# What a sync sends of a session: whom it was for.
SESSION_COLUMNS = ("session_id", "project_dir", "task_id", "enhancement", "agent", "task_type",
                   "recorded_at")
COLUMN_LIST = ", ".join(REQUEST_COLUMNS)
PLACEHOLDERS = ", ".join("?" for _ in REQUEST_COLUMNS)
# The better copy of a request wins, whoever stores it (a sidechain replay or an earlier
# snapshot never overwrites a response); copies of equal rank leave the first one in place.
# A row's `seq` is the requests_version it was written at (bumped after every write): what a
# sync uses to find what changed.
CURRENT_SEQ = "(SELECT value FROM main.meta WHERE key = 'requests_version')"
ON_CONFLICT = (
    "ON CONFLICT (message_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*REQUEST_COLUMNS, "seq") if c != "message_id")
    + f" WHERE {rank_sql('excluded')} > {rank_sql('requests')}"
)


def _stored(column: str, value: str) -> str:
    """`value` (SQL) as the ledger stores it in `column`: '' as NULL where text is optional."""
    return f"NULLIF({value}, '')" if column in OPTIONAL_TEXT else value


STORED_VALUES = ", ".join(_stored(c, "?") for c in REQUEST_COLUMNS)
UPSERT = f"INSERT INTO requests ({COLUMN_LIST}, seq) VALUES ({STORED_VALUES}, {CURRENT_SEQ})" \
    f" {ON_CONFLICT}"
# "WHERE true": SQLite's parser needs it between a SELECT and its upsert clause.
# {schema}: the attached database of pack_rows to copy from, which holds NULL already.
UPSERT_PACKED = (f"INSERT INTO main.requests ({COLUMN_LIST}, seq) "
                 f"SELECT {COLUMN_LIST}, {CURRENT_SEQ} FROM {{schema}}.requests WHERE true"
                 f" {ON_CONFLICT}")
CAN_PACK = hasattr(sqlite3.Connection, "serialize")  # SQLite 3.23+ built with it: nearly always


def row_packer() -> Callable[[Iterable[Sequence[tuple]]], bytes] | None:
    """`pack_rows` where SQLite can serialize; None otherwise (rows then travel pickled)."""
    return pack_rows if CAN_PACK else None


def pack_rows(row_lists: Iterable[Sequence[tuple]]) -> bytes:
    """Rows made by `request_rows`, as a serialized in-memory SQLite database.

    How worker processes hand their rows to the process writing the ledger: SQLite copies
    them from it in C (`Ledger.insert_packed`), where unpickling them and binding every value
    again would cost that process more than parsing the transcripts costs a worker. Text a
    request lacks is NULL here already, as the ledger stores it: worked out in the workers,
    a fifth of that process's copy (0.04 s of a first import of 1.2 GB) is not its to do.
    """
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE TABLE requests ({COLUMN_LIST})")
        for rows in row_lists:
            db.executemany(f"INSERT INTO requests VALUES ({STORED_VALUES})", rows)
        db.commit()
        return db.serialize()
    finally:
        db.close()


def request_rows(records: Sequence[UsageRecord], costs: Sequence[float | None],
                 catalog_version: str, source: str | None = None,
                 owner: tuple[str, str] | None = None) -> list[tuple]:
    """The ledger rows (REQUEST_COLUMNS order) of priced requests, '' for OPTIONAL_TEXT they
    lack; `source`: where they came from when not from a Claude Code transcript; `owner`:
    (machine, user), when the caller looked them up once for many calls."""
    from cmat import labels

    machine, user = owner or (labels.machine(), labels.user())
    return [(r.message_id, r.request_id or "", r.session_id or "",
             timestamp_seconds(r.timestamp) if r.seconds is None else r.seconds, r.cwd or "",
             r.model, r.agent, r.agent_id or "", int(r.is_sidechain), r.input_tokens,
             r.output_tokens, r.cache_creation_tokens, r.cache_creation_1h_tokens,
             r.cache_read_tokens, r.web_search_requests, r.speed or "", cost, catalog_version,
             r.inference_geo or "", r.source or source or "", machine, user)
            for r, cost in zip(records, costs)]


class FileState(NamedTuple):
    """How far a transcript was read, and what tells that it changed under us. A named
    tuple: every scan loads one per known file (22,000 in 4.8 GB of history), and a frozen
    dataclass takes four times as long to make."""

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    offset: int
    head: bytes
    tail: bytes = b""
    carry: bytes | None = None  # another agent's log: what its reader knew at `offset`


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the version it started from."""
    start = db.execute("PRAGMA user_version").fetchone()[0]
    if start > SCHEMA_VERSION:
        raise LedgerError(f"the ledger was written by a newer cmat (schema {start}, "
                          f"this cmat knows {SCHEMA_VERSION})", "upgrade cmat")
    for version in range(start, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] != version:
                db.execute("ROLLBACK")  # another process migrated meanwhile
                continue
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (a full disk does): the error that says
            # why is the one to raise, not that there was nothing left to roll back.
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
    return start


