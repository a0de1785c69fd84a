"""Attributions a hook could not write to the ledger (locked past its deadline, a full disk),
kept as small files until the next hook or scan applies them: an attribution is never lost.

Each is one JSON file in `${XDG_STATE_HOME}/cmat/spool/` (or the system's temporary folder
when that cannot be written), named so that they apply oldest first. A hook script that found
no interpreter with cmat (a teammate's clone) leaves a `.hook` file there instead: what it
knew (event, project, task) as `key=value` lines in the shell's quoting, `---`, then Claude
Code's payload as it came.

The temporary folder is shared with every local user: the folder there is used, for writing
and for reading, only when it is a real folder (no link), owned by the user and closed to
everybody else (mode 0700); anybody could have made `/tmp/cmat-spool-<uid>` first and filled
it with attributions of their choosing (docs/security.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cmat import paths
from cmat.fileio import atomic_write_bytes
from cmat.untrusted import Unreadable, read_untrusted


@dataclass(frozen=True)
class Pending:
    project: str
    session_id: str
    transcript: str | None
    task_id: str | None
    enhancement: str | None
    agent: str | None
    recorded_by: str
    subagent: str | None = None
    subagent_type: str | None = None
    task_type: str | None = None


SPOOL_FILE_LIMIT = 64 * 1024  # an attribution is a few hundred bytes


def folders() -> list[Path]:
    return [paths.state_home() / "spool", _temporary_root() / f"cmat-spool-{os.getuid()}"]


def _temporary_root() -> Path:
    """The folder tempfile.gettempdir() chooses (TMPDIR, TEMP or TMP, else /tmp, /var/tmp,
    /usr/tmp, else the working folder: the first this user may write in), asked of access()
    rather than by creating a file in each, and without importing tempfile: every report
    looks for spooled attributions, and that import was 5 ms of its start."""
    candidates = [os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")]
    for candidate in [*candidates, "/tmp", "/var/tmp", "/usr/tmp"]:
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(os.path.abspath(candidate))
    return Path.cwd()


def private_folder(folder: Path, create: bool) -> bool:
    """Whether `folder` is a real folder of the user's own, closed to others (made so: created
    with mode 0700, or closed if it was open; somebody else's is never used)."""
    if create:
        with contextlib.suppress(FileExistsError):
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(folder, 0o700)
    try:
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return False
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(folder, 0o700)  # its files are still checked one by one (_own_file)
    except OSError:
        return False
    return True


def _own_file(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid()


HOOK_SUFFIX = ".hook"


def from_hook_script(data: bytes) -> Pending:
    """The attribution in a `.hook` file cmat-hook.sh wrote (see the module docstring);
    ValueError if it is not one."""
    import shlex

    head, sep, payload = data.partition(b"\n---\n")
    lines = head.decode("utf-8").splitlines()
    if not sep or not lines or lines[0] != "cmat-hook-spool 1":
        raise ValueError("not a cmat-hook.sh spool file")
    fields = {}
    for line in lines[1:]:
        key, _, value = line.partition("=")
        words = shlex.split(value) if value else []
        fields[key] = words[0] if words else None
    body = json.loads(payload or b"{}")
    if not isinstance(body, dict) or fields.get("event") not in ("session-end", "subagent-stop"):
        raise ValueError("no recording hook's payload")

    def text(key):
        value = body.get(key)
        return value if isinstance(value, str) and value else None

    subagent = fields["event"] == "subagent-stop"
    return Pending(fields.get("project") or str(paths.home()), text("session_id") or "",
                   text("transcript_path"), fields.get("task"), fields.get("enhancement"),
                   fields.get("agent"), fields["event"],
                   text("agent_transcript_path") if subagent else None,
                   text("agent_type") if subagent else None)


def keep(pending: Pending) -> Path:
    """Write `pending` to the first spool folder that takes it; raises OSError if none does."""
    name = f"{time.time_ns():020d}-{os.getpid()}.json"
    error: OSError | None = None
    for folder in folders():
        if not private_folder(folder, create=True):
            error = OSError(f"{folder} is not a private folder of this user")
            continue
        try:
            path = folder / name
            atomic_write_bytes(path, json.dumps(asdict(pending)).encode())
            return path
        except OSError as exc:
            error = exc
    raise error  # type: ignore[misc]


def waiting() -> list[tuple[Path, Pending]]:
    """Every spooled attribution, oldest first (a damaged file is set aside, never lost)."""
    found = []
    for folder in folders():
        if not private_folder(folder, create=False):
            continue  # absent, or planted by somebody else: never read
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if not name.endswith((".json", HOOK_SUFFIX)):
                continue
            path = folder / name
            if not _own_file(path):
                with contextlib.suppress(OSError):  # planted while the folder was open
                    path.rename(path.with_suffix(".refused"))
                continue
            try:
                data = read_untrusted(path, SPOOL_FILE_LIMIT)
                if data is None:
                    continue  # applied by another process meanwhile
                pending = from_hook_script(data) if name.endswith(HOOK_SUFFIX) else \
                    Pending(**json.loads(data))
                found.append((path, pending))
            except (Unreadable, ValueError, TypeError):
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".damaged"))
    return sorted(found, key=lambda item: item[0].name)
