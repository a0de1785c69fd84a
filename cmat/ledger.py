"""The usage ledger: one SQLite row per API request, across every project and session.

`${CMAT_LEDGER:-$XDG_DATA_HOME/cmat/ledger.db}`, WAL mode, schema versioned by numbered
migrations (PRAGMA user_version). A request's key is its `message.id`; a later, better copy
of the same request (a larger snapshot, or the non-sidechain original of a replay) replaces
the earlier one, and attribution to a task is never erased by a copy that does not know it.
Costs are stored with the catalog version that priced them, and the token counts are enough
to price them again (`reprice`) without the transcripts.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

from typing import TYPE_CHECKING

from cmat import paths
from cmat.errors import CmatError

if TYPE_CHECKING:
    from cmat.transcripts import UsageRecord


class LedgerError(CmatError):
    exit_code = 8


LEGACY_PREFIX = "cmat-legacy:"  # message ids of figures CMAT wrote before cmat (store_legacy)
# A new ledger is 0 bytes only between its creation and its first write, a moment long.
EMPTY_GRACE_SECONDS = 2.0


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


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_requests, _m002_sessions, _m003_report_cache, _m004_budgets, _m005_partial_indexes,
    _m006_skips_and_dropped_indexes, _m007_attribution_of_its_own, _m008_inference_geo]
SCHEMA_VERSION = len(MIGRATIONS)

REQUEST_COLUMNS = ("message_id", "request_id", "session_id", "ts", "project", "model", "agent",
                   "agent_id", "is_sidechain", "input_tokens", "output_tokens",
                   "cache_creation_tokens", "cache_creation_1h_tokens", "cache_read_tokens",
                   "web_search_requests", "speed", "cost_usd", "catalog_version", "inference_geo")
_RANK = ("(1 - {t}.is_sidechain) * 1e15 + {t}.input_tokens + {t}.output_tokens"
         " + {t}.cache_creation_tokens + {t}.cache_read_tokens")
# The better copy of a request wins, whoever stores it (a sidechain replay or an earlier
# snapshot never overwrites a response); copies of equal rank leave the first one in place.
_ON_CONFLICT = (
    "ON CONFLICT (message_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in REQUEST_COLUMNS if c != "message_id")
    + f" WHERE {_RANK.format(t='excluded')} > {_RANK.format(t='requests')}"
)
_COLUMN_LIST = ", ".join(REQUEST_COLUMNS)
_SUMS = ", ".join(f"sum(r.{c})" for c in ("input_tokens", "output_tokens",
                                          "cache_creation_tokens", "cache_creation_1h_tokens",
                                          "cache_read_tokens", "web_search_requests"))
_PLACEHOLDERS = ", ".join("?" for _ in REQUEST_COLUMNS)
_UPSERT = f"INSERT INTO requests ({_COLUMN_LIST}) VALUES ({_PLACEHOLDERS}) {_ON_CONFLICT}"
# "WHERE true": SQLite's parser needs it between a SELECT and its upsert clause.
_UPSERT_PACKED = (f"INSERT INTO main.requests ({_COLUMN_LIST}) "
                  f"SELECT {_COLUMN_LIST} FROM packed.requests WHERE true {_ON_CONFLICT}")


CAN_PACK = hasattr(sqlite3.Connection, "serialize")  # SQLite 3.23+ built with it: nearly always


def row_packer() -> Callable[[Iterable[Sequence[tuple]]], bytes] | None:
    """`pack_rows` where SQLite can serialize; None otherwise (rows then travel pickled)."""
    return pack_rows if CAN_PACK else None


def pack_rows(row_lists: Iterable[Sequence[tuple]]) -> bytes:
    """Rows made by `request_rows`, as a serialized in-memory SQLite database.

    How worker processes hand their rows to the process writing the ledger: SQLite copies
    them from it in C (`Ledger.insert_packed`), where unpickling them and binding every value
    again would cost that process more than parsing the transcripts costs a worker.
    """
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE TABLE requests ({_COLUMN_LIST})")
        for rows in row_lists:
            db.executemany(f"INSERT INTO requests VALUES ({_PLACEHOLDERS})", rows)
        db.commit()
        return db.serialize()
    finally:
        db.close()


def timestamp_seconds(iso: str) -> float:
    """Unix seconds of Claude Code's `2026-01-02T10:00:00.123Z` timestamps (UTC when no offset
    is given; 0 if unreadable)."""
    try:
        moment = datetime.fromisoformat(iso)
    except (ValueError, TypeError):
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def request_rows(records: Sequence[UsageRecord], costs: Sequence[float | None],
                 catalog_version: str) -> list[tuple]:
    """The ledger rows (REQUEST_COLUMNS order) of priced requests."""
    return [(r.message_id, r.request_id, r.session_id, timestamp_seconds(r.timestamp), r.cwd,
             r.model, r.agent, r.agent_id, int(r.is_sidechain), r.input_tokens, r.output_tokens, r.cache_creation_tokens,
             r.cache_creation_1h_tokens, r.cache_read_tokens, r.web_search_requests, r.speed,
             cost, catalog_version, r.inference_geo)
            for r, cost in zip(records, costs)]


@dataclass(frozen=True)
class FileState:
    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    offset: int
    head: bytes
    tail: bytes = b""


class Ledger:
    def __init__(self, path: Path | None = None, busy_timeout: float = 30.0):
        self.path = path or paths.ledger_file()
        self.busy_timeout = busy_timeout  # hooks wait less for a busy ledger than commands
        self.read_only = False  # opened read-only: the file or its disk cannot be written
        self._db: sqlite3.Connection | None = None

    # --- connection and schema ------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        with contextlib.suppress(OSError):
            st = self.path.stat()
            if st.st_size == 0 and time.time() - st.st_mtime > EMPTY_GRACE_SECONDS:
                raise LedgerError(f"the ledger {self.path} is empty (0 bytes): it was cut short,"
                                  " a full disk perhaps",
                                  "run 'cmat ledger rebuild' to recreate it from the transcripts;"
                                  " the empty file is kept")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db)
        except (sqlite3.DatabaseError, OSError) as exc:
            if self.path.is_file() and not _writable(self.path):
                return self._open_read_only()
            raise ledger_error(exc, self.path) from None
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        """A ledger on a read-only file or disk still answers reports (`--no-scan`)."""
        from urllib.parse import quote

        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        for options in ("", "&immutable=1"):  # immutable: no WAL index can be made beside it
            try:
                db = sqlite3.connect(uri + options, uri=True, timeout=self.busy_timeout,
                                     isolation_level=None)
                version = db.execute("PRAGMA user_version").fetchone()[0]
                break
            except sqlite3.DatabaseError as exc:
                error = exc
        else:
            raise ledger_error(error, self.path) from None
        if version != SCHEMA_VERSION:
            raise LedgerError(f"the ledger {self.path} is read-only and was written by another "
                              f"version of cmat (schema {version}, this cmat knows "
                              f"{SCHEMA_VERSION})", "make it writable once, so it can be upgraded")
        self.read_only = True
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self):
        return _Transaction(self.db)

    def last_request_rowid(self) -> int:
        """Rows are never given a rowid below the largest one, so the growth of this number
        is how many requests were added (counting them would read the whole table); 0 when
        there are none."""
        return self.db.execute("SELECT coalesce(max(rowid), 0) FROM requests").fetchone()[0]

    @contextlib.contextmanager
    def bulk_load(self):
        """Load many requests into an empty ledger: the secondary indexes are dropped for the
        load and built once at the end, which is several times cheaper than keeping them.

        What was dropped is written down in the same transaction, so that a load killed
        before its end leaves the next scan able to build them (`restore_indexes`).
        """
        with self.transaction():
            indexes = self.query("SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                                 " AND tbl_name = 'requests' AND sql IS NOT NULL")
            self.db.executemany("INSERT OR REPLACE INTO dropped_indexes VALUES (?, ?)", indexes)
            for name, _ in indexes:
                self.db.execute(f"DROP INDEX {name}")
        try:
            yield
        finally:
            self.restore_indexes()

    def restore_indexes(self) -> bool:
        """Build the indexes a bulk load dropped, if any are still missing; True if it did."""
        if not self.query("SELECT 1 FROM dropped_indexes LIMIT 1"):
            return False
        with self.transaction():
            for name, sql in self.query("SELECT name, sql FROM dropped_indexes"):
                # IF NOT EXISTS: a load still running in another process may build it too.
                self.db.execute(sql.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
            self.db.execute("DELETE FROM dropped_indexes")
        return True

    # --- writing ----------------------------------------------------------------------------

    def record(self, records: Sequence[UsageRecord], costs: Sequence[float | None], *,
               catalog_version: str) -> None:
        """Store priced requests; call inside `transaction()` to group writes."""
        self.insert_rows(request_rows(records, costs, catalog_version))

    def insert_rows(self, rows: Sequence[tuple]) -> None:
        """Store rows made by `request_rows`."""
        self.db.executemany(_UPSERT, rows)
        self.bump_version()

    @contextlib.contextmanager
    def attached_packed(self, packed: bytes):
        """Open rows made by `pack_rows` for `insert_packed`. SQLite attaches a database
        only outside a transaction, so this wraps the transaction that stores them."""
        self.db.execute("ATTACH ':memory:' AS packed")
        try:
            self.db.deserialize(packed, name="packed")
            yield
        finally:
            self.db.execute("DETACH packed")

    def insert_packed(self) -> None:
        """Store the rows attached by `attached_packed`, as insert_rows would."""
        self.db.execute(_UPSERT_PACKED)
        self.bump_version()

    def bump_version(self) -> None:
        """Mark the requests as changed: cached reports computed before are stale."""
        self.db.execute("UPDATE meta SET value = value + 1 WHERE key = 'requests_version'")

    def version(self) -> int:
        return self.db.execute(
            "SELECT value FROM meta WHERE key = 'requests_version'").fetchone()[0]

    def cached_report(self, query: bytes) -> bytes | None:
        row = self.db.execute("SELECT body FROM report_cache WHERE query = ? AND version = ("
                              "SELECT value FROM meta WHERE key = 'requests_version')",
                              (query,)).fetchone()
        return row[0] if row else None

    def cache_report(self, query: bytes, version: int, body: bytes) -> None:
        try:
            with self.transaction():
                self.db.execute("DELETE FROM report_cache WHERE version < ?", (version,))
                self.db.execute("INSERT OR REPLACE INTO report_cache VALUES (?, ?, ?)",
                                (query, version, body))
        except sqlite3.OperationalError:
            pass  # a read-only or busy ledger only costs the cache

    def attribute(self, session_id: str, *, project_dir: str | None,
                  transcript_path: str | None, task_id: str | None, enhancement: str | None,
                  agent: str | None, recorded_by: str) -> None:
        """Say whose a session is: every request of it (its subagents' included) counts for
        that task, enhancement and agent. A later attribution without a task keeps the task
        an earlier one gave."""
        self.db.execute(
            "INSERT INTO sessions (session_id, project_dir, transcript_path, task_id, enhancement,"
            " recorded_at, recorded_by, agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (session_id) DO UPDATE SET"
            " project_dir = coalesce(excluded.project_dir, sessions.project_dir),"
            " transcript_path = coalesce(excluded.transcript_path, sessions.transcript_path),"
            " task_id = coalesce(excluded.task_id, sessions.task_id),"
            " enhancement = CASE WHEN excluded.task_id IS NOT NULL THEN excluded.enhancement"
            " ELSE sessions.enhancement END,"
            " agent = CASE WHEN excluded.task_id IS NOT NULL THEN excluded.agent"
            " ELSE sessions.agent END,"
            " recorded_at = excluded.recorded_at, recorded_by = excluded.recorded_by",
            (session_id, project_dir, transcript_path, task_id, enhancement, time.time(),
             recorded_by, agent))
        self.bump_version()

    def attribution(self, session_id: str) -> tuple | None:
        """(task_id, enhancement, agent, project_dir) of a session, if it was attributed."""
        return self.db.execute("SELECT task_id, enhancement, agent, project_dir FROM sessions"
                               " WHERE session_id = ?", (session_id,)).fetchone()

    def priced_requests(self, session_id: str) -> int:
        return self.db.execute("SELECT count(cost_usd) FROM requests WHERE session_id = ?",
                               (session_id,)).fetchone()[0]

    def session_totals(self, session_id: str) -> tuple[int, float]:
        """(requests, cost) of one session, subagents included."""
        return self.db.execute("SELECT count(*), coalesce(sum(cost_usd), 0) FROM requests"
                               " WHERE session_id = ?", (session_id,)).fetchone()

    def store_legacy(self, task_id: str, figures: dict, version: str) -> None:
        """Figures CMAT wrote for a task before cmat, as one request of a session of their own
        (`reprice` leaves them alone: only their total is known, not how it was priced)."""
        self.db.execute(
            f"INSERT OR IGNORE INTO requests ({_COLUMN_LIST}) VALUES ({_PLACEHOLDERS})",
            (LEGACY_PREFIX + task_id, None, figures["session"], figures["ts"], None,
             figures["model"], "main", None, 0, figures["input"], figures["output"],
             figures["cache_creation"], 0, figures["cache_read"], 0, None, figures["cost"],
             version, None))
        self.bump_version()

    def drop_legacy(self, task_id: str, session_id: str) -> None:
        """Forget CMAT's figures for a session whose requests the ledger now holds itself."""
        legacy = self.db.execute("SELECT session_id FROM requests WHERE message_id = ?",
                                 (LEGACY_PREFIX + task_id,)).fetchone()
        if legacy and legacy[0] == f"legacy:{session_id}":
            self.db.execute("DELETE FROM requests WHERE message_id = ?",
                            (LEGACY_PREFIX + task_id,))
            self.db.execute("DELETE FROM sessions WHERE session_id = ?", (legacy[0],))
            self.bump_version()

    # --- spend, as budgets, the status line and metrics ask for it ---------------------------

    def spend_usd(self, since: float | None = None, project: str | None = None) -> float:
        """USD since a moment, all projects or one (its folder and every folder inside)."""
        sql, params = "SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE ts >= ?", [
            since or 0.0]
        if project is not None:
            sql += " AND (project = ? OR substr(project, 1, ?) = ?)"
            params += [project, len(project) + 1, project + os.sep]
        return float(self.db.execute(sql, params).fetchone()[0])

    def spend_tokens(self, since: float) -> int:
        """Tokens since a moment: every kind, cache reads and writes included."""
        return int(self.db.execute(
            "SELECT coalesce(sum(input_tokens + output_tokens + cache_creation_tokens"
            " + cache_read_tokens), 0) FROM requests WHERE ts >= ?", (since,)).fetchone()[0])

    def task_spend(self, task_id: str, running: str | None = None) -> float:
        """USD of a task's sessions, and of `running` while it is attributed to no task."""
        return self._attributed_spend("task_id = ?", (task_id,), running)

    def enhancement_spend(self, name: str, project_dir: str, running: str | None = None
                          ) -> float:
        """USD of an enhancement's sessions in one project (another project's enhancement of
        the same name is another enhancement), and of `running` while unattributed."""
        return self._attributed_spend("enhancement = ? AND project_dir = ?",
                                      (name, project_dir), running)

    def _attributed_spend(self, condition: str, params: tuple, running: str | None) -> float:
        # One statement, each half answered from an index (a budget check runs per tool call).
        return float(self.db.execute(
            "SELECT (SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE session_id IN"
            f" (SELECT session_id FROM sessions WHERE {condition}))"
            " + (SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE session_id = ? AND"
            " session_id NOT IN (SELECT session_id FROM sessions WHERE task_id IS NOT NULL))",
            (*params, running or "")).fetchone()[0])

    # --- a task's cost: one query, whoever asks ---------------------------------------------

    def unpriced_models(self) -> list[dict]:
        """Model ids with requests stored unpriced: requests and tokens of each."""
        return [{"model": model, "requests": requests, "tokens": tokens} for model, requests, tokens
                in self.query("SELECT model, count(*), sum(input_tokens + output_tokens"
                              " + cache_creation_tokens + cache_read_tokens) FROM requests"
                              " WHERE cost_usd IS NULL GROUP BY model ORDER BY 2 DESC")]

    def task_costs(self) -> list[tuple[str, str | None, float]]:
        """Every task's (id, enhancement, USD), most expensive first."""
        return self.query(
            "SELECT s.task_id, max(s.enhancement), coalesce(sum(r.cost_usd), 0) FROM requests r"
            " JOIN sessions s USING (session_id) WHERE s.task_id IS NOT NULL"
            " GROUP BY s.task_id ORDER BY 3 DESC")

    def model_totals(self, task_id: str) -> list[tuple]:
        """Per model of a task's requests: (model, input, output, cache writes, 1-hour writes,
        cache reads, web searches, requests, cost of the priced ones, priced requests)."""
        return self.query(
            f"SELECT r.model, {_SUMS}, count(*), coalesce(sum(r.cost_usd), 0),"
            " count(r.cost_usd) FROM requests r JOIN sessions s USING (session_id)"
            " WHERE s.task_id = ? GROUP BY r.model", (task_id,))

    def task_sessions(self, task_id: str) -> list[tuple]:
        """The task's sessions in the order they were recorded: (session_id, first ts,
        last ts, requests, cost, transcript)."""
        return self.query(
            "SELECT s.session_id, min(r.ts), max(r.ts), count(r.message_id),"
            " coalesce(sum(r.cost_usd), 0), s.transcript_path FROM sessions s"
            " LEFT JOIN requests r USING (session_id) WHERE s.task_id = ?"
            " GROUP BY s.session_id ORDER BY s.recorded_at, min(r.ts)", (task_id,))

    def project_tasks(self, project_dir: str) -> list[str]:
        """Every task a session of this project was attributed to."""
        return [row[0] for row in self.query(
            "SELECT DISTINCT task_id FROM sessions WHERE project_dir = ? AND task_id IS NOT NULL",
            (project_dir,))]

    def queue_lagging(self, project_dir: str, task_id: str, lagging: bool) -> None:
        """Note (or clear) that the project's queue does not show the task's cost yet."""
        if lagging:
            self.db.execute("INSERT OR IGNORE INTO queue_sync VALUES (?, ?, ?)",
                            (project_dir, task_id, time.time()))
        else:
            self.db.execute("DELETE FROM queue_sync WHERE project_dir = ? AND task_id = ?",
                            (project_dir, task_id))

    def lagging_tasks(self, project_dir: str) -> list[str]:
        return [row[0] for row in self.query(
            "SELECT task_id FROM queue_sync WHERE project_dir = ?", (project_dir,))]

    def file_states(self, only: Sequence[str] | None = None) -> dict[str, FileState]:
        """Known files' states (every file's, or `only` these); `head` and `tail` are left
        empty here (see `file_marks`)."""
        sql = "SELECT path, device, inode, size, mtime_ns, offset FROM files"
        if only is None:
            rows = self.db.execute(sql)
        else:
            rows = self.db.execute(f"{sql} WHERE path IN ({', '.join('?' for _ in only)})",
                                   list(only))
        return {row[0]: FileState(*row, b"") for row in rows}

    def file_marks(self, path: str) -> tuple[bytes, bytes]:
        """The first bytes of a known file, and those just before its offset."""
        row = self.db.execute("SELECT head, tail FROM files WHERE path = ?", (path,)).fetchone()
        return (row[0] or b"", row[1] or b"") if row else (b"", b"")

    def save_file_states(self, states: Iterable[FileState]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO files (path, device, inode, size, mtime_ns,"
                            " offset, head, tail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [(s.path, s.device, s.inode, s.size, s.mtime_ns, s.offset, s.head,
                              s.tail) for s in states])

    def forget_files(self, paths_: Iterable[str]) -> None:
        paths_ = list(paths_)
        self.db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths_])
        self.forget_skips(paths_)

    def forget_skips(self, paths_: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM skipped_lines WHERE path = ?", [(p,) for p in paths_])

    def save_skips(self, skips: Iterable[tuple[str, int, str]]) -> None:
        """Remember skipped lines as (path, offset, reason)."""
        now = time.time()
        self.db.executemany("INSERT OR REPLACE INTO skipped_lines VALUES (?, ?, ?, ?)",
                            [(path, offset, reason, now) for path, offset, reason in skips])

    def skipped(self, limit: int = 1000) -> list[tuple[str, int, str, float]]:
        """Skipped lines, most recent first: (path, offset, reason, seen_at)."""
        return self.query("SELECT path, offset, reason, seen_at FROM skipped_lines"
                          " ORDER BY seen_at DESC, path, offset LIMIT ?", (limit,))

    # --- reading ----------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return self.db.execute(sql, params).fetchall()



class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, traceback) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


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
            db.execute("ROLLBACK")
            raise
    return start


def reprice(ledger: Ledger, models) -> tuple[int, int]:
    """Price every stored request again with the current catalog, from the stored token counts
    and the prices in force on each request's day (no transcript needed). Figures CMAT wrote
    before cmat keep theirs. Returns (requests repriced, requests left unpriced)."""
    from cmat.pricing import TokenCounts, request_cost

    version = models.catalog.version
    updates = []
    unpriced = 0
    for (message_id, model, ts, input_tokens, output_tokens, writes, writes_1h, reads,
         searches, speed, geo) in ledger.query(
            "SELECT message_id, model, ts, input_tokens, output_tokens, cache_creation_tokens,"
            " cache_creation_1h_tokens, cache_read_tokens, web_search_requests, speed,"
            " inference_geo FROM requests WHERE message_id NOT LIKE ?", (LEGACY_PREFIX + "%",)):
        entry = models.get_by_pattern(model)
        cost = None
        if entry is not None:
            day = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")
            cost = request_cost(entry.pricing_on(day),
                                TokenCounts(input_tokens, output_tokens, writes, writes_1h, reads),
                                searches, speed, geo)
        unpriced += cost is None
        updates.append((cost, version, message_id))
    with ledger.transaction():
        ledger.db.executemany(
            "UPDATE requests SET cost_usd = ?, catalog_version = ? WHERE message_id = ?", updates)
        ledger.bump_version()
    return len(updates), unpriced


def _writable(path: Path) -> bool:
    """Whether the ledger and its folder (where SQLite keeps the WAL) can be written, asked
    of the file system itself: permission bits say nothing about a read-only mount."""
    try:
        with open(path, "r+b"):
            pass
        probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
        probe.touch()
        probe.unlink()
    except OSError:
        return False
    return True


def ledger_error(exc: BaseException, path: Path | None = None) -> LedgerError:
    """One line saying what went wrong with the ledger, and what to do about it."""
    path = path or paths.ledger_file()
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered:
        return LedgerError(f"no room left on the disk for the ledger {path} ({text})",
                           "free some space and run the command again; nothing was lost")
    if "readonly" in lowered or "read-only" in lowered:
        return LedgerError(f"the ledger {path} cannot be written ({text})",
                           "check the file's permissions and its disk; reports still work with"
                           " --no-scan")
    if "locked" in lowered or "busy" in lowered:
        return LedgerError(f"the ledger {path} is busy: another cmat is writing it ({text})",
                           "try again in a moment")
    if isinstance(exc, OSError):
        return LedgerError(f"cannot open the ledger {path}: {exc.strerror or exc}")
    if "unable to open" in lowered:
        return LedgerError(f"cannot open the ledger {path} ({text})",
                           "check that its folder exists and can be written")
    return LedgerError(f"the ledger {path} is damaged ({text})",
                       "run 'cmat ledger rebuild': it recreates the ledger from the transcripts"
                       " and keeps the damaged file")


SALVAGED_TABLES = ("sessions", "overrides", "alerts")  # kept from the old ledger as they are
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


def _set_aside(path: Path, state: str) -> Path:
    """Move the ledger (with its WAL, which SQLite finds by name) to a dated name beside it."""
    kind = "previous" if state == "readable" else "damaged"
    kept = path.with_name(f"{path.name}.{kind}-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path.with_name(path.name + suffix), kept.with_name(kept.name + suffix))
    return kept


def _salvage(fresh: Ledger, old_path: Path) -> tuple[int, int]:
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
        while start < last:
            try:
                with fresh.transaction():
                    db.execute(f"INSERT INTO main.requests ({_COLUMN_LIST}) SELECT {_COLUMN_LIST}"
                               f" FROM old.requests WHERE rowid > ? AND rowid <= ? {_ON_CONFLICT}",
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
        with fresh.transaction():
            fresh.bump_version()
    finally:
        db.execute("DETACH old")
    return fresh.last_request_rowid() - before, unreadable


def rebuild(path: Path, scan_and_import) -> dict:
    """Start the ledger afresh, re-import every transcript with `scan_and_import(ledger)`, and
    salvage from the old ledger whatever it still holds.

    The old file is never destroyed: it is kept beside the new one as
    `<name>.damaged-<time>` (or `.previous-<time>` when it was healthy).
    """
    state = ledger_state(path)
    kept = _set_aside(path, state) if state != "missing" else None
    with Ledger(path) as fresh:
        result = scan_and_import(fresh)
        salvaged, unreadable = (0, 0)
        if kept is not None and state != "empty":
            salvaged, unreadable = _salvage(fresh, kept)
        carried = fresh.query("SELECT count(*) FROM sessions")[0][0]
    return {"previous_state": state, "damaged_copy": str(kept) if kept else None,
            "salvaged_requests": salvaged, "unreadable_chunks": unreadable,
            "sessions_carried_over": carried, **result.to_json()}
