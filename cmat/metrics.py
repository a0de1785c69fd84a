"""Prometheus metrics from the ledger, in the text exposition format (prometheus_client).

Counters are totals over the whole ledger, so rates and increases work as usual. Label
cardinality is bounded: the biggest MAX_SERIES values of a label (by cost) keep their name and
the rest are summed under "other"; tasks are capped at MAX_TASKS.

    cmat_cost_usd_total{project,model,agent}
    cmat_tokens_total{type,model,project}
    cmat_requests_total{model,project}
    cmat_request_cost_usd (histogram; buckets 0.01, 0.1, 1, 5)
    cmat_task_cost_usd{task,enhancement}
    cmat_budget_spent_ratio{budget}, cmat_budget_limit_usd{budget}
    cmat_last_scan_timestamp_seconds
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

MAX_SERIES = 20  # per label: projects, models, agents
MAX_TASKS = 100
OTHER = "other"
BUCKETS = (0.01, 0.1, 1.0, 5.0)
SCAN_INTERVAL_SECONDS = 10.0
TOKEN_COLUMNS = {"input": "input_tokens", "output": "output_tokens",
                 "cache_creation": "cache_creation_tokens", "cache_read": "cache_read_tokens"}


def _top(ledger, column: str, limit: int) -> set[str]:
    rows = ledger.query(f"SELECT {column} FROM requests GROUP BY {column}"
                        f" ORDER BY coalesce(sum(cost_usd), 0) DESC LIMIT ?", (limit,))
    return {row[0] for row in rows if row[0] is not None}


def _label(value, keep: set[str]) -> str:
    if value is None:
        return "unknown"
    return value if value in keep else OTHER


class LedgerCollector:
    """Builds every metric family from the ledger at scrape time."""

    def __init__(self, project: Path, scan: bool):
        self.project = project
        self.scan = scan
        self.last_scan = 0.0
        self.lock = threading.Lock()

    def _refresh(self, ledger) -> None:
        if not self.scan or time.time() - self.last_scan < SCAN_INTERVAL_SECONDS:
            return
        from cmat.catalog import ModelService
        from cmat.scan import scan, scan_roots

        scan(ledger, ModelService(self.project), scan_roots())
        self.last_scan = time.time()

    def collect(self):
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            HistogramMetricFamily)

        from cmat.budgets import status_report
        from cmat.ledger import Ledger

        with self.lock, Ledger() as ledger:
            self._refresh(ledger)
            projects = _top(ledger, "project", MAX_SERIES)
            models = _top(ledger, "model", MAX_SERIES)
            agents = _top(ledger, "agent", MAX_SERIES)

            cost = CounterMetricFamily("cmat_cost_usd", "Cost of Claude Code requests in USD.",
                                       labels=["project", "model", "agent"])
            tokens = CounterMetricFamily("cmat_tokens", "Tokens of Claude Code requests.",
                                         labels=["type", "model", "project"])
            requests = CounterMetricFamily("cmat_requests", "Claude Code API requests.",
                                           labels=["model", "project"])
            grouped: dict[tuple, list[float]] = {}
            for project, model, agent, usd, count, *token_sums in ledger.query(
                    "SELECT project, model, agent, coalesce(sum(cost_usd), 0), count(*), "
                    + ", ".join(f"sum({c})" for c in TOKEN_COLUMNS.values())
                    + " FROM requests GROUP BY project, model, agent"):
                key = (_label(project, projects), _label(model, models), _label(agent, agents))
                sums = grouped.setdefault(key, [0.0, 0, 0, 0, 0, 0])
                for index, value in enumerate([usd, count, *token_sums]):
                    sums[index] += value or 0
            per_model_project: dict[tuple, list[float]] = {}
            for (project, model, agent), sums in grouped.items():
                cost.add_metric([project, model, agent], sums[0])
                merged = per_model_project.setdefault((model, project), [0] * 5)
                for index in range(5):
                    merged[index] += sums[index + 1]
            for (model, project), sums in per_model_project.items():
                requests.add_metric([model, project], sums[0])
                for name, value in zip(TOKEN_COLUMNS, sums[1:]):
                    tokens.add_metric([name, model, project], value)
            yield from (cost, tokens, requests)

            cases = ", ".join(f"sum(cost_usd <= {bound})" for bound in BUCKETS)
            row = ledger.query(f"SELECT {cases}, count(cost_usd), coalesce(sum(cost_usd), 0)"
                               " FROM requests")[0]
            counts = [int(v or 0) for v in row[:len(BUCKETS)]]
            total, total_sum = int(row[len(BUCKETS)]), float(row[-1])
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
            for budget in status_report(self.project, ledger)["budgets"]:
                ratio.add_metric([budget["budget"]], budget["percent"] / 100)
                if budget["unit"] == "usd":
                    limit.add_metric([budget["budget"]], budget["limit"])
            yield ratio
            yield limit

            last = ledger.query("SELECT max(recorded_at) FROM sessions")[0][0]
            scanned = GaugeMetricFamily("cmat_last_scan_timestamp_seconds",
                                        "When transcripts were last imported into the ledger.")
            scanned.add_metric([], max(self.last_scan, last or 0.0))
            yield scanned


def registry(project: Path, scan: bool):
    from prometheus_client import CollectorRegistry

    collector_registry = CollectorRegistry(auto_describe=False)
    collector_registry.register(LedgerCollector(project, scan))
    return collector_registry


def exposition(project: Path, scan: bool = True) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(registry(project, scan))


IDLE_TIMEOUT_SECONDS = 10.0  # a connection that sends nothing is closed after this


def serve(project: Path, host: str, port: int) -> None:
    """Serve /metrics until interrupted.

    prometheus_client's threaded WSGI server: every connection has a thread of its own and a
    socket timeout, so a client that connects and sends nothing stalls no one else.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    class QuietHandler(WSGIRequestHandler):
        timeout = IDLE_TIMEOUT_SECONDS

        def log_message(self, *args) -> None:
            pass  # scrapes every 15 s would flood the terminal

    app = make_wsgi_app(registry(project, scan=True))
    with make_server(host, port, app, ThreadingWSGIServer, handler_class=QuietHandler) as server:
        print(f"Serving Prometheus metrics on http://{host}:{server.server_port}/metrics",
              flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
