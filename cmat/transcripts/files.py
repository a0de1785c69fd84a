"""Transcript files: where Claude Code writes them, which belong to a session, and opening one
safely.

- Main session: `<config>/projects/<encoded cwd>/<sessionId>.jsonl`.
- Subagents (Claude Code 2.1+): `<sessionId>/subagents/agent-<agentId>.jsonl`, with the
  agent's type in `agent-<agentId>.meta.json`; in 2.0.x, sibling `agent-*.jsonl` files that
  carry the session's id; in 1.x, inline sidechain lines of the main file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import orjson

from cmat.errors import TranscriptError
from cmat.request import UNKNOWN_SUBAGENT
from cmat.untrusted import Unreadable, open_untrusted, read_untrusted

_SESSION_ID_RE = re.compile(rb'"sessionId"\s*:\s*"([^"]+)"')
HEAD_BYTES = 65536  # where a transcript's first session ids are looked for
META_LIMIT = 65536  # a subagent's .meta.json: a few fields


@dataclass
class SourceFile:
    """One transcript file and whose usage it holds."""

    path: Path
    agent: str | None = None  # None: decide per line (main, or inline sidechain subagent)
    agent_id: str | None = None
    type_unread: bool = False  # a subagent's, whose .meta.json is read by resolved()

    def resolved(self) -> SourceFile:
        """The source with its subagent's type read: read where the file is read (a scan's
        workers), not by the process that finds thousands of files."""
        return subagent_source(self.path) if self.type_unread else self


class SeenFile(NamedTuple):
    """A transcript file found on disk, with what `stat` says of it (a named tuple, as
    cmat.ledger.schema.FileState: one is made per file at every scan)."""

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int


def open_regular(path: Path):
    """The transcript for reading, through the one safe reader (cmat.untrusted): a FIFO would
    block a hook, a device such as /dev/zero never ends, another user's link is not ours."""
    try:
        handle = open_untrusted(path)
    except Unreadable as exc:
        raise TranscriptError(f"transcript {exc.message}", exc.hint) from None
    if handle is None:
        raise TranscriptError(f"transcript {path} does not exist")
    return handle


def check_transcript(path: Path) -> None:
    """Raise TranscriptError unless `path` is a readable regular file."""
    open_regular(path).close()


def check_claude_head(path: Path, head: bytes) -> None:
    """Raise TranscriptError when `path`, given by hand as a Claude Code transcript, plainly
    holds something else: the first line of its `head` is not a JSON object's braces, as
    every line Claude Code writes is (what is between them is left to the reader: a line
    whose text holds a cut emoji is still a request). An empty file, or one whose first line
    has not ended yet, is a session just begun."""
    first, ended, _ = head.lstrip().partition(b"\n")
    first = first.rstrip()
    if ended and not (len(first) >= 2 and first[:1] == b"{" and first[-1:] == b"}"):
        raise TranscriptError(
            f"{path} is not a Claude Code transcript (its first line is not a JSON object), "
            "nor another coding agent's log",
            "give a session's .jsonl under ~/.claude/projects, a Codex CLI rollout, a Gemini "
            "CLI chat, or OpenCode's opencode.db")


def _agent_type(meta_path: Path) -> str | None:
    try:
        meta = orjson.loads(read_untrusted(meta_path, META_LIMIT) or b"null")
    except (Unreadable, ValueError):
        return None
    agent_type = meta.get("agentType") if isinstance(meta, dict) else None
    return agent_type if isinstance(agent_type, str) and agent_type else None


def subagent_source(path: Path, agent_type: str | None = None) -> SourceFile:
    """A subagent transcript, its type from the argument or its `.meta.json`."""
    agent_id = path.stem.removeprefix("agent-")
    if agent_type is None:
        agent_type = _agent_type(path.with_name(path.stem + ".meta.json"))
    return SourceFile(path, agent_type or UNKNOWN_SUBAGENT, agent_id)


def source_for(path: str) -> SourceFile:
    """How to read a transcript found on disk: a subagent's by its place and name (its type
    left for `SourceFile.resolved`)."""
    file = Path(path)
    if file.parent.name == "subagents" or file.name.startswith("agent-"):
        return SourceFile(file, type_unread=True)
    return SourceFile(file)


def session_ids_in(path: Path) -> set[str]:
    """The `sessionId`s on the first lines of a transcript (reads HEAD_BYTES at most)."""
    head = _head(path)
    return {match.decode("utf-8", "replace") for match in _SESSION_ID_RE.findall(head)}


def first_session_id(path: Path) -> str | None:
    """The first `sessionId` of a transcript (reads HEAD_BYTES at most)."""
    match = _SESSION_ID_RE.search(_head(path))
    return match.group(1).decode("utf-8", "replace") if match else None


def _head(path: Path) -> bytes:
    try:
        handle = open_untrusted(path)
    except Unreadable:
        return b""
    if handle is None:
        return b""
    with handle:
        return handle.read(HEAD_BYTES)


def session_sources(transcript: Path, session_id: str) -> list[SourceFile]:
    """The main transcript and every subagent transcript that belongs to its session."""
    sources = [SourceFile(transcript)]
    seen = {transcript.resolve()}
    folders = {transcript.parent / transcript.stem, transcript.parent / session_id}
    for folder in sorted(folders):
        subagents = folder / "subagents"
        if subagents.is_dir():
            for path in sorted(subagents.glob("agent-*.jsonl")):
                if path.resolve() not in seen and path.is_file():
                    seen.add(path.resolve())
                    sources.append(subagent_source(path))
    for path in sorted(transcript.parent.glob("agent-*.jsonl")):  # Claude Code 2.0.x layout
        if path.resolve() not in seen and path.is_file() and first_session_id(path) == session_id:
            seen.add(path.resolve())
            sources.append(subagent_source(path))
    return sources


def discover(roots: list[Path]) -> dict[str, SeenFile]:
    """Every `*.jsonl` file under the roots, with what `stat` says of it."""
    found: dict[str, SeenFile] = {}
    stack = [str(root) for root in roots]
    while stack:
        folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.name.endswith(".jsonl") and entry.is_file():
                        st = entry.stat()
                        found[entry.path] = SeenFile(entry.path, st.st_dev, st.st_ino,
                                                     st.st_size, st.st_mtime_ns)
                except OSError:
                    continue  # vanished while we looked
    return found


def session_transcript(roots: list[Path], session_id: str) -> Path | None:
    """The main transcript of a session (`<project folder>/<session id>.jsonl` under one of
    the roots), or None; an id that is not a plain name (a glob, a path) is none."""
    if not re.fullmatch(r"[\w.-]+", session_id):
        return None
    return next((path for root in roots for path in root.glob(f"*/{session_id}.jsonl")), None)


def is_main_transcript(path: str) -> bool:
    """A session's own transcript, not a subagent's."""
    return not (os.path.basename(path).startswith("agent-")
                or os.path.basename(os.path.dirname(path)) == "subagents")


def latest_session_transcript(roots: list[Path]) -> Path | None:
    """The most recently written main transcript under `roots`."""
    main = [f for f in discover(roots).values() if is_main_transcript(f.path)]
    return Path(max(main, key=lambda f: f.mtime_ns).path) if main else None
