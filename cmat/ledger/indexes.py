"""`python -m cmat.ledger.indexes LEDGER`: build the indexes a bulk load dropped, in a process
of its own, so that the first scan that loaded the ledger prints its report and ends without
waiting for them (Ledger.bulk_load starts it). What stops it goes to the hook log; the next
import builds them then (Ledger.restore_indexes)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from cmat.claude.log import HookLog
from cmat.errors import CmatError
from cmat.ledger.store import Ledger


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    if not path.is_file():
        return 0  # deleted since (a scratch ledger): nothing to build, and none to make
    try:
        with Ledger(path) as ledger:
            ledger.restore_indexes()
    except (CmatError, sqlite3.Error, OSError) as exc:
        HookLog().write("ERROR", "index-build", f"the ledger {path}'s indexes were not built"
                        f" ({exc}); the next scan builds them")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
