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


def test_tasks_added_are_tasks_cmat_can_run(project):
    queue = QueueService(project)
    task = queue.add("Design", agent="architect", task_type="analysis")
    for key in ("id", "title", "assigned_agent", "priority", "task_type", "description",
                "source_file", "created", "status", "auto_complete", "auto_chain", "metadata"):
        assert key in task
    with pytest.raises(UsageError, match="task type must be one of analysis"):
        queue.add("x", task_type="task")
    agents = project / ".claude" / "agents"
    agents.mkdir()
    (agents / "architect.md").write_text("# architect")
    with pytest.raises(UsageError, match="one of this CMAT project's agents: architect"):
        queue.add("x", agent="wizard")
    assert queue.add("y", agent="architect")["assigned_agent"] == "architect"


def test_a_marker_whose_task_finished_elsewhere_names_no_task_and_queue_clears_it(project):
    from click.testing import CliRunner

    from cmat import paths
    from cmat.cli import cli
    from cmat.queue import NO_TASK, current_context

    queue = QueueService(project)
    task_id = queue.add("x")["id"]
    queue.start(task_id)
    assert current_context(project).task_id == task_id
    queue.update_task(task_id, lambda t: t.update(status="completed"))  # CMAT finishes it
    assert current_context(project) == NO_TASK
    result = CliRunner().invoke(cli, ["queue", "list"])
    assert "is no longer active" in result.stderr
    assert not paths.current_task_file(project).exists()


def test_cmat_environment_names_the_task_enhancement_and_agent(project, monkeypatch):
    from cmat.queue import current_context

    queue = QueueService(project)
    task_id = queue.add("x", enhancement="feat", agent="architect")["id"]
    monkeypatch.setenv("CMAT_CURRENT_TASK_ID", task_id)
    context = current_context(project)
    assert (context.task_id, context.enhancement, context.agent) == (task_id, "feat",
                                                                     "architect")
    monkeypatch.setenv("CMAT_ENHANCEMENT", "other")
    monkeypatch.setenv("CMAT_AGENT", "tester")
    context = current_context(project)
    assert (context.enhancement, context.agent) == ("other", "tester")


def test_a_half_written_queue_is_read_again(project):
    import threading
    import time

    path = write_queue(project)
    whole = path.read_bytes()
    path.write_bytes(whole[:40])  # CMAT's open('w') + json.dump caught midway

    def finish():
        time.sleep(0.05)
        path.write_bytes(whole)

    threading.Thread(target=finish).start()
    assert QueueService(project).get("task_1767031596_45196")["title"] == "Design"
