"""What time it is, asked in one place.

Code that decides by the time (today's spend, a period's start, a block's end, when an alert
fired) takes `now` as a parameter; the entry points (a command, a hook, the status line, a
server answering) take it from here. CMAT_NOW fixes it, as an ISO 8601 moment (local time
unless it names an offset) or Unix seconds: tests choose their time with it (the suite runs
at 00:00:30 and 23:59:30 too), and a report can be reproduced as of a moment. Standard library
only: the hooks and the status line ask it.
"""

from __future__ import annotations

import os
import time

from cmat.errors import UsageError


def now() -> float:
    """Unix seconds now: CMAT_NOW when it is set, else the system's clock."""
    fixed = os.environ.get("CMAT_NOW", "").strip()
    if not fixed:
        return time.time()
    try:
        return float(fixed)
    except ValueError:
        pass
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(fixed.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"CMAT_NOW={fixed!r} is neither an ISO 8601 moment nor Unix "
                         "seconds") from None
    return moment.timestamp()  # naive: local time, as a person writes it
