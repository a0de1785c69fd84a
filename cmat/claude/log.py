"""The hook log: where every hook, the status line, alert delivery and the index build behind a
first scan (cmat.ledger.indexes) write what went wrong.

One file for the user, `${XDG_STATE_HOME:-~/.local/state}/cmat/hook.log` (never inside a
repository: user-level hooks run in every project the user opens), one line per event with
the project it concerns, rotated to `hook.log.1` past LOG_LIMIT_BYTES. Standard library only:
the status line writes here.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from cmat import paths
from cmat.text import one_line

LOG_LIMIT_BYTES = 1024 * 1024


class HookLog:
    def __init__(self, project: Path | None = None, path: Path | None = None,
                 limit_bytes: int = LOG_LIMIT_BYTES):
        self.project = project
        self.path = path or paths.hook_log_file()
        self.limit_bytes = limit_bytes

    def write(self, level: str, event: str, message: str) -> Path:
        """Append one line; a log that cannot be written costs only the log."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        where = f" (in {self.project})" if self.project else ""
        line = f"{stamp} {level:<5} {event} {one_line(message + where)}\n".encode(
            "utf-8", "replace")
        with contextlib.suppress(OSError):
            _append(self.path, line, self.limit_bytes)
        return self.path


def _append(path: Path, line: bytes, limit_bytes: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > limit_bytes:
            os.replace(path, path.with_name(path.name + ".1"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # less the umask
    try:
        os.write(fd, line)  # one write per line: concurrent hooks never interleave
    finally:
        os.close(fd)
