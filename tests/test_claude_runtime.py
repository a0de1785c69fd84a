"""The recording hooks (SessionEnd, SubagentStop) as Claude Code runs them."""

import io
import json
import os
import shlex
import sqlite3
import subprocess
import time

import pytest
from click.testing import CliRunner

from cmat import paths
from cmat.cli import cli
from cmat.ledger import Ledger
from cmat.tasks.queue import QueueService
from tests.helpers import REPO, child_env, earlier_today, need, user_config
from tests.transcript_factory import TranscriptBuilder, write_session, write_subagent

SESSION_END = REPO / "hooks" / "on-session-end-cost.sh"


SUBAGENT_STOP = REPO / "hooks" / "on-subagent-stop-cost.sh"


def run_hook(script, payload, project, **env):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    result = subprocess.run([str(script)], input=data, capture_output=True, timeout=60,
                            env=child_env(CLAUDE_PROJECT_DIR=project,
                                          CMAT_PYTHON=os.sys.executable, **env))
    assert result.returncode == 0, result.stderr
    return result


def payload(path, session_id, **extra):
    return {"session_id": session_id, "transcript_path": str(path), "cwd": "/somewhere",
            "hook_event_name": "SessionEnd", "reason": "prompt_input_exit",
            "permission_mode": "default", **extra}


def ledger_rows(sql, params=()):
    with sqlite3.connect(paths.ledger_file()) as db:
        return db.execute(sql, params).fetchall()


def hook_log(project):
    return paths.hook_log_file().read_text()


@pytest.fixture
def session(tmp_path):
    builder = TranscriptBuilder(session_id="sess-main")
    builder.response(model="claude-opus-4-6", output=300, write_1h=5000, read=20000)
    builder.response(output=120)
    main = write_session(tmp_path / "proj", builder)
    sub = write_subagent(main.parent, "sess-main", "agent1", "Explore",
                         lambda b, a: b.response(model="claude-haiku-4-5-20251001",
                                                 sidechain=True, agent_id=a, output=777))
    return main, builder.expected_cost + sub.expected_cost, sub


@pytest.fixture
def task(project):
    return QueueService(project).add("Hooked", enhancement="feat")["id"]


def task_cost(project, task_id):
    return float(QueueService(project).get(task_id)["metadata"]["cost_usd"])


def test_session_end_records_the_current_task_from_the_environment(project, task, session):
    main, expected, _ = session
    result = run_hook(SESSION_END, payload(main, "sess-main"), project, CMAT_CURRENT_TASK_ID=task)
    assert result.stdout == b"" and result.stderr == b""
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)
    assert ledger_rows("SELECT count(*), count(DISTINCT s.task_id), max(s.enhancement) FROM"
                       " requests JOIN sessions s USING (session_id)") == [(3, 1, "feat")]
    assert ledger_rows("SELECT agent FROM requests WHERE agent != 'main'") == [("Explore",)]
    assert "INFO  session-end session sess-main -> task" in hook_log(project)
    assert "over 3 requests (3 new)" in hook_log(project)
    one = TranscriptBuilder(session_id="sess-one")
    one.response(output=10)
    run_hook(SESSION_END, payload(write_session(main.parent.parent / "one", one), "sess-one"),
             project)
    assert "over 1 request (1 new)" in hook_log(project)


def test_the_marker_written_by_queue_start_names_the_task_until_completed(project, task, session):
    main, expected, _ = session
    QueueService(project).start(task)
    run_hook(SESSION_END, payload(main, "sess-main"), project)
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)
    QueueService(project).finish(task, "completed")
    assert not paths.current_task_file(project).exists()


def test_a_session_with_no_task_is_kept_as_an_untracked_session(project, session):
    main, expected, _ = session
    run_hook(SESSION_END, payload(main, "sess-main"), project)
    assert not paths.queue_file(project).exists()  # no queue is created for it
    assert ledger_rows("SELECT session_id, task_id, project_dir FROM sessions") == [
        ("sess-main", None, str(project))]
    assert ledger_rows("SELECT sum(cost_usd) FROM requests")[0][0] == pytest.approx(expected)
    assert "-> untracked" in hook_log(project)


def test_an_unknown_task_is_logged_and_the_session_kept_untracked(project, task, session):
    main, _, _ = session
    run_hook(SESSION_END, payload(main, "sess-main"), project, CMAT_CURRENT_TASK_ID="task_nope")
    assert "task task_nope is not in" in hook_log(project)
    assert ledger_rows("SELECT task_id FROM sessions") == [(None,)]


@pytest.mark.parametrize("stdin, message", [
    (b"", "stdin is not JSON"),
    (b"{not json", "stdin is not JSON"),
    (b"[1, 2]", "not an object"),
    (json.dumps({"session_id": "x"}).encode(), "no 'transcript_path'"),
    (json.dumps({"session_id": "x", "transcript_path": "/nope/x.jsonl"}).encode(),
     "does not exist"),
])
def test_bad_input_exits_zero_logs_and_prints_one_short_line(project, stdin, message):
    result = run_hook(SESSION_END, stdin, project)
    assert message in hook_log(project)
    assert result.stderr.count(b"\n") == 1 and b"cost not recorded" in result.stderr


def test_a_read_only_data_directory_loses_nothing_and_breaks_nothing(project, task, session):
    main, expected, _ = session
    data = project / ".claude" / "data"
    queue_before = paths.queue_file(project).read_bytes()
    script = str(SESSION_END)
    if os.geteuid() == 0:  # root ignores permissions: a read-only mount stops it
        need(subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0,
             "needs a mount namespace (unshare -m) when run as root")
        wrapped = f"mount --bind -o ro {shlex.quote(str(data))} {shlex.quote(str(data))} " \
                  f"&& exec {shlex.quote(script)}"
        command = ["unshare", "-m", "bash", "-c", wrapped]
    else:
        data.chmod(0o555)
        command = [script]
    try:
        result = subprocess.run(command, input=json.dumps(payload(main, "sess-main")).encode(),
                                capture_output=True, timeout=60,
                                env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_CURRENT_TASK_ID=task,
                                              CMAT_PYTHON=os.sys.executable))
    finally:
        data.chmod(0o755)
    assert result.returncode == 0
    assert result.stderr.count(b"\n") == 1 and b"task queue was not updated" in result.stderr
    assert paths.queue_file(project).read_bytes() == queue_before  # valid, untouched
    assert "could not be written" in paths.hook_log_file().read_text()
    assert ledger_rows("SELECT sum(cost_usd), max(s.task_id) FROM requests"
                       " JOIN sessions s USING (session_id)")[0] == (
        pytest.approx(expected), task)
    # The next hook that can write the queue brings it up to date.
    run_hook(SESSION_END, payload(main, "sess-main"), project)
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)


def test_session_end_twice_changes_nothing_the_second_time(project, task, session):
    main, _, _ = session
    run_hook(SESSION_END, payload(main, "sess-main"), project, CMAT_CURRENT_TASK_ID=task)
    queue_after_first = paths.queue_file(project).read_bytes()
    rows_after_first = ledger_rows("SELECT * FROM requests ORDER BY message_id")
    run_hook(SESSION_END, payload(main, "sess-main", reason="resume"), project,
             CMAT_CURRENT_TASK_ID=task)
    assert paths.queue_file(project).read_bytes() == queue_after_first
    assert ledger_rows("SELECT * FROM requests ORDER BY message_id") == rows_after_first


def test_a_resumed_session_that_grew_adds_only_its_new_requests(project, task, tmp_path):
    builder = TranscriptBuilder(session_id="grow")
    builder.response(output=100)
    path = write_session(tmp_path, builder)
    run_hook(SESSION_END, payload(path, "grow"), project, CMAT_CURRENT_TASK_ID=task)
    builder.response(output=200)
    builder.write(path)
    run_hook(SESSION_END, payload(path, "grow"), project, CMAT_CURRENT_TASK_ID=task)
    assert task_cost(project, task) == pytest.approx(builder.expected_cost, abs=1e-4)
    assert ledger_rows("SELECT count(*) FROM requests") == [(2,)]


def test_session_end_after_subagent_stop_counts_the_subagent_once(project, task, session):
    main, expected, sub = session
    agent_file = main.parent / "sess-main" / "subagents" / "agent-agent1.jsonl"
    stop = payload(main, "sess-main", hook_event_name="SubagentStop", agent_id="agent1",
                   agent_type="Explore", agent_transcript_path=str(agent_file))
    run_hook(SUBAGENT_STOP, stop, project, CMAT_CURRENT_TASK_ID=task)
    assert "session-end" not in hook_log(project) and "subagent-stop" in hook_log(project)
    run_hook(SESSION_END, payload(main, "sess-main"), project, CMAT_CURRENT_TASK_ID=task)
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)
    assert ledger_rows("SELECT count(*) FROM requests") == [(3,)]


def test_subagent_stop_tolerates_a_last_line_not_yet_flushed(project, task, tmp_path):
    agent = TranscriptBuilder(session_id="s")
    agent.response(sidechain=True, agent_id="zz", blocks=1)
    agent.response(sidechain=True, agent_id="zz", blocks=1)
    agent_file = tmp_path / "s" / "subagents" / "agent-zz.jsonl"
    agent.write(agent_file, truncate_last=True)
    stop = {"session_id": "s", "agent_transcript_path": str(agent_file), "agent_type": "Plan"}
    run_hook(SUBAGENT_STOP, stop, project, CMAT_CURRENT_TASK_ID=task)
    assert ledger_rows("SELECT agent FROM requests") == [("Plan",)]
    agent.write(agent_file)  # the last line flushed: the next record reads it, once
    run_hook(SUBAGENT_STOP, stop, project, CMAT_CURRENT_TASK_ID=task)
    assert ledger_rows("SELECT agent FROM requests") == [("Plan",), ("Plan",)]
    assert task_cost(project, task) == pytest.approx(agent.expected_cost, abs=1e-4)


def test_a_hook_that_runs_out_of_time_gives_up_cleanly(project, task, session):
    main, _, _ = session
    run_hook(SESSION_END, payload(main, "sess-main"), project, CMAT_CURRENT_TASK_ID=task,
             CMAT_HOOK_BUDGET="0.000001")
    assert "HookTimeout" in hook_log(project)


def test_eight_hooks_at_once_on_one_queue_lose_nothing(project, tmp_path):
    queue = QueueService(project)
    tasks = [queue.add(f"t{i}")["id"] for i in range(2)]
    jobs = []
    for index in range(8):
        builder = TranscriptBuilder(session_id=f"s{index}")
        builder.response(output=50 + index)
        path = write_session(tmp_path / "many", builder)
        jobs.append((tasks[index % 2], path, builder.expected_cost, f"s{index}"))
    processes = [subprocess.Popen([str(SESSION_END)], stdin=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  env=child_env(CLAUDE_PROJECT_DIR=project,
                                                CMAT_PYTHON=os.sys.executable,
                                                CMAT_CURRENT_TASK_ID=task_id))
                 for task_id, path, _, sid in jobs]
    for process, (_, path, _, sid) in zip(processes, jobs):
        process.communicate(json.dumps(payload(path, sid)).encode(), timeout=60)
        assert process.returncode == 0
    for task_id in tasks:
        expected = sum(cost for t, _, cost, _ in jobs if t == task_id)
        assert task_cost(project, task_id) == pytest.approx(expected, abs=1e-4)
    assert ledger_rows("SELECT count(*) FROM sessions") == [(8,)]
    assert hook_log(project).count("INFO") == 8


def test_the_hook_command_through_click_behaves_the_same(project, task, session):


    main, expected, _ = session
    stdin = io.BytesIO(json.dumps(payload(main, "sess-main")).encode())
    os.environ["CMAT_CURRENT_TASK_ID"] = task
    try:
        result = CliRunner().invoke(cli, ["hook", "session-end"], input=stdin)
    finally:
        del os.environ["CMAT_CURRENT_TASK_ID"]
    assert result.exit_code == 0
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)
    listed = CliRunner().invoke(cli, ["--help"]).output.split("Commands:")[1].split()
    assert "hooks" in listed and "hook" not in listed  # run by Claude Code, not listed


def test_a_deleted_working_directory_is_a_clear_message(project, task, session, tmp_path):
    main, _, _ = session
    gone = tmp_path / "gone"
    gone.mkdir()
    env = child_env(CMAT_PYTHON=os.sys.executable)
    env.pop("CLAUDE_PROJECT_DIR", None)
    script = (f"cd {shlex.quote(str(gone))} && rmdir {shlex.quote(str(gone))} && "
              f"exec {shlex.quote(str(SESSION_END))}")
    result = subprocess.run(["bash", "-c", script], capture_output=True, timeout=60, env=env,
                            input=json.dumps(payload(main, "sess-main")).encode())
    assert result.returncode == 0 and b"Traceback" not in result.stderr
    assert ledger_rows("SELECT count(*) FROM requests") == [(3,)]  # recorded all the same
    cli = subprocess.run(["bash", "-c", f"cd {shlex.quote(str(tmp_path))} && mkdir x && cd x "
                          f"&& rmdir ../x && exec {shlex.quote(os.sys.executable)} -m cmat "
                          "costs show t1"], capture_output=True, text=True, env=env, timeout=60)
    assert cli.returncode == 3 and "current directory no longer exists" in cli.stderr


def test_a_lone_surrogate_session_id_is_refused_with_a_message(project, session):
    main, _, _ = session
    raw = json.dumps(payload(main, "x")).replace('"session_id": "x"',
                                                 '"session_id": "\\ud800"').encode()
    result = run_hook(SESSION_END, raw, project)
    assert b"Traceback" not in result.stderr and result.stderr.count(b"\n") == 1
    assert "session_id is not valid text" in paths.hook_log_file().read_text()
    assert "traceback" not in paths.hook_log_file().read_text()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_only_regular_files_are_read_as_transcripts(project, tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "t.jsonl"
        os.mkfifo(path)
    else:
        path = "/dev/zero"
    started = time.monotonic()
    result = run_hook(SESSION_END, payload(path, "s"), project)
    assert time.monotonic() - started < 10
    assert b"cost not recorded" in result.stderr
    assert "is not a regular file" in paths.hook_log_file().read_text()
    assert "traceback" not in paths.hook_log_file().read_text()


def test_a_budget_is_checked_on_a_pre_tool_use_payload_over_the_stdin_cap(project, tmp_path):
    user_config("[budgets]\ndaily = 0.000001\n")
    builder = TranscriptBuilder(session_id="big")
    builder.now = earlier_today()
    builder.response(model="claude-opus-4-6", output=1000)
    main = write_session(tmp_path, builder)
    big = {"session_id": "big", "transcript_path": str(main), "cwd": str(project),
           "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Write",
           "tool_input": {"file_path": "/x", "content": "y" * 5_000_000}}
    result = run_hook(REPO / "hooks" / "on-pre-tool-use-budget.sh", big, project)
    answer = json.loads(result.stdout)
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_a_session_larger_than_a_hook_reads_is_left_to_scan(project, task, session):
    main, _, _ = session
    result = run_hook(SESSION_END, payload(main, "sess-main"), project,
                      CMAT_CURRENT_TASK_ID=task, CMAT_HOOK_MAX_BYTES="1000")
    assert b"cost not recorded" in result.stderr
    assert "more than a hook reads" in paths.hook_log_file().read_text()


def test_a_ledger_locked_past_the_deadline_spools_the_attribution(project, task, session,
                                                                  tmp_path):
    main, expected, _ = session
    with Ledger() as ledger:
        assert ledger.db is not None  # the ledger exists, migrated
    blocker = sqlite3.connect(paths.ledger_file(), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        result = run_hook(SESSION_END, payload(main, "sess-main"), project,
                          CMAT_CURRENT_TASK_ID=task, CMAT_HOOK_BUDGET="3")
        assert time.monotonic() - started < 3
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert b"cost kept for the next hook or scan" in result.stderr
    assert "attribution waits in" in hook_log(project)
    spooled = list((paths.state_home() / "spool").glob("*.json"))
    assert len(spooled) == 1
    # The next hook, for another session and no task, applies it first.
    other = TranscriptBuilder(session_id="other")
    other.response(output=5)
    run_hook(SESSION_END, payload(write_session(tmp_path / "o", other), "other"), project)
    assert not list((paths.state_home() / "spool").glob("*.json"))
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)
    with Ledger() as ledger:
        assert ledger.task_spend(task) == pytest.approx(expected)


def test_a_budget_hook_with_no_budget_config_answers_before_importing_cmat(project):
    result = subprocess.run([os.sys.executable, "-X", "importtime", "-m", "cmat", "hook",
                             "pre-tool-use"], input=b'{"session_id": "x"}', capture_output=True,
                            env=child_env(CLAUDE_PROJECT_DIR=project), timeout=60)
    assert result.returncode == 0 and result.stdout == b""
    imported = result.stderr.decode()
    assert "cmat.entry" in imported and "cmat.claude.runtime" not in imported
    assert "sqlite3" not in imported and "orjson" not in imported


def _hooks_without_cmat(tmp_path):
    """The checkout's hook scripts copied where no .venv is near, as in a teammate's clone."""
    folder = tmp_path / "clone" / ".claude" / "hooks"
    folder.mkdir(parents=True)
    for script in (REPO / "hooks").glob("*.sh"):
        (folder / script.name).write_bytes(script.read_bytes())
        (folder / script.name).chmod(0o755)
    return folder


def _session_end_with_python3(tmp_path, project, main, python3: str, **extra):
    """SessionEnd through hook scripts far from any .venv, with `python3` (a shell script's
    body) first on PATH and no CMAT_PYTHON or PYTHONPATH to fall back on."""
    hooks = _hooks_without_cmat(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f"#!/bin/sh\n{python3}\n")
    (bin_dir / "python3").chmod(0o755)
    (bin_dir / "python").symlink_to(bin_dir / "python3")
    env = child_env(CLAUDE_PROJECT_DIR=project, **extra)
    for name in ("PYTHONPATH", "CMAT_PYTHON"):
        env.pop(name, None)
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    return subprocess.run([str(hooks / "on-session-end-cost.sh")],
                          input=json.dumps(payload(main, "sess-main")).encode(),
                          capture_output=True, timeout=60, env=env)


def test_hooks_without_an_installed_interpreter_use_a_python3_that_has_cmat(
        project, task, session, tmp_path):
    main, expected, _ = session
    result = _session_end_with_python3(  # the venv's interpreter: it has cmat
        tmp_path, project, main, f'exec {shlex.quote(os.sys.executable)} "$@"',
        CMAT_CURRENT_TASK_ID=task)
    assert result.returncode == 0, result.stderr
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)


def test_without_any_interpreter_the_attribution_waits_for_the_next_cmat_run(
        project, task, session, tmp_path):
    main, expected, _ = session
    paths.current_task_file(project).parent.mkdir(parents=True, exist_ok=True)
    paths.current_task_file(project).write_text(task + "\n")
    QueueService(project).set_status(task, "active")
    result = _session_end_with_python3(tmp_path, project, main, "exit 1")  # no cmat there
    assert result.returncode == 0 and b"waits in" in result.stderr
    (spooled,) = (paths.state_home() / "spool").glob("*.hook")
    assert os.stat(spooled.parent).st_mode & 0o077 == 0
    CliRunner().invoke(cli, ["report", "daily", "--path", str(main.parent)],
                       catch_exceptions=False)  # the next cmat run applies it
    assert not list((paths.state_home() / "spool").glob("*.hook"))
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)
    report = json.loads(CliRunner().invoke(cli, ["costs", "show", task, "--json"]).output)
    assert report["enhancement"] == "feat"


def test_cmats_figure_ends_up_in_the_queue_after_cmats_own_hook_writes_last(
        project, task, session):
    """CMAT's SessionEnd hook runs beside cmat's and writes its own figure after cmat's: the
    queue shows cmat's again within seconds, without waiting for the next session."""
    main, expected, _ = session
    run_hook(SESSION_END, payload(main, "sess-main"), project, CMAT_CURRENT_TASK_ID=task)
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)

    def as_cmat_writes_it(doc):  # open('w') + json.dump, no lock: CMAT's way
        for queued in doc["tasks"]:
            if queued["id"] == task:
                queued["metadata"]["cost_usd"] = "1.0800"
        paths.queue_file(project).write_text(json.dumps(doc, indent=2))

    as_cmat_writes_it(json.loads(paths.queue_file(project).read_text()))
    assert task_cost(project, task) == 1.08
    deadline = time.monotonic() + 20
    while task_cost(project, task) == 1.08 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert task_cost(project, task) == pytest.approx(expected, abs=1e-4)
