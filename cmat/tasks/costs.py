"""A task's figures, from the ledger: the queue's cost fields, `cmat costs show` and
`cmat costs enhancement`. The ledger is the truth; the queue's fields are written from it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cmat import paths
from cmat.catalog import ModelService
from cmat.errors import CmatError
from cmat.ingest import import_session
from cmat.ledger import Ledger
from cmat.ledger.queries.source import ReportSource
from cmat.periods import iso_utc
from cmat.pricing import CostSummary, ModelTotals
from cmat.tasks.queue import (
    LEGACY_VERSION,
    QueueService,
    enhancement_of,
    figure_session,
    legacy_figures,
    queue_session,
    task_type_of,
)
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
                                           queue_session(sessions[-1][0], task_id)
                                           if sessions else None)
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


LEGACY_RECORDER = "cmat-legacy"  # `recorded_by` of a task's session named by CMAT's figures


def import_legacy(project: Path, ledger: Ledger, models: ModelService) -> dict[str, dict]:
    """What CMAT's own hook wrote into the queue before cmat recorded a task counts once
    (`_import_task_legacy`); returns the figures left out as nobody's spend here, by task id
    (`queue_figures_not_counted`'s, for a report to say why its total is not the queue's)."""
    left_out = {}
    for task in QueueService(project).tasks():
        figures = _import_task_legacy(project, ledger, models, task)
        if figures is not None:
            left_out[task["id"]] = figures
    return left_out


def import_legacy_before_recording(project: Path, ledger: Ledger, models: ModelService,
                                   task_id: str) -> None:
    """Before a task's first session is recorded, CMAT's figures for it (import_legacy): once
    the task has a session, its queue fields are cmat's own, and those would be lost."""
    if ledger.task_sessions(task_id):
        return
    try:
        task = QueueService(project).get(task_id)
    except CmatError:  # no such task, or a queue that cannot be read: no figures to keep
        return
    _import_task_legacy(project, ledger, models, task)


def _import_task_legacy(project: Path, ledger: Ledger, models: ModelService, task: dict
                        ) -> dict | None:
    """A task whose cost fields CMAT's own hook wrote, and that cmat has not recorded: the
    figures left out, or None.

    CMAT's figure is of one session. Where this machine holds that session (its requests in
    the ledger, or its transcript here to import), the task is given the session itself,
    priced by cmat: the figure beside it would count the same work twice in every report.
    Where the session's requests are not to be had (its transcript deleted since, and CMAT's
    log of the task here; or a transcript without them), the figure becomes a request of its
    own, kept until cmat records that session. A queue is a repository's file
    (docs/security.md): its figures count only with this machine's evidence of the work, and
    a log counts as such only inside the project. CMAT's template and demo queues, or a queue
    committed from another machine, are nobody's spend here."""
    figures = legacy_figures(task)
    if figures is None:
        return None
    recorded = [row[0] for row in ledger.task_sessions(task["id"])]
    if recorded and recorded != [figures["session"]]:
        return None  # cmat records the task itself
    metadata = task["metadata"]
    named = figure_session(task)
    transcript = session_transcript(paths.transcript_roots(), named) if named else None
    if transcript is not None:
        try:
            import_session(ledger, models, transcript, named)
        except CmatError:
            transcript = None  # unreadable now: as if it were not here
    context = {"project_dir": str(project), "task_id": task["id"],
               "enhancement": enhancement_of(task), "agent": task.get("assigned_agent"),
               "task_type": task_type_of(task), "recorded_by": LEGACY_RECORDER}
    if named and ledger.session_totals(named)[0]:
        owner = (ledger.attribution(named) or (None,))[0]
        with ledger.transaction():
            if recorded:  # stored as a figure by a cmat before this rule
                ledger.drop_legacy(task["id"], named)
            if owner in (None, task["id"]):  # a queue's word never takes another task's
                ledger.attribute(named, transcript_path=str(transcript) if transcript
                                 else None, **context)
        return None
    if recorded:
        return None
    if transcript is None and not _log_in_project(project, metadata.get("log_file_path")):
        return {"total_usd": figures["cost"], "model": figures["model"], "session_id": named}
    with ledger.transaction():
        ledger.store_legacy(task["id"], figures, LEGACY_VERSION)
        ledger.attribute(figures["session"], transcript_path=None, **context)
    return None


def _log_in_project(project: Path, log) -> bool:
    """Whether `log`, a task's log_file_path, names a file inside the project, where CMAT
    writes its logs (enhancements/NAME/logs/): a path a queue names elsewhere is no evidence
    of work done here."""
    if not isinstance(log, str) or not log or not os.path.isabs(log):
        return False
    try:
        found = Path(log).resolve()
        return found.is_relative_to(project.resolve()) and found.is_file()
    except (OSError, ValueError):
        return False


def task_report(project: Path, task_id: str, source: ReportSource | None = None,
                models: ModelService | None = None) -> dict:
    """`cmat costs show`: the task's totals, per model and per session, from the ledger (or
    `source`: the ledger, opened already, or the team database: every machine's sessions)."""
    task = QueueService(project).get(task_id)
    models = models or ModelService(project)
    left_out: dict[str, dict] = {}
    with (contextlib.nullcontext(source) if source else Ledger()) as ledger:
        if isinstance(ledger, Ledger):
            left_out = import_legacy(project, ledger, models)
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
    """`cmat costs enhancement NAME`: every task of the enhancement in this project's queue,
    from the ledger (or `source`, the team database: every machine's sessions)."""
    summary, rows = _enhancements(project, source, name)[name]
    return {**summary.to_json(), "enhancement": name, "tasks": rows}


def enhancements_report(project: Path, source: ReportSource | None = None) -> dict:
    """`cmat costs enhancement`: each enhancement of this project's queue, in the order of
    its first task, with its tasks' totals; and the totals of them all."""
    total = CostSummary()
    listed = []
    for name, (summary, rows) in _enhancements(project, source).items():
        total.merge(summary)
        listed.append({**summary.to_json(), "enhancement": name, "tasks": len(rows),
                       "sessions": sum(row["sessions"] for row in rows),
                       "queue_figures_not_counted": [row["queue_figures_not_counted"]
                                                     for row in rows
                                                     if row["queue_figures_not_counted"]]})
    return {**total.to_json(), "enhancements": listed}


def _enhancements(project: Path, source: ReportSource | None, only: str | None = None
                  ) -> dict[str, tuple[CostSummary, list[dict]]]:
    """Each enhancement's totals and its tasks, task by task (`only`: that one's, even
    without a task)."""
    tasks = QueueService(project).tasks(enhancement=only)
    models = ModelService(project)
    found: dict[str, tuple[CostSummary, list[dict]]] = {only: (CostSummary(), [])} if only \
        else {}
    left_out: dict[str, dict] = {}
    with (contextlib.nullcontext(source) if source else Ledger()) as ledger:
        if isinstance(ledger, Ledger):
            left_out = import_legacy(project, ledger, models)
        for task in tasks:
            name = enhancement_of(task)
            if name is None:
                continue
            summary = task_summary(ledger, task["id"], models)
            total, rows = found.setdefault(name, (CostSummary(), []))
            total.merge(summary)
            rows.append({"task_id": task.get("id"), "title": task.get("title"),
                         "status": task.get("status"), "agent": task.get("assigned_agent"),
                         "total_usd": summary.totals.total_usd, "tokens": summary.totals.tokens,
                         "requests": summary.totals.requests,
                         "sessions": len(ledger.task_sessions(task["id"])),
                         "queue_figures_not_counted": left_out.get(task["id"])})
    return found
