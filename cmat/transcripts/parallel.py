"""Reading many byte ranges at once: in forked worker processes on every core, when a read is
large enough to be worth it.

Work is cut into segments (byte ranges of at most MAX_SEGMENT_BYTES, so what a worker holds
does not grow with a file), read in batches, and yielded in order as they are ready, so that
a caller can store them without holding them all. What is done to each segment's records
where they are read (pricing them, packing them for the ledger) is given with the work.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from cmat import labels
from cmat.transcripts.decode import LineDecoder, decode_line
from cmat.transcripts.files import SourceFile
from cmat.transcripts.reader import CHUNK_SIZE, read_range

PARALLEL_MIN_BYTES = 8 * 1024 * 1024  # below this a single process is faster than forking
MAX_WORKERS = 4
MAX_SEGMENT_BYTES = 32 * 1024 * 1024
# Without the compiled scanner, reads this large decode with msgspec (fastdecode.py).
FAST_DECODE_MIN_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class ReadOptions:
    """How transcripts are read. The defaults choose by the size of the read; tests and
    benchmarks choose for themselves."""

    workers: int | None = None  # None: by size (parallel_workers)
    fast_decode: bool | None = None  # None: msgspec for large reads without the scanner
    compiled: bool | None = None  # None: the compiled scanner where it was built
    chunk_size: int = CHUNK_SIZE
    max_segment_bytes: int = MAX_SEGMENT_BYTES
    pack_rows: bool = True  # ingest: workers hand rows over as a serialized SQLite database

    def workers_for(self, total_bytes: int) -> int:
        return self.workers if self.workers is not None else parallel_workers(total_bytes)

    def decoder_for(self, total_bytes: int) -> LineDecoder:
        """The compiled scanner, where built, reads in front of a line decoder, which takes
        only the lines it leaves undecided (none in 1.2 GB of generated history). msgspec's
        import (9 ms) pays only for a large read without the scanner."""
        from cmat.transcripts import scanner

        compiled = scanner.available() if self.compiled is None else self.compiled
        if compiled and not scanner.built():
            raise RuntimeError("the compiled scanner was not built at install")
        fast = self.fast_decode if self.fast_decode is not None \
            else not compiled and total_bytes >= FAST_DECODE_MIN_BYTES
        decode = decode_line
        if fast:
            from cmat.transcripts.fastdecode import decode_line as decode
        return scanner.ScanningDecoder(decode) if compiled else decode


@dataclass(frozen=True)
class Segment:
    """A byte range of one file: the unit of work of a parallel read.

    `final` as in `read_range`: False for the open end of a file that may still be growing.
    """

    source: SourceFile
    start: int
    end: int | None
    final: bool = True
    length: int = 0  # bytes to read, as planned (an open end may have grown since)


@dataclass
class SegmentResult:
    records: list  # deduplicated within the segment; converted when the read asked for it
    requests: int  # how many (the records themselves may travel packed: see Batch)
    skipped_lines: int
    skips: list[tuple[int, str]]  # (offset, why) of the first skipped lines
    notices: int
    end_offset: int
    pending_tail: bool  # stopped before an unfinished last line (see read_range)
    marks: tuple[bytes, bytes] | None  # the file's at end_offset, for its last segment


@dataclass
class Batch:
    """Consecutive segments read together, and what was read in each.

    `packed`, when the work asked for it, holds the converted records of all the batch's
    segments (whose own `records` are then empty): one object to send between processes
    instead of many small ones.
    """

    segments: list[Segment]
    results: list[SegmentResult]
    packed: object = None


@dataclass(frozen=True)
class SegmentWork:
    """How segments are read, and what is done to their records where they are read."""

    decode: LineDecoder = decode_line
    chunk_size: int = CHUNK_SIZE
    convert: Callable[[list], list] | None = None
    pack: Callable[[list[list]], object] | None = None


def plan_segments(work: list[tuple[SourceFile, int, int]], pieces: int, final: bool = True,
                  max_segment_bytes: int = MAX_SEGMENT_BYTES) -> list[Segment]:
    """Cut (source, start, size) ranges into at least `pieces` segments of similar size, none
    over `max_segment_bytes`; small ranges stay whole. A file's last segment is open-ended,
    `final` as given."""
    total = sum(max(size - start, 0) for _, start, size in work)
    target = max(min(total // max(pieces, 1), max_segment_bytes), 1)
    segments = []
    for source, start, size in work:
        length = max(size - start, 0)
        cuts = max(1, round(length / target))
        step = -(-length // cuts) if length else 0
        for index in range(cuts):
            last = index == cuts - 1
            segments.append(Segment(source, start + index * step,
                                    None if last else start + (index + 1) * step, final,
                                    length - index * step if last else step))
    return segments


def parallel_workers(total_bytes: int) -> int:
    cpus = labels.usable_cores()
    if total_bytes < PARALLEL_MIN_BYTES or cpus < 2 or sys.platform != "linux":
        return 1  # forking costs more than it saves on small reads; fork is Linux-only here
    return min(cpus, MAX_WORKERS)


def _read_segment(work: SegmentWork, segment: Segment) -> SegmentResult:
    read = read_range(segment.source.resolved(), segment.start, end=segment.end,
                      final=segment.final, decode=work.decode, chunk_size=work.chunk_size,
                      marks=segment.end is None)
    records = read.records  # one per request already
    return SegmentResult(work.convert(records) if work.convert else records, len(records),
                         read.skipped_lines, read.skips, read.notices, read.end_offset,
                         read.pending_tail, read.marks)


def _read_batch(work: SegmentWork, segments: list[Segment]) -> Batch:
    batch = Batch(segments, [_read_segment(work, segment) for segment in segments])
    if work.pack:
        batch.packed = work.pack([result.records for result in batch.results])
        for result in batch.results:
            result.records = []
    return batch


_TASK: Callable | None = None  # in a worker of forked_map: the function it applies


def _start_worker(parent: int, task: Callable) -> None:
    """A worker dies with the process that forked it: a read killed with SIGKILL leaves no
    worker behind holding its pipes (Linux; elsewhere workers exit when the pipe closes).
    `task` is kept for _run_task."""
    global _TASK
    _TASK = task
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)


def _run_task(item):
    return _TASK(item)


def forked_map(task: Callable, items: list, workers: int) -> Iterator:
    """task(item) for every item, in forked worker processes, yielded in order as they are
    ready. `task` (and what it holds: a catalog, a packer) reaches each worker by the fork,
    once, rather than pickled with every item: a reader's catalog took 2 ms to unpickle, for
    each of a first scan's 37 batches."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_start_worker, initargs=(os.getpid(), task)) as pool:
        yield from pool.map(_run_task, items)


def read_segments(segments: list[Segment], workers: int, work: SegmentWork,
                  also: Sequence = (), read_also: Callable | None = None) -> Iterator:
    """Read segments in order, in forked worker processes when `workers` > 1; batches are
    yielded as they are ready. `also`: other work for the same workers once the segments are
    handed out (another agent's logs, cmat.ingest), `read_also(item)` yielded for each after
    the batches: one pool, so that no worker waits for the last batch before starting it."""
    if workers <= 1 or len(segments) + len(also) <= 1:
        # Packing is how workers hand rows over: read here, the rows are used as they are.
        work = dataclasses.replace(work, pack=None)
        for segment in segments:
            yield _read_batch(work, [segment])
        yield from map(read_also, also)
        return
    items = [(False, batch) for batch in _batches(segments, workers)] + [
        (True, item) for item in also]
    yield from forked_map(functools.partial(_read_either, work, read_also), items, workers)


def _read_either(work: SegmentWork, read_also: Callable | None, item: tuple[bool, object]):
    other, value = item
    return read_also(value) if other else _read_batch(work, value)


def _batches(segments: list[Segment], workers: int) -> list[list[Segment]]:
    """Consecutive segments in batches of similar size (small files travel together): a 16th
    of a worker's share of the bytes, and towards the end a smaller share of what is left
    (down to an eighth of that): batches cut by count held 15 to 110 MB, and a worker left
    alone with a large last one kept the other core idle."""
    total = sum(segment.length for segment in segments)
    largest = total // (workers * 16)
    batches: list[list[Segment]] = []
    batch: list[Segment] = []
    size, left = 0, total
    for segment in segments:
        batch.append(segment)
        size += segment.length
        if size >= max(min(largest, left // (workers * 4)), largest // 8):
            batches.append(batch)
            left -= size
            batch, size = [], 0
    return batches + [batch] * bool(batch)
