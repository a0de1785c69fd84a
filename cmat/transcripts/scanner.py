"""The compiled scanner (_scan.c), where it was built: reads the usage lines of a chunk in C
and keeps the best copy of each request there.

A pure-Python path stays beside it and gives the same records (tests/test_scanner.py checks
both on every fixture and on fuzzed lines): where the package was installed without a C
compiler, or with `CMAT_PURE_PYTHON=1`, the line decoder reads alone
(`ReadOptions.decoder_for`), and reader.py finds and decodes lines itself. What the scanner
is not sure of comes back to Python: a line it leaves undecided goes to the decoder it was
given, whose rules are the reference, and a usage line whose key or time it cannot settle is
checked here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cmat.request import (
    SIDECHAIN_PENALTY,
    USAGE_MARKER,
    InvalidLine,
    cache_writes,
    check_time,
    rank,
    request_key,
)
from cmat.transcripts.decode import LineDecoder, usage_record
from cmat.transcripts.files import SourceFile

try:
    from cmat.transcripts._scan import scan as _scan
except ImportError:  # installed without a C compiler: the pure-Python path
    _scan = None

_UNDECIDED, _NOTICE = 0, 2  # the scanner's verdicts besides a usage line's data


def built() -> bool:
    """Whether the compiled scanner was built at install."""
    return _scan is not None


def available() -> bool:
    """Whether the compiled scanner was built, and is not turned off."""
    return built() and os.environ.get("CMAT_PURE_PYTHON") != "1"


def build_record(data: tuple, source: SourceFile, _key: str):
    """The record of a Candidate whose data is (offset, *cmat.request.claude_usage's
    fields, the time's unix seconds or None): what the scanner's candidates are built by.
    Their counts were range-checked by the scanner, their time by it or by `_candidate`."""
    return usage_record(source, *data, checked=True)


@dataclass(frozen=True)
class ScanningDecoder:
    """A line decoder that reads whole chunks with the compiled scanner: `decode` takes the
    lines the scanner leaves undecided, and a file's unterminated last line."""

    decode: LineDecoder

    def __call__(self, line, source: SourceFile, offset: int):
        return self.decode(line, source, offset)

    def read_lines(self, result, buffer, end: int, source: SourceFile, base: int) -> None:
        """Every usage line of buffer[:end] (which ends a line) into `result` (a RangeRead):
        the scanner stops at each line it leaves to Python, so all are kept in file order
        (the first of equal copies stays)."""
        position = 0
        while True:
            left = _scan(buffer, position, end, USAGE_MARKER, base, result.best.best,
                         build_record, SIDECHAIN_PENALTY)
            if left is None:
                return
            start, position, verdict = left
            position += 1
            if verdict.__class__ is tuple:
                try:
                    result.best.add(_candidate(verdict, source))
                except InvalidLine as exc:
                    result.skip(base + start, str(exc))
            elif verdict == _NOTICE:
                result.notices += 1
            else:
                with memoryview(buffer) as view, view[start:position - 1] as line:
                    result.decode_into(line, source, base + start, self.decode)


def _candidate(data: tuple, source: SourceFile) -> tuple:
    """The Candidate of a usage line the scanner read but left to Python (no id to key it
    by, or a time of an unusual shape): as fastdecode's, its data with the seconds of the
    time checked here."""
    offset, message_id, request_id, _, timestamp, _, input_tokens, output_tokens, \
        cache_total, split, cache_read, _, _, _, is_sidechain, _, _, _ = data
    data = (*data[:-1], check_time(timestamp))
    return (request_key(message_id, request_id, source.path, offset), rank(is_sidechain, input_tokens + output_tokens
                      + cache_writes(cache_total, split)[0] + cache_read),
            build_record, data)
