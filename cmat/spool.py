"""Attributions a hook could not write to the ledger (locked past its deadline, a full disk),
kept as small files until the next hook or scan applies them: an attribution is never lost.

Each is one JSON file in `${XDG_STATE_HOME}/cmat/spool/` (or the system's temporary folder
when that cannot be written), named so that they apply oldest first.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cmat import paths
from cmat.fileio import atomic_write_bytes


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


def folders() -> list[Path]:
    import tempfile  # only for a spool, rare: its import costs every hook ~10 ms

    return [paths.state_home() / "spool",
            Path(tempfile.gettempdir()) / f"cmat-spool-{os.getuid()}"]


def keep(pending: Pending) -> Path:
    """Write `pending` to the first spool folder that takes it; raises OSError if none does."""
    name = f"{time.time_ns():020d}-{os.getpid()}.json"
    error: OSError | None = None
    for folder in folders():
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
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if not name.endswith(".json"):
                continue
            path = folder / name
            try:
                found.append((path, Pending(**json.loads(path.read_text()))))
            except (OSError, ValueError, TypeError):
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".damaged"))
    return sorted(found, key=lambda item: item[0].name)
