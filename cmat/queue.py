"""CMAT's task queue (`.claude/data/task_queue.json`): read it, change it under a lock.

cmat owns only what it writes (cost fields and `cost_sessions` in a task's metadata, and the
tasks it adds); every other key of the file survives a rewrite untouched, in its order.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TypeVar

import orjson

from cmat import paths
from cmat.errors import NotFound, QueueError, UsageError
from cmat.fileio import atomic_write_bytes, file_lock

T = TypeVar("T")
STATUSES = ("pending", "active", "completed", "failed", "blocked", "cancelled")
PRIORITIES = ("low", "normal", "high", "critical")
QUEUE_FORMAT_VERSION = "3.0.0"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_task_id() -> str:
    import random  # only when adding a task: keeps it off the hooks' start-up

    return f"task_{int(time.time())}_{random.randint(0, 99999):05d}"


def current_task_id(project: Path) -> str | None:
    """The task sessions are recorded against: CMAT_CURRENT_TASK_ID (what a CMAT orchestrator
    sets), else the marker `cmat queue start` writes."""
    import os

    task_id = os.environ.get("CMAT_CURRENT_TASK_ID", "").strip()
    if task_id:
        return task_id
    try:
        return paths.current_task_file(project).read_text().strip() or None
    except OSError:
        return None


def task_enhancement(project: Path, task_id: str | None) -> str | None:
    """The enhancement of a task; None when unknown or the queue cannot be read (a budget
    check must go on with the other budgets)."""
    if not task_id:
        return None
    try:
        return enhancement_of(QueueService(project).get(task_id))
    except Exception:
        return None


def enhancement_of(task: dict) -> str | None:
    metadata = task.get("metadata")
    name = metadata.get("enhancement_title") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) and name else None


class QueueService:
    def __init__(self, project: Path):
        self.project = project
        self.path = paths.queue_file(project)

    # --- reading ------------------------------------------------------------------------------

    def load(self) -> dict:
        """The whole queue document; an empty queue when the file does not exist yet."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._empty()
        except OSError as exc:
            raise QueueError(f"cannot read task queue {self.path}: {exc.strerror}") from None
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise QueueError(f"task queue {self.path} is not valid JSON ({exc})",
                             "restore it from a backup or fix it by hand; cmat will not touch it"
                             ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("tasks", []), list):
            raise QueueError(f"task queue {self.path} has no 'tasks' list",
                             "is this a CMAT task queue?")
        doc.setdefault("tasks", [])
        return doc

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

    def update(self, change: Callable[[dict], T]) -> T:
        """Apply `change` to the freshly read queue under the lock and write it atomically.

        Nothing is written when `change` raises.
        """
        try:
            with file_lock(self.path):
                doc = self.load()
                result = change(doc)
                atomic_write_bytes(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        except PermissionError as exc:
            raise QueueError(f"cannot write task queue {self.path}: {exc.strerror}") from None
        except OSError as exc:
            raise QueueError(f"cannot write task queue {self.path}: {exc.strerror or exc}") from None
        return result

    def update_task(self, task_id: str, change: Callable[[dict], T]) -> T:
        return self.update(lambda doc: change(self._find(doc, task_id)))

    def add(self, title: str, *, enhancement: str | None = None, agent: str | None = None,
            task_id: str | None = None, priority: str = "normal", task_type: str = "task",
            description: str = "") -> dict:
        if priority not in PRIORITIES:
            raise UsageError(f"priority must be one of {', '.join(PRIORITIES)}")
        task = {
            "id": task_id or new_task_id(),
            "title": title,
            "assigned_agent": agent,
            "priority": priority,
            "task_type": task_type,
            "description": description,
            "source_file": f"enhancements/{enhancement}/{enhancement}.md" if enhancement else None,
            "created": utc_now(),
            "status": "pending",
            "started": None,
            "completed": None,
            "result": None,
            "metadata": {"enhancement_title": enhancement} if enhancement else {},
        }

        def append(doc: dict) -> dict:
            if any(isinstance(t, dict) and t.get("id") == task["id"] for t in doc["tasks"]):
                raise UsageError(f"a task with id {task['id']!r} already exists")
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
            elif status in ("completed", "failed", "cancelled"):
                task["completed"] = stamp
            if result is not None:
                task["result"] = result
            return task

        return self.update_task(task_id, change)

    # --- the current task: what the hooks attribute a session to --------------------------

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
        """Complete or fail the task; it stops being the current task if it was."""
        task = self.set_status(task_id, status, result)
        with file_lock(self.marker):
            try:
                if self.marker.read_text().strip() == task_id:
                    self.marker.unlink()
            except FileNotFoundError:
                pass
        return task
