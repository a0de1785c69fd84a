"""ReportSource: what the report code (reports.compute_report, and tasks.costs's task_report
and enhancement_report) asks of a store of usage. The local ledger and the team database
(team.reports.TeamSource) each answer it, so one report code gives the same JSON from
either."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

Offsets = tuple[int, list[tuple[int, int]]]  # a zone's UTC offset at the start, then changes


class ReportSource(Protocol):
    def report_rows(self, period: str, offsets: Offsets, dimensions: Sequence[str],
                    since: float | None, until: float | None, project: str | None,
                    machine: str | None = None) -> list[tuple]:
        """Sums per (period, *dimensions, model): the token kinds, requests, cost of the priced
        ones, priced requests (and for sessions first ts, last ts, project)."""

    def report_runs(self, period: str, offsets: Offsets, dimensions: Sequence[str],
                    since: float | None, until: float | None, project: str | None,
                    machine: str | None = None) -> list[tuple]:
        """Runs (a session's main thread, or one subagent run) per (period, *dimensions)."""

    def time_span(self, since: float | None, until: float | None, project: str | None,
                  machine: str | None = None) -> tuple[float | None, float | None]:
        """The first and last usage in [since, until) (None, None: none)."""

    def model_totals(self, task_id: str) -> list[tuple]:
        """Per model of a task: (model, token kinds, web searches, requests, cost of the priced
        ones, priced requests)."""

    def task_sessions(self, task_id: str) -> list[tuple]:
        """The task's sessions, the last recorded last: (session_id, first and last request's
        ts or None, requests, cost of the priced ones, transcript path or None)."""
