import json

import pytest

from cmat.errors import NotFound, QueueError, UsageError
from cmat.queue import QueueService

CMAT_QUEUE = {
    "queue_metadata": {"created": "2026-01-02T10:00:00Z", "version": "3.0.0",
                       "description": "demo", "owner_only_key": [1, 2]},
    "tasks": [{"id": "task_1767031596_45196", "title": "Design", "assigned_agent": "architect",
               "priority": "normal", "task_type": "analysis", "status": "completed",
               "source_file": "enhancements/add-power/add-power.md", "auto_chain": True,
               "metadata": {"enhancement_title": "add-power", "workflow_step": 2}}],
    "agent_status": {"architect": {"status": "idle", "current_task": None}},
    "active_workflows": {"w1": {"step": 3}},
}


def write_queue(project, doc=CMAT_QUEUE):
    path = project / ".claude" / "data" / "task_queue.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_add_creates_the_queue_and_returns_a_cmat_style_id(project):
    queue = QueueService(project)
    task = queue.add("Write docs", enhancement="docs", agent="writer")
    assert task["id"].startswith("task_") and len(task["id"].split("_")[2]) == 5
    assert queue.get(task["id"])["metadata"]["enhancement_title"] == "docs"
    assert queue.load()["queue_metadata"]["version"] == "3.0.0"


def test_keys_cmat_does_not_own_survive_a_rewrite(project):
    path = write_queue(project)
    QueueService(project).add("Another", task_id="task_2")
    doc = json.loads(path.read_text())
    assert doc["active_workflows"] == CMAT_QUEUE["active_workflows"]
    assert doc["queue_metadata"] == CMAT_QUEUE["queue_metadata"]
    assert doc["tasks"][0] == CMAT_QUEUE["tasks"][0]
    assert list(doc) == list(CMAT_QUEUE)


def test_duplicate_ids_and_bad_priorities_are_refused(project):
    write_queue(project)
    queue = QueueService(project)
    with pytest.raises(UsageError, match="already exists"):
        queue.add("x", task_id="task_1767031596_45196")
    with pytest.raises(UsageError):
        queue.add("x", priority="urgent")


def test_filters(project):
    write_queue(project)
    queue = QueueService(project)
    queue.add("B", enhancement="other", task_id="t2")
    assert [t["id"] for t in queue.tasks(enhancement="add-power")] == ["task_1767031596_45196"]
    assert [t["id"] for t in queue.tasks(status="pending")] == ["t2"]


@pytest.mark.parametrize("content", ["{not json", '{"tasks": 3}', "[]"])
def test_a_corrupt_queue_is_reported_and_left_untouched(project, content):
    path = project / ".claude" / "data" / "task_queue.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(QueueError):
        QueueService(project).add("x")
    assert path.read_text() == content


def test_unknown_task_is_not_found(project):
    write_queue(project)
    with pytest.raises(NotFound, match="no task 'nope'"):
        QueueService(project).get("nope")


def test_a_failing_change_writes_nothing(project):
    path = write_queue(project)
    before = path.read_bytes()

    def explode(doc):
        doc["tasks"].clear()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        QueueService(project).update(explode)
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_status_changes_stamp_times(project):
    queue = QueueService(project)
    task_id = queue.add("x")["id"]
    assert queue.set_status(task_id, "active")["started"]
    done = queue.set_status(task_id, "completed", result="ok")
    assert done["completed"] and done["result"] == "ok"
