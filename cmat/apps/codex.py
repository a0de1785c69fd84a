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

A rollout grows by a line per event: `read_from` reads on from where the last read stopped,
given what that read knew there (its carry, kept in the ledger beside the offset).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cmat.apps import dump_carry, load_carry, plausible, source_tag, text
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
    records, skipped, *_ = read_from(path, 0, None)
    return records, skipped


def resumes(path: Path) -> bool:
    """Whether a log can be read on from where a read stopped: a rollout grows by lines."""
    return True


def read_from(path: Path, offset: int, carry: bytes | None
              ) -> tuple[list[UsageRecord], int, int, int, bytes]:
    """The requests of a rollout from byte `offset` on, given `carry`, what the read that
    stopped there knew (from the rollout's first lines: whose session, where, which model;
    the totals of its last event): a rollout grows by a line per event, and reading it
    again from the start for each new request took a tenth of a second per 10 MB. Returns
    the records, how many lines were skipped as unreadable, the byte it read from (0
    without a usable carry: None, or one that is not what this function writes, and then
    the whole file is read), the offset just past the last complete line, and the carry to
    give with it."""
    import orjson

    state = _State.loads(carry) if offset else None
    if state is None:
        offset, state = 0, _State(_session_from_name(path))
    handle = open_untrusted(path)
    if handle is None:
        return [], 0, offset, offset, state.dumps()
    records: list[UsageRecord] = []
    skipped = 0
    loads, malformed = orjson.loads, orjson.JSONDecodeError
    with handle:
        handle.seek(offset)
        lines = _MarkedLines(handle, offset)
        for raw in lines:
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
                if total is None or total == state.previous:
                    continue  # no usage yet, or the same event written again
                last = _counts(info.get("last_token_usage"))
                if last is None:  # older rollouts: the difference of the totals
                    last = total if state.previous is None else tuple(
                        max(now - before, 0) for now, before in zip(total, state.previous))
                state.previous = total
                records.append(_record(state.lineage or Lineage(state.session, state.session),
                                       line.get("timestamp"), state.model, state.cwd,
                                       state.provider, total, last))
            elif kind == "session_meta":
                own = text(payload.get("id")) or text(payload.get("session_id"))
                if state.lineage is None:  # the file's own session
                    state.lineage = Lineage.of(own or state.session, payload)
                    state.session = state.lineage.session
                    state.cwd = text(payload.get("cwd")) or state.cwd
                    state.provider = text(payload.get("model_provider")) or state.provider
                elif own:  # a session it was forked from, its history replayed below
                    state.lineage.origin = own
            elif kind == "turn_context":
                state.model = text(payload.get("model")) or state.model
                state.cwd = text(payload.get("cwd")) or state.cwd
    kept, skipped = plausible(records, skipped)
    return kept, skipped, offset, lines.complete, state.dumps()


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


CARRY_FORMAT = "codex-rollout-1"  # what _State.dumps writes: another is read as none


@dataclass(slots=True)
class _State:
    """What a rollout's lines told a read so far: all that a read from where it stopped
    needs (the carry is its JSON, kept in the ledger beside the file's offset)."""

    session: str
    cwd: str | None = None
    provider: str = DEFAULT_PROVIDER
    model: str | None = None
    lineage: Lineage | None = None
    previous: tuple[int, ...] | None = None  # the last event's totals

    def dumps(self) -> bytes:
        lineage = self.lineage and [self.lineage.session, self.lineage.origin,
                                    self.lineage.agent, self.lineage.agent_id]
        return dump_carry(CARRY_FORMAT, self.session, self.cwd, self.provider, self.model,
                          lineage, self.previous)

    @classmethod
    def loads(cls, note) -> _State | None:
        """The state `dumps` wrote; None for anything else: the rollout is then read whole."""
        fields = load_carry(note, CARRY_FORMAT, 6)
        if fields is None:
            return None
        session, cwd, provider, model, lineage, previous = fields
        if not (_texts(session, provider) and _texts(cwd, model, none=True)):
            return None
        if lineage is not None:
            if not (lineage.__class__ is list and len(lineage) == 4
                    and _texts(*lineage[:3]) and _texts(lineage[3], none=True)):
                return None
            lineage = Lineage(*lineage)
        if previous is not None:
            if not (previous.__class__ is list and len(previous) == 4
                    and all(value.__class__ is int and value >= 0 for value in previous)):
                return None
            previous = tuple(previous)
        return cls(session, cwd, provider, model, lineage, previous)


def _texts(*values, none: bool = False) -> bool:
    return all(value.__class__ is str or (none and value is None) for value in values)


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


class _MarkedLines:
    """The complete lines of a file from where `handle` stands (`offset`) that hold one of
    MARKERS, in order, found in large chunks without splitting the others (None for a line
    longer than any real one, read past, as transcripts' are); a last line without its
    newline (Codex is still writing it) is left for the next read. `complete`: the offset
    just past the last complete line, where the next read starts (an over-long line still
    unfinished at the end is read past again then)."""

    def __init__(self, handle, offset: int):
        self.handle = handle
        self.complete = offset

    def __iter__(self) -> Iterator[bytes | None]:
        rest, too_long = b"", False
        at = self.complete  # the file offset of `data`'s first byte
        while chunk := self.handle.read(CHUNK_SIZE):
            data = rest + chunk
            start = 0
            if too_long:  # the over-long line ends in this chunk, or goes on
                start = data.find(b"\n") + 1
                if not start:
                    at += len(data)
                    rest = b""
                    continue
                too_long = False
            end = data.rfind(b"\n") + 1
            if end:
                self.complete = at + end
            line_end = start - 1  # where the last line yielded ends: its other markers are passed
            for match in MARKED.finditer(data, start, end):
                found = match.start()
                if found > line_end:
                    line_start = data.rfind(b"\n", start, found) + 1 or start
                    line_end = data.find(b"\n", found)
                    yield data[line_start:line_end]
            rest = data[end:]
            at += end
            if len(rest) > MAX_LINE_BYTES:
                yield None
                at += len(rest)
                rest, too_long = b"", True
