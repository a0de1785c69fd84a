"""CMAT's task queue (`.claude/data/task_queue.json`) and which task a session is for.

cmat owns only what it writes in the queue: CMAT's documented cost fields of a task's
metadata (written by cmat.tasks.costs from the ledger, never read back) and the tasks it adds.
Every other key of the file survives a rewrite untouched, in its order and JSON style.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cmat import clock, paths
from cmat.errors import CmatError, NotFound, QueueError, UsageError
from cmat.fileio import atomic_write_bytes, file_lock
from cmat.request import timestamp_seconds
from cmat.untrusted import (
    Unreadable,
    read_untrusted,
    read_untrusted_json,
    read_untrusted_text,
)
from cmat.usage import (
    EARLIEST_TS,
    LATEST_TS,
    LEGACY_SESSION,
    MAX_REQUEST_TOKENS,
    MAX_REQUEST_USD,
)

T = TypeVar("T")
READ_RETRY_PAUSES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)  # for a file caught half-written
QUEUE_LIMIT = 256 * 2**20  # a CMAT queue of thousands of tasks is a few MB
WRITE_ATTEMPTS = 8
LEGACY_VERSION = "recorded by CMAT"  # catalog_version of figures CMAT wrote before cmat

STATUSES = ("pending", "active", "completed", "failed", "blocked", "cancelled")
PRIORITIES = ("low", "normal", "high", "critical")
# A queue of CMAT before v10 kept its tasks in a list per state.
OLD_LAYOUT_KEYS = ("pending_tasks", "active_workflows", "completed_tasks", "failed_tasks")
QUEUE_FORMAT_VERSION = "3.0.0"
# CMAT's task types: each has a prompt template in CMAT's TASK_PROMPT_DEFAULTS.md.
TASK_TYPES = ("analysis", "technical_analysis", "implementation", "testing", "documentation",
              "integration")
DEFAULT_TASK_TYPE = "implementation"
# How CMAT v10's own `queue add` picks a task type: by the role agents.json gives the agent
# (WorkflowService.get_task_type_for_agent), "analysis" for any other.
CMAT_ROLE_TASK_TYPES = {"analyst": "analysis", "requirements-analyst": "analysis",
                        "product-analyst": "analysis", "architect": "technical_analysis",
                        "implementer": "implementation", "tester": "testing",
                        "documenter": "documentation", "integration": "integration"}
CMAT_FALLBACK_TASK_TYPE = "analysis"
FINISHED_STATUSES = ("completed", "failed", "cancelled")


def utc_now() -> str:
    return datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_task_id() -> str:
    import random  # only `queue add` makes ids

    return f"task_{int(clock.now())}_{random.randint(0, 99999):05d}"


@dataclass(frozen=True)
class TaskContext:
    """Whom a session's cost is attributed to."""

    task_id: str | None = None
    enhancement: str | None = None
    agent: str | None = None  # CMAT's assigned agent
    task_type: str | None = None  # CMAT's task_type (analysis, implementation, ...)
    problem: str | None = None  # why the current task could not be known (said, not hidden)


NO_TASK = TaskContext()
ACTIVE_STATUSES = ("pending", "active", "blocked")  # a task sessions may still be run for


def current_context(project: Path, details: bool = True) -> TaskContext:
    """The task a session running now is for.

    CMAT_CURRENT_TASK_ID (which a CMAT orchestrator sets for the sessions it starts) first,
    with CMAT_ENHANCEMENT and CMAT_AGENT when set; else the marker `cmat queue start` writes,
    as long as its task is still active in the queue (a marker left behind by a task that
    was completed elsewhere names nobody). Enhancement and agent come from the queue where the
    environment does not give them, unless `details` is False (the queue is then read only
    to check a marker).
    """
    task_id = os.environ.get("CMAT_CURRENT_TASK_ID", "").strip() or None
    from_marker = task_id is None
    if from_marker:
        try:
            task_id = read_marker(project)
        except Unreadable as exc:  # recorded without a task, and said so
            return TaskContext(problem=f"current-task marker refused: {exc}")
        if task_id is None:
            return NO_TASK
    elif not details:
        return TaskContext(task_id, os.environ.get("CMAT_ENHANCEMENT", "").strip() or None,
                           os.environ.get("CMAT_AGENT", "").strip() or None)
    try:
        task = QueueService(project).get(task_id)
    except CmatError:
        task = None
    if from_marker and (task is None or task.get("status") not in ACTIVE_STATUSES):
        return NO_TASK
    enhancement = os.environ.get("CMAT_ENHANCEMENT", "").strip() or (
        enhancement_of(task) if task else None)
    agent = os.environ.get("CMAT_AGENT", "").strip() or (
        task.get("assigned_agent") if task and isinstance(task.get("assigned_agent"), str)
        else None)
    return TaskContext(task_id, enhancement, agent, task_type_of(task))


def task_type_of(task: dict | None) -> str | None:
    value = task.get("task_type") if task else None
    return value if isinstance(value, str) and value else None


MARKER_LIMIT = 4096  # a task id, written by `cmat queue start` or an orchestrator


def read_marker(project: Path) -> str | None:
    """The project's current task, from its marker file; None when there is none. A marker
    that is not a small text file (a FIFO, a device, bytes that are not UTF-8, a task id with
    control characters) is refused: raises Unreadable, which the caller reports."""
    path = paths.current_task_file(project)
    text = read_untrusted_text(path, MARKER_LIMIT)
    if text is None:
        return None
    task_id = text.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in task_id):
        raise Unreadable(f"{path} holds control characters, not a task id")
    return task_id or None


def legacy_figures(task: dict) -> dict | None:
    """Cost figures CMAT's own hook wrote into a task before cmat recorded it; None when it
    has none (`cost_usd: null`, CMAT's default for a new task, is no figure at all)."""
    metadata = task.get("metadata")
    if not isinstance(metadata, dict):
        return None
    try:
        cost = float(metadata.get("cost_usd"))
        counts = {name: int(metadata.get(f"cost_{name}_tokens") or 0)
                  for name in ("input", "output", "cache_creation", "cache_read")}
    except (TypeError, ValueError):
        return None
    stamp = task.get("completed") or task.get("started") or task.get("created")
    ts = timestamp_seconds(stamp) if isinstance(stamp, str) else 0.0
    # Beyond what a request can be, or at no time one was made: no figure (as the team
    # database would refuse it).
    if not (math.isfinite(cost) and 0 <= cost <= MAX_REQUEST_USD and EARLIEST_TS <= ts
            <= LATEST_TS and all(0 <= n <= MAX_REQUEST_TOKENS for n in counts.values())):
        return None
    return {**counts, "cost": cost, "model": str(metadata.get("cost_model") or "unknown"),
            "session": LEGACY_SESSION + (figure_session(task) or str(task.get("id"))),
            "ts": ts}


def figure_session(task: dict) -> str | None:
    """The session CMAT's figures in a task are of (None: they name none). A cmat that
    stored them as a session of their own wrote that session's id back, LEGACY_SESSION before
    CMAT's."""
    metadata = task.get("metadata") if isinstance(task.get("metadata"), dict) else {}
    named = metadata.get("session_id")
    if not isinstance(named, str):
        return None
    named = named.removeprefix(LEGACY_SESSION)
    return named if named and named != task.get("id") else None


def queue_session(session_id: str, task_id: str) -> str:
    """The session id a task's queue fields name, as CMAT would: a figure's own session
    (LEGACY_SESSION + CMAT's id, or the task's when it named none) by CMAT's id."""
    named = session_id.removeprefix(LEGACY_SESSION)
    return "" if named == task_id and named != session_id else named


def enhancement_of(task: dict) -> str | None:
    metadata = task.get("metadata")
    name = metadata.get("enhancement_title") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) and name else None


class QueueService:
    def __init__(self, project: Path, read_retry_pauses: tuple[float, ...] = READ_RETRY_PAUSES):
        self.project = project
        self.path = paths.queue_file(project)
        self.read_retry_pauses = read_retry_pauses  # how long a half-written file is waited for

    # --- reading ------------------------------------------------------------------------------

    def load(self) -> dict:
        """The whole queue document; an empty queue when the file does not exist yet."""
        return self._read()[0]

    def _read(self) -> tuple[dict, bytes | None]:
        """The document and the bytes it was read from (None: no file yet).

        CMAT writes the queue with open('w') and json.dump, no lock and not atomically: a
        read can catch it half-written. Such a read is tried again after a short pause before
        the file is called broken.
        """
        for pause in (*self.read_retry_pauses, None):
            try:
                raw = read_untrusted(self.path, QUEUE_LIMIT)
            except Unreadable as exc:
                raise QueueError(f"task queue {exc.message}", exc.hint) from None
            if raw is None:
                return self._empty(), None
            try:
                doc = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                if pause is not None:
                    time.sleep(pause)
                    continue
                raise QueueError(f"task queue {self.path} is not valid JSON ({exc})",
                                 "restore it from a backup or fix it by hand; cmat will not "
                                 "touch it") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("tasks", []), list):
                raise QueueError(f"task queue {self.path} has no 'tasks' list",
                                 "is this a CMAT task queue?")
            if "tasks" not in doc and any(key in doc for key in OLD_LAYOUT_KEYS):
                # Read as empty, a task added would land where that CMAT never looks.
                raise QueueError(f"task queue {self.path} is laid out as CMAT's before v10"
                                 f" ({', '.join(k for k in OLD_LAYOUT_KEYS if k in doc)}):"
                                 " cmat reads the 'tasks' list of CMAT v10 and later",
                                 "cmat leaves this queue untouched; sessions are still"
                                 " recorded in the ledger")
            doc.setdefault("tasks", [])
            return doc, raw
        raise AssertionError("unreachable")

    def tasks(self, status: str | None = None, enhancement: str | None = None) -> list[dict]:
        found = [t for t in self.load()["tasks"] if isinstance(t, dict)]
        if status:
            found = [t for t in found if t.get("status") == status]
        if enhancement:
            found = [t for t in found if enhancement_of(t) == enhancement]
        return found

    def get(self, task_id: str) -> dict:
        return self._find(self.load(), task_id)

    def _find(self, doc: dict, task_id: str) -> dict:
        for task in doc["tasks"]:
            if isinstance(task, dict) and task.get("id") == task_id:
                return task
        raise NotFound(f"no task {task_id!r} in {self.path}", "see 'cmat queue list'")

    @staticmethod
    def _empty() -> dict:
        return {"queue_metadata": {"created": utc_now(), "version": QUEUE_FORMAT_VERSION,
                                   "description": "Task queue"},
                "tasks": [], "agent_status": {}}

    # --- writing ------------------------------------------------------------------------------

    def update(self, change: Callable[[dict], T], only_if_changed: bool = False) -> T:
        """Apply `change` to the freshly read queue under the lock and write it atomically.

        Nothing is written when `change` raises, nor, `only_if_changed`, when it returns a
        false value. Other writers (CMAT) take no lock: just before the rename the file is read
        again, and if it changed meanwhile the change is applied afresh to what it holds now,
        so that neither side's write is lost. The JSON keeps the file's own style (indent,
        \\u escapes, final newline), so a diff shows only what changed.
        """
        try:
            with file_lock(self.path):
                for _ in range(WRITE_ATTEMPTS):
                    doc, raw = self._read()
                    result = change(doc)
                    if only_if_changed and not result:
                        return result
                    if atomic_write_bytes(self.path, _dump(doc, raw), unless_changed_from=raw):
                        return result
                    # Written by someone else since we read it: apply the change again.
        except PermissionError as exc:
            raise QueueError(f"cannot write task queue {self.path}: {exc.strerror}") from None
        except OSError as exc:
            raise QueueError(f"cannot write task queue {self.path}: {exc.strerror or exc}"
                             ) from None
        raise QueueError(f"task queue {self.path} kept changing while cmat wrote to it",
                         "the ledger has the figures; the queue catches up with the next session "
                         "recorded (cmat costs sync)")

    def update_task(self, task_id: str, change: Callable[[dict], T]) -> T:
        return self.update(lambda doc: change(self._find(doc, task_id)))

    def add(self, title: str, *, enhancement: str | None = None, agent: str | None = None,
            task_id: str | None = None, priority: str = "normal",
            task_type: str = DEFAULT_TASK_TYPE, description: str = "",
            source_file: str | None = None, auto_complete: bool = False,
            auto_chain: bool = False, model: str | None = None) -> dict:
        """Add a pending task CMAT can run: one of CMAT's task types, and in a CMAT project
        (one with .claude/agents/) one of its agents. Its source file is the enhancement's
        own unless one is given; `model`, the model CMAT is to run it on."""
        if priority not in PRIORITIES:
            raise UsageError(f"priority must be one of {', '.join(PRIORITIES)}")
        if task_type not in TASK_TYPES:
            raise UsageError(f"task type must be one of {', '.join(TASK_TYPES)} (CMAT runs "
                             "a task with the prompt template of its type)")
        agents = self.agents()
        if agents is not None and agent not in agents:
            raise UsageError(f"the agent must be one of this CMAT project's agents: "
                             f"{', '.join(sorted(agents)) or '(none in .claude/agents/)'}")
        task = {
            "id": task_id or new_task_id(),
            "title": title,
            "assigned_agent": agent,
            "priority": priority,
            "task_type": task_type,
            "description": description,
            "source_file": source_file or (f"enhancements/{enhancement}/{enhancement}.md"
                                           if enhancement else None),
            "created": utc_now(),
            "status": "pending",
            "started": None,
            "completed": None,
            "result": None,
            "auto_complete": auto_complete,
            "auto_chain": auto_chain,
            "metadata": {key: value for key, value in (("enhancement_title", enhancement),
                                                       ("requested_model", model)) if value},
        }

        def append(doc: dict) -> dict:
            taken = {t.get("id") for t in doc["tasks"] if isinstance(t, dict)}
            if task_id and task_id in taken:
                raise UsageError(f"a task with id {task['id']!r} already exists")
            while task["id"] in taken:  # a made id met one made in the same second: another
                task["id"] = new_task_id()
            doc["tasks"].append(task)
            return task

        return self.update(append)

    def set_status(self, task_id: str, status: str, result: str | None = None) -> dict:
        if status not in STATUSES:
            raise UsageError(f"status must be one of {', '.join(STATUSES)}")

        def change(task: dict) -> dict:
            task["status"] = status
            stamp = utc_now()
            if status == "active":
                task["started"] = stamp
            elif status in FINISHED_STATUSES:
                task["completed"] = stamp
            if result is not None:
                task["result"] = result
            return task

        return self.update_task(task_id, change)

    def rerun(self, task_id: str) -> dict:
        """A completed, failed or cancelled task back to pending, as CMAT's `queue rerun`
        makes it: its times and result cleared, its metadata (costs included) kept."""

        def change(task: dict) -> dict:
            if task.get("status") not in FINISHED_STATUSES:
                raise UsageError(f"{task_id} is {task.get('status')}: only a completed, "
                                 "failed or cancelled task is run again")
            task.update(status="pending", started=None, completed=None, result=None)
            return task

        return self.update_task(task_id, change)

    def agents(self) -> set[str] | None:
        """The agents of a CMAT project (.claude/agents/*.md); None in a project without."""
        folder = self.project / ".claude" / "agents"
        if not folder.is_dir():
            return None
        return {path.stem for path in folder.glob("*.md")}

    def cmat_task_type(self, agent: str) -> str:
        """The task type CMAT v10's own `queue add` gives a task of `agent`: by the role
        .claude/agents/agents.json (the project's: read as untrusted, a file that is no JSON
        refused) gives it."""
        listing = read_untrusted_json(self.project / ".claude" / "agents" / "agents.json")
        entries = listing.get("agents") if isinstance(listing, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("agent-file") == agent \
                    and isinstance(entry.get("role"), str):
                return CMAT_ROLE_TASK_TYPES.get(entry["role"].lower(), CMAT_FALLBACK_TASK_TYPE)
        return CMAT_FALLBACK_TASK_TYPE

    # --- the current task: what the hooks attribute a session to --------------------------

    def clear_stale_marker(self) -> str | None:
        """Remove the current-task marker when its task is no longer active (completed or
        failed by CMAT, or gone); returns the task it named."""
        task_id = read_marker(self.project)
        if task_id is None:
            return None
        try:
            if self.get(task_id).get("status") in ACTIVE_STATUSES:
                return None
        except NotFound:
            pass
        with file_lock(self.marker):
            if read_marker(self.project) == task_id:
                self.marker.unlink(missing_ok=True)
        return task_id

    @property
    def marker(self) -> Path:
        return paths.current_task_file(self.project)

    def start(self, task_id: str) -> dict:
        """Mark the task active and make it the project's current task."""
        task = self.set_status(task_id, "active")
        with file_lock(self.marker):
            atomic_write_bytes(self.marker, task_id.encode() + b"\n")
        return task

    def finish(self, task_id: str, status: str, result: str | None = None) -> dict:
        """Complete, fail or cancel the task; it stops being the current task if it was."""
        task = self.set_status(task_id, status, result)
        with file_lock(self.marker):
            try:
                if read_marker(self.project) == task_id:
                    self.marker.unlink(missing_ok=True)
            except Unreadable:
                pass  # not a marker cmat wrote (a FIFO, say): left, as every reader leaves it
        return task


def _dump(doc: dict, raw: bytes | None) -> bytes:
    """The queue as JSON in the style of the file it replaces (CMAT's json.dump(indent=2):
    non-ASCII as \\u escapes, no final newline)."""
    indent, ascii_only, newline = 2, True, True
    if raw:
        found = re.search(rb"\n( +)\S", raw)
        indent = len(found.group(1)) if found else 2
        ascii_only = raw.isascii()
        newline = raw.endswith(b"\n")
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass") + (b"\n" if newline else b"")
