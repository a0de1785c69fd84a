"""A task's figures (the queue's cost fields, `costs show`), and what estimates learn from past tasks."""

from __future__ import annotations

from collections.abc import Sequence

from cmat.ledger.queries.sql import (
    Queries,
    token_sums,
)
from cmat.usage import COLUMN, TOKEN_FIELDS


class TaskQueries(Queries):
    def task_costs(self) -> list[tuple[str, str | None, float]]:
        """Every task's (id, enhancement, USD), most expensive first; compacted requests
        count through their rollups."""
        return self.query(
            "SELECT task_id, max(enhancement), coalesce(sum(cost_usd), 0) FROM ("
            " SELECT s.task_id, s.enhancement, r.cost_usd FROM requests r"
            " JOIN sessions s USING (session_id) WHERE s.task_id IS NOT NULL"
            " UNION ALL SELECT task_id, enhancement, cost_usd FROM request_rollups"
            " WHERE task_id IS NOT NULL) GROUP BY task_id ORDER BY 3 DESC")

    def model_totals(self, task_id: str) -> list[tuple]:
        """Per model of a task's requests: (model, input, output, cache writes, 1-hour writes,
        cache reads, web searches, requests, cost of the priced ones, priced requests)."""
        kinds = ", ".join(COLUMN[kind] for kind in TOKEN_FIELDS)
        return self.query(
            f"SELECT model, {token_sums()}, sum(web_search_requests), sum(requests),"
            " coalesce(sum(cost_usd), 0), sum(priced) FROM ("
            f" SELECT r.model, {', '.join(f'r.{c}' for c in kinds.split(', '))},"
            " r.web_search_requests, 1 AS requests, r.cost_usd,"
            " r.cost_usd IS NOT NULL AS priced FROM requests r JOIN sessions s"
            " USING (session_id) WHERE s.task_id = ?"
            f" UNION ALL SELECT model, {kinds}, web_search_requests, requests, cost_usd, priced"
            " FROM request_rollups WHERE task_id = ?) GROUP BY model", (task_id, task_id))

    def task_sessions(self, task_id: str) -> list[tuple]:
        """The task's sessions in the order they were recorded: (session_id, first ts,
        last ts, requests, cost, transcript)."""
        return self.query(
            "SELECT s.session_id, min(r.ts), max(r.ts), count(r.message_id),"
            " coalesce(sum(r.cost_usd), 0), s.transcript_path FROM sessions s"
            " LEFT JOIN requests r USING (session_id) WHERE s.task_id = ?"
            " GROUP BY s.session_id ORDER BY s.recorded_at, s.rowid", (task_id,))

    def project_tasks(self, project_dir: str) -> list[str]:
        """Every task a session of this project was attributed to."""
        return [row[0] for row in self.query(
            "SELECT DISTINCT task_id FROM sessions WHERE project_dir = ? AND task_id IS NOT NULL",
            (project_dir,))]

    def lagging_tasks(self, project_dir: str) -> list[str]:
        return [row[0] for row in self.query(
            "SELECT task_id FROM queue_sync WHERE project_dir = ?", (project_dir,))]

    def task_values(self, name: str) -> list[str]:
        """The agents, task types or enhancements (`name`) of the tasks the ledger holds."""
        column = {"agent": "agent", "task_type": "task_type", "enhancement": "enhancement"}[name]
        return [value for (value,) in self.query(
            f"SELECT DISTINCT {column} FROM sessions WHERE task_id IS NOT NULL"
            f" AND {column} IS NOT NULL ORDER BY 1")]

    def task_costs_by(self, agent: str | None, task_type: str | None,
                      enhancement: str | None) -> list[tuple]:
        """Past tasks matching what is given: (task_id, cost, then the sum of each of the
        TOKEN_FIELDS, requests, priced requests), one row per task."""
        condition, params = ["task_id IS NOT NULL"], []
        for column, value in (("sessions.agent", agent), ("task_type", task_type),
                              ("enhancement", enhancement)):
            if value is not None:
                condition.append(f"{column} = ?")
                params.append(value)
        return self.query(
            f"SELECT task_id, coalesce(sum(cost_usd), 0), {token_sums()}, count(*),"
            f" count(cost_usd) FROM requests JOIN sessions USING (session_id)"
            f" WHERE {' AND '.join(condition)} GROUP BY task_id", params)

    def task_requests(self, task_ids: Sequence[str]) -> list[tuple]:
        """What re-pricing needs of the requests of these tasks: (task_id, model, ts,
        5 token kinds, searches, speed, geo)."""
        kinds = ", ".join(COLUMN[kind] for kind in TOKEN_FIELDS)
        marks = ", ".join("?" for _ in task_ids)
        return self.query(
            f"SELECT task_id, model, ts, {kinds}, web_search_requests, speed, inference_geo"
            f" FROM requests JOIN sessions USING (session_id) WHERE task_id IN ({marks})",
            list(task_ids))
