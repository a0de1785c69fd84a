"""A task's figures, from the ledger: the queue's cost fields, `cmat costs show` and
`cmat costs enhancement`. The ledger is the truth; the queue's fields are written from it."""

from __future__ import annotations

import contextlib
from pathlib import Path

from cmat import paths
from cmat.catalog import ModelService
from cmat.errors import CmatError
from cmat.ledger import Ledger
from cmat.ledger.queries.source import ReportSource
from cmat.periods import iso_utc
from cmat.pricing import CostSummary, ModelTotals
from cmat.tasks.queue import LEGACY_VERSION, QueueService, enhancement_of, legacy_figures
from cmat.transcripts.files import session_transcript


def task_summary(ledger: ReportSource, task_id: str, models: ModelService) -> CostSummary:
    """A task's totals, overall and per model: the one query every reader uses."""
    summary = CostSummary()
    for model, *sums, requests, cost, priced in ledger.model_totals(task_id):
        entry = models.get_by_pattern(model)
        # Unpriced requests are never shown as a complete figure; figures CMAT wrote before
        # cmat carry their cost under whatever model name CMAT gave them.
        name = entry.name if entry else (model if priced == requests else None)
        totals = ModelTotals(name=name)
        totals.set(sums, requests, cost)
        summary.models[model] = totals
        summary.totals.merge(totals)
    return summary


def queue_fields(summary: CostSummary, last_session: str | None) -> dict[str, str]:
    """CMAT's metadata fields, as CMAT writes them: strings, cost with 4 decimals, the model
    with the largest cost as a model id."""
    tokens = summary.totals.tokens
    top = summary.top_model()
    return {
        "cost_input_tokens": str(tokens["input"]),
        "cost_output_tokens": str(tokens["output"]),
        "cost_cache_creation_tokens": str(tokens["cache_creation"]),
        "cost_cache_read_tokens": str(tokens["cache_read"]),
        "cost_usd": f"{summary.totals.total_usd:.4f}",
        "cost_model": top[0] if top else "",
        "session_id": last_session or "",
    }


def sync_queue(project: Path, ledger: Ledger, models: ModelService,
               raise_errors: bool = False) -> list[str]:
    """Write every attributed task's figures from the ledger into the project's queue, where
    they differ; returns the tasks that could not be written (kept to catch up later), or,
    `raise_errors`, raises why."""
    if not ledger.project_tasks(str(project)):
        return []
    queue = QueueService(project)
    wanted: dict[str, dict] = {}

    def apply(doc: dict) -> bool:
        # Computed under the queue's lock: a writer that attributed a session after us
        # writes after us too, so the last write always holds the ledger's latest figures.
        wanted.clear()
        for task_id in ledger.project_tasks(str(project)):
            sessions = ledger.task_sessions(task_id)  # the last one recorded last
            wanted[task_id] = queue_fields(task_summary(ledger, task_id, models),
                                           sessions[-1][0] if sessions else None)
        changed = False
        for task in doc["tasks"]:
            fields = wanted.get(task.get("id")) if isinstance(task, dict) else None
            if fields is None:
                continue
            metadata = task.get("metadata")
            if not isinstance(metadata, dict):
                metadata = task["metadata"] = {}
            if any(metadata.get(k) != v for k, v in fields.items()):
                metadata.update(fields)
                changed = True
        return changed

    try:
        queue.update(apply, only_if_changed=True)
    except CmatError:
        with ledger.transaction():
            for task_id in wanted:
                ledger.queue_lagging(str(project), task_id, True)
        if raise_errors:
            raise
        return sorted(wanted)
    with ledger.transaction():
        for task_id in wanted:
            ledger.queue_lagging(str(project), task_id, False)
    return []


def ran_here(task: dict) -> bool:
    """Whether a task's figures are of work done on this machine: its session's transcript,
    or its log file, is here. CMAT's template and demo queues (and a queue committed from
    another machine) carry figures of sessions that never ran here: they are nobody's spend
    here."""
    metadata = task.get("metadata") if isinstance(task.get("metadata"), dict) else {}
    log = metadata.get("log_file_path")
    if isinstance(log, str) and log and Path(log).is_file():
        return True
    session = metadata.get("session_id")
    return isinstance(session, str) and \
        session_transcript(paths.transcript_roots(), session) is not None


def import_legacy(project: Path, ledger: Ledger) -> dict[str, dict]:
    """Figures CMAT's own hook wrote before cmat (a task with cost fields and no session in
    the ledger) become one request of their own in the ledger, so that they still count once
    cmat records the task's next session; only figures of work done on this machine
    (`ran_here`). Returns the figures left out, by task id: `queue_figures_not_counted`'s,
    for a report to say why its total is not the queue's."""
    left_out = {}
    for task in QueueService(project).tasks():
        figures = _import_task_legacy(project, ledger, task)
        if figures is not None:
            left_out[task["id"]] = figures
    return left_out


def import_legacy_before_recording(project: Path, ledger: Ledger, task_id: str) -> None:
    """Before a task's first session is recorded, CMAT's figures for it (import_legacy): once
    the task has a session, its queue fields are cmat's own, and those would be lost."""
    if ledger.task_sessions(task_id):
        return
    try:
        task = QueueService(project).get(task_id)
    except CmatError:  # no such task, or a queue that cannot be read: no figures to keep
        return
    _import_task_legacy(project, ledger, task)


def _import_task_legacy(project: Path, ledger: Ledger, task: dict) -> dict | None:
    """import_legacy for one task; the figures left out, or None."""
    figures = legacy_figures(task)
    if figures is None or ledger.task_sessions(task["id"]):
        return None
    if not ran_here(task):
        session = task["metadata"].get("session_id")
        return {"total_usd": figures["cost"], "model": figures["model"],
                "session_id": session if isinstance(session, str) else None}
    with ledger.transaction():
        ledger.store_legacy(task["id"], figures, LEGACY_VERSION)
        ledger.attribute(figures["session"], project_dir=str(project), transcript_path=None,
                         task_id=task["id"], enhancement=enhancement_of(task),
                         agent=task.get("assigned_agent"), recorded_by="cmat-legacy")
    return None


def task_report(project: Path, task_id: str, source: ReportSource | None = None,
                models: ModelService | None = None) -> dict:
    """`cmat costs show`: the task's totals, per model and per session, from the ledger (or
    `source`: the ledger, opened already, or the team database: every machine's sessions)."""
    task = QueueService(project).get(task_id)
    models = models or ModelService(project)
    left_out: dict[str, dict] = {}
    with (contextlib.nullcontext(source) if source else Ledger()) as ledger:
        if isinstance(ledger, Ledger):
            left_out = import_legacy(project, ledger)
        summary = task_summary(ledger, task_id, models)
        sessions = ledger.task_sessions(task_id)
    report = summary.to_json()
    report.update(task_id=task_id, title=task.get("title"), status=task.get("status"),
                  queue_figures_not_counted=left_out.get(task_id),
                  enhancement=enhancement_of(task), agent=task.get("assigned_agent"),
                  sessions=[{"session_id": sid, "started": iso_utc(first), "ended": iso_utc(last),
                             "requests": count, "total_usd": cost, "transcript_path": path}
                            for sid, first, last, count, cost, path in sessions])
    return report


def enhancement_report(project: Path, name: str, source: ReportSource | None = None) -> dict:
    """`cmat costs enhancement`: every task of the enhancement in this project's queue, from
    the ledger (or `source`, the team database: every machine's sessions)."""
    tasks = QueueService(project).tasks(enhancement=name)
    models = ModelService(project)
    total = CostSummary()
    rows = []
    left_out: dict[str, dict] = {}
    with (contextlib.nullcontext(source) if source else Ledger()) as ledger:
        if isinstance(ledger, Ledger):
            left_out = import_legacy(project, ledger)
        for task in tasks:
            summary = task_summary(ledger, task["id"], models)
            total.merge(summary)
            rows.append({"task_id": task.get("id"), "title": task.get("title"),
                         "status": task.get("status"), "agent": task.get("assigned_agent"),
                         "total_usd": summary.totals.total_usd, "tokens": summary.totals.tokens,
                         "requests": summary.totals.requests,
                         "sessions": len(ledger.task_sessions(task["id"])),
                         "queue_figures_not_counted": left_out.get(task["id"])})
    report = total.to_json()
    report.update(enhancement=name, tasks=rows)
    return report
