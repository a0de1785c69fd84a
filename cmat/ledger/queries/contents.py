"""What the ledger holds: `ledger info`, repricing, the transcripts it has read."""

from __future__ import annotations

from cmat.ledger.queries.sql import (
    Queries,
)
from cmat.usage import COLUMN, TOKEN_FIELDS


class ContentQueries(Queries):
    def info(self) -> dict:
        """Counts for `cmat ledger info`."""
        requests, sessions, first, last, unpriced = self.query(
            "SELECT count(*), count(DISTINCT session_id), min(ts), max(ts),"
            " count(*) - count(cost_usd) FROM requests")[0]
        files, tracked_bytes = self.query("SELECT count(*), coalesce(sum(size), 0) FROM files")[0]
        attributed, with_task = self.query("SELECT count(*), count(task_id) FROM sessions")[0]
        versions = [v for (v,) in self.query("SELECT DISTINCT catalog_version FROM requests")]
        return {"requests": requests, "sessions": sessions, "unpriced_requests": unpriced,
                "first_ts": first, "last_ts": last, "files_tracked": files,
                "transcript_bytes_tracked": tracked_bytes, "hook_sessions": attributed,
                "hook_sessions_with_task": with_task, "catalog_versions": versions}

    def session_count(self) -> int:
        """Attributed sessions (hooks and `costs extract` record them)."""
        return self.query("SELECT count(*) FROM sessions")[0][0]

    def last_recorded_at(self) -> float | None:
        """When a session was last attributed (a hook or extract ran)."""
        return self.query("SELECT max(recorded_at) FROM sessions")[0][0]

    def priceable_requests(self, exclude_prefix: str) -> list[tuple]:
        """What pricing needs of every request (message ids starting with `exclude_prefix`
        left out), in the table's order: (rowid, cost, catalog version, model, ts, 5 token
        kinds, searches, speed, inference_geo)."""
        columns = ", ".join(COLUMN[kind] for kind in TOKEN_FIELDS)
        return self.query(f"SELECT rowid, cost_usd, catalog_version, model, ts, {columns},"
                          " web_search_requests, speed, inference_geo FROM requests"
                          " WHERE message_id NOT LIKE ? ORDER BY rowid", (exclude_prefix + "%",))

    def transcript_paths(self) -> list[str]:
        """Every transcript file the ledger has read."""
        return [path for (path,) in self.query("SELECT path FROM files")]
