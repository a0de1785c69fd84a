"""Codex CLI: its rollout files, one per session, as UsageRecords.

Where: `$CODEX_HOME` (default `~/.codex`) `/sessions/YYYY/MM/DD/rollout-*.jsonl`, and
`/archived_sessions/`. What a rollout says of usage (checked against openai/codex,
codex-rs/protocol: `TokenUsage`, `TokenUsageInfo`):

- `session_meta` lines name the session (`payload.id`), its folder (`cwd`) and the provider
  (`model_provider`, "openai" unless configured otherwise);
- `turn_context` lines name the model of the turns that follow (`payload.model`);
- `event_msg` lines of `payload.type == "token_count"` carry `info.total_token_usage`, the
  session's cumulative totals, and `info.last_token_usage`, the request just made. Codex may
  write the same event twice: equal totals are one request, never two.

The counts are OpenAI's: `input_tokens` includes `cached_input_tokens` (and the newer
`cache_write_input_tokens`), `output_tokens` includes `reasoning_output_tokens`. So a request
is priced as input - cached - cache writes at the input price, cached at the cache-read
price, cache writes at the cache-write price, and output (reasoning in it) at the output price:
nothing is counted twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cmat.apps import plausible, source_tag, text
from cmat.transcripts.reader import CHUNK_SIZE, MAX_LINE_BYTES
from cmat.untrusted import open_untrusted
from cmat.usage import UsageRecord

APP = "codex"
DEFAULT_PROVIDER = "openai"
UNKNOWN_MODEL = "unknown"  # a rollout that never named its model: kept, and never priced
MARKERS = (b'"token_count"', b'"turn_context"', b'"session_meta"')
# One pass finds them all: searching for each in turn read the whole file three times.
MARKED = re.compile(b"|".join(re.escape(marker) for marker in MARKERS))


def home() -> Path:
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex").expanduser()


def folders() -> list[Path]:
    """Where Codex CLI keeps its rollouts: sessions, and archived sessions."""
    return [home() / "sessions", home() / "archived_sessions"]


def files() -> list[Path]:
    """Every rollout file of this user's Codex CLI."""
    return [path for folder in folders() if folder.is_dir()
            for path in sorted(folder.rglob("*.jsonl")) if path.is_file()]


def _counts(usage) -> tuple[int, int, int, int] | None:
    """(input, cached input, cache writes, output) of a usage object (a missing one 0), or
    None when one is not a count (Codex never writes null) or none is above 0."""
    if usage.__class__ is not dict:  # orjson gives dict and int, never a subclass
        return None
    get = usage.get  # spelled out: a loop over the names took a third of a request's time
    inputs, cached, writes, output = (get("input_tokens", 0), get("cached_input_tokens", 0),
                                      get("cache_write_input_tokens", 0), get("output_tokens", 0))
    if (inputs.__class__ is int and cached.__class__ is int and writes.__class__ is int
            and output.__class__ is int and min(inputs, cached, writes, output) >= 0
            and (inputs or cached or writes or output)):
        return inputs, cached, writes, output
    return None


def claims(path: Path, head: bytes) -> bool:
    """Whether a file (`head`: its first bytes) is a Codex rollout: its first line is the
    session's `session_meta`."""
    import orjson

    first = head.split(b"\n", 1)[0]
    try:
        line = orjson.loads(first)
    except orjson.JSONDecodeError:
        return path.name.startswith("rollout-") and b'"session_meta"' in first
    return isinstance(line, dict) and line.get("type") == "session_meta"


def _session_from_name(path: Path) -> str:
    # rollout-2025-10-01T10-00-00-<uuid>.jsonl: the uuid is the session's id
    stem = path.stem
    parts = stem.split("-")
    return "-".join(parts[-5:]) if len(parts) > 5 else stem


def read(path: Path) -> tuple[list[UsageRecord], int]:
    """The requests of one rollout file, and how many lines were skipped as unreadable."""
    import orjson

    handle = open_untrusted(path)
    if handle is None:
        return [], 0
    session, cwd, provider, model = _session_from_name(path), None, DEFAULT_PROVIDER, None
    lineage: Lineage | None = None
    records: list[UsageRecord] = []
    skipped = 0
    previous: tuple[int, ...] | None = None
    loads, malformed = orjson.loads, orjson.JSONDecodeError
    with handle:
        for raw in _marked_lines(handle):
            if raw is None:
                skipped += 1
                continue
            try:
                line = loads(raw)
            except malformed:
                skipped += 1
                continue
            if line.__class__ is not dict:  # orjson gives dict, never a subclass
                continue
            payload, kind = line.get("payload"), line.get("type")
            if payload.__class__ is not dict:
                continue
            # Nearly every marked line is a token count: it is asked about first.
            if kind == "event_msg" and payload.get("type") == "token_count":
                info = payload.get("info")
                if info.__class__ is not dict:
                    continue
                total = _counts(info.get("total_token_usage"))
                if total is None or total == previous:
                    continue  # no usage yet, or the same event written again
                last = _counts(info.get("last_token_usage"))
                if last is None:  # older rollouts: the difference of the totals
                    last = total if previous is None else tuple(
                        max(now - before, 0) for now, before in zip(total, previous))
                previous = total
                records.append(_record(lineage or Lineage(session, session),
                                       line.get("timestamp"), model, cwd, provider, total,
                                       last))
            elif kind == "session_meta":
                own = text(payload.get("id")) or text(payload.get("session_id"))
                if lineage is None:  # the file's own session
                    lineage = Lineage.of(own or session, payload)
                    session = lineage.session
                    cwd = text(payload.get("cwd")) or cwd
                    provider = text(payload.get("model_provider")) or provider
                elif own:  # a session it was forked from, its history replayed below
                    lineage.origin = own
            elif kind == "turn_context":
                model = text(payload.get("model")) or model
                cwd = text(payload.get("cwd")) or cwd
    return plausible(records, skipped)


@dataclass(slots=True)
class Lineage:
    """Whose requests a rollout holds. A forked session's rollout (`forked_from_id`), or a
    subagent's (`source.subagent.thread_spawn.parent_thread_id`), starts with the history of
    the session it came from replayed, token counts included, and its own counts go on from
    that session's totals. So every request is named by the first session of its line
    (`origin`) and its cumulative totals: a replayed event gets the name it has in the
    original's rollout, and counts once."""

    session: str  # whose session the requests are (a subagent's: its parent's)
    origin: str  # the session the line started from
    agent: str = "main"
    agent_id: str | None = None

    @classmethod
    def of(cls, own: str, meta: dict) -> Lineage:
        source = meta.get("source")
        spawn = source.get("subagent") if isinstance(source, dict) else None
        spawn = spawn.get("thread_spawn") if isinstance(spawn, dict) else None
        parent = text(spawn.get("parent_thread_id")) if isinstance(spawn, dict) else None
        if parent is not None:
            return cls(parent, parent, text(spawn.get("agent_role")) or "subagent", own)
        return cls(own, text(meta.get("forked_from_id")) or own)


def _record(lineage: Lineage, timestamp, model: str | None, cwd: str | None, provider: str,
            total: tuple[int, int, int, int], last: tuple[int, int, int, int]) -> UsageRecord:
    inputs, cached, writes, output = last
    # The cumulative totals name the request: a copy of the event gives the same id.
    message_id = f"codex:{lineage.origin}:{total[0]}:{total[1]}:{total[2]}:{total[3]}"
    # A subagent's copy of its parent's replayed history is a sidechain copy: the parent's
    # own copy of a request always stands over it (usage.rank).
    return UsageRecord(message_id, None, lineage.session, timestamp, model or UNKNOWN_MODEL,
                       max(inputs - cached - writes, 0), output, writes, 0, cached, 0, None,
                       None, lineage.agent_id is not None, lineage.agent, lineage.agent_id,
                       cwd, source_tag(APP, provider))


def _marked_lines(handle) -> Iterator[bytes | None]:
    """The complete lines of a file that hold one of MARKERS, in order, found in large
    chunks without splitting the others (None for a line longer than any real one, read
    past, as transcripts' are); a last line without its newline (Codex is still writing it)
    is left for the next read."""
    rest, too_long = b"", False
    while chunk := handle.read(CHUNK_SIZE):
        data = rest + chunk
        start = 0
        if too_long:  # the over-long line ends in this chunk, or goes on
            start = data.find(b"\n") + 1
            if not start:
                rest = b""
                continue
            too_long = False
        end = data.rfind(b"\n") + 1
        line_end = start - 1  # where the last line yielded ends: its other markers are passed
        for match in MARKED.finditer(data, start, end):
            at = match.start()
            if at > line_end:
                line_start = data.rfind(b"\n", start, at) + 1 or start
                line_end = data.find(b"\n", at)
                yield data[line_start:line_end]
        rest = data[end:]
        if len(rest) > MAX_LINE_BYTES:
            yield None
            rest, too_long = b"", True
