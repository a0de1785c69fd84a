"""Gemini CLI: its recorded chats, one file per session, as UsageRecords.

Where: `~/.gemini/tmp/<project hash>/chats/session-*.json` (a whole ConversationRecord,
rewritten as the chat goes on) or `session-*.jsonl` (newer: a metadata line, then message
records, a message written again when it is updated, `$set` and `$rewindTo` lines). Checked
against google-gemini/gemini-cli, packages/core: `ConversationRecord`, `MessageRecord`,
`TokensSummary`.

A message of `type: "gemini"` with `tokens` is one request to the model named by its
`model`. The counts are the Gemini API's usage metadata: `input` (promptTokenCount)
**includes** `cached` (cachedContentTokenCount); `thoughts` (thoughtsTokenCount) are billed
as output beside `output` (candidatesTokenCount); `tool` (toolUsePromptTokenCount) is prompt
billed as input. A message written again counts once (its id); a rewind does not take back
requests already made and paid for.

A `.jsonl` chat grows by lines: `read_from` reads on from where the last read stopped, in the
session that read found (its carry, kept in the ledger beside the offset).

A chat names no folder: its project is its folder's. Gemini CLI names each project's folder of
`tmp/` by a short id (and writes the project's path into it, `.project_root`, and the pair
into `~/.gemini/projects.json`) or, before that, by the SHA-256 of the project's path
(`Storage`, `ProjectRegistry`): `project_of` reads it back, when one of them says it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from cmat.apps import count, dump_carry, load_carry, plausible, source_tag, text
from cmat.untrusted import Unreadable, read_untrusted, read_untrusted_json, read_untrusted_text
from cmat.usage import UsageRecord

APP = "gemini-cli"
PROVIDER = "google"
UNKNOWN_MODEL = "unknown"
CHAT_LIMIT = 512 * 2**20  # a chat file is rewritten whole: far below this
PROJECT_ROOT_FILE = ".project_root"  # in a project's folder of tmp/: the project's path
PATH_LIMIT = 4096


def home() -> Path:
    return Path.home() / ".gemini"


def folders() -> list[Path]:
    """Where Gemini CLI keeps its chats, one folder per project below it."""
    return [home() / "tmp"]


def files() -> list[Path]:
    """Every recorded chat of this user's Gemini CLI."""
    return sorted(path for folder in folders() if folder.is_dir()
                  for pattern in ("*/chats/*.json", "*/chats/*.jsonl")
                  for path in folder.glob(pattern) if path.is_file())


def claims(path: Path, head: bytes) -> bool:
    """Whether a file (`head`: its first bytes) is a Gemini CLI chat: an object, or a first
    line, naming the session and the project hash."""
    start = head.lstrip()[:1]
    return path.suffix in (".json", ".jsonl") and start == b"{" \
        and b'"sessionId"' in head and b'"projectHash"' in head


def project_of(chat: Path) -> str | None:
    """The folder of the project a chat was made in, as Gemini CLI recorded it: in the
    chat's project folder (`.project_root`), else in `~/.gemini/projects.json` (under the
    folder's short id, or the SHA-256 of the path an older Gemini CLI named it by); None
    when neither says."""
    folder = chat.parent.parent
    try:
        written = read_untrusted_text(folder / PROJECT_ROOT_FILE, PATH_LIMIT)
    except Unreadable:
        written = None
    if root := _one_path(written):
        return root
    registry = folder.parent.parent / "projects.json"
    try:
        stamp = registry.stat().st_mtime_ns
    except OSError:
        return None
    return _registered(str(registry), stamp).get(folder.name)


def _one_path(text) -> str | None:
    """`text` as a project path Gemini CLI could have written: one line, not empty."""
    root = text.strip() if isinstance(text, str) else ""
    return root if root and "\n" not in root else None


@functools.lru_cache(maxsize=4)
def _registered(registry: str, _stamp: int) -> dict[str, str]:
    """{short id or path hash: project path} of Gemini CLI's projects.json, read once for
    each time it was written (`_stamp`); one that cannot be read names no project."""
    try:
        listing = read_untrusted_json(registry)
    except Unreadable:
        return {}
    projects = listing.get("projects") if isinstance(listing, dict) else None
    found: dict[str, str] = {}
    for written, short_id in (projects.items() if isinstance(projects, dict) else ()):
        if (root := _one_path(written)) and isinstance(short_id, str):
            found[short_id] = root
            found[hashlib.sha256(root.encode()).hexdigest()] = root
    return found


def read(path: Path) -> tuple[list[UsageRecord], int]:
    """The requests of one chat file, and how many of its lines could not be read."""
    records, skipped, *_ = read_from(path, 0, None)
    return records, skipped


def resumes(path: Path) -> bool:
    """Whether a chat grows by lines (`.jsonl`), so that it can be read on from where a
    read stopped; a `.json` chat is rewritten whole as the chat goes on."""
    return path.suffix == ".jsonl"


def read_from(path: Path, offset: int, carry: bytes | None
              ) -> tuple[list[UsageRecord], int, int, int, bytes | None]:
    """The requests of a chat from byte `offset` on: a `.jsonl` chat is read on from there,
    in the session the read that stopped there found (`carry`); a `.json` chat, or one
    without a usable carry, whole. Returns the records, how many lines could not be read,
    the byte it read from, the offset just past the last complete line (a `.json` chat's
    size), and the carry to give with it (None for a `.json` chat). A message written again
    in a later read is the same request (its id): the ledger keeps the better copy."""
    import orjson

    session = _carried_session(carry) if offset and resumes(path) else None
    if session is None:
        offset, session = 0, path.stem.removeprefix("session-")
    data = read_untrusted(path, CHAT_LIMIT, offset)
    if data is None:
        return [], 0, offset, offset, None
    skipped = 0
    if not resumes(path):
        try:
            entries = [orjson.loads(data)]
        except orjson.JSONDecodeError:  # caught while Gemini CLI rewrites it: read it later
            raise Unreadable(f"{path} is not complete JSON yet") from None
        end = len(data)
    else:
        entries = []
        complete = data.rfind(b"\n") + 1  # a last line without its newline is not done
        end = offset + complete
        for raw in data[:complete].split(b"\n"):
            if not raw.strip():
                continue
            try:
                entries.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                skipped += 1
    messages: dict[str, dict] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("sessionId"), str):
            session = entry["sessionId"]
        listed = entry.get("messages") if isinstance(entry.get("messages"), list) else [entry]
        for message in listed:
            if isinstance(message, dict) and message.get("type") == "gemini" and \
                    isinstance(message.get("id"), str):
                messages[message["id"]] = message  # written again: the latest copy stands
    project = project_of(path)
    records = [record for message in messages.values()
               if (record := _record(session, message, project)) is not None]
    kept, skipped = plausible(records, skipped)
    note = dump_carry(CARRY_FORMAT, session) if resumes(path) else None
    return kept, skipped, offset, end, note


CARRY_FORMAT = "gemini-chat-1"  # what read_from writes: another is read as none


def _carried_session(note) -> str | None:
    """The session a note of read_from names; None for anything else: the chat is then
    read whole."""
    fields = load_carry(note, CARRY_FORMAT, 1)
    return fields[0] if fields and fields[0].__class__ is str else None


def _record(session: str, message: dict, project: str | None) -> UsageRecord | None:
    tokens = message.get("tokens")
    if not isinstance(tokens, dict):
        return None
    counts = [count(tokens.get(name)) for name in ("input", "cached", "output", "thoughts",
                                                "tool")]
    if None in counts or not any(counts):
        return None
    prompt, cached, output, thoughts, tool = counts
    model = text(message.get("model")) or UNKNOWN_MODEL
    return UsageRecord(f"gemini:{session}:{message['id']}", None, session,
                       message.get("timestamp"), model,
                       max(prompt - cached, 0) + tool, output + thoughts, 0, 0,
                       min(cached, prompt), 0, None, None, False, "main", None, project,
                       source_tag(APP, PROVIDER))
