"""The usage ledger: one SQLite row per API request, across every project and session.

`${CMAT_LEDGER:-$XDG_DATA_HOME/cmat/ledger.db}`, WAL mode, schema in schema.py. A request's
key is its `message.id`; a later, better copy of the same request (a larger snapshot, or the
non-sidechain original of a replay) replaces the earlier one. Costs are stored with the
catalog version that priced them, and the token counts are enough to price them again without
the transcripts. Whose a request is comes from its session's attribution (`attribute`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmat import clock, labels, paths
from cmat.errors import LedgerError
from cmat.ledger.queries.alerts import AlertQueries
from cmat.ledger.queries.contents import ContentQueries
from cmat.ledger.queries.live import LiveSessionQueries
from cmat.ledger.queries.reports import ReportQueries
from cmat.ledger.queries.spend import SpendQueries
from cmat.ledger.queries.sync import SyncQueries
from cmat.ledger.queries.tasks import TaskQueries
from cmat.ledger.schema import (
    COLUMN_LIST,
    CURRENT_SEQ,
    GUARD_COMPACTED,
    LEGACY_PREFIX,
    PLACEHOLDERS,
    SCHEMA_VERSION,
    UPSERT,
    UPSERT_PACKED,
    FileState,
    migrate,
    request_rows,
)
from cmat.usage import LEGACY_SESSION

if TYPE_CHECKING:
    from cmat.usage import UsageRecord

# A new ledger is 0 bytes only between its creation and its first write, a moment long.
EMPTY_GRACE_SECONDS = 2.0
PAGE_BYTES = 16384
MAX_ATTACHED_PACKED = 8  # SQLite attaches at most 10 databases unless built otherwise
# SQLite's page cache during a bulk load (its default of 2 MB otherwise): the message id index
# takes ids in random order, and at 4.8 GB of history it is 12 MB, so with the default most
# inserts missed it. A first import of 4.8 GB: 5.36-5.82 s against 5.80-6.05 s, with 30 MB more.
DEFAULT_CACHE_KIB = 2000  # SQLite's own default
KEPT_REPORT_ROWS = 32  # reports whose sums are kept (report_rows_kept), the latest
BULK_CACHE_KIB = 32 * 1024


def bulk_cache_kib(load_bytes: int) -> int:
    """The page cache for a bulk load of `load_bytes` of transcripts: room for its message id
    index (about a 390th of them) twice over, from SQLite's default up to BULK_CACHE_KIB."""
    return max(DEFAULT_CACHE_KIB, min(BULK_CACHE_KIB, load_bytes // 150 // 1024))


class Ledger(SpendQueries, TaskQueries, ReportQueries, ContentQueries, AlertQueries,
             LiveSessionQueries, SyncQueries):
    """The SQLite ledger: a connection opened on first use, its schema brought up to date."""

    def __init__(self, path: Path | None = None, busy_timeout: float = 30.0):
        self.path = path or paths.ledger_file()
        self.busy_timeout = busy_timeout  # hooks wait less for a busy ledger than commands
        self._db: sqlite3.Connection | None = None
        self._bulk_loading = False
        self._packed_attached = 0  # databases attached by attached_packed
        self._indexes_behind = False  # a bulk load's indexes are left to build (bulk_load)

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
            # A new ledger's pages (an older one keeps its own: WAL mode fixes them). Copying
            # a first import's rows in took 0.13 s with these against 0.19 s with SQLite's
            # 4 KiB (77,000 rows); reports read as fast or faster.
            db.execute(f"PRAGMA page_size = {PAGE_BYTES}")
            self._write_ahead(db)
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db)
        except (sqlite3.DatabaseError, OSError) as exc:
            if self.path.is_file() and not _writable(self.path):
                return self._open_read_only()
            raise ledger_error(exc, self.path) from None
        return db

    def _write_ahead(self, db: sqlite3.Connection) -> None:
        """Put the ledger in WAL mode. On a new ledger, while another process does the same,
        SQLite answers "locked" at once rather than waiting (the busy timeout does not apply
        to that change): wait for it here, as for any write."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def read_only_connection(self, options: str = "") -> sqlite3.Connection:
        """A connection of its own that only reads the ledger (usable in another thread)."""
        from urllib.parse import quote

        return sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro{options}",
                               uri=True, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)

    def _open_read_only(self) -> sqlite3.Connection:
        """A ledger on a read-only file or disk still answers reports (`--no-scan`)."""
        for options in ("", "&immutable=1"):  # immutable: no WAL index can be made beside it
            try:
                db = self.read_only_connection(options)
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
        return db

    def close(self) -> None:
        self._build_indexes_behind()
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self):
        self._build_indexes_behind()
        return _Transaction(self.db)

    @contextlib.contextmanager
    def snapshot(self):
        """Read the ledger as it is at the first read inside: writers go on meanwhile (WAL)
        and none of their changes show until the block ends."""
        self.db.execute("BEGIN")
        try:
            yield self
        finally:
            self.db.execute("COMMIT")

    def ledger_id(self) -> int:
        """This ledger's identity (a random number made with it): what the team database
        keeps its sync mark under."""
        return self.meta_value("ledger_id")

    def last_request_rowid(self) -> int:
        """Rows are never given a rowid below the largest one, so the growth of this number
        is how many requests were added (counting them would read the whole table); 0 when
        there are none."""
        return self.db.execute("SELECT coalesce(max(rowid), 0) FROM requests").fetchone()[0]

    @contextlib.contextmanager
    def bulk_load(self, cache_kib: int = DEFAULT_CACHE_KIB):
        """Write many requests at once (a first import into an empty ledger, a reprice that
        changes most of them): the secondary indexes are dropped for the load and built once
        after it (`_build_indexes_behind`), which is several times cheaper than keeping them.

        What was dropped is written down in the same transaction, so that a load killed
        before its end leaves the next scan able to build them (`restore_indexes`). Inside
        another bulk load it does nothing: the outer one builds them at its end. The page
        cache is `cache_kib` for the load alone (bulk_cache_kib sizes it for a first import).
        """
        if self._bulk_loading:
            yield
            return
        with self.transaction():
            indexes = self.query("SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                                 " AND tbl_name = 'requests' AND sql IS NOT NULL")
            self.db.executemany("INSERT OR REPLACE INTO dropped_indexes VALUES (?, ?)", indexes)
            for name, _ in indexes:
                self.db.execute(f"DROP INDEX {name}")
        cache = self.db.execute("PRAGMA cache_size").fetchone()[0]
        self.db.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        self._bulk_loading = True
        try:
            yield
        finally:
            self._bulk_loading = False
            self._indexes_behind = True
            self.db.execute(f"PRAGMA cache_size = {cache}")

    def _build_indexes_behind(self) -> None:
        """Start building the indexes a bulk load dropped, at this connection's next write or
        close, in a detached process (cmat.ledger.indexes): this one goes on and ends without
        waiting for them. So a first scan's report is read from the table itself (as fast)
        and cached before the build holds the ledger. A write after that waits for the build
        as for any writer; an import finds the indexes built, or builds them itself
        (`restore_indexes`: a build stopped early is finished there)."""
        if not self._indexes_behind:
            return
        self._indexes_behind = False
        from cmat.detached import start_detached

        try:
            start_detached(["cmat.ledger.indexes", str(self.path)])
        except OSError:  # no process to spare: built here
            self.restore_indexes()

    def restore_indexes(self) -> bool:
        """Build the indexes a bulk load dropped, if any are still missing (and it is not
        still going on); True if it did."""
        if self._bulk_loading or not self.query("SELECT 1 FROM dropped_indexes LIMIT 1"):
            return False
        self._indexes_behind = False  # built here
        with self.transaction():
            for _name, sql in self.query("SELECT name, sql FROM dropped_indexes"):
                # IF NOT EXISTS: a load still running in another process may build it too.
                self.db.execute(sql.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
            self.db.execute("DELETE FROM dropped_indexes")
        return True

    # --- writing ----------------------------------------------------------------------------

    def add_requests(self, records: Sequence[UsageRecord], costs: Sequence[float | None], *,
                     catalog_version: str, source: str | None = None) -> None:
        """Store priced requests; call inside `transaction()` to group writes."""
        self.insert_rows(request_rows(records, costs, catalog_version, source))

    def insert_rows(self, rows: Sequence[tuple]) -> None:
        """Store rows made by `request_rows`."""
        self.db.executemany(UPSERT, rows)
        self.bump_version()

    @contextlib.contextmanager
    def attached_packed(self, packed: Sequence[bytes]):
        """Open databases made by `pack_rows` (at most MAX_ATTACHED_PACKED) for
        `insert_packed`. SQLite attaches a database only outside a transaction, so this wraps
        the transaction that stores them."""
        if len(packed) > MAX_ATTACHED_PACKED:
            raise ValueError(f"at most {MAX_ATTACHED_PACKED} packed databases at once")
        try:
            for number, data in enumerate(packed):
                self.db.execute(f"ATTACH ':memory:' AS packed{number}")
                self._packed_attached += 1
                self.db.deserialize(data, name=f"packed{number}")
            yield
        finally:
            while self._packed_attached:
                self._packed_attached -= 1
                self.db.execute(f"DETACH packed{self._packed_attached}")

    def insert_packed(self) -> None:
        """Store the rows attached by `attached_packed`, as insert_rows would."""
        for number in range(self._packed_attached):
            self.db.execute(UPSERT_PACKED.format(schema=f"packed{number}"))
        self.bump_version()

    def bump_version(self) -> None:
        """Mark the requests as changed: cached reports computed before are stale."""
        self.db.execute("UPDATE meta SET value = value + 1 WHERE key = 'requests_version'")

    def version(self) -> int:
        return self.db.execute(
            "SELECT value FROM meta WHERE key = 'requests_version'").fetchone()[0]

    def cached(self, key: list, compute: Callable[[], Any]) -> Any:
        """What `compute` answers (JSON: tuples come back as lists), kept in the ledger
        under `key` until a request changes, so that it is computed once per change."""
        import orjson

        query = orjson.dumps(key)
        version = self.version()  # before computing: a request stored meanwhile is not in it
        kept = self.cached_report(query)
        if kept is not None:
            return orjson.loads(kept)
        answer = compute()
        self.cache_report(query, version, orjson.dumps(answer))
        return answer

    def cached_report(self, query: bytes) -> bytes | None:
        row = self.db.execute("SELECT body FROM report_cache WHERE query = ? AND version = ("
                              "SELECT value FROM meta WHERE key = 'requests_version')",
                              (query,)).fetchone()
        return row[0] if row else None

    def cache_report(self, query: bytes, version: int, body: bytes) -> None:
        """Keep a report's answer for the next time, unless the ledger is busy: a report never
        waits to be cached (the indexes a first scan left to build, say)."""
        self._write_unless_busy(
            ("DELETE FROM report_cache WHERE version < ?", (version,)),
            ("INSERT OR REPLACE INTO report_cache VALUES (?, ?, ?)", (query, version, body)))

    def kept_report_rows(self, query: bytes) -> tuple[tuple[int, int, int], bytes] | None:
        """What keep_report_rows kept under `query`: (its rows_mark, its rows as JSON)."""
        row = self.db.execute("SELECT upto_rowid, requests, version, rows FROM"
                              " report_rows_kept WHERE query = ?", (query,)).fetchone()
        return (row[:3], row[3]) if row else None

    def keep_report_rows(self, query: bytes, mark: tuple[int, int, int], rows: bytes) -> None:
        """Keep a report's grouped sums over the requests as `mark` (rows_mark) saw them, unless
        the ledger is busy; the KEPT_REPORT_ROWS most recent are kept."""
        self._write_unless_busy(
            ("INSERT OR REPLACE INTO report_rows_kept VALUES (?, ?, ?, ?, ?)",
             (query, *mark, rows)),
            ("DELETE FROM report_rows_kept WHERE rowid NOT IN (SELECT rowid FROM"
             " report_rows_kept ORDER BY rowid DESC LIMIT ?)", (KEPT_REPORT_ROWS,)))

    def _write_unless_busy(self, *statements: tuple[str, tuple]) -> None:
        """Run `statements` in one transaction if the ledger is free now, else not at all
        (what they write is a cache: a read-only or busy ledger only costs it)."""
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            with self.transaction():
                for sql, params in statements:
                    self.db.execute(sql, params)
        except sqlite3.OperationalError:
            pass
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {round(self.busy_timeout * 1000)}")

    def set_costs(self, updates: Iterable[tuple[float | None, str, int]]) -> None:
        """Store (cost, catalog version, rowid) of requests priced again (rowids in order:
        the table's pages are then written one after the other)."""
        self.db.executemany(
            f"UPDATE requests SET cost_usd = ?, catalog_version = ?, seq = {CURRENT_SEQ}"
            " WHERE rowid = ?", updates)
        self.bump_version()

    def attribute(self, session_id: str, *, project_dir: str | None,
                  transcript_path: str | None, task_id: str | None, enhancement: str | None,
                  agent: str | None, recorded_by: str, task_type: str | None = None) -> None:
        """Say whose a session is: every request of it (its subagents' included) counts for
        that task, enhancement and agent. A later attribution without a task keeps the task
        an earlier one gave."""
        self.db.execute(
            "INSERT INTO sessions (session_id, project_dir, transcript_path, task_id, enhancement,"
            f" recorded_at, recorded_by, agent, task_type, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
            f" {CURRENT_SEQ})"
            " ON CONFLICT (session_id) DO UPDATE SET"
            " project_dir = coalesce(excluded.project_dir, sessions.project_dir),"
            " transcript_path = coalesce(excluded.transcript_path, sessions.transcript_path),"
            " task_id = coalesce(excluded.task_id, sessions.task_id),"
            " enhancement = CASE WHEN excluded.task_id IS NOT NULL THEN excluded.enhancement"
            " ELSE sessions.enhancement END,"
            " agent = CASE WHEN excluded.task_id IS NOT NULL THEN excluded.agent"
            " ELSE sessions.agent END,"
            " task_type = CASE WHEN excluded.task_id IS NOT NULL THEN excluded.task_type"
            " ELSE sessions.task_type END,"
            " recorded_at = excluded.recorded_at, recorded_by = excluded.recorded_by,"
            " seq = excluded.seq",
            (session_id, project_dir, transcript_path, task_id, enhancement, clock.now(),
             recorded_by, agent, task_type))
        self.bump_version()

    def attribution(self, session_id: str) -> tuple | None:
        """(task_id, enhancement, agent, project_dir) of a session, if it was attributed."""
        return self.db.execute("SELECT task_id, enhancement, agent, project_dir FROM sessions"
                               " WHERE session_id = ?", (session_id,)).fetchone()

    def store_legacy(self, task_id: str, figures: dict, version: str) -> None:
        """Figures CMAT wrote for a task before cmat, as one request of a session of their own
        (`reprice` leaves them alone: only their total is known, not how it was priced)."""
        self.db.execute(
            f"INSERT OR IGNORE INTO requests ({COLUMN_LIST}, seq) VALUES ({PLACEHOLDERS},"
            f" {CURRENT_SEQ})",
            (LEGACY_PREFIX + task_id, None, figures["session"], figures["ts"], None,
             figures["model"], "main", None, 0, figures["input"], figures["output"],
             figures["cache_creation"], 0, figures["cache_read"], 0, None, figures["cost"],
             version, None, "cmat-legacy", labels.machine(), labels.user()))
        self.bump_version()

    def compact(self, cutoff: float, offsets: tuple[int, list[tuple[int, int]]],
                below_seq: int | None) -> int:
        """Fold every request before `cutoff` (and, with `below_seq`, already synced) into
        request_rollups, one row per local day (by `offsets`, see periods.offset_changes),
        machine, user, project, model, task, enhancement, agent and task type, every token
        and dollar kept; returns the requests folded. Call inside `transaction()`."""
        from cmat.ledger.queries.sql import compaction_sql, offset_sql

        chosen = "requests.ts < ?" + (" AND requests.seq < ?" if below_seq is not None else "")
        params = (cutoff, below_seq) if below_seq is not None else (cutoff,)
        self.db.execute(compaction_sql(f"date(ts + {offset_sql(*offsets)}, 'unixepoch')",
                                       chosen), params)
        self.db.execute(f"INSERT OR IGNORE INTO compacted_requests SELECT message_id"
                        f" FROM requests WHERE {chosen}", params)
        self.db.execute(GUARD_COMPACTED)
        folded = self.db.execute(f"DELETE FROM requests WHERE {chosen}", params).rowcount
        self.bump_version()
        return folded

    def forget_compacted(self) -> int:
        """Delete requests that compaction had folded away (read again from their
        transcripts after a rebuild); their sums are in the rollups. Returns how many."""
        if not self.db.execute("SELECT 1 FROM compacted_requests LIMIT 1").fetchone():
            return 0
        self.db.execute(GUARD_COMPACTED)
        gone = self.db.execute("DELETE FROM requests WHERE message_id IN"
                               " (SELECT message_id FROM compacted_requests)").rowcount
        self.bump_version()
        return gone

    def drop_legacy(self, task_id: str, session_id: str) -> None:
        """Forget CMAT's figures for a session whose requests the ledger now holds itself:
        figures naming that session, or naming none (CMAT's `costs extract TASK FILE` without
        a session id, at the very SessionEnd cmat now records)."""
        legacy = self.db.execute("SELECT session_id FROM requests WHERE message_id = ?",
                                 (LEGACY_PREFIX + task_id,)).fetchone()
        if legacy and legacy[0] in (LEGACY_SESSION + session_id, LEGACY_SESSION + task_id):
            self.db.execute("DELETE FROM requests WHERE message_id = ?",
                            (LEGACY_PREFIX + task_id,))
            self.db.execute("DELETE FROM sessions WHERE session_id = ?", (legacy[0],))
            self.db.execute(f"INSERT OR REPLACE INTO deleted_requests VALUES (?, {CURRENT_SEQ})",
                            (LEGACY_PREFIX + task_id,))  # a sync deletes it remotely too
            self.bump_version()



    def queue_lagging(self, project_dir: str, task_id: str, lagging: bool) -> None:
        """Note (or clear) that the project's queue does not show the task's cost yet."""
        if lagging:
            self.db.execute("INSERT OR IGNORE INTO queue_sync VALUES (?, ?, ?)",
                            (project_dir, task_id, clock.now()))
        else:
            self.db.execute("DELETE FROM queue_sync WHERE project_dir = ? AND task_id = ?",
                            (project_dir, task_id))

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

    def file_carry(self, path: str) -> bytes | None:
        """What the reader of another agent's log knew where it stopped (FileState.carry)."""
        row = self.db.execute("SELECT carry FROM files WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def save_file_states(self, states: Iterable[FileState]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO files (path, device, inode, size, mtime_ns,"
                            " offset, head, tail, carry) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(s.path, s.device, s.inode, s.size, s.mtime_ns, s.offset, s.head,
                              s.tail, s.carry) for s in states])

    def forget_files(self, paths_: Iterable[str]) -> None:
        paths_ = list(paths_)
        self.db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths_])
        self.forget_skips(paths_)

    def forget_skips(self, paths_: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM skipped_lines WHERE path = ?", [(p,) for p in paths_])

    def save_skips(self, skips: Iterable[tuple[str, int, str]]) -> None:
        """Remember skipped lines as (path, offset, reason)."""
        now = clock.now()
        self.db.executemany("INSERT OR REPLACE INTO skipped_lines VALUES (?, ?, ?, ?)",
                            [(path, offset, reason, now) for path, offset, reason in skips])

    def skipped(self, limit: int = 1000) -> list[tuple[str, int, str, float]]:
        """Skipped lines, most recent first: (path, offset, reason, seen_at)."""
        return self.query("SELECT path, offset, reason, seen_at FROM skipped_lines"
                          " ORDER BY seen_at DESC, path, offset LIMIT ?", (limit,))

    # --- reading ----------------------------------------------------------------------------


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, value, traceback) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


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
