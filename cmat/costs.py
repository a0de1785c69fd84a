"""What a task cost: one road in, one truth out.

Every writer (the SessionEnd and SubagentStop hooks, `cmat costs extract`) goes through
`record`: the session's files are imported into the ledger incrementally (appended bytes
only, the better copy of a request winning), then the session is attributed to the task. A
task's cost is then a query over the ledger (each request once, by message id), and CMAT's
fields in the task queue (`cost_usd`, `cost_input_tokens`, ...) are written from that query
every time: nothing in the queue is ever read back to compute a figure, so a CMAT that drops
unknown keys, or rewrites the task under us, loses nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cmat.catalog import ModelService
from cmat.errors import UsageError
from cmat.ledger import Ledger
from cmat.pricing import CostSummary, ModelTotals, summarize
from cmat.queue import QueueService, TaskContext, enhancement_of
from cmat.transcripts import SourceFile, read_session, session_ids_in

LEGACY_VERSION = "recorded by CMAT"  # catalog_version of figures CMAT wrote before cmat
QUEUE_FIELDS = ("cost_input_tokens", "cost_output_tokens", "cost_cache_creation_tokens",
                "cost_cache_read_tokens", "cost_usd", "cost_model", "session_id")


def session_report(transcript: str | os.PathLike, session_id: str | None = None,
                   models: ModelService | None = None) -> dict:
    """The cost of one session (with its subagents), without recording it anywhere."""
    usage = read_session(transcript, session_id)
    models = models or ModelService()
    report = summarize(usage.records, models.get_by_pattern, usage.skipped_lines).to_json()
    report.update(session_id=usage.session_id, started=usage.started, ended=usage.ended,
                  files=[str(p) for p in usage.files])
    return report


def session_of(transcript: Path, given: str | None) -> str:
    """The session a transcript holds: `given` if the file is about it (a SESSION that names
    another session would record the same requests twice under two ids), else its own."""
    ids = session_ids_in(transcript)
    if given:
        if ids and given not in ids and given != transcript.stem:
            raise UsageError(f"{transcript} holds session {sorted(ids)[0]}, not {given}",
                             "leave SESSION out, or name the transcript of that session")
        return given
    if transcript.stem in ids or not ids:
        return transcript.stem
    return sorted(ids)[0]


@dataclass
class Recorded:
    session_id: str
    task_id: str | None
    requests: int  # of the session, as the ledger holds it now
    total_usd: float  # of the session
    new_requests: int  # imported by this call
    queue_lagging: list[str]  # tasks whose queue fields could not be written now


def record(project: Path, ledger: Ledger, models: ModelService, transcript: Path | None,
           session_id: str, context: TaskContext, recorded_by: str,
           subagent: SourceFile | None = None, max_bytes: int | None = None) -> Recorded:
    """The one road in: import the session's new lines, attribute the session, and bring the
    project's task queue up to date with the ledger."""
    from cmat.scan import scan_session

    scanned = scan_session(ledger, models, transcript, session_id, subagent=subagent,
                           max_bytes=max_bytes)
    with ledger.transaction():
        ledger.attribute(session_id, project_dir=str(project),
                         transcript_path=str(transcript) if transcript else None,
                         task_id=context.task_id, enhancement=context.enhancement,
                         agent=context.agent, recorded_by=recorded_by)
        if context.task_id:
            ledger.drop_legacy(context.task_id, session_id)
    requests, total = ledger.session_totals(session_id)
    lagging = sync_queue(project, ledger, models) if context.task_id or \
        ledger.lagging_tasks(str(project)) else []
    return Recorded(session_id, context.task_id, requests, total, scanned.new_requests, lagging)


def apply_spool(ledger: Ledger) -> tuple[int, list[str]]:
    """Record what hooks had to spool (see spool.py); returns (applied, problems). An entry
    whose transcript is gone is still attributed: its requests may be in the ledger already."""
    from cmat import spool
    from cmat.errors import TranscriptError

    applied, problems = 0, []
    for path, pending in spool.waiting():
        project = Path(pending.project)
        context = TaskContext(pending.task_id, pending.enhancement, pending.agent)
        subagent = None
        if pending.subagent:
            from cmat.transcripts import subagent_source

            subagent = subagent_source(Path(pending.subagent), pending.subagent_type)
        transcript = Path(pending.transcript) if pending.transcript else None
        models = ModelService(project)
        try:
            try:
                record(project, ledger, models, transcript, pending.session_id, context,
                       pending.recorded_by, subagent)
            except TranscriptError:
                record(project, ledger, models, None, pending.session_id, context,
                       pending.recorded_by)
        except Exception as exc:  # left in the spool for the next try
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        path.unlink(missing_ok=True)
        applied += 1
    return applied, problems


def extract(project: Path, task_id: str, transcript: str | os.PathLike,
            session_id: str | None = None, models: ModelService | None = None,
            ledger: Ledger | None = None) -> dict:
    """`cmat costs extract`: record a session against a task; the session's and the task's
    figures as the ledger now holds them."""
    from cmat.transcripts import check_transcript

    queue = QueueService(project)
    task = queue.get(task_id)  # an unknown task fails before anything is read
    path = Path(transcript)
    check_transcript(path)
    session_id = session_of(path, session_id)
    models = models or ModelService(project)
    context = TaskContext(task_id, enhancement_of(task), task.get("assigned_agent"))
    own = ledger is None
    ledger = ledger or Ledger()
    try:
        recorded = record(project, ledger, models, path, session_id, context, "extract")
        report = task_report(project, task_id, ledger, models)
    finally:
        if own:
            ledger.close()
    session = next((s for s in report["sessions"] if s["session_id"] == session_id), {})
    return {**report, "session_id": session_id, "session_total_usd": session.get("total_usd"),
            "session_requests": session.get("requests", 0),
            "new_requests": recorded.new_requests, "queue_lagging": recorded.queue_lagging}


# --- the task's figures, from the ledger --------------------------------------------------------


def task_summary(ledger: Ledger, task_id: str, models: ModelService) -> CostSummary:
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
    from cmat.errors import CmatError

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


def import_legacy(project: Path, ledger: Ledger) -> int:
    """Figures CMAT's own hook wrote before cmat (a task with cost fields and no session in
    the ledger) become one request of their own in the ledger, so that they still count once
    cmat records the task's next session. Returns how many tasks were taken in."""
    from cmat.queue import legacy_figures

    taken = 0
    for task in QueueService(project).tasks():
        figures = legacy_figures(task)
        if figures is None or ledger.task_sessions(task["id"]):
            continue
        with ledger.transaction():
            ledger.store_legacy(task["id"], figures, LEGACY_VERSION)
            ledger.attribute(figures["session"], project_dir=str(project), transcript_path=None,
                             task_id=task["id"], enhancement=enhancement_of(task),
                             agent=task.get("assigned_agent"), recorded_by="cmat-legacy")
        taken += 1
    return taken


def task_report(project: Path, task_id: str, ledger: Ledger | None = None,
                models: ModelService | None = None) -> dict:
    """`cmat costs show`: the task's totals, per model and per session, from the ledger."""
    task = QueueService(project).get(task_id)
    models = models or ModelService(project)
    own = ledger is None
    ledger = ledger or Ledger()
    try:
        import_legacy(project, ledger)
        summary = task_summary(ledger, task_id, models)
        sessions = ledger.task_sessions(task_id)
    finally:
        if own:
            ledger.close()
    report = summary.to_json()
    from cmat.reports import iso_utc

    report.update(task_id=task_id, title=task.get("title"), status=task.get("status"),
                  enhancement=enhancement_of(task), agent=task.get("assigned_agent"),
                  sessions=[{"session_id": sid, "started": iso_utc(first), "ended": iso_utc(last),
                             "requests": count, "total_usd": cost, "transcript_path": path}
                            for sid, first, last, count, cost, path in sessions])
    return report


def enhancement_report(project: Path, name: str) -> dict:
    """`cmat costs enhancement`: every task of the enhancement in this project's queue."""
    tasks = QueueService(project).tasks(enhancement=name)
    models = ModelService(project)
    total = CostSummary()
    rows = []
    with Ledger() as ledger:
        import_legacy(project, ledger)
        for task in tasks:
            summary = task_summary(ledger, task["id"], models)
            total.merge(summary)
            rows.append({"task_id": task.get("id"), "title": task.get("title"),
                         "status": task.get("status"), "agent": task.get("assigned_agent"),
                         "total_usd": summary.totals.total_usd, "tokens": summary.totals.tokens,
                         "requests": summary.totals.requests,
                         "sessions": len(ledger.task_sessions(task["id"]))})
    report = total.to_json()
    report.update(enhancement=name, tasks=rows)
    return report


def latest_transcript() -> Path:
    """The most recently written main transcript under Claude Code's configuration folders."""
    from cmat import paths
    from cmat.errors import NotFound
    from cmat.scan import discover, scan_roots

    main = [f for f in discover(scan_roots()).values()
            if not os.path.basename(f.path).startswith("agent-")
            and os.path.basename(os.path.dirname(f.path)) != "subagents"]
    if not main:
        roots = ", ".join(str(r) for r in paths.claude_config_dirs()) \
            or "~/.claude, ~/.config/claude"
        raise NotFound(f"no Claude Code transcripts found (looked in {roots})",
                       "pass a transcript path, or set CLAUDE_CONFIG_DIR")
    return Path(max(main, key=lambda f: f.mtime_ns).path)
