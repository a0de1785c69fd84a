"""Attribution: a session's requests, imported, then the session attributed to its task and
the project's task queue brought up to date. What the hooks, `cmat costs extract` and
spooled records do; it sits above both the import (cmat.ingest) and the queue (cmat.tasks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cmat.catalog import ModelService
from cmat.errors import CmatError, TranscriptError, UsageError
from cmat.ingest import given_log_reader, import_app_log, import_session
from cmat.ledger import Ledger
from cmat.tasks.costs import import_legacy_before_recording, sync_queue, task_report
from cmat.tasks.queue import QueueService, TaskContext, enhancement_of, task_type_of
from cmat.transcripts.files import (
    SourceFile,
    session_ids_in,
    subagent_source,
)
from cmat.transcripts.session import SessionUsage
from cmat.untrusted import Unreadable
from cmat.usage import UsageRecord


def session_of(transcript: Path, given: str | None) -> str:
    """The session a transcript holds: `given` if the file is about it (a SESSION that names
    another session would record the same requests twice under two ids), else its own."""
    ids = session_ids_in(transcript)
    if given:
        return _named_session(transcript, ids, given, "transcript", also=transcript.stem)
    if transcript.stem in ids or not ids:
        return transcript.stem
    return sorted(ids)[0]


@dataclass
class Attribution:
    session_id: str
    task_id: str | None
    requests: int  # of the session, as the ledger holds it now
    total_usd: float  # of the session
    new_requests: int  # imported by this call
    queue_lagging: list[str]  # tasks whose queue fields could not be written now


def attribute_session(project: Path, ledger: Ledger, models: ModelService,
                      transcript: Path | None, session_id: str, context: TaskContext,
                      recorded_by: str, subagent: SourceFile | None = None,
                      max_bytes: int | None = None) -> Attribution:
    """The one road in: import the session's new lines, attribute the session, and bring the
    project's task queue up to date with the ledger."""
    scanned = import_session(ledger, models, transcript, session_id, subagent=subagent,
                             max_bytes=max_bytes)
    return _attribute(project, ledger, models, transcript, session_id, context, recorded_by,
                      scanned.new_requests)


def record_usage(project: Path, ledger: Ledger, models: ModelService, record: UsageRecord,
                 context: TaskContext, source: str) -> tuple[float | None, Attribution]:
    """The same road for usage that no transcript holds (another LLM call an orchestrator
    made): price it with the catalog, store it with its `source`, attribute its session.
    Returns its cost (None: the catalog does not price its model)."""
    from cmat.pricing import record_cost

    cost = record_cost(record, models.get_by_pattern(record.model))
    with ledger.transaction():
        ledger.add_requests([record], [cost], catalog_version=models.catalog.version,
                            source=source)
    return cost, _attribute(project, ledger, models, None, record.session_id, context,
                            "api", 1)


def _attribute(project: Path, ledger: Ledger, models: ModelService, transcript: Path | None,
               session_id: str, context: TaskContext, recorded_by: str,
               new_requests: int) -> Attribution:
    if context.task_id:
        import_legacy_before_recording(project, ledger, models, context.task_id)
    with ledger.transaction():
        ledger.attribute(session_id, project_dir=str(project),
                         transcript_path=str(transcript) if transcript else None,
                         task_id=context.task_id, enhancement=context.enhancement,
                         agent=context.agent, task_type=context.task_type,
                         recorded_by=recorded_by)
        if context.task_id:
            ledger.drop_legacy(context.task_id, session_id)
    requests, total = ledger.session_totals(session_id)
    lagging = sync_queue(project, ledger, models) if context.task_id or \
        ledger.lagging_tasks(str(project)) else []
    return Attribution(session_id, context.task_id, requests, total, new_requests, lagging)


def _spooled_context(project: Path, pending) -> TaskContext:
    """Whom a spooled attribution is for; a hook script without cmat knew only the task: its
    enhancement, agent and type come from the queue, as a hook would have read them."""
    if pending.task_id and pending.enhancement is None and pending.agent is None:
        try:
            task = QueueService(project).get(pending.task_id)
        except CmatError:
            task = None
        if task is not None:
            agent = task.get("assigned_agent")
            return TaskContext(pending.task_id, enhancement_of(task),
                               agent if isinstance(agent, str) else None, task_type_of(task))
    return TaskContext(pending.task_id, pending.enhancement, pending.agent, pending.task_type)


def apply_spool(ledger: Ledger) -> tuple[int, list[str]]:
    """Record what hooks had to spool (see spool.py); returns (applied, problems). An entry
    whose transcript is gone is still attributed: its requests may be in the ledger already."""
    from cmat import spool  # the recording hooks need it; the budget hooks should not load it

    applied, problems = 0, []
    for path, pending in spool.waiting():
        project = Path(pending.project)
        context = _spooled_context(project, pending)
        subagent = None
        if pending.subagent:
            subagent = subagent_source(Path(pending.subagent), pending.subagent_type)
        transcript = Path(pending.transcript) if pending.transcript else None
        models = ModelService(project)
        try:
            try:
                attribute_session(project, ledger, models, transcript, pending.session_id,
                                  context, pending.recorded_by, subagent)
            except TranscriptError:
                attribute_session(project, ledger, models, None, pending.session_id,
                                  context, pending.recorded_by)
        except Exception as exc:  # left in the spool for the next try
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        path.unlink(missing_ok=True)
        applied += 1
    return applied, problems


def _named_session(path: Path, held: set[str], given: str, kind: str,
                   also: str | None = None, naming: str = "as SESSION") -> str:
    """`given`, unless the file (a transcript or another agent's log) holds other sessions
    only (`also`: a name it goes by too): naming another would record the same requests
    twice under two ids. `naming`: how the command names a session, for the hints."""
    if held and given not in held and given != also:
        raise UsageError(f"{path} holds session {sorted(held)[0]}, not {given}",
                         f"leave {naming.split()[-1]} out, or name the {kind} of that session")
    return given


def _app_session(path: Path, reader, sessions: set[str], given: str | None,
                 naming: str = "as SESSION") -> str:
    """The session of another agent's log to record: `given` if the log holds it, else its
    own; a database (OpenCode's) holds many, so there it must be named (`naming`: how)."""
    if hasattr(reader, "databases"):
        return _database_session(path, reader, given, naming)
    if given:
        return _named_session(path, sessions, given, "log", naming=naming)
    if len(sessions) == 1:
        return next(iter(sessions))
    if not sessions:
        raise UsageError(f"{path} holds no request of {reader.APP}'s yet, nor says whose",
                         f"name the session {naming}, or record it once it has run")
    raise UsageError(f"{path} holds {len(sessions)} sessions: {', '.join(sorted(sessions))}",
                     f"name one of them {naming}")


def app_session_usage(path: Path, reader, given: str | None) -> SessionUsage:
    """Another agent's log as `cmat costs session` prices a transcript: the requests of one
    session, `given` or the log's own (a database's must be named), read whole and recorded
    nowhere; chosen as `cmat costs extract` chooses it."""
    from cmat.ingest import AppLog, read_app_log

    naming = "with --session-id"
    database = hasattr(reader, "databases")  # its session is checked before it is read
    session = _app_session(path, reader, set(), given, naming) if database else None
    read = read_app_log(AppLog(reader.APP, str(path), 0 if database else None, path.stat()))
    if isinstance(read, str):
        raise Unreadable(read, "try again once the agent has written it whole")
    session = session or _app_session(
        path, reader, {record.session_id for record in read.records if record.session_id},
        given, naming)
    own = sorted((record for record in read.records if record.session_id == session),
                 key=lambda record: record.timestamp)
    return SessionUsage(session, own, [path], read.skipped, 0)


def _database_session(path: Path, reader, given: str | None, naming: str) -> str:
    """The session named in a database of every session (OpenCode's): one it holds, and one
    of its own (a subagent's run is counted as part of the session it ran inside)."""
    if not given:
        raise UsageError(f"{path} is {reader.APP}'s database: it holds every session",
                         f"name the session {naming} (ses_...)")
    parents = reader.session_parents(path)  # unreadable: the safe reader's error, exit 6
    if given not in parents:
        raise UsageError(f"{path} holds no session {given} ({len(parents)} in all)",
                         "name the session the task ran in, as OpenCode lists it")
    if parents[given] is not None:
        raise UsageError(f"{given} is a subagent's run inside session {parents[given]}",
                         f"name {parents[given]}: its requests are counted there")
    return given


def extract(project: Path, task_id: str, transcript: str | os.PathLike,
            session_id: str | None = None, models: ModelService | None = None,
            ledger: Ledger | None = None) -> dict:
    """`cmat costs extract`: record a session against a task; the session's and the task's
    figures as the ledger now holds them."""
    queue = QueueService(project)
    task = queue.get(task_id)  # an unknown task fails before anything is read
    path = Path(transcript)
    reader = given_log_reader(path)  # another agent's log: a task CMAT ran on Codex, say
    if reader is None:
        session_id = session_of(path, session_id)
    models = models or ModelService(project)
    context = TaskContext(task_id, enhancement_of(task), task.get("assigned_agent"),
                          task_type_of(task))
    own = ledger is None
    ledger = ledger or Ledger()
    try:
        if reader is None:
            attribution = attribute_session(project, ledger, models, path, session_id,
                                            context, "extract")
        else:
            scanned, sessions = import_app_log(ledger, models, reader, path)
            session_id = _app_session(path, reader, sessions, session_id)
            attribution = _attribute(project, ledger, models, path, session_id, context,
                                     "extract", scanned.new_requests)
        report = task_report(project, task_id, ledger, models)
    finally:
        if own:
            ledger.close()
    session = next((s for s in report["sessions"] if s["session_id"] == session_id), {})
    return {**report, "session_id": session_id, "session_total_usd": session.get("total_usd"),
            "session_requests": session.get("requests", 0),
            "new_requests": attribution.new_requests, "queue_lagging": attribution.queue_lagging}


