"""The one safe reader (cmat.untrusted) and every file read through it: what a repository,
another local user or a hostile file can put where cmat reads, and what cmat then does."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmat import paths, spool
from cmat.budgets.config import load_config, read_toml
from cmat.catalog.load import read_json
from cmat.claude.install import load_settings
from cmat.errors import CatalogError, ConfigError, QueueError, SettingsError
from cmat.tasks.queue import (
    QueueService,
    current_context,
    figure_session,
    legacy_figures,
    read_marker,
)
from cmat.untrusted import Unreadable, read_untrusted, read_untrusted_text
from cmat.usage import EARLIEST_TS, LATEST_TS, MAX_REQUEST_TOKENS, MAX_REQUEST_USD
from tests.helpers import (
    PRE_TOOL,
    REPO,
    budget_payload,
    child_env,
    cli_run,
    need,
    session_costing,
    user_config,
)
from tests.test_claude_runtime import SESSION_END, payload, run_hook
from tests.transcript_factory import TranscriptBuilder, write_session

FUZZ = settings(max_examples=150,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
OTHER_UID = 54321


def requires_root():
    """Changing a file's owner needs root; CI runs as root and must not skip these."""
    need(os.getuid() == 0, "needs root to give a file another owner")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "proc", "directory", "socket"])
def test_only_regular_files_are_read_and_nothing_waits(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "f"
        os.mkfifo(path)
    elif kind == "dev-zero":
        path = tmp_path / "z"
        os.symlink("/dev/zero", path)
    elif kind == "proc":
        path = "/proc/self/status"
    elif kind == "directory":
        path = tmp_path
    else:
        import socket

        path = tmp_path / "s"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    started = time.monotonic()
    with pytest.raises(Unreadable):
        read_untrusted(path)
    assert time.monotonic() - started < 1


def test_a_link_into_proc_is_refused(tmp_path):
    link = tmp_path / "l"
    os.symlink("/proc/self/environ", link)
    with pytest.raises(Unreadable, match="/proc"):
        read_untrusted(link)


def test_missing_is_none_and_size_is_capped(tmp_path):
    assert read_untrusted(tmp_path / "nothing") is None
    big = tmp_path / "big"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(Unreadable, match="larger than 1,000 bytes"):
        read_untrusted(big, limit=1000)
    assert read_untrusted(big, limit=1001) == b"x" * 1001


def test_invalid_utf8_is_refused_as_text(tmp_path):
    path = tmp_path / "t"
    path.write_bytes(b"ok\xff\xfe")
    with pytest.raises(Unreadable, match="not UTF-8"):
        read_untrusted_text(path)


def test_the_users_own_link_is_followed_another_users_is_not(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"content")
    mine = tmp_path / "mine"
    os.symlink(target, mine)
    assert read_untrusted(mine) == b"content"
    requires_root()
    theirs = tmp_path / "theirs"
    os.symlink(target, theirs)
    os.lchown(theirs, OTHER_UID, OTHER_UID)
    with pytest.raises(Unreadable, match="owned by another user"):
        read_untrusted(theirs)


@FUZZ
@given(content=st.binary(max_size=2048))
def test_any_bytes_read_back_exactly(tmp_path, content):
    path = tmp_path / "any"
    path.write_bytes(content)
    assert read_untrusted(path) == content


# --- each file cmat reads but did not write ------------------------------------------------


def _fifo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


def test_a_fifo_queue_is_a_queue_error_not_a_hang(project):
    _fifo(paths.queue_file(project))
    with pytest.raises(QueueError, match="not a regular file"):
        QueueService(project).load()


def test_a_fifo_project_config_is_ignored_and_said(project):
    _fifo(project / ".claude" / "cmat.toml")
    config = load_config(project)
    assert any("not a regular file" in note for note in config.ignored)


def test_a_fifo_project_catalog_is_a_catalog_error(project):
    path = paths.project_catalog(project)
    _fifo(path)
    with pytest.raises(CatalogError, match="not a regular file"):
        read_json(path)


def test_fifo_settings_are_a_settings_error(project):
    _fifo(project / ".claude" / "settings.json")
    with pytest.raises(SettingsError, match="not a regular file"):
        load_settings(project / ".claude" / "settings.json")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "bad-bytes", "control"])
def test_a_bad_marker_means_no_task_and_says_why(project, kind):
    marker = paths.current_task_file(project)
    marker.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(marker)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", marker)
    elif kind == "bad-bytes":
        marker.write_bytes(b"task\xff\xfe")
    else:
        marker.write_text("task_1\r\n2026-12-01 ERROR forged\n")
    started = time.monotonic()
    with pytest.raises(Unreadable):
        read_marker(project)
    context = current_context(project)
    assert context.task_id is None and "marker refused" in context.problem
    assert time.monotonic() - started < 1


def test_session_end_with_a_fifo_marker_records_the_session_at_once(project, tmp_path):
    _fifo(paths.current_task_file(project))
    builder = TranscriptBuilder(session_id="s-fifo")
    builder.response(output=100)
    main = write_session(tmp_path / "t", builder)
    started = time.monotonic()
    run_hook(SESSION_END, payload(main, "s-fifo"), project)
    assert time.monotonic() - started < 10  # it waited 25 s for a writer before
    log = paths.hook_log_file().read_text()
    assert "marker refused" in log and "s-fifo -> untracked" in log


def test_a_hooks_line_on_stderr_shows_a_projects_control_characters_as_escapes(tmp_path):
    """The budget hook names the refused marker, inside the repository, on stderr, where
    Claude Code shows it: a folder's name cannot erase or rewrite that line."""
    project = tmp_path / "repo\x1b[2K\rcmat: all budgets ok\n"
    _fifo(paths.current_task_file(project))
    user_config("[budgets]\ndaily = 100\n")
    _, transcript = session_costing(tmp_path, "s-named", 0.5)
    result = subprocess.run([str(PRE_TOOL)], capture_output=True, timeout=60,
                            input=json.dumps(budget_payload(transcript, "s-named",
                                                            "PreToolUse")).encode(),
                            env=child_env(CLAUDE_PROJECT_DIR=project,
                                          CMAT_PYTHON=sys.executable))
    assert result.returncode == 0
    said = result.stderr.decode()
    assert "marker refused" in said and "task budgets not checked" in said
    assert said.count("\n") == 1 and "\r" not in said and "\x1b" not in said
    assert "repo\\x1b[2K\\rcmat: all budgets ok\\n" in said


def test_subagent_stop_never_opens_a_fifo_transcript(project, tmp_path):
    fifo = tmp_path / "agent-x.jsonl"
    os.mkfifo(fifo)
    started = time.monotonic()
    run_hook(REPO / "hooks" / "on-subagent-stop-cost.sh",
             {"session_id": "s", "agent_transcript_path": str(fifo), "agent_id": "x",
              "hook_event_name": "SubagentStop"}, project)
    assert time.monotonic() - started < 10
    assert "not a regular file" in paths.hook_log_file().read_text()


# --- the spool in the shared temporary folder --------------------------------------------


def _pending(task="t1"):
    return spool.Pending("/p", "s1", None, task, None, None, "session-end")


def _tmp_spool():
    return spool.folders()[1]


@pytest.fixture
def tmp_spool(monkeypatch, tmp_path):
    shared = tmp_path / "shared-tmp"
    shared.mkdir(mode=0o1777)
    monkeypatch.setenv("TMPDIR", str(shared))
    return _tmp_spool()


@pytest.mark.parametrize("tmpdir", ["shared", "absent", "a-file", None])
@pytest.mark.parametrize("temp", ["other", None])
def test_the_temporary_spool_is_where_tempfile_would_put_it(monkeypatch, tmp_path, tmpdir,
                                                             temp):
    import tempfile

    (tmp_path / "shared").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "a-file").write_text("")
    for name, value in (("TMPDIR", tmpdir), ("TEMP", temp), ("TMP", None)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(tmp_path / value))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads the variables again
    assert _tmp_spool().parent == Path(tempfile.gettempdir())
    monkeypatch.setattr(tempfile, "tempdir", None)


def test_the_temporary_spool_is_made_private(tmp_spool):
    paths.state_home().mkdir(parents=True)
    (paths.state_home() / "spool").write_text("not a folder")  # the first folder fails
    kept = spool.keep(_pending())
    assert kept.parent == tmp_spool
    assert os.stat(tmp_spool).st_mode & 0o777 == 0o700
    assert [p.task_id for _, p in spool.waiting()] == ["t1"]


def test_another_users_spool_folder_is_never_read(tmp_spool):
    requires_root()
    tmp_spool.mkdir(mode=0o777)
    (tmp_spool / "1.json").write_text(json.dumps(
        {"project": "/p", "session_id": "s", "transcript": None, "task_id": "planted",
         "enhancement": None, "agent": None, "recorded_by": "session-end"}))
    os.chown(tmp_spool, OTHER_UID, OTHER_UID)
    assert spool.waiting() == []
    paths.state_home().mkdir(parents=True)
    (paths.state_home() / "spool").write_text("not a folder")
    with pytest.raises(OSError, match="not a private folder"):
        spool.keep(_pending())  # never into the folder somebody else made


def test_a_file_planted_in_an_open_spool_folder_is_refused(tmp_spool):
    requires_root()
    tmp_spool.mkdir(mode=0o777)  # made by an older cmat, open to all
    planted = tmp_spool / "0001.json"
    planted.write_text(json.dumps(
        {"project": "/p", "session_id": "s", "transcript": None, "task_id": "planted",
         "enhancement": None, "agent": None, "recorded_by": "session-end"}))
    os.chown(planted, OTHER_UID, OTHER_UID)
    assert spool.waiting() == []
    assert os.stat(tmp_spool).st_mode & 0o777 == 0o700
    assert planted.with_suffix(".refused").exists()


# --- fuzz: what a hostile repository's files make the readers do ----------------------------


@FUZZ
@given(content=st.binary(max_size=4096))
def test_any_queue_bytes_load_or_give_a_queue_error(project, content):
    paths.queue_file(project).parent.mkdir(parents=True, exist_ok=True)
    paths.queue_file(project).write_bytes(content)
    service = QueueService(project, read_retry_pauses=())  # no wait for a writer to finish
    try:
        service.tasks()
    except QueueError:
        pass


_JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.sampled_from(["1e300", "-1", "nan", "inf", ".8494", "12", "legacy:", "legacy:task_1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3), max_leaves=6)


@FUZZ
@given(metadata=st.dictionaries(st.sampled_from(
    ["cost_usd", "cost_input_tokens", "cost_output_tokens", "cost_cache_creation_tokens",
     "cost_cache_read_tokens", "cost_model", "session_id", "log_file_path"]), _JSON_VALUE),
    stamp=_JSON_VALUE | st.datetimes().map(lambda moment: moment.isoformat() + "Z"))
def test_any_cost_fields_are_a_figure_a_request_can_have_or_none(metadata, stamp):
    """What a repository's queue says CMAT's hook spent: never a cost, count or time that
    no request has, whatever the fields hold."""
    task = {"id": "task_1", "completed": stamp, "metadata": metadata}
    figures = legacy_figures(task)
    if figures is not None:
        assert 0 <= figures["cost"] <= MAX_REQUEST_USD
        assert EARLIEST_TS <= figures["ts"] <= LATEST_TS
        assert all(0 <= figures[kind] <= MAX_REQUEST_TOKENS
                   for kind in ("input", "output", "cache_creation", "cache_read"))
        named = figure_session(task)
        assert figures["session"] == "legacy:" + (named or "task_1")


@FUZZ
@given(content=st.text(max_size=2048) | st.binary(max_size=2048).map(
    lambda b: b.decode("latin-1")))
def test_any_project_config_loads_or_is_ignored_with_a_note(project, content):
    path = project / ".claude" / "cmat.toml"
    path.write_text(content, encoding="utf-8", errors="surrogateescape")
    config = load_config(project)
    assert config.sources == [] or config.sources == [str(path)]
    try:
        read_toml(path)
    except ConfigError:
        assert config.ignored


@FUZZ
@given(content=st.binary(max_size=2048))
def test_any_settings_bytes_load_or_give_a_settings_error(project, content):
    path = project / ".claude" / "settings.json"
    path.write_bytes(content)
    try:
        assert isinstance(load_settings(path), dict)
    except SettingsError:
        pass


def test_deeply_nested_files_are_clear_errors(project):
    path = project / ".claude" / "cmat.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000)
    assert load_config(project).ignored
    paths.queue_file(project).parent.mkdir(parents=True, exist_ok=True)
    paths.queue_file(project).write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(QueueError):
        QueueService(project).load()


@pytest.mark.parametrize("name", [".claude/settings.json", ".mcp.json",
                                  ".claude/agents/agents.json"])
def test_deeply_nested_json_of_a_repository_is_a_clear_error(project, name):
    """Read with the standard library's parser, a file nested deeper than it goes ended the
    command with a RecursionError ('internal error')."""
    (project / ".claude" / "agents").mkdir()
    (project / ".claude" / "agents" / "implementer.md").write_text("# implementer\n")
    (project / name).write_text('{"a": ' + "[" * 100000 + "]" * 100000 + "}")
    command = {".claude/settings.json": ["hooks", "install"], ".mcp.json": [
        "hooks", "install", "--mcp"], ".claude/agents/agents.json": [
        "queue", "add", "implementer", "Fix", ""]}[name]
    said = cli_run(*command, code=6 if "agents" in name else 9).stderr
    assert f"{project / name} is nested too deeply" in said and "internal error" not in said


def test_finishing_the_current_task_leaves_a_fifo_marker_and_does_not_wait(project):
    task = QueueService(project).add("Fix login")
    QueueService(project).start(task["id"])
    marker = paths.current_task_file(project)
    marker.unlink()
    os.mkfifo(marker)  # read as the task it names, opening it waited for a writer for ever
    done = subprocess.run([sys.executable, "-m", "cmat", "queue", "complete", task["id"]],
                          capture_output=True, text=True, timeout=60, env=child_env())
    assert done.returncode == 0, done.stderr
    assert QueueService(project).get(task["id"])["status"] == "completed"
    assert marker.is_fifo()
