"""Sessions at work, as the hooks saw them: concurrency limits and `cmat live`."""

from __future__ import annotations

from cmat.ledger.queries.sql import (
    Queries,
)


class LiveSessionQueries(Queries):
    def live_session(self, session_id: str) -> tuple | None:
        """(started_at, last_seen, ended_at) of a session the hooks saw, or None."""
        rows = self.query("SELECT started_at, last_seen, ended_at FROM live_sessions"
                          " WHERE session_id = ?", (session_id,))
        return rows[0] if rows else None

    def touch_live_session(self, session_id: str, project: str, agent: str | None,
                           transcript: str | None, now: float, started: bool) -> None:
        """A hook saw the session at work now; `started`: it (re)starts a stretch of work."""
        self.db.execute(
            "INSERT INTO live_sessions (session_id, project, agent, transcript_path,"
            " started_at, last_seen) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO"
            " UPDATE SET last_seen = excluded.last_seen, ended_at = NULL,"
            " agent = coalesce(excluded.agent, agent),"
            " transcript_path = coalesce(excluded.transcript_path, transcript_path),"
            " started_at = CASE WHEN ? THEN excluded.started_at ELSE started_at END",
            (session_id, project, agent, transcript, now, now, int(started)))

    def end_live_session(self, session_id: str, now: float) -> None:
        """SessionEnd: the session is at work no more (recorded even for a session no budget
        hook saw, so that `cmat live` stops listing it)."""
        self.db.execute("INSERT INTO live_sessions (session_id, started_at, last_seen, ended_at)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
                        " ended_at = excluded.ended_at", (session_id, now, now, now))

    def live_sessions(self, seen_since: float) -> list[tuple]:
        """Sessions not ended and seen by a hook since `seen_since`: (session_id, project,
        agent, transcript_path, started_at, last_seen), latest first."""
        return self.query(
            "SELECT session_id, project, agent, transcript_path, started_at, last_seen FROM"
            " live_sessions WHERE ended_at IS NULL AND last_seen >= ? ORDER BY last_seen DESC",
            (seen_since,))
