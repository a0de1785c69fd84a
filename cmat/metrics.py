"""Prometheus metrics from the ledger, in the text exposition format (prometheus_client).

Counters are totals over the whole ledger, so rates and increases work as usual. Label
cardinality is bounded: the biggest MAX_SERIES values of a label (by cost) keep their name and
the rest are summed under "other"; tasks are capped at MAX_TASKS.

    cmat_cost_usd_total{project,model,agent,app,provider}
    cmat_tokens_total{type,model,project,app}
    cmat_requests_total{model,project,app}

`app` is the coding agent (claude-code, codex, gemini-cli, opencode) and `provider` who served
the request (anthropic, openai, google, ...): a handful of values, never capped.
    cmat_request_cost_usd (histogram; buckets 0.01, 0.1, 1, 5)
    cmat_task_cost_usd{task,enhancement}
    cmat_budget_spent_ratio{budget}, cmat_budget_limit_usd{budget}
    cmat_last_scan_timestamp_seconds
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from cmat import clock, paths
from cmat.budgets.limits import all_statuses
from cmat.catalog import ModelService
from cmat.ingest import scan
from cmat.ledger import Ledger
from cmat.usage import COUNTED_TOKENS

MAX_SERIES = 20  # per label: projects, models, agents
MAX_TASKS = 100
OTHER = "other"
BUCKETS = (0.01, 0.1, 1.0, 5.0)
SCAN_INTERVAL_SECONDS = 10.0


def _label(value, keep: set[str]) -> str:
    if value is None:
        return "unknown"
    return value if value in keep else OTHER


def _costliest(totals: list[tuple], column: int, limit: int) -> set[str]:
    """The `limit` values of a column of totals_by_project_model_agent that cost most (ties
    by name). Ranked from the very totals they label, compacted requests included: when
    compaction folds requests into rollups, no series is renamed "other" (a counter never
    goes down)."""
    spend: dict[str, float] = {}
    for row in totals:
        if row[column] is not None:
            spend[row[column]] = spend.get(row[column], 0.0) + row[5]
    return set(sorted(spend, key=lambda value: (-spend[value], value))[:limit])


class LedgerCollector:
    """Builds every metric family from the ledger at scrape time."""

    def __init__(self, project: Path, scan: bool, max_series: int = MAX_SERIES):
        self.project = project
        self.scan = scan
        self.max_series = max_series
        self.last_scan = 0.0  # when, as cmat.clock tells the time (exported)
        self.next_scan = 0.0  # time.monotonic() from which a scrape scans again
        self.lock = threading.Lock()

    def _refresh(self, ledger) -> None:
        if not self.scan or time.monotonic() < self.next_scan:
            return
        scan(ledger, ModelService(self.project), paths.transcript_roots())
        self.last_scan = clock.now()
        self.next_scan = time.monotonic() + SCAN_INTERVAL_SECONDS

    def collect(self):

        with self.lock, Ledger() as ledger:
            self._refresh(ledger)
            totals = ledger.totals_by_project_model_agent()
            projects, models, agents = (_costliest(totals, column, self.max_series)
                                        for column in range(3))

            cost = CounterMetricFamily("cmat_cost_usd", "Cost of coding agents' requests in "
                                       "USD.", labels=["project", "model", "agent", "app",
                                                       "provider"])
            tokens = CounterMetricFamily("cmat_tokens", "Tokens of coding agents' requests.",
                                         labels=["type", "model", "project", "app"])
            requests = CounterMetricFamily("cmat_requests", "Coding agents' API requests.",
                                           labels=["model", "project", "app"])
            grouped: dict[tuple, list[float]] = {}
            for project, model, agent, app, provider, usd, count, *token_sums in totals:
                key = (_label(project, projects), _label(model, models), _label(agent, agents),
                       app, provider)
                sums = grouped.setdefault(key, [0.0, 0, 0, 0, 0, 0])
                for index, value in enumerate([usd, count, *token_sums]):
                    sums[index] += value or 0
            per_model_project: dict[tuple, list[float]] = {}
            for (project, model, agent, app, provider), sums in grouped.items():
                cost.add_metric([project, model, agent, app, provider], sums[0])
                merged = per_model_project.setdefault((model, project, app), [0] * 5)
                for index in range(5):
                    merged[index] += sums[index + 1]
            for (model, project, app), sums in per_model_project.items():
                requests.add_metric([model, project, app], sums[0])
                for name, value in zip(COUNTED_TOKENS, sums[1:]):
                    tokens.add_metric([name, model, project, app], value)
            yield from (cost, tokens, requests)

            counts, total, total_sum = ledger.cost_histogram(BUCKETS)
            histogram = HistogramMetricFamily(
                "cmat_request_cost_usd", "Cost of one priced request in USD.",
                buckets=[(str(b), c) for b, c in zip(BUCKETS, counts)] + [("+Inf", total)],
                sum_value=total_sum)
            yield histogram

            tasks = GaugeMetricFamily("cmat_task_cost_usd", "Cost recorded against a task.",
                                      labels=["task", "enhancement"])
            rows = ledger.task_costs()
            for task_id, enhancement, usd in rows[:MAX_TASKS]:
                tasks.add_metric([task_id, enhancement or ""], usd)
            if len(rows) > MAX_TASKS:
                tasks.add_metric([OTHER, ""], sum(r[2] for r in rows[MAX_TASKS:]))
            yield tasks

            ratio = GaugeMetricFamily("cmat_budget_spent_ratio",
                                      "Spent over limit of each budget (1 = exhausted).",
                                      labels=["budget"])
            limit = GaugeMetricFamily("cmat_budget_limit_usd", "Limit of each USD budget.",
                                      labels=["budget"])
            for status in all_statuses(self.project, ledger, clock.now())[2]:
                ratio.add_metric([status.budget.key], status.percent / 100)
                if status.budget.unit == "usd":
                    limit.add_metric([status.budget.key], status.budget.limit)
            yield ratio
            yield limit

            last = ledger.last_recorded_at()
            scanned = GaugeMetricFamily("cmat_last_scan_timestamp_seconds",
                                        "When transcripts were last imported into the ledger.")
            scanned.add_metric([], max(self.last_scan, last or 0.0))
            yield scanned


def registry(project: Path, scan: bool, max_series: int = MAX_SERIES) -> CollectorRegistry:
    collector_registry = CollectorRegistry(auto_describe=False)
    collector_registry.register(LedgerCollector(project, scan, max_series))
    return collector_registry


def exposition(project: Path, scan: bool = True, max_series: int = MAX_SERIES) -> bytes:
    return generate_latest(registry(project, scan, max_series))


def serve(project: Path, host: str, port: int) -> None:
    """Serve /metrics until interrupted (cmat.web: a thread a connection)."""
    from cmat.web import serve as serve_app

    serve_app(make_wsgi_app(registry(project, scan=True)), host, port,
              lambda bound: f"Serving Prometheus metrics on http://{host}:{bound}/metrics")
