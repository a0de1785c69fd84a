"""One transcript line -> the usage record of one API request (or a notice, or nothing).

Rules (see docs/pricing.md):
- only `assistant` lines with `message.usage` carry usage;
- `<synthetic>` model and `isApiErrorMessage` lines are local notices and cost nothing;
- a line whose usage has values no real request has (a count that is negative, not whole, or
  too large; a list where an id belongs; a timestamp that is not one) is invalid: skipped,
  counted and named, never stored (InvalidLine).

This decoder, on the standard library's and orjson's JSON, is the reference; fastdecode.py
decodes large reads faster and hands any line it finds unusual back to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

import orjson

from cmat.transcripts.files import SourceFile
from cmat.usage import EARLIEST_YEAR, LATEST_YEAR, MAIN_AGENT, UNKNOWN_SUBAGENT, UsageRecord

MAX_TOKENS = 2 ** 53  # far above any real request; every sum stays exact as a float and in SQLite
_parse_time = datetime.fromisoformat


class InvalidLine(ValueError):
    """A usage line whose fields do not have the types and ranges of a real request."""


class Notice:
    """What a decoder returns for a local notice (`<synthetic>`, API errors): no cost."""


NOTICE = Notice()
Decoded = UsageRecord | Notice | None  # None: a line that carries no usage at all
LineDecoder = Callable[[object, SourceFile, int], Decoded]


def _count(value) -> int:
    if value.__class__ is int:
        return value  # the range is checked once, in usage_record
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


def check_request(timestamp, counts: tuple[int, ...]) -> None:
    """Raise InvalidLine unless the counts and the time are those a real request can have:
    what every agent's reader checks (cmat.apps too), so that no line of any log can carry a
    value the ledger cannot store or a cost below zero."""
    if min(counts) < 0 or max(counts) >= MAX_TOKENS:
        raise InvalidLine(f"token count out of range: {counts}")
    if timestamp.__class__ is not str:
        raise InvalidLine(f"timestamp is not a string: {timestamp!r:.40}")
    try:
        moment = _parse_time(timestamp)
    except ValueError:
        raise InvalidLine(f"timestamp is not ISO 8601: {timestamp!r:.40}") from None
    if not EARLIEST_YEAR <= moment.year < LATEST_YEAR:  # year 9999 would break every report
        raise InvalidLine(f"timestamp out of range (2000-2100): {timestamp!r:.40}")


def usage_record(source: SourceFile, offset: int, *, message_id, request_id, session_id,
                 timestamp, model, input_tokens: int, output_tokens: int, cache_total: int,
                 split: tuple[int, int] | None, cache_read: int, searches: int, speed, geo,
                 is_sidechain: bool, agent_id, cwd) -> UsageRecord:
    """The record of one usage line, from its values however they were decoded.

    `split`: the (5-minute, 1-hour) cache writes, when the line breaks them down. Strings and
    whole numbers are typed by the decoder; the ranges and the timestamp are checked here, so
    that no line can carry a value the ledger cannot store or a cost below zero.
    """
    check_request(timestamp, (input_tokens, output_tokens, cache_total, cache_read, searches,
                              *(split or ())))
    cache_1h = 0
    if split is not None:
        cache_1h = split[1]
        if not cache_total:
            cache_total = split[0] + cache_1h
        if cache_1h > cache_total:
            cache_1h = cache_total
    return UsageRecord(
        message_id or request_id or f"{source.path}:{offset}", request_id, session_id,
        timestamp, model, input_tokens, output_tokens, cache_total, cache_1h, cache_read,
        searches, speed, geo, is_sidechain,
        source.agent or (UNKNOWN_SUBAGENT if is_sidechain else MAIN_AGENT),
        agent_id or source.agent_id, cwd)


def record_from_line(obj, source: SourceFile, offset: int) -> Decoded:
    """The usage record of a line decoded as plain JSON (see module docstring)."""
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
        return NOTICE
    get = usage.get
    split = get("cache_creation")
    server_tools = get("server_tool_use")
    return usage_record(
        source, offset, message_id=_text(message.get("id"), "message.id"),
        request_id=_text(obj.get("requestId"), "requestId"),
        session_id=_text(obj.get("sessionId"), "sessionId"), timestamp=obj.get("timestamp"),
        model=model, input_tokens=_count(get("input_tokens")),
        output_tokens=_count(get("output_tokens")),
        cache_total=_count(get("cache_creation_input_tokens")),
        split=(_count(split.get("ephemeral_5m_input_tokens")),
               _count(split.get("ephemeral_1h_input_tokens"))) if split.__class__ is dict
        else None,
        cache_read=_count(get("cache_read_input_tokens")),
        searches=_count(server_tools.get("web_search_requests"))
        if server_tools.__class__ is dict else 0,
        speed=_text(get("speed"), "usage.speed"),
        geo=_text(get("inference_geo"), "usage.inference_geo"),
        is_sidechain=obj.get("isSidechain") is True, agent_id=_text(obj.get("agentId"), "agentId"),
        cwd=_text(obj.get("cwd"), "cwd"))


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
