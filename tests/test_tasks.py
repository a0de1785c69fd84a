"""The task queue (CMAT's file) and the cost fields cmat keeps in it, derived from the ledger."""

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from cmat import paths
from cmat.attribution import extract
from cmat.catalog import ModelService
from cmat.cli import cli
from cmat.errors import NotFound, QueueError, TranscriptError, UsageError
from cmat.ledger import Ledger
from cmat.request import timestamp_seconds
from cmat.tasks.costs import sync_queue, task_report
from cmat.tasks.queue import NO_TASK, QueueService, current_context, enhancement_of
from tests.helpers import FIXTURES, REPO, child_env
from tests.transcript_factory import TranscriptBuilder, write_session, write_subagent

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


def test_a_made_id_that_meets_one_made_in_the_same_second_is_made_again(project, monkeypatch):
    """Made ids are the second and five random digits: two tasks added in one second may draw
    the same digits (a test under a fixed CMAT_NOW did). The second one gets another id, where
    it was refused as a duplicate."""
    import random

    from cmat.tasks.queue import new_task_id

    monkeypatch.setenv("CMAT_NOW", "2026-03-01T10:00:00")
    random.seed(7)
    first = new_task_id()
    QueueService(project).add("first", task_id=first)
    random.seed(7)  # the next id drawn is `first` again
    second = QueueService(project).add("second")
    assert second["id"] != first and second["id"].startswith(first[:16])
    assert [t["id"] for t in QueueService(project).tasks()] == [first, second["id"]]


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


def test_a_queue_of_cmat_before_v10_is_refused_not_read_as_empty(project):
    """Its tasks are in a list per state: read as no tasks, a task added would go where that
    CMAT never looks."""
    path = project / ".claude" / "data" / "task_queue.json"
    path.parent.mkdir(parents=True)
    content = json.dumps({"pending_tasks": [{"id": "task_1", "title": "A"}],
                          "active_workflows": [], "completed_tasks": [], "failed_tasks": []})
    path.write_text(content)
    for attempt in (lambda: QueueService(project).tasks(), lambda: QueueService(project).add("x")):
        with pytest.raises(QueueError, match="laid out as CMAT's before v10"):
            attempt()
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
    path = write_queue(project)
    whole = path.read_bytes()
    path.write_bytes(whole[:40])  # CMAT's open('w') + json.dump caught midway

    def finish():
        time.sleep(0.05)
        path.write_bytes(whole)

    threading.Thread(target=finish).start()
    assert QueueService(project).get("task_1767031596_45196")["title"] == "Design"


CMAT_FIELDS = ("cost_input_tokens", "cost_output_tokens", "cost_cache_creation_tokens",
               "cost_cache_read_tokens", "cost_usd", "cost_model", "session_id")


@pytest.fixture
def task_id(project):
    return QueueService(project).add("Build it", enhancement="feature-x", agent="developer")["id"]


def session(tmp_path, session_id, **response):
    builder = TranscriptBuilder(session_id=session_id)
    builder.response(**response)
    return builder, write_session(tmp_path / "transcripts", builder)


def cmat_log(project):
    """CMAT's log of a task, where CMAT writes it: evidence that the task ran on this machine."""
    log = project / "enhancements" / "feature-x" / "logs" / "developer_task.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("done\n")
    return log


def metadata(project, task_id):
    return QueueService(project).get(task_id)["metadata"]


def ledger_cost(task_id):
    with Ledger() as ledger:
        return ledger.task_spend(task_id)


def test_extract_stores_cmat_string_fields_from_the_ledger(project, tmp_path, task_id):
    builder, path = session(tmp_path, "s1", model="claude-opus-4-6", input=6, output=4274,
                            write_1h=88965, read=237683)
    result = extract(project, task_id, path)
    meta = metadata(project, task_id)
    assert meta["cost_input_tokens"] == "6"
    assert meta["cost_output_tokens"] == "4274"
    assert meta["cost_cache_creation_tokens"] == "88965"
    assert meta["cost_cache_read_tokens"] == "237683"
    assert meta["cost_usd"] == f"{builder.expected_cost:.4f}"
    assert meta["cost_model"] == "claude-opus-4-6"  # a model id, as CMAT writes it
    assert meta["session_id"] == "s1"
    assert meta["enhancement_title"] == "feature-x"
    assert set(meta) == {"enhancement_title", *CMAT_FIELDS}  # nothing CMAT would drop
    assert result["total_usd"] == pytest.approx(builder.expected_cost)
    assert result["session_total_usd"] == pytest.approx(builder.expected_cost)
    assert ledger_cost(task_id) == pytest.approx(builder.expected_cost)


def test_extracting_the_same_session_again_reads_only_what_was_added(project, tmp_path,
                                                                    task_id):
    builder, path = session(tmp_path, "s1", output=100)
    extract(project, task_id, path)
    builder.response(output=200)  # the session grew before SessionEnd fired again
    builder.write(path)
    second = extract(project, task_id, path)
    assert second["new_requests"] == 1
    assert extract(project, task_id, path)["new_requests"] == 0
    meta = metadata(project, task_id)
    assert meta["cost_usd"] == f"{builder.expected_cost:.4f}"
    assert meta["cost_output_tokens"] == "300"


def test_a_task_over_several_sessions_adds_them_up(project, tmp_path, task_id):
    first, path1 = session(tmp_path, "s1", model="claude-haiku-4-5-20251001", output=100)
    second, path2 = session(tmp_path, "s2", model="claude-opus-4-6", output=50)
    extract(project, task_id, path1)
    extract(project, task_id, path2)
    report = task_report(project, task_id)
    assert report["total_usd"] == pytest.approx(first.expected_cost + second.expected_cost)
    assert [s["session_id"] for s in report["sessions"]] == ["s1", "s2"]
    assert len(report["models"]) == 2
    assert metadata(project, task_id)["cost_model"] == "claude-opus-4-6"
    assert metadata(project, task_id)["session_id"] == "s2"


@pytest.mark.parametrize("order", [("s1", "s2", "s1"), ("s2", "s1", "s2")])
def test_a_resumed_session_does_not_bill_copied_requests_twice(project, tmp_path, task_id,
                                                               order):
    original = TranscriptBuilder(session_id="s1")
    copied = original.response(output=100)
    resumed = TranscriptBuilder(session_id="s2")
    resumed.now = original._stamp()  # the copy carries the same time: no tie-break to lose
    resumed.response(message_id=copied.message_id, output=100, billed=False)
    resumed.now = None
    resumed.timestamp = original.timestamp + 100
    new = resumed.response(output=40)
    paths = {"s1": write_session(tmp_path, original), "s2": write_session(tmp_path, resumed)}
    for session_id in order:  # SessionEnd firing again for either changes nothing
        extract(project, task_id, paths[session_id])
    meta = metadata(project, task_id)
    assert float(meta["cost_usd"]) == pytest.approx(copied.cost + new.cost, abs=1e-4)
    assert ledger_cost(task_id) == pytest.approx(copied.cost + new.cost)


def test_subagents_are_part_of_the_session(project, tmp_path, task_id):
    builder, path = session(tmp_path, "s1", output=10)
    sub = write_subagent(path.parent, "s1", "abc", "code-reviewer",
                         lambda b, a: b.response(sidechain=True, agent_id=a, output=999))
    extract(project, task_id, path)
    assert float(metadata(project, task_id)["cost_usd"]) == pytest.approx(
        builder.expected_cost + sub.expected_cost, abs=1e-4)


def test_figures_cmat_wrote_before_cmat_still_count(project, tmp_path, task_id):
    log = cmat_log(project)

    def legacy(task):
        task["metadata"].update(cost_usd=".5000", cost_input_tokens="10", session_id="old",
                                cost_output_tokens="20", cost_model="Claude Opus 4.5",
                                log_file_path=str(log))
    QueueService(project).update_task(task_id, legacy)
    assert task_report(project, task_id)["total_usd"] == pytest.approx(0.5)
    with Ledger() as ledger:
        sync_queue(project, ledger, ModelService())
    assert metadata(project, task_id)["session_id"] == "old"  # CMAT's id, as CMAT wrote it
    builder, path = session(tmp_path, "s1", output=10)
    extract(project, task_id, path)
    assert float(metadata(project, task_id)["cost_usd"]) == pytest.approx(
        0.5 + builder.expected_cost, abs=1e-4)
    # Recording the very session the old figures were about replaces them.
    old_builder, old_path = session(tmp_path, "old", output=5)
    extract(project, task_id, old_path)
    report = task_report(project, task_id)
    assert [s["session_id"] for s in report["sessions"]] == ["s1", "old"]
    assert report["total_usd"] == pytest.approx(builder.expected_cost + old_builder.expected_cost)


@pytest.mark.parametrize("first", ["s1", "old"])
def test_figures_cmat_wrote_count_when_cmat_first_records_a_session(project, tmp_path,
                                                                   task_id, first):
    """No report ran before the hook recorded the task's first session: CMAT's figures for
    another session still count, and are replaced when it is their own session."""
    log = cmat_log(project)
    QueueService(project).update_task(task_id, lambda task: task["metadata"].update(
        cost_usd=".5000", cost_output_tokens="20", session_id="old", log_file_path=str(log)))
    builder, path = session(tmp_path, first, output=10)
    extract(project, task_id, path)
    expected = builder.expected_cost + (0.5 if first != "old" else 0)
    assert task_report(project, task_id)["total_usd"] == pytest.approx(expected)
    assert float(metadata(project, task_id)["cost_usd"]) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("stored_before, named", [(False, "ran-here"), (True, "ran-here"),
                                                  (True, "legacy:ran-here")])
def test_cmats_figure_for_a_session_here_is_that_session_counted_once(project, tmp_path,
                                                                      monkeypatch, task_id,
                                                                      stored_before, named):
    """The session CMAT priced is on this machine (a scan read it, untracked): the task gets
    that session at cmat's price, and no report counts it twice; a figure a cmat before this
    rule stored beside it gives way the same, also once that cmat wrote its own name for the
    figure's session back into the queue."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    builder = TranscriptBuilder(session_id="ran-here")
    builder.response(model="claude-opus-4-6", output=4000, read=90_000)
    write_session(tmp_path / "claude" / "projects" / "-project", builder)
    runner = CliRunner()
    assert runner.invoke(cli, ["scan", "-q"]).exit_code == 0
    QueueService(project).update_task(task_id, lambda task: task["metadata"].update(
        cost_usd="9.0000", cost_output_tokens="4000", session_id=named))
    if stored_before:
        from cmat.tasks.queue import LEGACY_VERSION, legacy_figures

        with Ledger() as ledger, ledger.transaction():
            ledger.store_legacy(task_id, legacy_figures(QueueService(project).get(task_id)),
                                LEGACY_VERSION)
            ledger.attribute("legacy:ran-here", project_dir=str(project), transcript_path=None,
                             task_id=task_id, enhancement=None, agent=None,
                             recorded_by="cmat-legacy")
    report = task_report(project, task_id)
    assert report["total_usd"] == pytest.approx(builder.expected_cost)
    assert [s["session_id"] for s in report["sessions"]] == ["ran-here"]
    daily = json.loads(runner.invoke(cli, ["report", "daily", "--json", "-q"]).output)
    assert daily["total"]["total_usd"] == pytest.approx(builder.expected_cost)
    runner.invoke(cli, ["costs", "sync"])  # the queue's fields: the session's, not the figure
    assert metadata(project, task_id)["session_id"] == "ran-here"
    assert float(metadata(project, task_id)["cost_usd"]) == pytest.approx(builder.expected_cost,
                                                                          abs=1e-4)


def test_cmats_figure_never_takes_a_session_another_task_has(project, tmp_path, task_id):
    """A queue's figure names a session cmat recorded for a task of another project: it stays
    that task's (a repository's queue cannot move the user's sessions between tasks), counted
    once."""
    builder, path = session(tmp_path, "theirs", output=50)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / ".claude").mkdir(parents=True)
    other = QueueService(elsewhere).add("Other")["id"]
    extract(elsewhere, other, path)
    QueueService(project).update_task(task_id, lambda task: task["metadata"].update(
        cost_usd="3.0000", session_id="theirs", log_file_path=str(cmat_log(project))))
    assert task_report(project, task_id)["total_usd"] == 0
    assert task_report(elsewhere, other)["total_usd"] == pytest.approx(builder.expected_cost)
    with Ledger() as ledger:
        assert ledger.attribution("theirs")[0] == other
        assert ledger.session_totals("legacy:theirs") == (0, 0)


def test_a_log_a_queue_names_outside_the_project_is_no_evidence(project, tmp_path, task_id):
    """A repository's queue names a file that exists anywhere (a system file, say) as its
    task's log: its figure must not become spend in the user's ledger, budgets and all."""
    elsewhere = tmp_path / "hostname"
    elsewhere.write_text("host\n")
    inside_by_link = project / "enhancements" / "x" / "logs" / "link.log"
    inside_by_link.parent.mkdir(parents=True)
    inside_by_link.symlink_to(elsewhere)
    for named in (elsewhere, inside_by_link, "enhancements/x/logs/link.log"):
        QueueService(project).update_task(task_id, lambda task, log=str(named): task[
            "metadata"].update(cost_usd="100000", session_id="never-here", log_file_path=log))
        report = task_report(project, task_id)
        assert report["total_usd"] == 0 and report["sessions"] == []
        assert report["queue_figures_not_counted"]["total_usd"] == 100000
    with Ledger() as ledger:
        assert ledger.session_totals("legacy:never-here") == (0, 0)


@pytest.mark.parametrize("fields", [{"cost_usd": "1e300"}, {"cost_usd": "nan"},
                                    {"cost_usd": "1", "cost_output_tokens": str(10**12)},
                                    {"cost_usd": "1", "completed": "yesterday"},
                                    {"cost_usd": "1", "completed": "2999-01-01T00:00:00Z"}])
def test_a_figure_no_request_can_have_is_no_figure(project, task_id, fields):
    """Beyond what one request can cost or count, or at no time a request was made: it would
    break every report and be refused by the team database (cmat.usage's bounds)."""
    from cmat.tasks.queue import legacy_figures

    def written(task):
        task["metadata"].update({k: v for k, v in fields.items() if k.startswith("cost")})
        task.update({k: v for k, v in fields.items() if not k.startswith("cost")})
    QueueService(project).update_task(task_id, written)
    assert legacy_figures(QueueService(project).get(task_id)) is None


def test_cost_usd_null_is_no_session(project, task_id):
    QueueService(project).update_task(task_id, lambda t: t["metadata"].update(cost_usd=None))
    report = task_report(project, task_id)
    assert report["sessions"] == [] and report["total_usd"] == 0


def test_dropping_every_key_cmat_does_not_declare_changes_no_figure(project, tmp_path,
                                                                    task_id):
    builder, path = session(tmp_path, "s1", output=321)
    extract(project, task_id, path)
    before = task_report(project, task_id)

    def as_cmat_writes_it(task):  # CMAT's Task.from_dict/to_dict keep declared keys only
        task["metadata"] = {k: v for k, v in task["metadata"].items()
                            if k in CMAT_FIELDS or k == "enhancement_title"}
        task["metadata"]["cost_usd"] = "999.0"  # and even a figure that is wrong
    QueueService(project).update_task(task_id, as_cmat_writes_it)
    assert task_report(project, task_id)["total_usd"] == before["total_usd"]
    with Ledger() as ledger:
        sync_queue(project, ledger, ModelService(project))
    assert metadata(project, task_id)["cost_usd"] == f"{builder.expected_cost:.4f}"


def test_the_session_argument_must_be_the_files_session(project, tmp_path, task_id):
    _, path = session(tmp_path, "s1", output=10)
    with pytest.raises(UsageError, match="holds session s1, not other"):
        extract(project, task_id, path, "other")
    assert extract(project, task_id, path, "s1")["session_id"] == "s1"
    with Ledger() as ledger:
        assert ledger.query("SELECT session_id FROM sessions") == [("s1",)]


def test_errors_write_nothing(project, tmp_path, task_id):
    queue_file = project / ".claude" / "data" / "task_queue.json"
    before = queue_file.read_bytes()
    _, path = session(tmp_path, "s1")
    with pytest.raises(NotFound):
        extract(project, "task_nope", path)
    with pytest.raises(TranscriptError):
        extract(project, task_id, tmp_path / "missing.jsonl")
    assert queue_file.read_bytes() == before


def test_a_cmat_queue_keeps_its_json_style(project, tmp_path):
    queue_file = project / ".claude" / "data" / "task_queue.json"
    queue_file.parent.mkdir(parents=True)
    original = (FIXTURES / "cmat-v10" / "demo_data_task_queue.json").read_bytes()
    doc = json.loads(original)
    doc["tasks"][0]["title"] = "Diseño del año"  # CMAT writes it as Dise\u00f1o
    queue_file.write_text(json.dumps(doc, indent=2))
    before = queue_file.read_bytes()
    task_id = doc["tasks"][0]["id"]
    _, path = session(tmp_path, "s-new", output=10)
    extract(project, task_id, path)
    after = queue_file.read_bytes()
    assert b"Dise\\u00f1o del a\\u00f1o" in after and not after.endswith(b"\n")
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert changed and all(b'"cost_' in line or b'"session_id"' in line for line in changed)


def test_eight_concurrent_extract_processes_lose_no_update(project, tmp_path):
    queue = QueueService(project)
    task_ids = [queue.add(f"task {i}")["id"] for i in range(4)]
    jobs = []
    for index in range(8):
        builder, path = session(tmp_path, f"s{index}", output=100 + index)
        jobs.append((task_ids[index % 4], path, builder.expected_cost))
    env = child_env(CLAUDE_PROJECT_DIR=project)
    processes = [subprocess.Popen([sys.executable, "-m", "cmat", "costs", "extract", task, str(p)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for task, p, _ in jobs]
    for process in processes:
        assert process.wait(timeout=60) == 0, process.stderr.read().decode()
    doc = json.loads((project / ".claude" / "data" / "task_queue.json").read_text())
    for task in doc["tasks"]:
        mine = [cost for t, _, cost in jobs if t == task["id"]]
        assert float(task["metadata"]["cost_usd"]) == pytest.approx(sum(mine), abs=1e-4)


CMAT_WRITER = r"""
import json, sys, time
from pathlib import Path

# As CMAT v10 writes its queue: read, rebuild every task through Task.from_dict/to_dict
# (TaskMetadata keeps its declared keys only), write with open('w') + json.dump: no lock,
# not atomic. Each round adds a task; a round whose read catches a half-written file retries.
DECLARED = {"github_issue", "jira_ticket", "github_pr", "confluence_page", "parent_task_id",
            "workflow_status", "enhancement_title", "workflow_name", "workflow_step",
            "process_pid", "session_id", "log_file_path", "requested_model",
            "cost_input_tokens", "cost_output_tokens", "cost_cache_creation_tokens",
            "cost_cache_read_tokens", "cost_usd", "cost_model", "learnings_retrieved",
            "learnings_created"}
path, rounds = Path(sys.argv[1]), int(sys.argv[2])
for index in range(rounds):
    while True:
        try:
            doc = json.loads(path.read_text())
            break
        except ValueError:
            time.sleep(0.001)
    for task in doc["tasks"]:
        task["metadata"] = {k: v for k, v in task.get("metadata", {}).items() if k in DECLARED}
    doc["tasks"].append({"id": f"cmat_{index}", "title": "t", "assigned_agent": "architect",
                         "priority": "normal", "task_type": "analysis", "description": "",
                         "source_file": None, "created": "2026-01-01T00:00:00Z",
                         "status": "pending", "metadata": {"cost_usd": None}})
    with open(path, "w") as handle:
        json.dump(doc, handle, indent=2)
    time.sleep(0.002)
"""


def test_costs_land_and_no_cmat_task_is_lost_while_cmat_rewrites_the_queue(project, tmp_path):
    queue = QueueService(project)
    tasks = [queue.add(f"task {i}", enhancement="race")["id"] for i in range(4)]
    jobs = []
    for index in range(16):
        builder = TranscriptBuilder(session_id=f"race{index}")
        builder.response(model="claude-opus-4-6", output=100 + index)
        jobs.append((tasks[index % 4], write_session(tmp_path / "t", builder),
                     f"race{index}", builder.expected_cost))
    queue_file = project / ".claude" / "data" / "task_queue.json"
    writer = subprocess.Popen([sys.executable, "-c", CMAT_WRITER, str(queue_file), "60"])
    hook = REPO / "hooks" / "on-session-end-cost.sh"
    for _round in range(2):  # every SessionEnd fires twice: nothing may be counted twice
        running = []
        for task_id, path, session_id, _ in jobs:
            stdin = json.dumps({"session_id": session_id, "transcript_path": str(path),
                                "hook_event_name": "SessionEnd", "reason": "other"}).encode()
            process = subprocess.Popen([str(hook)], stdin=subprocess.PIPE,
                                       env=child_env(CLAUDE_PROJECT_DIR=project,
                                                     CMAT_PYTHON=sys.executable,
                                                     CMAT_CURRENT_TASK_ID=task_id))
            process.stdin.write(stdin)
            process.stdin.close()
            running.append(process)
        for process in running:
            assert process.wait(timeout=120) == 0
    assert writer.wait(timeout=120) == 0
    with Ledger() as ledger:  # the queue catches up with the ledger at the next record
        sync_queue(project, ledger, ModelService(project), raise_errors=True)
        spent = {task_id: ledger.task_spend(task_id) for task_id in tasks}
    doc = json.loads(queue_file.read_text())
    ids = [t["id"] for t in doc["tasks"]]
    assert [i for i in ids if i.startswith("cmat_")] == [f"cmat_{i}" for i in range(60)]
    for task_id in tasks:
        expected = sum(cost for t, _, _, cost in jobs if t == task_id)
        assert spent[task_id] == pytest.approx(expected)
        assert float(queue.get(task_id)["metadata"]["cost_usd"]) == pytest.approx(expected,
                                                                                 abs=1e-4)
        assert task_report(project, task_id)["total_usd"] == pytest.approx(expected)


def test_cmats_figure_without_a_session_gives_way_to_the_session_cmat_records(
        project, tmp_path, task_id):
    """CMAT's own `costs extract TASK FILE` (no session id) wrote its figure; cmat then
    records that session: the task counts it once, at cmat's price."""
    log = cmat_log(project)

    def as_cmat_wrote_it(task):
        task["metadata"].update(cost_usd="1.0800", cost_input_tokens="10",
                                cost_output_tokens="20", cost_model="claude-opus-4-6",
                                log_file_path=str(log))
    QueueService(project).update_task(task_id, as_cmat_wrote_it)
    assert task_report(project, task_id)["total_usd"] == pytest.approx(1.08)  # imported
    builder, path = session(tmp_path, "real", output=10)
    extract(project, task_id, path)
    report = task_report(project, task_id)
    assert report["total_usd"] == pytest.approx(builder.expected_cost)
    assert [s["session_id"] for s in report["sessions"]] == ["real"]


@pytest.mark.parametrize("queue", ["data_task_queue.json", "demo_data_task_queue.json"])
def test_cmats_template_and_demo_figures_are_no_spend_here(project, queue, tmp_path,
                                                            monkeypatch):
    """CMAT v10 ships queues whose tasks carry figures of sessions that ran on its authors'
    machines: no report, budget or enhancement counts them; CMAT's own timestamp forms
    (`...+00:00Z`) parse."""
    from tests.helpers import cli_run

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    paths.queue_file(project).parent.mkdir(parents=True, exist_ok=True)
    paths.queue_file(project).write_bytes((FIXTURES / "cmat-v10" / queue).read_bytes())
    tasks = QueueService(project).tasks()
    enhancement = next(enhancement_of(t) for t in tasks if enhancement_of(t))
    report = json.loads(cli_run("costs", "enhancement", enhancement, "--json").output)
    assert report["total_usd"] == 0
    # ... and say what they leave out, so that a total below CMAT's own screens is explained.
    written = [float(t["metadata"]["cost_usd"]) for t in tasks if enhancement_of(t) == enhancement
               and (t.get("metadata") or {}).get("cost_usd")]
    left_out = [t["queue_figures_not_counted"] for t in report["tasks"]
                if t["queue_figures_not_counted"]]
    assert written and [f["total_usd"] for f in left_out] == pytest.approx(written)
    shown = cli_run("costs", "enhancement", enhancement).output
    assert f"Not counted: ${sum(written):,.2f} in the queue's cost fields" in shown
    every = sum(float(t["metadata"]["cost_usd"]) for t in tasks
                if (t.get("metadata") or {}).get("cost_usd"))
    assert f"Not counted: ${every:,.2f} in the queue's" in cli_run("queue", "list").output
    assert json.loads(cli_run("report", "monthly", "--json", "--no-scan").output)["rows"] == []
    assert timestamp_seconds("2025-12-29T18:06:36.037810+00:00Z") == pytest.approx(
        datetime(2025, 12, 29, 18, 6, 36, 37810, tzinfo=UTC).timestamp())
    # The same task, its session's transcript on this machine: its figure counts.
    task = next(t for t in tasks if t.get("metadata", {}).get("cost_usd"))
    folder = tmp_path / "claude" / "projects" / "-p"
    folder.mkdir(parents=True)
    before = cli_run("costs", "show", task["id"]).output
    assert f"for session {task['metadata']['session_id']}, which did not run" in before
    (folder / f"{task['metadata']['session_id']}.jsonl").write_text("")
    # `queue list` counts it from the first look, as `costs show` does.
    row = next(line for line in cli_run("queue", "list").output.splitlines()
               if line.startswith(task["id"]))
    assert row.endswith(f"${float(task['metadata']['cost_usd']):,.2f}")
    shown = json.loads(cli_run("costs", "show", task["id"], "--json").output)
    assert shown["total_usd"] == pytest.approx(float(task["metadata"]["cost_usd"]))
    assert shown["queue_figures_not_counted"] is None
