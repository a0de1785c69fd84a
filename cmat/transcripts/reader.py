"""Reading a byte range of one transcript: the hot path of cmat.

Files are read in large binary chunks into a reused buffer; only lines holding the bytes
`"output_tokens"` (in every usage object) are decoded, and the rest are never split or
copied. Of the copies of one request in the range, only the best (cmat.request.rank) is
kept. Memory stays flat: a chunk, one partial line (at most MAX_LINE_BYTES), and one small
record per distinct request.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from cmat.request import NOTICE, USAGE_MARKER, InvalidLine, rank
from cmat.transcripts.decode import Candidate, LineDecoder, decode_line
from cmat.transcripts.files import SourceFile, open_regular
from cmat.usage import UsageRecord

CHUNK_SIZE = 8 * 1024 * 1024
SMALL_READ_BYTES = 64 * 1024  # the least a read's buffer holds
MAX_LINE_BYTES = 128 * 1024 * 1024  # a longer line is read past: no real line comes near
MAX_SKIPS_NAMED = 100  # skipped lines named per read (all are counted)
# A file's marks: its first MARK_HEAD_BYTES and the MARK_TAIL_BYTES before where it was read
# to, what tells later that it was replaced or rewritten in place (cmat.ingest).
MARK_HEAD_BYTES = 256
MARK_TAIL_BYTES = 1024


class Deduplicator:
    """Keeps the best copy of each request (cmat.request.rank; the first of equals stays): a
    record, or a decoder's Candidate, whose record is built only if it is kept."""

    __slots__ = ("best",)

    def __init__(self) -> None:
        self.best: dict[str, tuple[int, UsageRecord | Candidate]] = {}

    def add(self, copy: UsageRecord | Candidate) -> None:
        if copy.__class__ is tuple:
            key, copy_rank = copy[0], copy[1]
        else:
            key, copy_rank = copy.message_id, rank(copy.is_sidechain, copy.total_tokens)
        current = self.best.get(key)
        if current is None or copy_rank > current[0]:
            self.best[key] = (copy_rank, copy)

    def kept(self, source: SourceFile | None = None) -> list[UsageRecord]:
        """The copies kept, in the order their requests were first seen (a Candidate's
        record built from `source`, the file it was read in)."""
        return [copy[2](copy[3], source, copy[0]) if copy.__class__ is tuple else copy
                for _, copy in self.best.values()]

    def records(self) -> list[UsageRecord]:
        """The records kept, by time."""
        return sorted(self.kept(), key=lambda r: r.timestamp)


@dataclass
class RangeRead:
    """What one read of (part of) a file found."""

    records: list[UsageRecord] = field(default_factory=list)  # one per request, its best copy
    skipped_lines: int = 0
    skips: list[tuple[int, str]] = field(default_factory=list)  # (offset, why), the first ones
    notices: int = 0  # <synthetic> / API error lines
    end_offset: int = 0  # just past the last line consumed
    pending_tail: bool = False  # an unterminated last line was left for a later read
    marks: tuple[bytes, bytes] | None = None  # the file's marks at end_offset, when asked for

    best: Deduplicator = field(default_factory=Deduplicator, repr=False)

    def skip(self, offset: int, why: str) -> None:
        self.skipped_lines += 1
        if len(self.skips) < MAX_SKIPS_NAMED:
            self.skips.append((offset, why[:200]))

    def decode_into(self, line, source: SourceFile, offset: int, decode: LineDecoder) -> None:
        """Decode one line and keep what it says."""
        try:
            record = decode(line, source, offset)
        except ValueError as exc:  # orjson's and msgspec's decode errors are ValueErrors
            self.skip(offset, str(exc) if isinstance(exc, InvalidLine) else f"not JSON ({exc})")
            return
        if record is NOTICE:
            self.notices += 1
        elif record is not None:
            self.best.add(record)

    def finish(self, source: SourceFile) -> RangeRead:
        """Build the records of the copies kept."""
        self.records = self.best.kept(source)
        self.best = Deduplicator()
        return self


_local = threading.local()


def _read_buffer(size: int) -> bytearray:
    """A reused read buffer of at least `size` bytes: pages already touched are not faulted
    in again for each chunk (a fresh 8 MiB bytes object per read doubles the system time of
    reading). It grows by powers of two as reads need, so that a hook reading a few new
    lines does not make (and fault in) 8 MiB: 4 ms of a budget check's 80."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) < size:
        buffer = _local.buffer = bytearray(1 << (size - 1).bit_length())
    return buffer


def _skip_rest_of_line(handle, chunk_size: int) -> None:
    """Read past the line the handle is inside, a piece at a time (it may be huge)."""
    while True:
        piece = handle.readline(chunk_size)
        if not piece or piece.endswith(b"\n"):
            return


def read_marks(handle, offset: int) -> tuple[bytes, bytes]:
    """The marks of an open file read to `offset`."""
    handle.seek(0)
    head = handle.read(MARK_HEAD_BYTES)
    start = max(offset - MARK_TAIL_BYTES, 0)
    handle.seek(start)
    return head, handle.read(offset - start)


def read_range(source: SourceFile, start: int = 0, *, end: int | None = None,
               final: bool = True, decode: LineDecoder = decode_line,
               chunk_size: int = CHUNK_SIZE, marks: bool = False) -> RangeRead:
    """Read the usage lines of the file from byte `start` on.

    One record per request: the best of its copies in the range (cmat.request.rank).
    With `end`, read only the lines that begin before `end` (a line cut by `start` belongs to
    the range before): ranges that tile a file read every line exactly once.
    With `final`, an unterminated last line is decoded too (and counted as skipped if it is
    cut short). Without it (a file still being written) that line is left for the next read
    and `end_offset` stops just before it.
    A line longer than MAX_LINE_BYTES is read past and counted as skipped.
    With `marks`, the file's marks at `end_offset` are read too (cheaper than opening it
    again).
    """
    result = RangeRead(end_offset=start)
    with open_regular(source.path) as handle:
        _read(result, handle, source, start, end, final, decode, chunk_size)
        if marks:
            result.marks = read_marks(handle, result.end_offset)
    return result.finish(source)


def _read(result: RangeRead, handle, source: SourceFile, start: int, end: int | None,
          final: bool, decode: LineDecoder, chunk_size: int) -> None:
    if start:
        handle.seek(start - 1)
        if handle.read(1) != b"\n":
            _skip_rest_of_line(handle, chunk_size)  # it began in the previous range
            start = handle.tell()
    # A chunk is read at a time, and no more than the range holds (as the file stands now:
    # a line still being written is read as it grows, as a long line is).
    known = (end if end is not None else os.fstat(handle.fileno()).st_size) - start
    limit = min(chunk_size, max(known + 1, SMALL_READ_BYTES))
    buffer = _read_buffer(limit)  # may be larger: no more than `limit` of it is used
    filled = 0  # bytes of buffer holding data
    base = start  # file offset of buffer[0]
    too_long = None  # where an over-long line began, while reading past it
    while end is None or base < end or too_long is not None:
        if filled == limit:  # one line longer than the buffer
            if filled < MAX_LINE_BYTES:
                limit *= 2
                if len(buffer) < limit:
                    buffer = bytearray(buffer) + bytearray(limit - len(buffer))
            else:
                too_long = base if too_long is None else too_long
                base += filled
                filled = 0
        with memoryview(buffer) as view:
            read = handle.readinto(view[filled:limit])
        if not read:
            break
        filled += read
        if too_long is not None:
            newline = buffer.find(b"\n", 0, filled)
            if newline < 0:
                continue
            result.skip(too_long, f"line longer than {MAX_LINE_BYTES >> 20} MiB")
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
                _read_lines(result, buffer, stop + 1, source, base, decode)
                result.end_offset = base + stop + 1
                return
        last_newline = buffer.rfind(b"\n", 0, filled)
        if last_newline < 0:
            continue
        _read_lines(result, buffer, last_newline + 1, source, base, decode)
        consumed = last_newline + 1
        buffer[:filled - consumed] = buffer[consumed:filled]
        filled -= consumed
        base += consumed
    result.end_offset = base
    if too_long is not None:  # the file ends inside an over-long line
        if final:
            result.skip(too_long, f"line longer than {MAX_LINE_BYTES >> 20} MiB")
            result.end_offset = base + filled
        else:
            result.end_offset = too_long
            result.pending_tail = True
        return
    tail = bytes(buffer[:filled])
    if tail.strip():
        if final:
            result.decode_into(tail, source, base, decode)
            result.end_offset = base + filled
        else:
            result.pending_tail = True
    elif tail:
        result.end_offset = base + filled


def _read_lines(result: RangeRead, buffer: bytearray, end: int, source: SourceFile,
                base: int, decode: LineDecoder) -> None:
    read_lines = getattr(decode, "read_lines", None)  # the compiled scanner (scanner.py)
    if read_lines is not None:
        read_lines(result, buffer, end, source, base)
        return
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
                result.decode_into(line, source, base + line_start, decode)
            position = line_end + 1
