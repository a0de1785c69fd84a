"""Session costs and their record in the task queue: parse -> price -> store.

A task's metadata keeps CMAT's string fields (`cost_usd`, `cost_input_tokens`, ...) as totals
over all the task's sessions, and `cost_sessions`: each session's figures keyed by session id,
so that recording a session again replaces its figures instead of adding them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cmat.catalog import ModelService
from cmat.pricing import CostSummary, price_records, summarize
from cmat.queue import QueueService, enhancement_of, utc_now
from cmat.transcripts import SessionUsage, UsageRecord, read_session

SESSIONS_KEY = "cost_sessions"
LEGACY_SESSION = "(recorded before cmat)"


def price_session(usage: SessionUsage, models: ModelService) -> CostSummary:
    return summarize(usage.records, models.get_by_pattern, usage.skipped_lines)


def session_report(transcript: str | os.PathLike, session_id: str | None = None,
                   models: ModelService | None = None) -> dict:
    """The cost of one session (with its subagents), without touching any task."""
    usage = read_session(transcript, session_id)
    models = models or ModelService()
    report = price_session(usage, models).to_json()
    report.update(session_id=usage.session_id, started=usage.started, ended=usage.ended,
                  files=[str(p) for p in usage.files])
    return report


@dataclass
class Extraction:
    task_id: str
    session_id: str
    session: dict  # this session's figures, as stored
    task_summary: CostSummary
    sessions: dict[str, dict]

    def to_json(self) -> dict:
        return {**self.session, "task_id": self.task_id, "session_id": self.session_id,
                "task_total_usd": self.task_summary.totals.total_usd,
                "sessions": len(self.sessions)}


def _message_ids(transcript: str, session_id: str) -> set[str]:
    try:
        return {r.message_id for r in read_session(transcript, session_id).records}
    except Exception:  # an unreadable older transcript only means no cross-session dedup
        return set()


def _owned_records(usage: SessionUsage, sessions: dict[str, dict]) -> list[UsageRecord]:
    """Drop requests a resumed session copied from a session of the task that ended earlier."""
    mine = (usage.ended or "", usage.session_id)
    earlier: set[str] = set()
    for other_id, other in sessions.items():
        if other_id == usage.session_id or not other.get("transcript_path"):
            continue
        if (other.get("ended") or "", other_id) < mine and Path(other["transcript_path"]).is_file():
            earlier |= _message_ids(other["transcript_path"], other_id)
    if not earlier:
        return usage.records
    return [r for r in usage.records if r.message_id not in earlier]


def _same_figures(old: dict, new: dict) -> bool:
    ignored = ("recorded_at",)
    return ({k: v for k, v in old.items() if k not in ignored}
            == {k: v for k, v in new.items() if k not in ignored})


def task_summary(task: dict) -> CostSummary:
    """The sum of the task's recorded sessions."""
    summary = CostSummary()
    for figures in _sessions(task).values():
        summary.merge(CostSummary.from_json(figures))
    return summary


def _sessions(task: dict) -> dict[str, dict]:
    metadata = task.get("metadata") if isinstance(task.get("metadata"), dict) else {}
    sessions = metadata.get(SESSIONS_KEY)
    if isinstance(sessions, dict):
        return sessions
    legacy = _legacy_session(metadata)
    return {LEGACY_SESSION: legacy} if legacy else {}


def _legacy_session(metadata: dict) -> dict | None:
    """Figures an older CMAT wrote (string fields only), kept as one session of the task."""
    if "cost_usd" not in metadata:
        return None
    try:
        tokens = {"input": int(metadata.get("cost_input_tokens") or 0),
                  "output": int(metadata.get("cost_output_tokens") or 0),
                  "cache_creation": int(metadata.get("cost_cache_creation_tokens") or 0),
                  "cache_creation_1h": 0,
                  "cache_read": int(metadata.get("cost_cache_read_tokens") or 0)}
        total = float(metadata.get("cost_usd") or 0)
    except (TypeError, ValueError):
        return None
    model = metadata.get("cost_model") or "unknown"
    return {"total_usd": total, "tokens": tokens, "web_search_requests": 0, "requests": 0,
            "models": [{"model": model, "name": model, "total_usd": total, "tokens": tokens,
                        "web_search_requests": 0, "requests": 0}],
            "skipped_lines": 0, "unpriced_models": [],
            "session_id": metadata.get("session_id"), "recorded_by": "cmat-legacy"}


def apply_totals(metadata: dict, summary: CostSummary, session_id: str) -> None:
    """Write CMAT's string fields from the task's totals."""
    tokens = summary.totals.tokens
    top = summary.top_model()
    metadata.update({
        "cost_input_tokens": str(tokens["input"]),
        "cost_output_tokens": str(tokens["output"]),
        "cost_cache_creation_tokens": str(tokens["cache_creation"]),
        "cost_cache_read_tokens": str(tokens["cache_read"]),
        "cost_usd": f"{summary.totals.total_usd:.4f}",
        "cost_model": (top[1].name or top[0]) if top else "",
        "session_id": session_id,
    })


def record_session(queue: QueueService, task_id: str, usage: SessionUsage,
                   models: ModelService, costs: list[float | None] | None = None) -> Extraction:
    """Price `usage` and store it as one session of the task (replacing an earlier record).

    `costs`, when given, are the prices of `usage.records` already computed.
    """
    current = _sessions(queue.get(task_id))
    records = _owned_records(usage, current)
    if costs is not None and len(records) != len(usage.records):
        kept = {id(r) for r in records}
        costs = [c for r, c in zip(usage.records, costs) if id(r) in kept]
    summary = summarize(records, models.get_by_pattern, usage.skipped_lines, costs)
    figures = summary.to_json()
    figures.update(transcript_path=str(usage.files[0]) if usage.files else None,
                   started=usage.started, ended=usage.ended, recorded_at=utc_now(),
                   copied_requests_excluded=len(usage.records) - len(records),
                   catalog_version=models.catalog.version)

    previous = current.get(usage.session_id)
    if previous is not None and _same_figures(previous, figures):
        # SessionEnd firing again (resume, clear) on an unchanged session: write nothing.
        summary_total = task_summary(queue.get(task_id))
        return Extraction(task_id, usage.session_id, previous, summary_total, current)

    def change(task: dict) -> Extraction:
        metadata = task.get("metadata")
        if not isinstance(metadata, dict):
            metadata = task["metadata"] = {}
        sessions = dict(_sessions(task))
        if sessions.get(LEGACY_SESSION, {}).get("session_id") == usage.session_id:
            del sessions[LEGACY_SESSION]  # the older record of this very session
        sessions[usage.session_id] = figures
        metadata[SESSIONS_KEY] = sessions
        total = CostSummary()
        for stored in sessions.values():
            total.merge(CostSummary.from_json(stored))
        apply_totals(metadata, total, usage.session_id)
        return Extraction(task_id, usage.session_id, figures, total, sessions)

    return queue.update_task(task_id, change)


def extract(project: Path, task_id: str, transcript: str | os.PathLike,
            session_id: str | None = None, models: ModelService | None = None) -> Extraction:
    """`cmat costs extract`: price a session and record it in the task's metadata.

    The ledger gets the session's requests too; if it cannot be written the task's record
    stands and the ledger error is raised after it (a LedgerError the caller may report).
    """
    queue = QueueService(project)
    task = queue.get(task_id)  # an unknown task fails before any parsing
    usage = read_session(transcript, session_id)
    models = models or ModelService(project)
    costs = price_records(usage.records, models.get_by_pattern)
    result = record_session(queue, task_id, usage, models, costs)
    record_in_ledger(project, usage, models, costs, task_id=task_id,
                     enhancement=enhancement_of(task), recorded_by="extract")
    return result


def record_in_ledger(project: Path, usage: SessionUsage, models: ModelService,
                     costs: list[float | None], *, task_id: str | None, enhancement: str | None,
                     recorded_by: str) -> None:
    """Store every request of the session (priced at `costs`) in the ledger, attributed to
    the task if known."""
    from cmat.ledger import Ledger

    with Ledger() as ledger, ledger.transaction():
        ledger.record(usage.records, costs, catalog_version=models.catalog.version,
                      task_id=task_id, enhancement=enhancement)
        ledger.record_session(usage.session_id, project_dir=str(project),
                              transcript_path=str(usage.files[0]) if usage.files else None,
                              task_id=task_id, enhancement=enhancement, recorded_by=recorded_by)


def task_report(project: Path, task_id: str) -> dict:
    task = QueueService(project).get(task_id)
    summary = task_summary(task)
    report = summary.to_json()
    report.update(task_id=task_id, title=task.get("title"), status=task.get("status"),
                  enhancement=enhancement_of(task),
                  sessions=[{"session_id": sid, "total_usd": s.get("total_usd"),
                             "requests": s.get("requests"), "started": s.get("started"),
                             "ended": s.get("ended"), "transcript_path": s.get("transcript_path")}
                            for sid, s in _sessions(task).items()])
    return report


def enhancement_report(project: Path, name: str) -> dict:
    tasks = QueueService(project).tasks(enhancement=name)
    total = CostSummary()
    rows = []
    for task in tasks:
        summary = task_summary(task)
        total.merge(summary)
        rows.append({"task_id": task.get("id"), "title": task.get("title"),
                     "status": task.get("status"), "agent": task.get("assigned_agent"),
                     "total_usd": summary.totals.total_usd, "tokens": summary.totals.tokens,
                     "requests": summary.totals.requests, "sessions": len(_sessions(task))})
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
