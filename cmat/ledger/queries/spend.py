"""What was spent: a budget check and the status line ask these, one indexed statement each."""

from __future__ import annotations

from cmat.apps import app_sql, provider_sql
from cmat.ledger.queries.sql import (
    Queries,
    in_project,
    tokens_sql,
)


class SpendQueries(Queries):
    def priced_requests(self, session_id: str) -> int:
        return self.db.execute("SELECT count(cost_usd) FROM requests WHERE session_id = ?",
                               (session_id,)).fetchone()[0]

    def session_totals(self, session_id: str) -> tuple[int, float]:
        """(requests, cost) of one session, subagents included."""
        return self.db.execute("SELECT count(*), coalesce(sum(cost_usd), 0) FROM requests"
                               " WHERE session_id = ?", (session_id,)).fetchone()

    def latest_requests(self, session_id: str, limit: int) -> list[tuple]:
        """The session's `limit` latest requests, newest first: (message id, model, ts,
        is_sidechain, cost or None, input, output, cache write and cache read tokens)."""
        return self.query("SELECT message_id, model, ts, is_sidechain, cost_usd, input_tokens,"
                          " output_tokens, cache_creation_tokens, cache_read_tokens FROM requests"
                          " WHERE session_id = ? ORDER BY ts DESC LIMIT ?", (session_id, limit))

    def session_models(self, session_id: str) -> list[str]:
        """The models a session's requests named (as the transcript names them)."""
        return [model for (model,) in self.query(
            "SELECT DISTINCT model FROM requests WHERE session_id = ?", (session_id,))]

    def spend_usd(self, since: float | None = None, project: str | None = None,
                  counted: str | None = None) -> float:
        """USD since a moment, all projects or one (its folder and every folder inside);
        `counted`: only one coding agent's requests (an app), or one provider's
        ("provider:NAME")."""
        parts, values = [], []
        for table in ("requests", "request_rollups"):
            sql, params = f"SELECT coalesce(sum(cost_usd), 0) FROM {table} WHERE ts >= ?", [
                since or 0.0]
            if project is not None:
                sql, params = in_project(sql, params, project)
            if counted is not None:
                kind, _, name = counted.partition(":")
                sql += f" AND {provider_sql() if kind == 'provider' else app_sql()} = ?"
                params.append(name if kind == "provider" else counted)
            parts.append(f"({sql})")
            values += params
        return float(self.db.execute(f"SELECT {' + '.join(parts)}", values).fetchone()[0])

    def unsynced_spend(self, since: float) -> float:
        """USD since a moment of the requests the last sync did not send (all, never synced)."""
        return float(self.db.execute(
            "SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE seq >= coalesce((SELECT"
            " value FROM meta WHERE key = 'synced_seq'), 0) AND ts >= ?", (since,)).fetchone()[0])

    def spend_tokens(self, since: float, project: str | None = None,
                     cache: bool = False) -> int:
        """Tokens since a moment, all projects or one: input + output, and with `cache`
        cache writes and reads too."""
        sql = f"SELECT coalesce(sum({tokens_sql(cache)}), 0) FROM requests WHERE ts >= ?"
        params: list = [since]
        if project is not None:
            sql, params = in_project(sql, params, project)
        return int(self.db.execute(sql, params).fetchone()[0])

    def run_spend(self, session_id: str, agent_id: str | None = None) -> tuple[float, int, int]:
        """(USD, input + output tokens, all tokens) of a run: a whole session (its subagents
        included), or with `agent_id` one subagent run in it."""
        sql = (f"SELECT coalesce(sum(cost_usd), 0), coalesce(sum({tokens_sql(False)}), 0),"
               f" coalesce(sum({tokens_sql(True)}), 0) FROM requests WHERE session_id = ?")
        params: tuple = (session_id,)
        if agent_id is not None:
            sql, params = sql + " AND agent_id = ?", (session_id, agent_id)
        usd, io, every = self.db.execute(sql, params).fetchone()
        return float(usd), int(io), int(every)

    def task_spend(self, task_id: str, running: str | None = None) -> float:
        """USD of a task's sessions, and of `running` while it is attributed to no task."""
        return self._attributed_spend("task_id = ?", (task_id,), running)

    def enhancement_spend(self, name: str, project_dir: str, running: str | None = None
                          ) -> float:
        """USD of an enhancement's sessions in one project (another project's enhancement of
        the same name is another enhancement), and of `running` while unattributed."""
        return self._attributed_spend("enhancement = ? AND project_dir = ?",
                                      (name, project_dir), running)

    def _attributed_spend(self, condition: str, params: tuple, running: str | None) -> float:
        # One statement, each half answered from an index (a budget check runs per tool call).
        return float(self.db.execute(
            "SELECT (SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE session_id IN"
            f" (SELECT session_id FROM sessions WHERE {condition}))"
            " + (SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE session_id = ? AND"
            " session_id NOT IN (SELECT session_id FROM sessions WHERE task_id IS NOT NULL))"
            f" + (SELECT coalesce(sum(cost_usd), 0) FROM request_rollups WHERE {condition})",
            (*params, running or "", *params)).fetchone()[0])
