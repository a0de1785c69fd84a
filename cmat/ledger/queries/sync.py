"""What a team sync sends: the requests, sessions and deletions written since the last one."""

from __future__ import annotations

from cmat.ledger.queries.sql import (
    Queries,
)


class SyncQueries(Queries):
    def meta_value(self, key: str) -> int | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta_value(self, key: str, value: int) -> None:
        self.db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
                        " value = excluded.value", (key, value))

    def changed_requests(self, since_seq: int, below_seq: int, after: tuple[int, int] | None,
                         limit: int) -> list[tuple]:
        """Requests written at a version in [since_seq, below_seq), after `after` (seq,
        rowid; None: from the first) in that order: REQUEST_COLUMNS, seq and rowid."""
        from cmat.ledger.schema import COLUMN_LIST

        # The index by seq holds each row's rowid: rows come in its order, page after page,
        # and each is read from the table in the order it was written.
        start, params = ("seq >= ?", (since_seq,)) if after is None else (
            "(seq, rowid) > (?, ?)", after)
        return self.query(
            f"SELECT {COLUMN_LIST}, seq, rowid FROM requests"
            f" WHERE {start} AND seq < ? ORDER BY seq, rowid LIMIT ?",
            (*params, below_seq, limit))

    def changed_sessions(self, since_seq: int, below_seq: int) -> list[tuple]:
        """Sessions attributed at a version in [since_seq, below_seq): SESSION_COLUMNS."""
        from cmat.ledger.schema import SESSION_COLUMNS

        return self.query(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions"
                          " WHERE seq >= ? AND seq < ?", (since_seq, below_seq))

    def deleted_requests(self, since_seq: int, below_seq: int) -> list[str]:
        return [m for (m,) in self.query("SELECT message_id FROM deleted_requests"
                                         " WHERE seq >= ? AND seq < ?", (since_seq, below_seq))]
