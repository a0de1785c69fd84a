"""Into the ledger: the one road every writer takes.

Per file the ledger remembers its identity (device, inode, first bytes, the bytes before its
offset), size, mtime and the offset just past the last complete line read. An import reads
only appended bytes; a file that shrank, was replaced or was rewritten in place is read again
from the start; a torn last line is left for the import after it is completed. Requests already
in the ledger are never lost when Claude Code later rewrites or deletes a transcript.

    scan               everything new under Claude Code's folders (reports, `cmat scan`)
    import_session     what is new in one session's files (budgets, the status line)

Attributing a session to its task is cmat.attribution's; repricing and rebuilding are
cmat.maintenance's.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cmat.catalog import ModelService
from cmat.errors import TranscriptError
from cmat.ledger import Ledger
from cmat.ledger.schema import FileState, request_rows, row_packer
from cmat.ledger.store import MAX_ATTACHED_PACKED, bulk_cache_kib
from cmat.pricing import price_records
from cmat.transcripts.files import (
    SeenFile,
    SourceFile,
    check_claude_head,
    check_transcript,
    discover,
    open_regular,
    session_sources,
    source_for,
)
from cmat.transcripts.parallel import (
    ReadOptions,
    Segment,
    SegmentWork,
    plan_segments,
    read_segments,
)
from cmat.transcripts.reader import read_marks
from cmat.untrusted import Unreadable, open_untrusted
from cmat.usage import UsageRecord

# Short write transactions, so that hooks never wait long for the ledger.
COMMIT_EVERY_ROWS = 20_000
COMMIT_EVERY_FILES = 2_000
APP_HEAD_BYTES = 1 << 20  # enough of a log to tell whose it is (a rollout's first line)
BULK_LOAD_BYTES = 64 * 1024 * 1024  # a first import this large builds the indexes at the end


@dataclass
class ScanResult:
    files_seen: int = 0
    files_read: int = 0
    files_gone: int = 0
    bytes_read: int = 0
    requests: int = 0  # read, copies of one request in several files included
    new_requests: int = 0  # of those, not in the ledger before
    skipped_lines: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return dict(self.__dict__)


def marks(path: str, offset: int) -> tuple[bytes, bytes]:
    """The file's marks read up to `offset` (cmat.transcripts.reader.read_marks): what tells
    that a file was replaced or rewritten in place since."""
    try:
        handle = open_untrusted(path)
    except Unreadable:
        return b"", b""
    if handle is None:
        return b"", b""
    with handle:
        return read_marks(handle, offset)


def start_offset(seen: SeenFile, known: FileState | None,
                 stored_marks: Callable[[str], tuple[bytes, bytes]]) -> int | None:
    """Where to resume reading the file; None when there is nothing new."""
    if known is None:
        return 0
    if (known.device, known.inode) != (seen.device, seen.inode) or seen.size < known.offset:
        return 0  # replaced or shrunk: read it all again
    if seen.size == known.size and seen.mtime_ns == known.mtime_ns:
        return None
    head, tail = stored_marks(seen.path)
    if (head, tail) != (b"", b""):
        now_head, now_tail = marks(seen.path, known.offset)
        if now_head[:len(head)] != head[:seen.size] or now_tail != tail:
            return 0  # rewritten in place
    return known.offset if seen.size > known.offset else None


Progress = Callable[[int, int, int, int], None]  # files done, files, bytes done, bytes


def scan(ledger: Ledger, models: ModelService, roots: list[Path],
         progress: Progress | None = None, options: ReadOptions = ReadOptions()) -> ScanResult:
    """Import what is new under `roots`, and what the other coding agents logged (cmat.apps);
    forget files that disappeared from them."""
    seen = discover(roots)
    known = ledger.file_states()
    gone = [p for p in known if p not in seen and any(p.startswith(str(r)) for r in roots)]
    result = ScanResult()
    logs = app_logs(ledger, known, result)
    # A first scan loads transcripts and the other agents' logs alike without indexes.
    new_bytes = sum(file.size for path, file in seen.items() if path not in known) + sum(
        log.st.st_size for log in logs)
    with _bulk_if_empty(ledger, new_bytes):
        return _import_files(ledger, models, seen, gone, progress, known, options=options,
                             result=result, app_logs=logs)


def _bulk_if_empty(ledger: Ledger, new_bytes: int):
    """A bulk load (Ledger.bulk_load) for a first import this large into an empty ledger."""
    if new_bytes >= BULK_LOAD_BYTES and ledger.last_request_rowid() == 0:
        return ledger.bulk_load(bulk_cache_kib(new_bytes))
    return contextlib.nullcontext()


# --- the other coding agents: whole files read again when they change, databases by row ----


def app_readers() -> list:
    """The modules that read another coding agent's logs (each: APP, folders(), files() and
    read(path); a reader of a database also databases() and read_new(path, cursor); a
    reader of logs that grow by lines also resumes(path) and read_from(path, offset,
    carry))."""
    from cmat.apps import codex, gemini, opencode

    return [codex, gemini, opencode]


@dataclass(frozen=True)
class AppLog:
    """One log of another agent to read, and what `stat` said of it: a file from byte
    `start` (0: whole; further on only where its reader resumes from what it knew there,
    `carry`), or a database from the row after `cursor`."""

    app: str
    path: str
    cursor: int | None  # a database's; None for a file
    st: os.stat_result
    start: int = 0
    carry: bytes | None = None

    @property
    def new_bytes(self) -> int:
        """A file's bytes from `start` (a database is read by row: 0, how much is new is
        not known)."""
        return self.st.st_size - self.start if self.cursor is None else 0


class AppRead(NamedTuple):
    """What was read of one log: its requests, how many lines were skipped, how far it was
    read (a file's byte, a database's row) and, for a file its reader resumes, what the
    reader knew there and the file's marks at that offset; `start`: where it began."""

    records: list[UsageRecord]
    skipped: int
    offset: int
    carry: bytes | None = None
    marks: tuple[bytes, bytes] = (b"", b"")
    start: int = 0


def app_logs(ledger: Ledger, known: dict[str, FileState], result: ScanResult) -> list[AppLog]:
    """What to read of every other coding agent's logs (`known`: their stored states);
    the logs seen are counted in `result`."""
    logs: list[AppLog] = []
    for reader in app_readers():
        found = [(path, True) for path in reader.files()] + [
            (path, False) for path in getattr(reader, "databases", list)()]
        for path, whole in found:  # a log read whole, or a database read by row
            log = _app_log(reader, path, whole, known.get(str(path)), result, ledger)
            if log is not None:
                logs.append(log)
    return logs


def _app_groups(logs: list[AppLog], workers: int) -> list[list[AppLog]]:
    """The logs cut into groups for the workers: files travel together up to a share of
    their bytes, and a database (read by row: how much is new is not known) goes alone and
    first, so that the worker reading it is not the last one busy. No two agents share a
    request's id, so the order of different agents' logs changes nothing stored; each
    agent's own logs keep theirs."""
    target = sum(log.new_bytes for log in logs) // (workers * 8) + 1
    groups = [[log] for log in logs if log.cursor is not None]
    group: list[AppLog] = []
    size = 0
    for log in logs:
        if log.cursor is not None:
            continue
        group.append(log)
        size += log.new_bytes
        if size >= target:
            groups.append(group)
            group, size = [], 0
    return groups + [group] * bool(group)


def _app_log(reader, path: Path, whole: bool, state: FileState | None, result: ScanResult,
             ledger: Ledger) -> AppLog | None:
    """What to read of one log (a file, or a database by row) given its stored `state`;
    None when it is gone or, a file, has nothing new. A file that grows by lines (its
    reader `resumes` it, and reads it `read_from` an offset) is read from where the last
    read stopped when it only grew since (its marks tell, as a transcript's do), else
    whole."""
    try:
        st = path.stat()
    except OSError:
        return None
    result.files_seen += 1
    if not whole:
        return AppLog(reader.APP, str(path), state.offset if state is not None
                      and state.inode == st.st_ino else 0, st)
    if state is not None and (state.device, state.inode, state.size, state.mtime_ns) \
            == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
        return None
    if state is None or not (hasattr(reader, "resumes") and reader.resumes(path)):
        return AppLog(reader.APP, str(path), None, st)
    start = start_offset(SeenFile(str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns),
                         state, ledger.file_marks)
    if start is None:
        return None
    carry = ledger.file_carry(str(path)) if start else None
    return AppLog(reader.APP, str(path), None, st, start if carry else 0, carry)


def given_log_reader(path: Path):
    """The reader of a log given by hand (`costs extract`, `costs session`), told by its
    first bytes: another coding agent's, or None for a Claude Code transcript. Raises
    TranscriptError for a missing file, a folder, a FIFO ..., or a file that is neither."""
    with open_regular(path) as handle:
        head = handle.read(APP_HEAD_BYTES)
    reader = next((reader for reader in app_readers() if reader.claims(path, head)), None)
    if reader is None:
        check_claude_head(path, head)
    return reader


def import_app_log(ledger: Ledger, models: ModelService, reader, path: Path
                   ) -> tuple[ScanResult, set[str]]:
    """Import one log of another agent, named rather than found (`cmat costs extract` for a
    task an orchestrator ran on Codex CLI, Gemini CLI or OpenCode), and the sessions its
    requests belong to. A log file is read whole even when a scan read it already (its
    sessions are wanted, and each request's id makes storing it again harmless); a database
    from the row after the last one read."""
    result = ScanResult()
    if hasattr(reader, "databases"):
        log = _app_log(reader, path, False, ledger.file_states([str(path)]).get(str(path)),
                       result, ledger)
    else:
        log = _app_log(reader, path, True, None, result, ledger)
    sessions: set[str] = set()
    if log is not None:
        read = read_app_log(log)
        if isinstance(read, str):
            group = _AppGroupRead([read], [])
        else:
            sessions = {record.session_id for record in read.records if record.session_id}
            group = _AppGroupRead([_without_records(read)], _RowMaker(models)(read.records))
        pending = _Pending(ledger, result)
        _hold_app_read(pending, [log], group)
        pending.flush()
    return result, sessions


def read_app_log(log: AppLog) -> AppRead | str:
    """What was read of one log, or why it cannot be read now (it is tried again at the
    next scan)."""
    reader = next(reader for reader in app_readers() if reader.APP == log.app)
    try:
        if log.cursor is not None:
            return AppRead(*reader.read_new(Path(log.path), log.cursor))
        if hasattr(reader, "read_from"):
            path = Path(log.path)
            records, skipped, start, offset, carry = reader.read_from(path, log.start, log.carry)
            # Marks tell the next scan whether a log that grows by lines only grew; a log
            # rewritten whole (a Gemini CLI .json chat) is read whole whenever it changed.
            kept = marks(log.path, offset) if reader.resumes(path) else (b"", b"")
            return AppRead(records, skipped, offset, carry, kept, start)
        return AppRead(*reader.read(Path(log.path)), log.st.st_size)
    except Unreadable as exc:
        return exc.message


@dataclass
class _AppGroupRead:
    """What was read of a group of logs: per log how many requests and the rest of its
    AppRead, or why it cannot be read now; and the rows of all their requests, `packed` by
    pack_rows when they come from a worker."""

    reads: list[tuple[int, AppRead] | str]
    rows: list[tuple]
    packed: bytes | None = None


def _read_app_group(make_rows: _RowMaker, pack, logs: list[AppLog]) -> _AppGroupRead:
    """Read, price and (with `pack`) pack a group of logs: in a worker, or in the process
    that writes the ledger."""
    reads: list[tuple[int, AppRead] | str] = []
    rows: list[tuple] = []
    for log in logs:
        read = read_app_log(log)
        if isinstance(read, str):
            reads.append(read)
            continue
        rows += make_rows(read.records)
        reads.append(_without_records(read))
    if pack is None:
        return _AppGroupRead(reads, rows)
    return _AppGroupRead(reads, [], pack([rows]))


def _without_records(read: AppRead) -> tuple[int, AppRead]:
    """How many requests were read, and the rest of `read`: its records travel as rows."""
    return len(read.records), read._replace(records=[])


def _hold_app_read(pending: _Pending, logs: list[AppLog], read: _AppGroupRead) -> None:
    """Hold what `_read_app_group` read of `logs` (or their refusals) for the ledger; a
    packed group is stored at once."""
    result = pending.result
    for log, log_read in zip(logs, read.reads):
        if isinstance(log_read, str):
            result.skipped_lines += 1
            pending.skips.append((log.path, 0, log_read))
            continue
        requests, done = log_read
        st = log.st
        pending.states.append(FileState(log.path, st.st_dev, st.st_ino, st.st_size,
                                        st.st_mtime_ns, done.offset, *done.marks, done.carry))
        pending.fresh.append(log.path)  # read: an earlier refusal no longer stands
        result.files_read += 1
        result.requests += requests
        result.skipped_lines += done.skipped
        result.bytes_read += st.st_size - done.start
    pending.rows += read.rows
    if read.packed is not None:
        pending.packed.append(read.packed)
    pending.flush_if_full()


def import_session(ledger: Ledger, models: ModelService, transcript: Path | None,
                 session_id: str, *, subagent: SourceFile | None = None,
                 max_bytes: int | None = None) -> ScanResult:
    """Import what is new in one session's files (the main transcript and its subagents',
    and `subagent`, a file a hook named wherever it lies): appended bytes only. The one road
    into the ledger for everything that reads a single session."""
    sources: dict[str, SourceFile] = {}
    if transcript is not None:
        check_transcript(transcript)
        sources = {str(s.path): s for s in session_sources(transcript, session_id)}
    if subagent is not None:
        check_transcript(subagent.path)
        sources[str(subagent.path)] = subagent
    seen = {}
    for path, source in sources.items():
        try:
            st = source.path.stat()
        except OSError:
            continue
        seen[path] = SeenFile(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return _import_files(ledger, models, seen, [], None, ledger.file_states(list(seen)),
                     sources=sources, max_bytes=max_bytes)


def _import_files(ledger: Ledger, models: ModelService, seen: dict[str, SeenFile],
              gone: list[str], progress: Progress | None,
              known: dict[str, FileState] | None, *,
              sources: dict[str, SourceFile] | None = None,
              max_bytes: int | None = None, options: ReadOptions = ReadOptions(),
              result: ScanResult | None = None,
              app_logs: Sequence[AppLog] = ()) -> ScanResult:
    """Read what is new in the `seen` files (`known`: their stored states, when loaded;
    `sources`: how to read a file, where its path alone does not say; `max_bytes`: refuse to
    read more than that at once), and `app_logs` (from app_logs: what the other coding
    agents logged since they were last read) in the same workers; counts are added to
    `result`, when given."""
    started = time.monotonic()
    result = result or ScanResult()
    result.files_seen += len(seen)
    ledger.restore_indexes()  # a bulk load's, not built yet or stopped early
    known = ledger.file_states() if known is None else known
    work: list[tuple[SourceFile, int, int]] = []
    for path, file in seen.items():
        offset = start_offset(file, known.get(path), ledger.file_marks)
        if offset is not None:
            source = (sources or {}).get(path) or source_for(path)
            work.append((source, offset, file.size))
    if max_bytes is not None:
        pending = sum(size - start for _, start, size in work)
        if pending > max_bytes:
            raise TranscriptError(f"{pending / 2**30:.1f} GiB of transcript to read, more than"
                                  f" a hook reads ({max_bytes / 2**30:.1f} GiB)",
                                  "run 'cmat scan' to import it")
    reread = [str(source.path) for source, start, _ in work if start == 0
              and str(source.path) in known]
    if reread:  # replaced or rewritten: what was skipped in it before no longer stands
        with ledger.transaction():
            ledger.forget_skips(reread)
    total = sum(size - start for _, start, size in work)
    workers = options.workers_for(total + sum(log.new_bytes for log in app_logs))
    segments = plan_segments(work, workers * 4 if workers > 1 else 1, final=False,
                             max_segment_bytes=options.max_segment_bytes)
    if segments or app_logs:  # else nothing new: no catalog to load, no host name to look up
        with _bulk_if_empty(ledger, total):
            work_spec = SegmentWork(options.decoder_for(total), options.chunk_size,
                                    _RowMaker(models), row_packer() if options.pack_rows else None)
            _store(ledger, seen, segments, workers, work_spec, len(work), total, result, progress,
                   list(app_logs))
    if gone:
        with ledger.transaction():
            ledger.forget_files(gone)
    result.files_read += len(work)
    result.files_gone += len(gone)
    result.bytes_read += total
    result.seconds += time.monotonic() - started
    return result


def _store(ledger: Ledger, seen: dict[str, SeenFile], segments: list[Segment], workers: int,
           work: SegmentWork, files: int, total: int, result: ScanResult,
           progress: Progress | None, app_logs: list[AppLog]) -> None:
    """Read the segments and the other agents' logs (in workers) and store their requests
    and file states. A log file is read from where the last read stopped where its reader
    can go on from there (`read_from`: a Codex rollout that grew), else whole when it
    changed (a Gemini chat is rewritten in place: each request's id makes reading it again
    harmless); a database from the row after the last one read (its FileState's offset)."""
    pending = _Pending(ledger, result)
    done_bytes = done_files = 0
    resume: int | None = None  # where an unfinished line began, in the file being stored
    groups = _app_groups(app_logs, workers) if workers > 1 else []
    read_group = functools.partial(_read_app_group, work.convert, work.pack)
    app_reads = iter(groups)
    for batch in read_segments(segments, workers, work, groups, read_group):
        if isinstance(batch, _AppGroupRead):
            _hold_app_read(pending, next(app_reads), batch)
            continue
        for segment, segment_result in zip(batch.segments, batch.results):
            if segment_result.pending_tail and resume is None:
                # The unfinished last line began in this segment; later segments of the file
                # start inside it and skip it, so the next scan must resume here.
                resume = segment_result.end_offset
            pending.rows.extend(segment_result.records)
            result.requests += segment_result.requests
            result.skipped_lines += segment_result.skipped_lines
            file = seen[str(segment.source.path)]
            pending.skips.extend((file.path, offset, why) for offset, why in segment_result.skips)
            stop = segment.end if segment.end is not None else segment_result.end_offset
            done_bytes += max(0, min(stop, file.size) - segment.start)
            if segment.end is None:  # the file's last segment: its state can be saved
                done_files += 1
                offset = segment_result.end_offset if resume is None else resume
                pending.states.append(FileState(
                    file.path, file.device, file.inode, file.size, file.mtime_ns, offset,
                    *(segment_result.marks if resume is None else marks(file.path, offset))))
                resume = None
        if batch.packed is not None:
            pending.packed.append(batch.packed)
        pending.flush_if_full()
        if progress:
            progress(done_files, files, done_bytes, total)
    if app_logs and not groups:  # read here, their rows used as they are
        _hold_app_read(pending, app_logs, _read_app_group(work.convert, None, app_logs))
    pending.flush()


class _RowMaker:
    """Turns a segment's records into priced ledger rows, inside the worker that read them."""

    def __init__(self, models: ModelService):
        from cmat import labels

        self.resolve = models.get_by_pattern
        self.version = models.catalog.version
        self.owner = labels.machine(), labels.user()

    def __call__(self, records: list) -> list[tuple]:
        return request_rows(records, price_records(records, self.resolve), self.version,
                            owner=self.owner)


class _Pending:
    """Requests and file states written together: a file's state is saved only in the
    transaction that stores its requests, so an interrupted scan resumes where it stopped.

    Rows packed by workers are held until several are stored in one commit: each commit
    writes every page of the message id index it touched again (a first scan of 1.2 GB
    wrote 400 MB for a ledger of 40 MB, one commit per worker's batch)."""

    def __init__(self, ledger: Ledger, result: ScanResult):
        self.ledger = ledger
        self.result = result
        self.rows: list[tuple] = []
        self.packed: list[bytes] = []  # from pack_rows
        self.states: list[FileState] = []
        self.skips: list[tuple[str, int, str]] = []
        self.fresh: list[str] = []  # files whose earlier skipped lines no longer stand

    def flush_if_full(self) -> None:
        if len(self.rows) >= COMMIT_EVERY_ROWS or len(self.states) >= COMMIT_EVERY_FILES \
                or len(self.packed) >= MAX_ATTACHED_PACKED:
            self.flush()

    def flush(self) -> None:
        """Store what is pending."""
        if not (self.rows or self.packed or self.states or self.skips):
            return
        with self.ledger.attached_packed(self.packed), self.ledger.transaction():
            # Counted inside the write transaction: another scan cannot add rows in between.
            before = self.ledger.last_request_rowid()
            if self.packed:
                self.ledger.insert_packed()
            if self.rows:
                self.ledger.insert_rows(self.rows)
            self.result.new_requests += self.ledger.last_request_rowid() - before
            self.ledger.forget_skips(self.fresh)
            self.ledger.save_file_states(self.states)
            self.ledger.save_skips(self.skips)
        self.rows, self.packed, self.states, self.skips, self.fresh = [], [], [], [], []
