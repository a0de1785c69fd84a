"""Claude Code transcripts -> usage records, one per API request.

The hot path of cmat. Files are read in large binary chunks; only lines holding the bytes
`"output_tokens"` are decoded (with orjson, or on large reads with msgspec: fastdecode.py), and
the rest are never split or copied. Memory stays flat: a chunk, one partial line, and one
small record per distinct request.

Rules (see ../docs and README):
- all lines of one response share `message.id`; the snapshot with the largest token total wins;
- a non-sidechain copy beats a sidechain replay of the same response;
- `<synthetic>` model and `isApiErrorMessage` lines are local notices and cost nothing;
- subagent transcripts of a session (`<session>/subagents/agent-*.jsonl`, and legacy sibling
  `agent-*.jsonl` files carrying the same `sessionId`) belong to the session, marked as subagents;
- lines that are not JSON, and a truncated last line, are skipped and counted.
"""

from __future__ import annotations

import operator
import os
import re
import stat
import sys
import threading
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

import orjson

from cmat.errors import TranscriptError
from cmat.pricing import TokenCounts

CHUNK_SIZE = 8 * 1024 * 1024
PARALLEL_MIN_BYTES = 8 * 1024 * 1024  # below this a single process is faster than forking
MAX_WORKERS = 4
MAX_SEGMENT_BYTES = 32 * 1024 * 1024
FAST_DECODE_MIN_BYTES = 32 * 1024 * 1024  # reads this large decode with msgspec (fastdecode.py)
USAGE_MARKER = b'"output_tokens"'  # in every usage object; found 1.5x faster than "usage"
MAIN_AGENT = "main"
UNKNOWN_SUBAGENT = "subagent"
_SESSION_ID_RE = re.compile(rb'"sessionId"\s*:\s*"([^"]+)"')
_parse_time = datetime.fromisoformat


@dataclass(slots=True)
class UsageRecord:
    """The usage of one API request as Claude Code recorded it."""

    message_id: str
    request_id: str | None
    session_id: str | None
    timestamp: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int  # all cache writes
    cache_creation_1h_tokens: int  # the 1-hour share of them
    cache_read_tokens: int
    web_search_requests: int
    speed: str | None
    inference_geo: str | None  # where inference ran ("us", "global", ...), when recorded
    is_sidechain: bool
    agent: str  # "main", or the subagent's type
    agent_id: str | None
    cwd: str | None

    @property
    def total_tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_creation_tokens
                + self.cache_read_tokens)

    @property
    def token_counts(self) -> TokenCounts:
        return TokenCounts(self.input_tokens, self.output_tokens, self.cache_creation_tokens,
                           self.cache_creation_1h_tokens, self.cache_read_tokens)

    def __reduce__(self):
        # Ships as a plain tuple between processes: 5x faster than a slotted dataclass's state.
        return (UsageRecord, _RECORD_FIELDS(self))

    def outranks(self, other: "UsageRecord") -> bool:
        """Whether this copy of a request should replace `other` (same message id)."""
        return (not self.is_sidechain, self.total_tokens) > (not other.is_sidechain,
                                                             other.total_tokens)


_RECORD_FIELDS = operator.attrgetter(*(f.name for f in fields(UsageRecord)))


@dataclass
class SourceFile:
    """One transcript file and whose usage it holds."""

    path: Path
    agent: str | None = None  # None: decide per line (main, or inline sidechain subagent)
    agent_id: str | None = None


@dataclass
class FileScan:
    """What one pass over (part of) a file found."""

    records: list[UsageRecord] = field(default_factory=list)
    skipped_lines: int = 0
    skips: list[tuple[int, str]] = field(default_factory=list)  # (offset, why), the first ones
    ignored_notices: int = 0  # <synthetic> / API error lines
    end_offset: int = 0  # just past the last line consumed
    pending_tail: bool = False  # an unterminated last line was left for a later read


MAX_TOKENS = 2 ** 53  # far above any real request; every sum stays exact as a float and in SQLite
MAX_SKIPS_NAMED = 100  # skipped lines named per read (all are counted)
MAX_LINE_BYTES = 128 * 1024 * 1024  # a longer line is read past: no real line comes near


class InvalidLine(ValueError):
    """A usage line whose fields do not have the types and ranges of a real request."""


def _count(value) -> int:
    if value.__class__ is int:
        return value  # the range is checked once, in make_record
    if value is None:
        return 0
    if value.__class__ is float and value.is_integer() and 0 <= value < MAX_TOKENS:
        return int(value)
    raise InvalidLine(f"not a token count: {value!r:.40}")


def _text(value, name: str):
    """A string field, or None; anything else makes the line invalid."""
    if value is None or value.__class__ is str:
        return value
    raise InvalidLine(f"{name} is not a string: {value!r:.40}")


def is_notice(model, api_error) -> bool:
    """`<synthetic>` model and API error lines are local notices: they cost nothing."""
    return model == "<synthetic>" or bool(api_error)


def make_record(source: SourceFile, offset: int, message_id, request_id, session_id,
                timestamp, model, input_tokens: int, output_tokens: int, cache_total: int,
                split: tuple[int, int] | None, cache_read: int, searches: int, speed, geo,
                is_sidechain: bool, agent_id, cwd) -> UsageRecord:
    """The record of one usage line, from its values however they were decoded.

    `split`: the (5-minute, 1-hour) cache writes, when the line breaks them down. Strings and
    whole numbers are typed by the decoder; the ranges and the timestamp are checked here, so
    that no line can carry a value the ledger cannot store or a cost below zero (InvalidLine).
    """
    counts = (input_tokens, output_tokens, cache_total, cache_read, searches,
              *(split or ()))
    if min(counts) < 0 or max(counts) >= MAX_TOKENS:
        raise InvalidLine(f"token count out of range: {counts}")
    if timestamp.__class__ is not str:
        raise InvalidLine(f"timestamp is not a string: {timestamp!r:.40}")
    try:
        _parse_time(timestamp)
    except ValueError:
        raise InvalidLine(f"timestamp is not ISO 8601: {timestamp!r:.40}") from None
    cache_1h = 0
    if split is not None:
        cache_1h = split[1]
        if not cache_total:
            cache_total = split[0] + cache_1h
        if cache_1h > cache_total:
            cache_1h = cache_total
    return UsageRecord(
        message_id or request_id or f"{source.path}:{offset}",
        request_id,
        session_id,
        timestamp,
        model,
        input_tokens,
        output_tokens,
        cache_total,
        cache_1h,
        cache_read,
        searches,
        speed,
        geo,
        is_sidechain,
        source.agent or (UNKNOWN_SUBAGENT if is_sidechain else MAIN_AGENT),
        agent_id or source.agent_id,
        cwd,
    )


def record_from_line(obj, source: SourceFile, offset: int) -> UsageRecord | None | bool:
    """The usage record of a line decoded as plain JSON; None if it carries none; False for
    a free notice. Raises ValueError for a token count that is not a whole number."""
    if obj.__class__ is not dict or obj.get("type") != "assistant":
        return None
    message = obj.get("message")
    if message.__class__ is not dict:
        return None
    usage = message.get("usage")
    if usage.__class__ is not dict:
        return None
    model = _text(message.get("model"), "message.model") or "unknown"
    if is_notice(model, obj.get("isApiErrorMessage")):
        return False
    get = usage.get
    split = get("cache_creation")
    server_tools = get("server_tool_use")
    return make_record(
        source, offset, _text(message.get("id"), "message.id"),
        _text(obj.get("requestId"), "requestId"), _text(obj.get("sessionId"), "sessionId"),
        obj.get("timestamp"), model, _count(get("input_tokens")), _count(get("output_tokens")),
        _count(get("cache_creation_input_tokens")),
        (_count(split.get("ephemeral_5m_input_tokens")),
         _count(split.get("ephemeral_1h_input_tokens"))) if split.__class__ is dict else None,
        _count(get("cache_read_input_tokens")),
        _count(server_tools.get("web_search_requests")) if server_tools.__class__ is dict else 0,
        _text(get("speed"), "usage.speed"), _text(get("inference_geo"), "usage.inference_geo"),
        obj.get("isSidechain") is True,
        _text(obj.get("agentId"), "agentId"), _text(obj.get("cwd"), "cwd"))


def decode_line(line, source: SourceFile, offset: int) -> UsageRecord | None | bool:
    """Decode one line (see record_from_line); raises ValueError if it is not JSON at all.

    Claude Code writes strings cut inside an emoji as a lone surrogate escape (`\\ud83d`),
    and orjson rejects those; the standard library's decoder takes them, and any invalid
    UTF-8, so that such a line's usage is not lost.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        import json

        try:
            obj = json.loads(bytes(line).decode("utf-8", "replace"))
        except RecursionError:
            raise ValueError("nested too deeply") from None
    return record_from_line(obj, source, offset)


LineDecoder = Callable[[object, SourceFile, int], "UsageRecord | None | bool"]


_local = threading.local()


def _read_buffer(size: int) -> bytearray:
    """A reused read buffer: pages already touched are not faulted in again for each chunk
    (a fresh 8 MiB bytes object per read doubles the system time of reading)."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) != size:
        buffer = _local.buffer = bytearray(size)
    return buffer


def _open_regular(path: Path):
    """The file for reading, if it is a regular file: a FIFO would block a hook and a device
    such as /dev/zero never ends."""
    try:  # O_NONBLOCK: opening a FIFO would otherwise wait for a writer
        handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
    except FileNotFoundError:
        raise TranscriptError(f"transcript {path} does not exist") from None
    except IsADirectoryError:
        raise TranscriptError(f"transcript {path} is a directory, not a file") from None
    except OSError as exc:
        raise TranscriptError(f"cannot read transcript {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise TranscriptError(f"transcript {path} is not a regular file")
    return handle


def check_transcript(path: Path) -> None:
    """Raise TranscriptError unless `path` is a readable regular file."""
    _open_regular(path).close()


def _skip_rest_of_line(handle) -> None:
    """Read past the line the handle is inside, a piece at a time (it may be huge)."""
    while True:
        piece = handle.readline(CHUNK_SIZE)
        if not piece or piece.endswith(b"\n"):
            return


def scan_file(source: SourceFile, start: int = 0, *, end: int | None = None,
              final: bool = True, decode: LineDecoder = decode_line) -> FileScan:
    """Read usage lines of the file from byte `start` on.

    With `end`, read only the lines that begin before `end` (a line cut by `start` belongs to
    the range before): ranges that tile a file read every line exactly once.
    With `final`, an unterminated last line is decoded too (and counted as skipped if it is
    cut short). Without it (a file still being written) that line is left for the next read
    and `end_offset` stops just before it.
    A line longer than MAX_LINE_BYTES is read past and counted as skipped: memory never
    holds more than that, whatever the file holds.
    """
    scan = FileScan(end_offset=start)
    with _open_regular(source.path) as handle:
        if start:
            handle.seek(start - 1)
            if handle.read(1) != b"\n":
                _skip_rest_of_line(handle)  # it began in the previous range
                start = handle.tell()
        buffer = _read_buffer(CHUNK_SIZE)
        filled = 0  # bytes of buffer holding data
        base = start  # file offset of buffer[0]
        too_long = None  # where an over-long line began, while reading past it
        while end is None or base < end or too_long is not None:
            if filled == len(buffer):  # one line longer than the buffer
                if filled < MAX_LINE_BYTES:
                    buffer = bytearray(buffer) + bytearray(len(buffer))
                else:
                    too_long = base if too_long is None else too_long
                    base += filled
                    filled = 0
            with memoryview(buffer) as view:
                read = handle.readinto(view[filled:])
            if not read:
                break
            filled += read
            if too_long is not None:
                newline = buffer.find(b"\n", 0, filled)
                if newline < 0:
                    continue
                _skip(scan, too_long, f"line longer than {MAX_LINE_BYTES >> 20} MiB")
                too_long = None
                consumed = newline + 1
                buffer[:filled - consumed] = buffer[consumed:filled]
                filled -= consumed
                base += consumed
                if end is not None and base >= end:
                    break
                if not filled:
                    continue
            if end is not None and base + filled >= end:
                stop = buffer.find(b"\n", end - base - 1, filled)  # the line holding end-1
                if stop >= 0:
                    _scan_complete_lines(scan, buffer, stop + 1, source, base, decode)
                    scan.end_offset = base + stop + 1
                    return scan
            last_newline = buffer.rfind(b"\n", 0, filled)
            if last_newline < 0:
                continue
            _scan_complete_lines(scan, buffer, last_newline + 1, source, base, decode)
            consumed = last_newline + 1
            buffer[:filled - consumed] = buffer[consumed:filled]
            filled -= consumed
            base += consumed
        scan.end_offset = base
        if too_long is not None:  # the file ends inside an over-long line
            if final:
                _skip(scan, too_long, f"line longer than {MAX_LINE_BYTES >> 20} MiB")
                scan.end_offset = base + filled
            else:
                scan.end_offset = too_long
                scan.pending_tail = True
            return scan
        tail = bytes(buffer[:filled])
        if tail.strip():
            if final:
                _decode_into(scan, tail, source, base, decode)
                scan.end_offset = base + filled
            else:
                scan.pending_tail = True
        elif tail:
            scan.end_offset = base + filled
    return scan


def _skip(scan: FileScan, offset: int, why: str) -> None:
    scan.skipped_lines += 1
    if len(scan.skips) < MAX_SKIPS_NAMED:
        scan.skips.append((offset, why[:200]))


def _decode_into(scan: FileScan, line, source: SourceFile, offset: int,
                 decode: LineDecoder) -> None:
    try:
        record = decode(line, source, offset)
    except ValueError as exc:  # orjson's and msgspec's decode errors are ValueErrors
        _skip(scan, offset, str(exc) if isinstance(exc, InvalidLine) else f"not JSON ({exc})")
        return
    if record is False:
        scan.ignored_notices += 1
    elif record is not None:
        scan.records.append(record)


def _scan_complete_lines(scan: FileScan, buffer: bytearray, end: int, source: SourceFile,
                         base: int, decode: LineDecoder) -> None:
    find = buffer.find
    rfind = buffer.rfind
    position = 0
    with memoryview(buffer) as view:
        while True:
            hit = find(USAGE_MARKER, position, end)
            if hit < 0:
                return
            line_start = rfind(b"\n", 0, hit) + 1
            line_end = find(b"\n", hit, end)
            with view[line_start:line_end] as line:  # no copy of the line
                _decode_into(scan, line, source, base + line_start, decode)
            position = line_end + 1


class Deduplicator:
    """Keeps one record per request: the best copy by `UsageRecord.outranks`."""

    __slots__ = ("by_key",)

    def __init__(self) -> None:
        self.by_key: dict[str, UsageRecord] = {}

    def add(self, record: UsageRecord) -> None:
        current = self.by_key.get(record.message_id)
        if current is None or record.outranks(current):
            self.by_key[record.message_id] = record

    def records(self) -> list[UsageRecord]:
        return sorted(self.by_key.values(), key=lambda r: r.timestamp)


@dataclass
class SessionUsage:
    """The deduplicated usage of one session and the files it came from."""

    session_id: str
    records: list[UsageRecord]
    files: list[Path]
    skipped_lines: int
    ignored_notices: int

    @property
    def started(self) -> str | None:
        return self.records[0].timestamp if self.records else None

    @property
    def ended(self) -> str | None:
        return self.records[-1].timestamp if self.records else None


def _agent_type(meta_path: Path) -> str | None:
    try:
        meta = orjson.loads(meta_path.read_bytes())
    except (OSError, ValueError):
        return None
    agent_type = meta.get("agentType") if isinstance(meta, dict) else None
    return agent_type if isinstance(agent_type, str) and agent_type else None


def subagent_source(path: Path, agent_type: str | None = None) -> SourceFile:
    """A subagent transcript, its type from the argument or its `.meta.json`."""
    agent_id = path.stem.removeprefix("agent-")
    if agent_type is None:
        agent_type = _agent_type(path.with_name(path.stem + ".meta.json"))
    return SourceFile(path, agent_type or UNKNOWN_SUBAGENT, agent_id)


def session_ids_in(path: Path) -> set[str]:
    """The `sessionId`s on the first lines of a transcript (reads 64 KiB at most)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return set()
    return {match.decode("utf-8", "replace") for match in _SESSION_ID_RE.findall(head)}


def first_session_id(path: Path) -> str | None:
    """The `sessionId` on the first lines of a transcript (cheap: reads 64 KiB at most)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return None
    match = _SESSION_ID_RE.search(head)
    return match.group(1).decode("utf-8", "replace") if match else None


def session_sources(transcript: Path, session_id: str) -> list[SourceFile]:
    """The main transcript and every subagent transcript that belongs to its session."""
    sources = [SourceFile(transcript)]
    seen = {transcript.resolve()}
    folders = {transcript.parent / transcript.stem, transcript.parent / session_id}
    for folder in sorted(folders):
        subagents = folder / "subagents"
        if subagents.is_dir():
            for path in sorted(subagents.glob("agent-*.jsonl")):
                if path.resolve() not in seen and path.is_file():
                    seen.add(path.resolve())
                    sources.append(subagent_source(path))
    for path in sorted(transcript.parent.glob("agent-*.jsonl")):  # Claude Code 2.0.x layout
        if path.resolve() not in seen and path.is_file() and first_session_id(path) == session_id:
            seen.add(path.resolve())
            sources.append(subagent_source(path))
    return sources


@dataclass(frozen=True)
class Segment:
    """A byte range of one file: the unit of work of a parallel read.

    `final` as in `scan_file`: False for the open end of a file that may still be growing.
    """

    source: SourceFile
    start: int
    end: int | None
    final: bool = True


@dataclass
class SegmentResult:
    records: list  # deduplicated within the segment; converted when the scan asked for it
    requests: int  # how many (the records themselves may travel packed: see Batch)
    skipped_lines: int
    skips: list[tuple[int, str]]  # (offset, why) of the first skipped lines
    ignored_notices: int
    end_offset: int
    pending_tail: bool  # stopped before an unfinished last line (see scan_file)


@dataclass
class Batch:
    """Consecutive segments read together, and what was read in each.

    `packed`, when the scan asked for it, holds the converted records of all the batch's
    segments (whose own `records` are then empty): one object to send between processes
    instead of many small ones.
    """

    segments: list[Segment]
    results: list[SegmentResult]
    packed: object = None


@dataclass(frozen=True)
class _SegmentWork:
    """How segments are read, and what is done to their records where they are read."""

    decode: LineDecoder = decode_line
    convert: Callable[[list[UsageRecord]], list] | None = None
    pack: Callable[[list[list]], object] | None = None


_work = _SegmentWork()  # set in the process (or inherited by the workers) doing the reads


def _set_work(work: _SegmentWork) -> None:
    global _work
    _work = work


def _start_worker(work: _SegmentWork, parent: int) -> None:
    """A worker dies with the process that forked it: a scan killed with SIGKILL leaves no
    worker behind holding its pipes (Linux; elsewhere workers exit when the pipe closes)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)
    _set_work(work)


def _scan_segment(segment: Segment) -> SegmentResult:
    scan = scan_file(segment.source, segment.start, end=segment.end, final=segment.final,
                     decode=_work.decode)
    dedup = Deduplicator()
    for record in scan.records:
        dedup.add(record)
    records = list(dedup.by_key.values())
    return SegmentResult(_work.convert(records) if _work.convert else records, len(records),
                         scan.skipped_lines, scan.skips, scan.ignored_notices, scan.end_offset,
                         scan.pending_tail)


def _scan_batch(segments: list[Segment]) -> Batch:
    batch = Batch(segments, [_scan_segment(segment) for segment in segments])
    if _work.pack:
        batch.packed = _work.pack([result.records for result in batch.results])
        for result in batch.results:
            result.records = []
    return batch


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # scan_file reports the problem


def plan_segments(work: list[tuple[SourceFile, int, int]], pieces: int,
                  final: bool = True) -> list[Segment]:
    """Cut (source, start, size) ranges into at least `pieces` segments of similar size, none
    over MAX_SEGMENT_BYTES (what a worker holds at once does not grow with the file); small
    ranges stay whole. A file's last segment is open-ended, `final` as given."""
    total = sum(max(size - start, 0) for _, start, size in work)
    target = max(min(total // max(pieces, 1), MAX_SEGMENT_BYTES), 1)
    segments = []
    for source, start, size in work:
        length = max(size - start, 0)
        cuts = max(1, round(length / target))
        step = -(-length // cuts) if length else 0
        for index in range(cuts):
            last = index == cuts - 1
            segments.append(Segment(source, start + index * step,
                                    None if last else start + (index + 1) * step, final))
    return segments


def parallel_workers(total_bytes: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if total_bytes < PARALLEL_MIN_BYTES or not cpus or cpus < 2 or sys.platform != "linux":
        return 1  # forking costs more than it saves on small reads; fork is Linux-only here
    return min(cpus, MAX_WORKERS)


def line_decoder(total_bytes: int) -> LineDecoder:
    """The decoder for a read of this size: msgspec's import costs more than it saves on
    the few lines a hook reads."""
    if total_bytes < FAST_DECODE_MIN_BYTES:
        return decode_line
    from cmat.fastdecode import decode_line as fast

    return fast


def scan_segments(segments: list[Segment], workers: int, *,
                  decode: LineDecoder = decode_line,
                  convert: Callable[[list[UsageRecord]], list] | None = None,
                  pack: Callable[[list[list]], object] | None = None) -> Iterator[Batch]:
    """Scan segments in order, in forked worker processes when `workers` > 1; batches are
    yielded as they are ready, so a caller can store them without holding them all.

    `convert`, applied to each segment's records where they are read, moves per-record work
    (pricing, say) into the workers; `pack` turns a worker's batch of converted records into
    one object that is cheaper to send back than the records themselves.
    """
    if workers <= 1 or len(segments) <= 1:
        _set_work(_SegmentWork(decode, convert))
        try:
            for segment in segments:
                yield _scan_batch([segment])
        finally:
            _set_work(_SegmentWork())
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = max(1, len(segments) // (workers * 16))  # small files travel together
    batches = [segments[i:i + size] for i in range(0, len(segments), size)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_start_worker,
                             initargs=(_SegmentWork(decode, convert, pack), os.getpid())) as pool:
        yield from pool.map(_scan_batch, batches)


def read_sources(session_id: str, sources: list[SourceFile],
                 max_bytes: int | None = None) -> SessionUsage:
    """The deduplicated usage of `sources`; with `max_bytes`, refuse to read more than that
    (a hook's time inside a Claude Code session is bounded)."""
    work = [(source, 0, file_size(source.path)) for source in sources]
    total = sum(size for _, _, size in work)
    if max_bytes is not None and total > max_bytes:
        raise TranscriptError(f"session {session_id}'s transcripts hold {total / 2**30:.1f} GiB,"
                              f" more than a hook reads ({max_bytes / 2**30:.1f} GiB)",
                              "run 'cmat scan' to import them")
    workers = parallel_workers(total)
    segments = plan_segments(work, workers * 2 if workers > 1 else 1)
    dedup = Deduplicator()
    skipped = ignored = 0
    for batch in scan_segments(segments, workers, decode=line_decoder(total)):
        for result in batch.results:
            skipped += result.skipped_lines
            ignored += result.ignored_notices
            for record in result.records:
                dedup.add(record)
    return SessionUsage(session_id, dedup.records(), [s.path for s in sources], skipped, ignored)


def read_session(transcript: str | os.PathLike, session_id: str | None = None,
                 include_subagents: bool = True, max_bytes: int | None = None) -> SessionUsage:
    """Every API request of the session whose main transcript is `transcript`."""
    path = Path(transcript)
    check_transcript(path)  # a clear error for anything that is not a transcript
    session_id = session_id or first_session_id(path) or path.stem
    sources = session_sources(path, session_id) if include_subagents else [SourceFile(path)]
    return read_sources(session_id, sources, max_bytes)


def read_session_with_subagent(transcript: Path | None, session_id: str, subagent: Path,
                               agent_type: str | None,
                               max_bytes: int | None = None) -> SessionUsage:
    """A running session's usage so far, including a subagent transcript a hook named (with
    the type the hook gave) even when it sits outside the usual folders."""
    sources = session_sources(transcript, session_id) if transcript and transcript.is_file() \
        else []
    sources = [s for s in sources if s.path.resolve() != subagent.resolve()]
    sources.append(subagent_source(subagent, agent_type))
    return read_sources(session_id, sources, max_bytes)
