"""A session's usage, read whole from its transcripts (main and subagents), without the
ledger: what `cmat costs session` prices. Everything that records goes through the ledger's
incremental import instead (cmat.ingest)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cmat.transcripts.files import (
    SourceFile,
    check_transcript,
    first_session_id,
    session_sources,
)
from cmat.transcripts.parallel import (
    ReadOptions,
    SegmentWork,
    plan_segments,
    read_segments,
)
from cmat.transcripts.reader import Deduplicator
from cmat.usage import UsageRecord


@dataclass
class SessionUsage:
    """The deduplicated usage of one session and the files it came from."""

    session_id: str
    records: list[UsageRecord]
    files: list[Path]
    skipped_lines: int
    notices: int

    @property
    def started(self) -> str | None:
        return self.records[0].timestamp if self.records else None

    @property
    def ended(self) -> str | None:
        return self.records[-1].timestamp if self.records else None


def read_sources(session_id: str, sources: list[SourceFile],
                 options: ReadOptions = ReadOptions()) -> SessionUsage:
    """The deduplicated usage of `sources`, read whole."""
    work = [(source, 0, _size(source.path)) for source in sources]
    total = sum(size for _, _, size in work)
    workers = options.workers_for(total)
    segments = plan_segments(work, workers * 2 if workers > 1 else 1,
                             max_segment_bytes=options.max_segment_bytes)
    dedup = Deduplicator()
    skipped = notices = 0
    reads = read_segments(segments, workers,
                          SegmentWork(options.decoder_for(total), options.chunk_size))
    for batch in reads:
        for result in batch.results:
            skipped += result.skipped_lines
            notices += result.notices
            for record in result.records:
                dedup.add(record)
    return SessionUsage(session_id, dedup.records(), [s.path for s in sources], skipped,
                        notices)


def read_session(transcript: str | os.PathLike, session_id: str | None = None,
                 include_subagents: bool = True,
                 options: ReadOptions = ReadOptions()) -> SessionUsage:
    """Every API request of the session whose main transcript is `transcript`."""
    path = Path(transcript)
    check_transcript(path)  # a clear error for anything that is not a transcript
    session_id = session_id or first_session_id(path) or path.stem
    sources = session_sources(path, session_id) if include_subagents else [SourceFile(path)]
    return read_sources(session_id, sources, options)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # read_range reports the problem
