"""One transcript line -> the usage record of one API request (or a notice, or nothing), by
the rules of cmat.request.

This decoder, on the standard library's and orjson's JSON, is the reference; fastdecode.py
decodes large reads faster and hands any line it finds unusual back to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import orjson

from cmat.request import (
    MAIN_AGENT,
    UNKNOWN_SUBAGENT,
    Notice,
    cache_writes,
    checked_cache,
    claude_usage,
    request_key,
)
from cmat.transcripts.files import SourceFile
from cmat.usage import UsageRecord

# A checked line whose record is built only if it is the copy of its request that wins:
# (the request's key, its rank, build, data); the record is build(data, source, key).
Candidate = tuple[str, int, Callable[[object, SourceFile, str], UsageRecord], object]
# None: a line that carries no usage at all.
Decoded = UsageRecord | Candidate | Notice | None
LineDecoder = Callable[[object, SourceFile, int], Decoded]


def usage_record(source: SourceFile, offset: int, message_id, request_id, session_id,
                 timestamp, model, input_tokens: int, output_tokens: int, cache_total: int,
                 split: tuple[int, int] | None, cache_read: int, searches: int, speed, geo,
                 is_sidechain: bool, agent_id, cwd, seconds: float | None = None, *,
                 checked: bool = False) -> UsageRecord:
    """The record of one usage line, from its values however they were decoded (in
    cmat.request.claude_usage's order; `seconds`: the timestamp's unix seconds, where the
    decoder worked them out). Strings and whole numbers are typed by the decoder; the ranges
    and the timestamp are checked here (cmat.request.checked_cache, which gives the seconds),
    unless the decoder already did (`checked`)."""
    if checked:
        cache_total, cache_1h = cache_writes(cache_total, split)
    else:
        cache_total, cache_1h, seconds = checked_cache(timestamp, input_tokens, output_tokens,
                                                       cache_total, split, cache_read, searches)
    return UsageRecord(
        request_key(message_id, request_id, source.path, offset), request_id, session_id,
        timestamp, model, input_tokens, output_tokens, cache_total, cache_1h, cache_read,
        searches, speed, geo, is_sidechain,
        source.agent or (UNKNOWN_SUBAGENT if is_sidechain else MAIN_AGENT),
        agent_id or source.agent_id, cwd, seconds=seconds)


def record_from_line(obj, source: SourceFile, offset: int) -> Decoded:
    """The usage record of a line decoded as plain JSON (cmat.request.claude_usage)."""
    fields = claude_usage(obj)
    if fields.__class__ is not tuple:
        return fields
    return usage_record(source, offset, *fields)


def decode_line(line, source: SourceFile, offset: int) -> Decoded:
    """Decode one line (see record_from_line); raises ValueError if it is not JSON at all.

    Claude Code writes strings cut inside an emoji as a lone surrogate escape (`\\ud83d`),
    and orjson rejects those; the standard library's decoder takes them, and any invalid
    UTF-8, so that such a line's usage is not lost.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            obj = json.loads(bytes(line).decode("utf-8", "replace"))
        except RecursionError:
            raise ValueError("nested too deeply") from None
    return record_from_line(obj, source, offset)
