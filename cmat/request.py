"""What one Claude Code usage line says, and what makes it a request: the rules every reader
applies (the scan's decoders, the other agents' readers, the status line's quick reading of a
session's new lines). The standard library alone, and little of it: the status line imports
this on every refresh.

- only `assistant` lines with `message.usage` carry usage;
- `<synthetic>` model and `isApiErrorMessage` lines are local notices and cost nothing;
- a line whose usage has values no real request has (a count that is negative, not whole, or
  too large; a list where an id belongs; a timestamp that is not one) is invalid: skipped,
  counted and named, never stored (InvalidLine).

Of the copies of one request Claude Code may write (streamed snapshots, resumed sessions, side
questions' replays), the one that counts is the first by `rank`: a real response before a
sidechain replay, then the largest token total (the final snapshot).
"""

from __future__ import annotations

from datetime import UTC, datetime

MAX_TOKENS = 2 ** 53  # far above any real request; every sum stays exact as a float and in SQLite
SIDECHAIN_PENALTY = 10 ** 15  # more tokens than any request has: a replay never outranks
# The moments a request can have happened at: a timestamp outside them (year 9999, say) is a
# bad value like any other, skipped where it is read; no report or period has to bear it.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100
MAIN_AGENT = "main"
UNKNOWN_SUBAGENT = "subagent"
# In every usage object, and found 1.5x faster than "usage": a line without it is not decoded.
USAGE_MARKER = b'"output_tokens"'
_parse_time = datetime.fromisoformat


class InvalidLine(ValueError):
    """A usage line whose fields do not have the types and ranges of a real request."""


class Notice:
    """What a decoder returns for a local notice (`<synthetic>`, API errors): no cost."""


NOTICE = Notice()


def rank(is_sidechain: bool, total_tokens: int) -> int:
    """How one copy of a request compares with another: the higher wins."""
    return (0 if is_sidechain else SIDECHAIN_PENALTY) + total_tokens


def request_key(message_id, request_id, path, offset: int) -> str:
    """What tells the copies of one request apart from other requests: its message id, else
    its request id, else where its line is (a line with neither is a request of its own)."""
    return message_id or request_id or f"{path}:{offset}"


def _count(value) -> int:
    if value.__class__ is int:
        return value  # the range is checked once, in checked_cache
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


def check_request(timestamp, counts: tuple[int, ...]) -> float:
    """Raise InvalidLine unless the counts and the time are those a real request can have:
    what every agent's reader checks (cmat.apps too), so that no line of any log can carry a
    value the ledger cannot store or a cost below zero. Returns the time's unix seconds."""
    if min(counts) < 0 or max(counts) >= MAX_TOKENS:
        raise InvalidLine(f"token count out of range: {counts}")
    return check_time(timestamp)


def check_time(timestamp) -> float:
    """The time half of check_request (a decoder that checked the counts itself needs only
    this): the unix seconds of a timestamp a request can have, as timestamp_seconds reads
    it (a reader that keeps them spares the ledger's rows a second parse)."""
    if timestamp.__class__ is not str:
        raise InvalidLine(f"timestamp is not a string: {timestamp!r:.40}")
    try:
        moment = _parse_time(timestamp)
    except ValueError:
        raise InvalidLine(f"timestamp is not ISO 8601: {timestamp!r:.40}") from None
    if not EARLIEST_YEAR <= moment.year < LATEST_YEAR:  # year 9999 would break every report
        raise InvalidLine(f"timestamp out of range (2000-2100): {timestamp!r:.40}")
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def checked_cache(timestamp, input_tokens: int, output_tokens: int, cache_total: int,
                  split: tuple[int, int] | None, cache_read: int, searches: int
                  ) -> tuple[int, int, float]:
    """(all cache writes, their 1-hour share, the time's unix seconds) of a line whose values
    were checked (raises InvalidLine otherwise): cache_writes, once check_request passed."""
    seconds = check_request(timestamp, (input_tokens, output_tokens, cache_total, cache_read,
                                        searches, *(split or ())))
    return (*cache_writes(cache_total, split), seconds)


def cache_writes(cache_total: int, split: tuple[int, int] | None) -> tuple[int, int]:
    """(all cache writes, their 1-hour share) of checked counts. `split`: the (5-minute,
    1-hour) writes, when the line breaks them down; the total is theirs when the line gives
    none, and the 1-hour share never above it."""
    if split is None:
        return cache_total, 0
    if not cache_total:
        cache_total = split[0] + split[1]
    return cache_total, min(split[1], cache_total)


def claude_usage(obj) -> tuple | Notice | None:
    """A line decoded as plain JSON -> its usage fields, in `cmat.transcripts.decode.
    usage_record`'s order (message_id, request_id, session_id, timestamp, model, input,
    output, cache_total, split, cache_read, searches, speed, geo, is_sidechain, agent_id,
    cwd); NOTICE for a local notice; None for a line that carries no usage."""
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
    return (
        _text(message.get("id"), "message.id"), _text(obj.get("requestId"), "requestId"),
        _text(obj.get("sessionId"), "sessionId"), obj.get("timestamp"), model,
        _count(get("input_tokens")), _count(get("output_tokens")),
        _count(get("cache_creation_input_tokens")),
        (_count(split.get("ephemeral_5m_input_tokens")),
         _count(split.get("ephemeral_1h_input_tokens"))) if split.__class__ is dict else None,
        _count(get("cache_read_input_tokens")),
        _count(server_tools.get("web_search_requests")) if server_tools.__class__ is dict
        else 0,
        _text(get("speed"), "usage.speed"), _text(get("inference_geo"), "usage.inference_geo"),
        obj.get("isSidechain") is True, _text(obj.get("agentId"), "agentId"),
        _text(obj.get("cwd"), "cwd"))


def timestamp_seconds(iso: str) -> float:
    """Unix seconds of Claude Code's `2026-01-02T10:00:00.123Z` timestamps (UTC when no offset
    is given; CMAT's `...+00:00Z`, an offset and a Z, read as the offset; 0 if unreadable)."""
    if isinstance(iso, str) and iso.endswith("Z") and ("+" in iso[-8:-1] or "-" in iso[-8:-1]):
        iso = iso[:-1]
    try:
        moment = datetime.fromisoformat(iso)
    except (ValueError, TypeError):
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
