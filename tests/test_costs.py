import json
import subprocess
import sys

import pytest

from cmat.costs import LEGACY_SESSION, SESSIONS_KEY, extract, task_report
from cmat.errors import NotFound, TranscriptError
from cmat.queue import QueueService
from tests.conftest import child_env
from tests.transcript_factory import TranscriptBuilder, write_session, write_subagent


@pytest.fixture
def task_id(project):
    return QueueService(project).add("Build it", enhancement="feature-x", agent="developer")["id"]


def session(tmp_path, session_id, **response):
    builder = TranscriptBuilder(session_id=session_id)
    builder.response(**response)
    return builder, write_session(tmp_path / "transcripts", builder)


def metadata(project, task_id):
    return QueueService(project).get(task_id)["metadata"]


def test_extract_stores_cmat_string_fields_and_the_session(project, tmp_path, task_id):
    builder, path = session(tmp_path, "s1", model="claude-opus-4-6", input=6, output=4274,
                            write_1h=88965, read=237683)
    result = extract(project, task_id, path)
    meta = metadata(project, task_id)
    assert meta["cost_input_tokens"] == "6"
    assert meta["cost_output_tokens"] == "4274"
    assert meta["cost_cache_creation_tokens"] == "88965"
    assert meta["cost_cache_read_tokens"] == "237683"
    assert meta["cost_usd"] == f"{builder.expected_cost:.4f}"
    assert meta["cost_model"] == "Claude Opus 4.6"
    assert meta["session_id"] == "s1"
    assert meta["enhancement_title"] == "feature-x"
    assert meta[SESSIONS_KEY]["s1"]["total_usd"] == pytest.approx(builder.expected_cost)
    assert result.to_json()["task_total_usd"] == pytest.approx(builder.expected_cost)


def test_extracting_the_same_session_again_replaces_it(project, tmp_path, task_id):
    builder, path = session(tmp_path, "s1", output=100)
    extract(project, task_id, path)
    builder.response(output=200)  # the session grew before SessionEnd fired again
    builder.write(path)
    extract(project, task_id, path)
    meta = metadata(project, task_id)
    assert list(meta[SESSIONS_KEY]) == ["s1"]
    assert meta["cost_usd"] == f"{builder.expected_cost:.4f}"
    assert meta["cost_output_tokens"] == "300"


def test_a_task_over_several_sessions_adds_them_up(project, tmp_path, task_id):
    first, path1 = session(tmp_path, "s1", model="claude-haiku-4-5-20251001", output=100)
    second, path2 = session(tmp_path, "s2", model="claude-opus-4-6", output=50)
    extract(project, task_id, path1)
    extract(project, task_id, path2)
    report = task_report(project, task_id)
    assert report["total_usd"] == pytest.approx(first.expected_cost + second.expected_cost)
    assert {s["session_id"] for s in report["sessions"]} == {"s1", "s2"}
    assert len(report["models"]) == 2
    top = max((first, "Claude Haiku 4.5"), (second, "Claude Opus 4.6"),
              key=lambda pair: pair[0].expected_cost)[1]
    assert metadata(project, task_id)["cost_model"] == top


def test_a_resumed_session_does_not_bill_copied_requests_twice(project, tmp_path, task_id):
    original = TranscriptBuilder(session_id="s1")
    copied = original.response(output=100)
    path1 = write_session(tmp_path, original)
    resumed = TranscriptBuilder(session_id="s2")
    resumed.timestamp = original.timestamp + 100
    resumed.response(message_id=copied.message_id, output=100, billed=False)
    new = resumed.response(output=40)
    path2 = write_session(tmp_path, resumed)
    extract(project, task_id, path1)
    extract(project, task_id, path2)
    extract(project, task_id, path1)  # SessionEnd of the first firing again changes nothing
    meta = metadata(project, task_id)
    assert float(meta["cost_usd"]) == pytest.approx(copied.cost + new.cost, abs=1e-4)
    assert meta[SESSIONS_KEY]["s2"]["copied_requests_excluded"] == 1


def test_subagents_are_part_of_the_session(project, tmp_path, task_id):
    builder, path = session(tmp_path, "s1", output=10)
    sub = write_subagent(path.parent, "s1", "abc", "code-reviewer",
                         lambda b, a: b.response(sidechain=True, agent_id=a, output=999))
    extract(project, task_id, path)
    assert float(metadata(project, task_id)["cost_usd"]) == pytest.approx(
        builder.expected_cost + sub.expected_cost, abs=1e-4)


def test_figures_from_an_older_cmat_are_kept_as_a_session(project, tmp_path, task_id):
    def legacy(task):
        task["metadata"].update(cost_usd="1.5000", cost_input_tokens="10", session_id="old",
                                cost_output_tokens="20", cost_model="Claude Opus 4.5")
    QueueService(project).update_task(task_id, legacy)
    builder, path = session(tmp_path, "s1", output=10)
    extract(project, task_id, path)
    meta = metadata(project, task_id)
    assert set(meta[SESSIONS_KEY]) == {LEGACY_SESSION, "s1"}
    assert float(meta["cost_usd"]) == pytest.approx(1.5 + builder.expected_cost, abs=1e-4)
    # Re-recording the session the old figures were about replaces them.
    old_builder, old_path = session(tmp_path, "old", output=5)
    extract(project, task_id, old_path)
    assert set(metadata(project, task_id)[SESSIONS_KEY]) == {"s1", "old"}


def test_errors_write_nothing(project, tmp_path, task_id):
    queue_file = project / ".claude" / "data" / "task_queue.json"
    before = queue_file.read_bytes()
    _, path = session(tmp_path, "s1")
    with pytest.raises(NotFound):
        extract(project, "task_nope", path)
    with pytest.raises(TranscriptError):
        extract(project, task_id, tmp_path / "missing.jsonl")
    assert queue_file.read_bytes() == before


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
        assert len(task["metadata"][SESSIONS_KEY]) == 2
        assert float(task["metadata"]["cost_usd"]) == pytest.approx(sum(mine), abs=1e-4)
