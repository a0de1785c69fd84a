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

    def changed_requests(self, since_seq: int, below_seq: int, after: tuple[int, str],
                         limit: int) -> list[tuple]:
        """Requests written at a version in [since_seq, below_seq), after `after` (seq,
        message id) in that order: REQUEST_COLUMNS then seq; then whether each holds only
        values a request can have (schema.VALID_REQUEST: a sync sends only those)."""
        from cmat.ledger.schema import COLUMN_LIST, VALID_REQUEST

        return self.query(
            f"SELECT {COLUMN_LIST}, seq, {VALID_REQUEST} FROM requests"
            " WHERE seq >= ? AND seq < ? AND (seq > ? OR (seq = ? AND message_id > ?))"
            " ORDER BY seq, message_id LIMIT ?",
            (since_seq, below_seq, after[0], after[0], after[1], limit))

    def changed_sessions(self, since_seq: int, below_seq: int) -> list[tuple]:
        """Sessions attributed at a version in [since_seq, below_seq): SESSION_COLUMNS."""
        from cmat.ledger.schema import SESSION_COLUMNS

        return self.query(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions"
                          " WHERE seq >= ? AND seq < ?", (since_seq, below_seq))

    def deleted_requests(self, since_seq: int, below_seq: int) -> list[str]:
        return [m for (m,) in self.query("SELECT message_id FROM deleted_requests"
                                         " WHERE seq >= ? AND seq < ?", (since_seq, below_seq))]
