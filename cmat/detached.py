"""Work that must not keep anyone waiting (a hook, a report's prompt) is handed to a Python
process of its own: started in a session of its own, with nothing of its parent's open, so
that it outlives the parent and never holds its terminal or pipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def start_detached(module_and_args: list[str], cwd: Path | None = None) -> None:
    """`python -P -m <module_and_args>`, detached; what it has to say goes to a log of its
    own (the hook log, for cmat's). Raises OSError when no process can be started."""
    subprocess.Popen([sys.executable, "-P", "-m", *module_and_args],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                     cwd=None if cwd is None else str(cwd))
