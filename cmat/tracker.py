"""`from cmat import CostTracker`: cmat from an orchestrator's own Python code.

    from cmat import CostTracker

    tracker = CostTracker("/path/to/project")
    if tracker.can_proceed(task_id="task_1767031596_45196"):   # its estimated cost fits
        ...run the task...
    tracker.record(model="gpt-5", provider="openai", input_tokens=1200, output_tokens=300,
                   task_id="task_1767031596_45196", agent="architect")
    tracker.spent(period="daily")                                 # USD, all projects

Usage recorded here goes into the same ledger as Claude Code's transcripts, priced by the same
catalog (a model it lacks is stored unpriced, and `cmat models check` names it), attributed to
the task like a session, and counted by every budget and report.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cmat import clock, paths
from cmat.errors import UsageError
from cmat.usage import EARLIEST_TS, LATEST_TS

PERIODS = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class Recorded:
    message_id: str  # the request's key in the ledger: recording it again changes nothing
    cost_usd: float | None  # None: the catalog has no price for the model
    session_id: str


class CostTracker:
    """Record, estimate and check spend for one project (default: the current project)."""

    def __init__(self, project: str | Path | None = None, ledger_path: str | Path | None = None):
        from cmat.catalog import ModelService

        self.project = paths.project_dir(Path(project) if project else None)
        self.models = ModelService(self.project)
        self.ledger_path = Path(ledger_path) if ledger_path else None

    def _ledger(self):
        from cmat.ledger import Ledger

        return Ledger(self.ledger_path)

    def record(self, *, model: str, input_tokens: int = 0, output_tokens: int = 0,
               cache_write_tokens: int = 0, cache_write_1h_tokens: int = 0,
               cache_read_tokens: int = 0, provider: str = "anthropic",
               task_id: str | None = None, agent: str | None = None,
               session_id: str | None = None, request_id: str | None = None,
               when: datetime | float | None = None) -> Recorded:
        """Store one LLM call that no Claude Code transcript holds. `request_id` (the
        provider's id) makes recording it twice harmless; `task_id` attributes it to a task
        of the project's queue, with its enhancement and task type, as a session would be."""
        from cmat.attribution import record_usage
        from cmat.usage import UsageRecord

        counts = {"input_tokens": input_tokens, "output_tokens": output_tokens,
                  "cache_write_tokens": cache_write_tokens,
                  "cache_write_1h_tokens": cache_write_1h_tokens,
                  "cache_read_tokens": cache_read_tokens}
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"{name} must be a whole number, 0 or more (got {value!r})")
        if cache_write_1h_tokens > cache_write_tokens:
            raise UsageError("cache_write_1h_tokens is the 1-hour share of cache_write_tokens: "
                             "it cannot be larger")
        texts = {"model": model, "provider": provider, "task_id": task_id, "agent": agent,
                 "session_id": session_id, "request_id": request_id}
        for name, value in texts.items():
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise UsageError(f"{name} must be text, not empty (got {value!r:.40})")
        if not model or not provider:
            raise UsageError("model and provider must not be empty")
        if ":" in provider:  # ids are api:PROVIDER:REQUEST: one colon more would be ambiguous
            raise UsageError(f"provider must not contain ':' (got {provider!r})")
        moment = _moment(when)
        message_id = f"api:{provider}:{request_id or uuid.uuid4().hex}"
        session_id = session_id or f"api:{provider}:{task_id or 'untracked'}"
        record = UsageRecord(message_id, request_id, session_id,
                             moment.astimezone(UTC).isoformat(), model, input_tokens,
                             output_tokens, cache_write_tokens, cache_write_1h_tokens,
                             cache_read_tokens, 0, None, None, False, agent or "main", None,
                             str(self.project))
        context = self._context(task_id, agent)
        with self._ledger() as ledger:
            cost, _ = record_usage(self.project, ledger, self.models, record, context,
                                   f"api:{provider}")
        return Recorded(message_id, cost, session_id)

    def _context(self, task_id: str | None, agent: str | None):
        from cmat.tasks.queue import QueueService, TaskContext, enhancement_of, task_type_of

        if task_id is None:
            return TaskContext(agent=agent)
        task = QueueService(self.project).get(task_id)  # an unknown task fails: NotFound
        return TaskContext(task_id, enhancement_of(task), agent or task.get("assigned_agent"),
                           task_type_of(task))

    def estimate(self, agent: str | None = None, task_type: str | None = None,
                 enhancement: str | None = None, model: str | None = None):
        """The cost of the next task like this, from past tasks (see `cmat estimate`):
        a TaskEstimate with median_usd, p90_usd, tasks and notes."""
        from cmat.insight.estimate import estimate_task

        with self._ledger() as ledger:
            return estimate_task(ledger, self.models, agent, task_type, enhancement, model)

    def can_proceed(self, estimated_cost: float | None = None, *,
                    task_id: str | None = None) -> bool:
        """Whether every budget that applies to the task (`task_id`, else the current one)
        has at least `estimated_cost` left; without it, the task's estimated 90th percentile
        (0 when no past task is like it). False as soon as one is exhausted."""
        from cmat.budgets.limits import short_of

        if estimated_cost is not None and estimated_cost < 0:
            raise UsageError("estimated_cost must be 0 or more")
        with self._ledger() as ledger:
            if estimated_cost is None:
                estimated_cost = self._task_p90(ledger, task_id)
            return not short_of(self.project, ledger, clock.now(), task_id, estimated_cost)

    def _task_p90(self, ledger, task_id: str | None) -> float:
        from cmat.insight.estimate import estimate_for_task

        estimated = estimate_for_task(ledger, self.models, self.project, task_id)
        return (estimated[1].p90_usd or 0.0) if estimated else 0.0

    def spent(self, *, period: str | None = None, task_id: str | None = None,
              enhancement: str | None = None, project_only: bool = False) -> float:
        """USD spent: by a task, by an enhancement of this project, or in the current
        `period` (daily, weekly, monthly; in the configured time zone) or all time, across
        all projects unless `project_only`."""
        from cmat.budgets.config import load_config
        from cmat.periods import period_bounds, zone

        if period is not None and period not in PERIODS:
            raise UsageError(f"period must be one of {', '.join(PERIODS)}, or None for all time")
        with self._ledger() as ledger:
            if task_id is not None:
                return ledger.task_spend(task_id)
            if enhancement is not None:
                return ledger.enhancement_spend(enhancement, str(self.project))
            since = None
            if period is not None:

                since = period_bounds(period, zone(load_config(self.project).timezone),
                                      clock.now())[0]
            return ledger.spend_usd(since, str(self.project) if project_only else None)


def _moment(when: datetime | float | None) -> datetime:
    """When a call happened: now, a datetime (naive: UTC) or Unix seconds, between 2000 and
    2100 (a later one would be a bad value every report has to bear)."""
    if when is None:
        return datetime.fromtimestamp(clock.now(), UTC)
    try:
        if isinstance(when, datetime):
            moment = when if when.tzinfo else when.replace(tzinfo=UTC)
        elif isinstance(when, (int, float)) and not isinstance(when, bool):
            moment = datetime.fromtimestamp(when, UTC)
        else:
            raise TypeError
        if not EARLIEST_TS <= moment.timestamp() < LATEST_TS:
            raise ValueError
    except (TypeError, ValueError, OverflowError, OSError):
        raise UsageError(f"when must be a datetime or Unix seconds between 2000 and 2100 "
                         f"(got {when!r:.40})") from None
    return moment
