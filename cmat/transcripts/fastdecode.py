"""Typed decoding of usage lines with msgspec, for large reads.

msgspec decodes a line straight into the few fields cmat needs and skips the rest (message
content, tool input) without building Python objects for it, checking the counts' ranges as
it goes: twice as fast as decoding the whole line. A line whose fields do not have the usual
types or ranges (a count written as 5.0, a null where an object belongs, a negative count) is
decoded again with `decode.decode_line`, whose rules are the reference, so both paths give
the same records.

Most usage lines are copies of a request written again (a response's streamed snapshots):
a line checked here becomes a Candidate, its key and rank known, and the record of a request
is built only for the copy that wins (`reader.RangeRead`).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import DecodeError, Meta, Struct
from msgspec.json import Decoder

from cmat.request import (
    MAIN_AGENT,
    MAX_TOKENS,
    NOTICE,
    UNKNOWN_SUBAGENT,
    cache_writes,
    check_time,
    is_notice,
    rank,
    request_key,
)
from cmat.transcripts.decode import Decoded
from cmat.transcripts.decode import decode_line as lenient_decode_line
from cmat.transcripts.files import SourceFile
from cmat.usage import UsageRecord

Count = Annotated[int, Meta(ge=0, lt=MAX_TOKENS)]  # cmat.request.check_request's range


class _CacheCreation(Struct, gc=False):
    ephemeral_5m_input_tokens: Count = 0
    ephemeral_1h_input_tokens: Count = 0


class _ServerToolUse(Struct, gc=False):
    web_search_requests: Count = 0


class _Usage(Struct, gc=False):
    input_tokens: Count = 0
    output_tokens: Count = 0
    cache_creation_input_tokens: Count = 0
    cache_read_input_tokens: Count = 0
    cache_creation: _CacheCreation | None = None
    server_tool_use: _ServerToolUse | None = None
    speed: str | None = None
    inference_geo: str | None = None

    def cache_writes(self) -> tuple[int, int]:
        """(all cache writes, their 1-hour share): cmat.request.cache_writes."""
        split = self.cache_creation
        return cache_writes(self.cache_creation_input_tokens, None if split is None else (
            split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens))


class _Message(Struct, gc=False):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None


class _Line(Struct, gc=False):
    type: str | None = None
    message: _Message | None = None
    isSidechain: bool = False
    isApiErrorMessage: bool = False
    requestId: str | None = None
    sessionId: str | None = None
    timestamp: str | None = None
    agentId: str | None = None
    cwd: str | None = None

    def record(self, source: SourceFile, key: str, seconds: float) -> UsageRecord:
        """The record of a line decode_line passed (its values checked, its time's unix
        seconds worked out by the check)."""
        message = self.message
        usage = message.usage
        cache_total, cache_1h = usage.cache_writes()
        server_tools = usage.server_tool_use
        return UsageRecord(
            key, self.requestId, self.sessionId, self.timestamp, message.model or "unknown",
            usage.input_tokens, usage.output_tokens, cache_total, cache_1h,
            usage.cache_read_input_tokens,
            0 if server_tools is None else server_tools.web_search_requests,
            usage.speed, usage.inference_geo, self.isSidechain,
            source.agent or (UNKNOWN_SUBAGENT if self.isSidechain else MAIN_AGENT),
            self.agentId or source.agent_id, self.cwd, seconds=seconds)


def _build(data: tuple[_Line, float], source: SourceFile, key: str) -> UsageRecord:
    """The record of a Candidate whose data is (the line, its time's unix seconds)."""
    line, seconds = data
    return line.record(source, key, seconds)


_decode = Decoder(_Line).decode


def decode_line(line, source: SourceFile, offset: int) -> Decoded:
    """As `decode.decode_line`, faster; a checked line comes back as a Candidate."""
    try:
        parsed = _decode(line)
    except (DecodeError, RecursionError):  # damaged, unusual types or ranges, or nested too
        # deeply: the reference decoder decides
        return lenient_decode_line(line, source, offset)
    message = parsed.message
    if parsed.type != "assistant" or message is None:
        return None
    usage = message.usage
    if usage is None:
        return None
    if is_notice(message.model, parsed.isApiErrorMessage):
        return NOTICE
    seconds = check_time(parsed.timestamp)
    return (request_key(message.id, parsed.requestId, source.path, offset),
            rank(parsed.isSidechain, usage.input_tokens + usage.output_tokens
                 + usage.cache_writes()[0] + usage.cache_read_input_tokens),
            _build, (parsed, seconds))
