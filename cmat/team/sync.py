"""`cmat sync`: push what the local ledger holds that the team database lacks.

Every request and session row locally carries the ledger version it last changed at (`seq`);
the team database keeps, per local ledger, the version up to which it has every request (its
mark, in `sync_marks`), and apart from it the version up to which it has every session and
deletion (`sessions_seq`: they are sent after the requests, so a sync killed in between must
send them again from where *they* stopped, not from the requests' mark). A sync reads the
ledger as of one moment (a snapshot, so writers go on) and sends what changed between the
mark and that moment, in batches: each batch is COPYed into a staging table and merged (a
request is unique by message id; the better copy wins, as locally; a row's own ledger always
wins), and the mark moves in the same transaction; the next batch travels on a second
connection meanwhile, and is merged once this one committed. So a sync killed at any point
loses nothing and, re-run, sends each row again at most once more (merging it again changes
nothing), and two machines syncing at once never make a duplicate.

The ledger is registered to the database role that syncs it first (`ledgers`): a member who
sets CMAT_USER or CMAT_MACHINE to a colleague's only labels their own rows so, and can never
replace the colleague's; a session's attribution is the one sent by the ledger that sent the
session's first request (schema.MERGE_SESSIONS). A row whose values no request can have (a
negative or absurd cost, a text where a number belongs, a time outside 2000-2100) is not
sent, and said so: one bad row never stops every later sync. Rows are not checked before
they are sent: the database checks them anyway, and only a batch it refuses is checked row
by row (schema.accepted) and sent again without the rows it would refuse.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from cmat import labels
from cmat.errors import TeamDatabaseError
from cmat.ledger import Ledger
from cmat.ledger.schema import COLUMN_TYPES, REQUEST_COLUMNS
from cmat.team.budgets import cache_team_totals
from cmat.team.connect import connect, describe, error_line
from cmat.team.schema import MERGE_REQUESTS, MERGE_SESSIONS, SESSION_FIELDS, accepted, migrate

BATCH_ROWS = 50_000
# The first batch is this share of BATCH_ROWS and each next one twice the one before, up to it:
# the server starts merging while the rest is read and copied, instead of after a whole batch.
FIRST_BATCH_SHARE = 8
# Binary COPY (less to format and parse than text): each column's PostgreSQL type.
COPY_TYPES = [{"TEXT": "text", "REAL": "float8", "INTEGER": "int8"}[COLUMN_TYPES[c]]
              for c in REQUEST_COLUMNS]
LOCK_NAMESPACE = 727002  # pg_try_advisory_lock(namespace, ledger): one sync of a ledger at once


@dataclass
class SyncResult:
    database: str
    requests: int = 0  # rows sent (new or changed)
    rejected: int = 0  # rows not sent: values the team database refuses (schema.accepted)
    sessions: int = 0
    deleted: int = 0
    seconds: float = 0.0
    skipped: str | None = None  # why nothing was done (another sync was running)

    def to_json(self) -> dict:
        return asdict(self)


def _batch_rows() -> int:
    try:
        return max(int(os.environ.get("CMAT_SYNC_BATCH", BATCH_ROWS)), 1)
    except ValueError:
        return BATCH_ROWS


def sync(ledger: Ledger, url: str, progress: Callable[[int], None] | None = None
         ) -> SyncResult:
    import psycopg

    started = time.monotonic()
    result = SyncResult(describe(url))
    connection = connect(url)
    try:
        migrate(connection)
        ledger_id = ledger.ledger_id()
        got = connection.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                 (LOCK_NAMESPACE, ledger_id % 2**31)).fetchone()[0]
        if not got:
            result.skipped = "another sync of this ledger is running"
            return result
        _register(connection, ledger_id)
        _push(ledger, connection, ledger_id, result, progress, url)
        cache_team_totals(connection)
    except psycopg.Error as exc:
        raise TeamDatabaseError(f"sync to {result.database} stopped: {error_line(exc)}",
                                "what was sent is kept; run cmat sync again") from None
    finally:
        connection.close()
    result.seconds = time.monotonic() - started
    return result


def _register(connection, ledger_id: int) -> None:
    """Make this ledger the syncing role's, or find that it is; refuse one that is another
    role's (its id was copied, or guessed)."""
    with connection.transaction():
        connection.execute("INSERT INTO ledgers (ledger_id) VALUES (%s) ON CONFLICT DO NOTHING",
                           (ledger_id,))
        owner, me = connection.execute("SELECT owner, session_user FROM ledgers"
                                       " WHERE ledger_id = %s", (ledger_id,)).fetchone()
    if owner != me:
        raise TeamDatabaseError(f"this ledger is registered to the database role {owner!r}, "
                                f"not {me!r}",
                                "each member syncs with a role of their own; a copied ledger "
                                "file needs 'cmat ledger rebuild' to get an identity of its own")


def _push(ledger: Ledger, connection, ledger_id: int, result: SyncResult,
          progress: Callable[[int], None] | None, url: str) -> None:
    row = connection.execute("SELECT seq, sessions_seq FROM sync_marks WHERE ledger_id = %s",
                             (ledger_id,)).fetchone()
    mark, sessions_mark = row if row else (0, 0)
    _prepare(connection)
    batches, stopped = _read_ahead(ledger.path, mark, sessions_mark)
    writer = _Writer(connection, url, ledger_id, result, progress)
    try:
        below = writer.write(batches)
    finally:
        stopped.set()
        writer.close()
    with ledger.transaction():
        ledger.set_meta_value("synced_seq", below)  # what compaction may fold away


def _prepare(connection) -> None:
    """A connection ready to stage batches."""
    # A batch and its mark commit together: losing both to a server crash only means
    # sending them again, so the server need not flush each commit to disk first.
    connection.execute("SET synchronous_commit TO off")
    connection.execute("CREATE TEMP TABLE IF NOT EXISTS staging"
                       " (LIKE requests INCLUDING CONSTRAINTS) ON COMMIT DELETE ROWS")
    connection.execute("CREATE TEMP TABLE IF NOT EXISTS staging_sessions (LIKE sessions)"
                       " ON COMMIT DELETE ROWS")


def _copy(connection, rows: list) -> None:
    if rows:
        with connection.cursor().copy(f"COPY staging ({', '.join(REQUEST_COLUMNS)})"
                                      " FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(COPY_TYPES)
            for row in rows:
                copy.write_row(row)


def _rollback(connection) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error):
        connection.execute("ROLLBACK")


class _Writer:
    """Writes what the reader hands over. A batch of requests is copied into the staging
    table of one connection while the batch before it is merged on another, so the server
    merges while the next batch travels (a merge is two thirds of a sync's time); the merges,
    and the marks that commit with them, still commit one after the other, in order: a batch
    is merged only once the one before it has committed."""

    def __init__(self, connection, url: str, ledger_id: int, result: SyncResult,
                 progress: Callable[[int], None] | None):
        from concurrent.futures import ThreadPoolExecutor

        self.connections = [connection]
        self.url = url
        self.ledger_id = ledger_id
        self.result = result
        self.progress = progress
        self.owner = labels.machine(), labels.user()
        self.merger = ThreadPoolExecutor(1, thread_name_prefix="cmat-sync-merge")
        self.merging = None  # (future, rows sent, rows rejected) of the batch being merged
        self.staged = 0  # batches of requests staged so far

    def write(self, batches) -> int:
        """Write every batch; returns the ledger version now fully sent."""
        below = None
        for kind, payload in iter(batches.get, None):
            if kind == "error":
                raise payload
            if kind == "requests":
                self._stage(payload)
                continue
            self._settle()
            below, sessions, gone = payload
            self._finish(self.connections[0], below, sessions, gone)
        self._settle()
        return below

    def close(self) -> None:
        """Wait for a merge still running (its error, if any, is the one raised already or
        the transaction was rolled back), and close the connection opened here."""
        self.merger.shutdown(wait=True)
        for connection in self.connections[1:]:
            connection.close()

    def _connection(self):
        """The connection for the next batch: the two take turns."""
        if self.staged == 1 and len(self.connections) == 1:
            extra = connect(self.url)
            try:
                _prepare(extra)
            except BaseException:
                extra.close()
                raise
            self.connections.append(extra)
        connection = self.connections[self.staged % len(self.connections)]
        self.staged += 1
        return connection

    def _stage(self, payload: list) -> None:
        """Copy a batch into the staging table of its connection, whole; if the database
        refuses a value in it (the staging table holds the requests table's checks, so a
        refusal comes here, not in the merge), copy the rows it accepts alone. A row that
        can never be merged is left behind and counted, and every later sync still goes
        through; checking the rare refused batch row by row costs less than checking every
        row of every sync before it is sent (a sync spent half its reading time on that)."""
        import psycopg

        connection = self._connection()
        rows = [found[:-2] for found in payload]
        connection.execute("BEGIN")
        try:
            try:
                _copy(connection, rows)
            except (TypeError, psycopg.DataError, psycopg.IntegrityError):
                _rollback(connection)  # a value the binary COPY or a check refused
                connection.execute("BEGIN")
                rows = [row for row in rows if accepted(row)]
                _copy(connection, rows)
            self._settle()  # the batch before commits first
        except BaseException:
            _rollback(connection)
            raise
        future = self.merger.submit(self._merge, connection, bool(rows), payload[-1][-2])
        self.merging = future, len(rows), len(payload) - len(rows)

    def _merge(self, connection, staged: bool, seq: int) -> None:
        try:
            if staged:
                connection.execute(MERGE_REQUESTS, {"ledger": self.ledger_id})
            _set_mark(connection, self.ledger_id, *self.owner, seq)
            connection.execute("COMMIT")
        except BaseException:
            _rollback(connection)
            raise

    def _settle(self) -> None:
        """Wait for the batch being merged; raise its error."""
        if self.merging is None:
            return
        future, sent, rejected = self.merging
        self.merging = None
        future.result()
        self.result.requests += sent
        self.result.rejected += rejected
        if self.progress:
            self.progress(self.result.requests)

    def _finish(self, connection, below: int, sessions: list, gone: list) -> None:
        """Sessions and deletions, after every request: the sessions' mark moves with them."""
        machine, user = self.owner
        with connection.transaction():
            if sessions:
                with connection.cursor().copy(
                        f"COPY staging_sessions ({', '.join(SESSION_FIELDS)}) FROM STDIN") as copy:
                    for found in sessions:
                        copy.write_row((*found, machine, user))
                connection.execute(MERGE_SESSIONS, {"ledger": self.ledger_id})
            if gone:
                connection.execute("DELETE FROM requests WHERE message_id = ANY(%s)"
                                   " AND ledger_id = %s", (gone, self.ledger_id))
            _set_mark(connection, self.ledger_id, machine, user, below, sessions=True)
        self.result.sessions, self.result.deleted = len(sessions), len(gone)


def _read_ahead(path, mark: int, sessions_mark: int):
    """Read what changed since `mark` in a thread of its own (its own connection and
    snapshot), a batch ahead of the one being written to the database: the two overlap.
    Yields ("requests", rows) batches, then ("done", (version, sessions, deletions)), then
    None; ("error", exception) if reading failed."""
    import queue
    import threading

    batches: queue.Queue = queue.Queue(maxsize=2)
    stopped = threading.Event()  # the writer gave up: stop reading, free the snapshot
    limit = _batch_rows()

    def hand(item) -> bool:
        while not stopped.is_set():
            try:
                batches.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            with Ledger(path) as reader, reader.snapshot():
                below = reader.version()
                after = None
                size = max(limit // FIRST_BATCH_SHARE, 1)
                while rows := reader.changed_requests(mark, below, after, size):
                    if not hand(("requests", rows)):
                        return
                    after = (rows[-1][-2], rows[-1][-1])
                    size = min(size * 2, limit)
                hand(("done", (below, reader.changed_sessions(sessions_mark, below),
                               reader.deleted_requests(sessions_mark, below))))
        except Exception as exc:  # handed to the writer, which stops with it
            hand(("error", exc))
        hand(None)

    threading.Thread(target=read, daemon=True, name="cmat-sync-read").start()
    return batches, stopped


def _set_mark(connection, ledger_id: int, machine: str, user: str, seq: int,
              sessions: bool = False) -> None:
    """Move the requests' mark to `seq` (with `sessions`, the sessions' and deletions' mark
    too: they were sent last). GREATEST: a slower sync never moves a mark back."""
    connection.execute(
        "INSERT INTO sync_marks (ledger_id, machine, user_name, seq, sessions_seq)"
        " VALUES (%(id)s, %(machine)s, %(user)s, %(seq)s, %(sessions)s)"
        " ON CONFLICT (ledger_id) DO UPDATE SET seq = GREATEST(sync_marks.seq, excluded.seq),"
        " sessions_seq = GREATEST(sync_marks.sessions_seq, excluded.sessions_seq),"
        " machine = excluded.machine, user_name = excluded.user_name, synced_at = now()",
        {"id": ledger_id, "machine": machine, "user": user, "seq": seq,
         "sessions": seq if sessions else 0})
