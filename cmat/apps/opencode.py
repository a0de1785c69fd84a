"""OpenCode: its SQLite database (or, before version 1.2, its message files) as UsageRecords.

Where: `$OPENCODE_DATA_DIR`, else `$XDG_DATA_HOME/opencode`, else `~/.local/share/opencode`:
`opencode.db` (tables `session`, `message`, `part`, each row's fields in a JSON `data`
column), or, where no database exists yet, `storage/message/<session>/<message>.json` with
their parts in `storage/part/<message>/<part>.json`. Checked against sst/opencode,
packages/opencode/src/session: `session.sql.ts`, `processor.ts`, `getUsage`.

One request to a model is one `step-finish` part: OpenCode writes it when the step ends,
with that step's `tokens` (`input`, `output`, `reasoning`, `cache.read`, `cache.write`,
`total`). The assistant message holds only its *last* step's tokens, so a message is read
only when it has no step-finish part at all (the oldest versions). Its `cost` is not used:
it is 0 for many providers, and added reasoning twice for some.

What the counts mean changed between OpenCode versions; each step's own `total` tells which:
- today `input` is input less cache reads and writes, `output` excludes `reasoning`, and
  total = input + output + reasoning + read + write: output is billed as output + reasoning;
- versions on AI SDK 5 stored OpenAI's output with its reasoning inside it (total = input +
  output + read + write): output is billed as it is, reasoning already in it;
- the first versions stored OpenAI's input with its cache reads inside it (total = input +
  output): input is billed as input - read - write.
A step without a total is read the way OpenCode writes it today.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from cmat.apps import count, plausible, source_tag, text
from cmat.untrusted import SMALL_FILE_LIMIT, Unreadable, open_untrusted, read_untrusted
from cmat.usage import UsageRecord

APP = "opencode"
UNKNOWN = "unknown"
DATABASE = "opencode.db"
STEP_MARK = "%step-finish%"  # a cheap filter before a part's JSON is parsed
BUSY_SECONDS = 2.0  # OpenCode writes in short transactions: wait for one, not longer


def home() -> Path:
    if os.environ.get("OPENCODE_DATA_DIR"):
        return Path(os.environ["OPENCODE_DATA_DIR"]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data).expanduser() / "opencode"


def folders() -> list[Path]:
    """Where OpenCode keeps its sessions: the folder of its database."""
    return [home()]


def databases() -> list[Path]:
    """OpenCode's database, read by row: each read takes only the rows added since."""
    path = home() / DATABASE
    return [path] if path.is_file() else []


def claims(path: Path, head: bytes) -> bool:
    """Whether a file (`head`: its first bytes) is OpenCode's database: the only SQLite file
    among the agents' logs."""
    return head.startswith(b"SQLite format 3\x00")


def files() -> list[Path]:
    """Message files of an OpenCode older than 1.2; none once its database exists (OpenCode
    moved every file into it on its first start)."""
    storage = home() / "storage" / "message"
    if databases() or not storage.is_dir():
        return []
    return sorted(path for path in storage.glob("*/*.json") if path.is_file())


# --- the database ------------------------------------------------------------------------


def read_new(path: Path, cursor: int) -> tuple[list[UsageRecord], int, int]:
    """The requests recorded in the database after row `cursor` of its parts (0: all), how
    many rows could not be read, and the cursor to give next time."""
    db = _open(path)
    try:
        last = db.execute("SELECT coalesce(max(rowid), 0) FROM part").fetchone()[0]
        if last < cursor:  # the database was rebuilt: read it again (ids keep requests once)
            cursor = 0
        if last == cursor:
            return [], 0, cursor
        sessions = {row[0]: (row[1], row[2]) for row in db.execute(
            "SELECT id, parent_id, directory FROM session")}
        steps = db.execute(
            "SELECT part.id, part.session_id, part.time_created, part.data, part.message_id,"
            " message.data FROM part LEFT JOIN message ON message.id = part.message_id"
            " WHERE part.rowid > ? AND part.rowid <= ? AND part.data LIKE ?",
            (cursor, last, STEP_MARK)).fetchall()
        # Messages of the oldest versions, which wrote no step-finish part: read once.
        messages = db.execute(
            "SELECT message.id, message.session_id, message.time_created, message.data"
            " FROM message WHERE ? = 0 AND NOT EXISTS (SELECT 1 FROM part"
            " WHERE part.message_id = message.id AND part.data LIKE ?)",
            (cursor, STEP_MARK)).fetchall()
    except sqlite3.Error as exc:
        raise Unreadable(f"cannot read OpenCode's database {path}: {exc}",
                         "it is read again at the next scan") from None
    finally:
        db.close()
    records, skipped = [], 0
    # A message's steps are many: its JSON is parsed, and what it says of them worked out,
    # once (by its id: hashing the JSON again for every step cost more than parsing it).
    origins: dict = {}
    for part_id, session, created, data, message_id, message in steps:
        origin = origins.get(message_id, False)
        if origin is False:
            info = _json(message)
            origin = origins[message_id] = None if info is None else \
                _origin(session, info, sessions)
        step = _json(data)
        if step is None or origin is None:
            skipped += 1
        elif step.get("type") == "step-finish":
            records.append(_record(part_id, created, step.get("tokens"), origin))
    for message_id, session, created, data in messages:
        info = _json(data)
        if info is None:
            skipped += 1
        elif info.get("role") == "assistant":
            records.append(_record(message_id, created, info.get("tokens"),
                                   _origin(session, info, sessions)))
    kept, skipped = _kept(records, skipped)
    return kept, skipped, last


def session_parents(path: Path) -> dict[str, str | None]:
    """Every session in OpenCode's database, with the session it is a subagent's run inside
    (None for a session of its own): what `cmat costs extract` checks a named session by."""
    db = _open(path)
    try:
        return dict(db.execute("SELECT id, parent_id FROM session").fetchall())
    except sqlite3.Error as exc:
        raise Unreadable(f"cannot read OpenCode's database {path}: {exc}") from None
    finally:
        db.close()


def _open(path: Path) -> sqlite3.Connection:
    """A read-only connection to OpenCode's database, opened under the trust policy: a
    regular file (or the user's own link to one), never written, its schema not trusted."""
    handle = open_untrusted(path)  # refuses a FIFO, a device, another user's link
    if handle is None:
        raise Unreadable(f"{path} is gone")
    handle.close()
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                             timeout=BUSY_SECONDS)
        db.execute("PRAGMA query_only = ON")
        db.execute("PRAGMA trusted_schema = OFF")  # no function a crafted view could call
    except sqlite3.Error as exc:
        raise Unreadable(f"cannot open OpenCode's database {path}: {exc}") from None
    return db


# --- the message files of versions before 1.2 --------------------------------------------


def read(path: Path) -> tuple[list[UsageRecord], int]:
    """The requests of one message file (a message is rewritten when a step ends: the file
    changes, and is read again whole with its parts), and how many files could not be read."""
    info = _json(read_untrusted(path, SMALL_FILE_LIMIT))
    if info is None:
        return [], 1
    if info.get("role") != "assistant":
        return [], 0
    session = text(info.get("sessionID")) or path.parent.name
    message_id = text(info.get("id")) or path.stem
    time = info.get("time") if isinstance(info.get("time"), dict) else {}
    created, origin = time.get("created"), _origin(session, info, {})
    folder = path.parents[2] / "part" / message_id
    records, skipped, stepped = [], 0, False
    for part in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        step = _json(read_untrusted(part, SMALL_FILE_LIMIT))
        if step is None:
            skipped += 1
        elif step.get("type") == "step-finish":
            stepped = True
            records.append(_record(text(step.get("id")) or part.stem, created,
                                   step.get("tokens"), origin))
    if not stepped:
        records.append(_record(message_id, created, info.get("tokens"), origin))
    return _kept(records, skipped)


def _kept(records: list[UsageRecord | None | bool], skipped: int
          ) -> tuple[list[UsageRecord], int]:
    """The usable records (None: no usage in it; False: a time no request has, skipped)."""
    skipped += sum(1 for record in records if record is False)
    return plausible([record for record in records if record], skipped)


# --- one request ---------------------------------------------------------------------------


def _json(data) -> dict | None:
    import orjson

    if data is None:
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def billed(tokens) -> tuple[int, int, int, int] | None:
    """(input, output, cache reads, cache writes) as billed, from a step's `tokens`, read by
    what its `total` says they mean (module docstring); None when none is usable."""
    if not isinstance(tokens, dict):
        return None
    cache = tokens.get("cache") if isinstance(tokens.get("cache"), dict) else {}
    counts = [count(tokens.get("input")), count(tokens.get("output")),
              count(tokens.get("reasoning")), count(cache.get("read")),
              count(cache.get("write"))]
    if None in counts or not any(counts):
        return None
    prompt, output, reasoning, read, write = counts
    total = tokens.get("total")
    if isinstance(total, int) and not isinstance(total, bool) and \
            total != prompt + output + reasoning + read + write:
        if total == prompt + output + read + write:
            return prompt, output, read, write  # reasoning inside output
        if total == prompt + output and read + write:
            return max(prompt - read - write, 0), output, read, write  # cache inside input
    return prompt, output + reasoning, read, write


class _Origin(NamedTuple):
    """What a message says of each of its steps' requests: whose session they count in,
    which agent ran them, where, and on which model."""

    owner: str
    model: str
    is_sidechain: bool
    agent: str
    agent_id: str | None
    cwd: str | None
    source: str


def _origin(session: str, message: dict, sessions: dict[str, tuple[str | None, str | None]]
            ) -> _Origin:
    parent, directory = sessions.get(session, (None, None))
    path = message.get("path") if isinstance(message.get("path"), dict) else {}
    cwd = text(path.get("cwd")) or text(directory)
    source = source_tag(APP, text(message.get("providerID")) or UNKNOWN)
    model = text(message.get("modelID")) or UNKNOWN
    if parent is None:
        return _Origin(session, model, False, "main", None, cwd, source)
    # A child session is a subagent's run inside its parent's, as Claude Code's are.
    agent = text(message.get("agent")) or text(message.get("mode")) or "subagent"
    return _Origin(parent, model, True, agent, session, cwd, source)


def _record(request_id: str, created, tokens, origin: _Origin) -> UsageRecord | None | bool:
    """The request, None when `tokens` hold no usage, False when `created` (milliseconds
    since 1970) is no time a request was made at."""
    counts = billed(tokens)
    if counts is None:
        return None
    try:
        when = datetime.fromtimestamp(created / 1000, UTC).isoformat(timespec="milliseconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return False
    prompt, output, read, write = counts
    return UsageRecord(f"opencode:{request_id}", None, origin.owner,
                       when.replace("+00:00", "Z"), origin.model, prompt, output, write, 0,
                       read, 0, None, None, origin.is_sidechain, origin.agent,
                       origin.agent_id, origin.cwd, origin.source)
