"""The usage ledger: every request of every project, whose each is, and everything asked of it.

    schema.py      tables, migrations, the columns of a request (one definition)
    store.py       Ledger: the connection and every write
    queries.py     every question asked of it, in SQL, nowhere else
    recovery.py    a damaged ledger set aside and salvaged
"""

from cmat.errors import LedgerError
from cmat.ledger.store import Ledger, ledger_error

__all__ = ["Ledger", "LedgerError", "ledger_error"]
