"""cmat's entries in Claude Code's settings and .mcp.json: installed, kept, removed."""

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmat.claude.events import EVENTS
from cmat.claude.install import install, plain_script, target_for, uninstall
from cmat.errors import CmatError
from cmat.tasks.queue import QueueService
from tests.helpers import FIXTURES, REPO, child_env, cli_run
from tests.transcript_factory import TranscriptBuilder, write_session

OTHER_HOOKS = {
    "permissions": {"allow": ["Bash(ls:*)"]},
    "hooks": {
        "SessionEnd": [{"hooks": [{"type": "command", "command": "echo bye", "timeout": 5}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "lint.sh"}]}],
    },
    "model": "opus",
}


def settings_file(project):
    return project / ".claude" / "settings.json"


def test_install_into_a_project_adds_both_hooks_and_scripts(project):
    cli_run("hooks", "install")
    settings = json.loads(settings_file(project).read_text())
    for event in EVENTS:
        handler = settings["hooks"][event.name][0]["hooks"][0]
        assert handler == {"type": "command", "timeout": event.timeout,
                           "command": f'"$CLAUDE_PROJECT_DIR"/.claude/hooks/cmat/{event.script}'}
        assert os.access(project / ".claude" / "hooks" / "cmat" / event.script, os.X_OK)
    support = (project / ".claude" / "hooks" / "cmat" / "cmat-hook.sh").read_text()
    assert f"CMAT_INSTALLED_PYTHON={shlex.quote(os.sys.executable)}" in support


def test_install_twice_changes_nothing(project):
    cli_run("hooks", "install")
    before = settings_file(project).read_bytes()
    assert "Nothing to do" in cli_run("hooks", "install").output
    assert settings_file(project).read_bytes() == before


def test_install_keeps_other_hooks_and_settings(project):
    settings_file(project).write_text(json.dumps(OTHER_HOOKS))
    cli_run("hooks", "install")
    settings = json.loads(settings_file(project).read_text())
    assert settings["permissions"] == OTHER_HOOKS["permissions"]
    assert settings["model"] == "opus"
    assert settings["hooks"]["PreToolUse"][0] == OTHER_HOOKS["hooks"]["PreToolUse"][0]
    assert len(settings["hooks"]["PreToolUse"]) == 2
    assert settings["hooks"]["SessionEnd"][0] == OTHER_HOOKS["hooks"]["SessionEnd"][0]
    assert len(settings["hooks"]["SessionEnd"]) == 2
    cli_run("hooks", "uninstall")
    assert json.loads(settings_file(project).read_text()) == OTHER_HOOKS
    assert not (project / ".claude" / "hooks" / "cmat").exists()


def test_uninstall_of_cmat_only_settings_leaves_no_empty_hooks(project):
    settings_file(project).write_text(json.dumps({"model": "opus"}))
    cli_run("hooks", "install")
    cli_run("hooks", "uninstall")
    assert json.loads(settings_file(project).read_text()) == {"model": "opus"}


def test_a_moved_or_old_cmat_entry_is_updated_in_place(project, tmp_path):
    old_script = tmp_path / "old" / "place" / "on-session-end-cost.sh"
    old_script.parent.mkdir(parents=True)
    old_script.write_bytes((REPO / "hooks" / "on-session-end-cost.sh").read_bytes())
    old = {"hooks": {"SessionEnd": [{"hooks": [
        {"type": "command", "command": str(old_script)}]}]}}
    settings_file(project).write_text(json.dumps(old))
    install(target_for(project, False))
    groups = json.loads(settings_file(project).read_text())["hooks"]["SessionEnd"]
    assert len(groups) == 1 and groups[0]["hooks"][0]["timeout"] == 30
    assert ".claude/hooks/cmat/on-session-end-cost.sh" in groups[0]["hooks"][0]["command"]


def test_cmats_own_handler_is_never_taken_for_cmats_even_with_its_script_missing(project):
    """CMAT's guide wires .claude/hooks/on-session-end-cost.sh, cmat's script name; with that
    file missing nothing proves the handler is cmat's: install adds its own beside it, and
    uninstall gives back the file byte for byte (no newline added at the end)."""
    cmat_handler = {"hooks": {"SessionEnd": [{"hooks": [
        {"type": "command",
         "command": '"$CLAUDE_PROJECT_DIR"/.claude/hooks/on-session-end-cost.sh'}]}]}}
    original = json.dumps(cmat_handler, indent=2).encode()  # no final newline, as CMAT writes
    settings_file(project).write_bytes(original)
    install(target_for(project, False))
    groups = json.loads(settings_file(project).read_text())["hooks"]["SessionEnd"]
    assert [g["hooks"][0]["command"] for g in groups] == [
        '"$CLAUDE_PROJECT_DIR"/.claude/hooks/on-session-end-cost.sh',
        '"$CLAUDE_PROJECT_DIR"/.claude/hooks/cmat/on-session-end-cost.sh']
    from cmat import paths

    for backup in (paths.state_home() / "backups").glob("*"):
        backup.unlink()  # uninstall without the per-user backup: from the settings alone
    uninstall(target_for(project, False))
    assert settings_file(project).read_bytes() == original


@pytest.mark.parametrize("content", ['{"hooks": ', '{"hooks": []}', "[]"])
def test_a_malformed_settings_file_is_refused_and_untouched(project, content):
    settings_file(project).write_text(content)
    result = cli_run("hooks", "install", code=9)
    assert "will not overwrite" in result.stderr or "expected an object" in result.stderr
    assert settings_file(project).read_text() == content
    with pytest.raises(CmatError):
        uninstall(target_for(project, False))
    assert settings_file(project).read_text() == content


def test_dry_run_writes_nothing(project):
    result = cli_run("hooks", "install", "--dry-run")
    assert "Would update" in result.output and '"SessionEnd"' in result.output
    assert not settings_file(project).exists()
    assert not (project / ".claude" / "hooks").exists()


def test_user_scope_uses_the_claude_config_dir(project, tmp_path, monkeypatch):
    config = tmp_path / "claude-config"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    cli_run("hooks", "install", "--user")
    command = json.loads((config / "settings.json").read_text())["hooks"]["SessionEnd"][0][
        "hooks"][0]["command"]
    assert command == shlex.quote(str(config / "hooks" / "cmat" / "on-session-end-cost.sh"))
    assert not settings_file(project).exists()


def test_in_the_home_folder_the_hooks_go_in_as_the_users(isolated_home, monkeypatch):
    """~/.claude/settings.json is the user's settings: handlers run from
    "$CLAUDE_PROJECT_DIR" there would fail in every other project."""
    monkeypatch.chdir(isolated_home)
    result = cli_run("hooks", "install")
    assert "Claude Code's user settings (this project is the home folder)" in result.stderr
    settings = json.loads((isolated_home / ".claude" / "settings.json").read_text())
    command = settings["hooks"]["SessionEnd"][0]["hooks"][0]["command"]
    assert command == shlex.quote(str(isolated_home / ".claude" / "hooks" / "cmat" /
                                      "on-session-end-cost.sh"))
    report = json.loads(cli_run("hooks", "status", "--json").output)
    assert [scope["scope"] for scope in report["scopes"]] == ["user"]  # one file, said once
    assert report["ok"]
    cli_run("hooks", "uninstall")
    assert not (isolated_home / ".claude" / "settings.json").exists()


def test_status_reports_missing_then_healthy_then_the_last_run(project, tmp_path):
    result = cli_run("hooks", "status", code=1)
    assert "not installed" in result.output and "Not ready" in result.output
    cli_run("hooks", "install")
    report = json.loads(cli_run("hooks", "status", "--json").output)
    project_scope = report["scopes"][0]
    assert report["ok"] and all(h["installed"] and h["executable"] for h in project_scope["hooks"])
    assert project_scope["hooks"][0]["runs"] == f"{os.sys.executable} -m cmat"
    assert project_scope["scripts_current"] is True
    # Each hook's command, and what runs it, start in one column, UserPromptSubmit's too.
    lines = cli_run("hooks", "status").output.splitlines()
    hooks = [line for line in lines if ".claude/hooks/cmat/" in line]
    runs = [line for line in lines if line.strip().startswith("runs:")]
    assert len(hooks) == len(EVENTS) and len(runs) == len(EVENTS)
    assert {line.index('"$CLAUDE') for line in hooks} == {line.index("runs:") for line in runs}

    # End a simulated Claude Code session through the installed script.
    task_id = QueueService(project).add("Installed hook")["id"]
    builder = TranscriptBuilder(session_id="installed")
    builder.response(model="claude-opus-4-6", output=1234, write_1h=1000)
    path = write_session(tmp_path, builder)
    script = project / ".claude" / "hooks" / "cmat" / "on-session-end-cost.sh"
    stdin = json.dumps({"session_id": "installed", "transcript_path": str(path),
                        "hook_event_name": "SessionEnd", "reason": "other"}).encode()
    subprocess.run([str(script)], input=stdin, check=True, timeout=60,
                   env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_CURRENT_TASK_ID=task_id))
    shown = cli_run("costs", "show", task_id).output
    assert f"${builder.expected_cost:,.2f}" in shown and "1,234" in shown
    assert "session installed" in cli_run("hooks", "status").output
    assert "last problem" not in cli_run("hooks", "status").output
    # A session for a task the queue lacks is recorded untracked, and that is a problem to
    # show, after the run that came later.
    subprocess.run([str(script)], input=stdin, check=True, timeout=60,
                   env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_CURRENT_TASK_ID="nosuch"))
    subprocess.run([str(script)], input=stdin, check=True, timeout=60,
                   env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_CURRENT_TASK_ID=task_id))
    log = json.loads(cli_run("hooks", "status", "--json").output)["logs"][0]
    assert "task nosuch is not in" in log["last_problem"] and "WARN" in log["last_problem"]
    assert f"-> task {task_id}" in log["last"]
    assert "  last problem: " in cli_run("hooks", "status").output


def test_status_says_when_the_scripts_are_older_than_this_cmats(project):
    cli_run("hooks", "install")
    support = project / ".claude" / "hooks" / "cmat" / "cmat-hook.sh"
    older = support.read_text().replace('-c "from cmat.entry import main; main()"', "-m cmat")
    assert older != support.read_text()
    support.write_text(older)  # as an earlier release wrote it
    assert json.loads(cli_run("hooks", "status", "--json").output)["scopes"][0][
        "scripts_current"] is False
    assert "older than this cmat's" in cli_run("hooks", "status").output
    cli_run("hooks", "install")
    assert json.loads(cli_run("hooks", "status", "--json").output)["scopes"][0][
        "scripts_current"] is True


def _cmat_v10_project(project):
    """A project as CMAT v10 sets it up: its settings and its own SessionEnd hook."""
    hooks = project / ".claude" / "hooks"
    hooks.mkdir(parents=True)
    script = hooks / "on-session-end-cost.sh"
    script.write_bytes((FIXTURES / "cmat-v10" / "hooks_on-session-end-cost.sh").read_bytes())
    script.chmod(0o755)
    settings_file(project).write_bytes(
        (FIXTURES / "cmat-v10" / "settings.json").read_bytes())
    return script


def test_install_and_uninstall_leave_cmats_own_hook_and_settings_byte_identical(project):
    script = _cmat_v10_project(project)
    script_before, settings_before = script.read_bytes(), settings_file(project).read_bytes()
    cli_run("hooks", "install")
    assert script.read_bytes() == script_before
    session_end = json.loads(settings_file(project).read_text())["hooks"]["SessionEnd"]
    commands = [h["command"] for group in session_end for h in group["hooks"]]
    assert commands == ['"$CLAUDE_PROJECT_DIR"/.claude/hooks/on-session-end-cost.sh',
                        '"$CLAUDE_PROJECT_DIR"/.claude/hooks/cmat/on-session-end-cost.sh']
    shown = cli_run("hooks", "status").output
    assert ".claude/hooks/on-session-end-cost.sh  (not cmat's: left alone)" in shown
    report = json.loads(cli_run("hooks", "status", "--json").output)
    assert report["scopes"][0]["others"] == [
        {"event": "SessionEnd",
         "command": '"$CLAUDE_PROJECT_DIR"/.claude/hooks/on-session-end-cost.sh'}]
    cli_run("hooks", "uninstall")
    assert script.read_bytes() == script_before
    assert settings_file(project).read_bytes() == settings_before
    assert sorted(p.name for p in (project / ".claude" / "hooks").iterdir()) == [
        "on-session-end-cost.sh"]


def test_a_file_cmat_did_not_write_is_never_replaced(project):
    folder = project / ".claude" / "hooks" / "cmat"
    folder.mkdir(parents=True)
    (folder / "on-session-end-cost.sh").write_text("#!/bin/sh\necho mine\n")
    result = cli_run("hooks", "install", code=9)
    assert "was not written by cmat" in result.stderr
    assert (folder / "on-session-end-cost.sh").read_text() == "#!/bin/sh\necho mine\n"
    assert not settings_file(project).exists()


def test_uninstall_removes_scripts_an_older_cmat_wrote_beside_others(project):
    hooks = project / ".claude" / "hooks"
    hooks.mkdir(parents=True)
    old = hooks / "on-session-end-cost.sh"
    old.write_text("#!/bin/sh\n. ./cmat-hook.sh\n")
    settings_file(project).write_text(json.dumps({"hooks": {"SessionEnd": [{"hooks": [
        {"type": "command",
         "command": '"$CLAUDE_PROJECT_DIR"/.claude/hooks/on-session-end-cost.sh'}]}]}}))
    cli_run("hooks", "install")
    groups = json.loads(settings_file(project).read_text())["hooks"]["SessionEnd"]
    assert len(groups) == 1 and "/hooks/cmat/" in groups[0]["hooks"][0]["command"]
    assert not old.exists()  # moved into cmat's own folder


def test_a_symlinked_settings_file_is_edited_through_the_link(project, tmp_path):
    real = tmp_path / "dotfiles" / "settings.json"
    real.parent.mkdir()
    real.write_text(json.dumps({"model": "opus"}))
    settings_file(project).symlink_to(real)
    cli_run("hooks", "install")
    assert settings_file(project).is_symlink()
    assert "SessionEnd" in json.loads(real.read_text())["hooks"]
    cli_run("hooks", "uninstall")
    assert settings_file(project).is_symlink() and json.loads(real.read_text()) == {
        "model": "opus"}


def test_shell_syntax_in_paths_is_never_run(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    home = tmp_path / f"a $(touch {marker}) b}}; touch {marker}"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home))
    cli_run("hooks", "install", "--user")
    command = json.loads((home / "settings.json").read_text())["hooks"]["SessionEnd"][0][
        "hooks"][0]["command"]
    result = subprocess.run(["bash", "-c", command], input=b"{}", capture_output=True,
                            env=child_env(CMAT_HOOK_WHICH="1"), timeout=30)
    assert result.stdout.decode().strip() == f"{os.sys.executable} -m cmat"
    assert not marker.exists()
    report = json.loads(cli_run("hooks", "status", "--json", code=0).output)
    assert report["scopes"][1]["hooks"][0]["runs"] == f"{os.sys.executable} -m cmat"


def test_new_files_respect_the_umask(project):
    previous = os.umask(0o077)
    try:
        cli_run("hooks", "install")
        cli_run("budget", "set", "task", "5")
    finally:
        os.umask(previous)
    assert settings_file(project).stat().st_mode & 0o777 == 0o600
    assert (project / ".claude" / "cmat.toml").stat().st_mode & 0o777 == 0o600
    script = project / ".claude" / "hooks" / "cmat" / "on-session-end-cost.sh"
    assert script.stat().st_mode & 0o777 == 0o700


def test_install_statusline_and_mcp_and_remove_them(project):
    settings_file = project / ".claude" / "settings.json"
    cli_run("hooks", "install", "--statusline", "--mcp")
    settings = json.loads(settings_file.read_text())
    assert settings["statusLine"]["command"].endswith('.claude/hooks/cmat/cmat-statusline.sh')
    assert os.access(project / ".claude" / "hooks" / "cmat" / "cmat-statusline.sh", os.X_OK)
    servers = json.loads((project / ".mcp.json").read_text())["mcpServers"]
    assert servers["cmat"]["args"][-1] == "mcp"
    assert json.loads(cli_run("hooks", "status", "--json").output)["mcp"] == servers["cmat"]
    cli_run("hooks", "uninstall")
    assert not settings_file.exists()  # cmat created it, and took it away again
    assert not (project / ".claude" / "hooks").exists()  # and the folder for its scripts
    assert not (project / ".mcp.json").exists()  # it held cmat's server alone
    assert not list(project.rglob("*.lock"))


def test_uninstall_says_what_it_did_and_where_nothing_was_installed_changes_nothing(project):
    installed = cli_run("hooks", "install", "--mcp").output
    assert f"Updated {settings_file(project)}:" in installed
    assert f"Wrote {project / '.claude' / 'hooks' / 'cmat' / 'cmat-hook.sh'}" in installed
    assert "Would" in cli_run("hooks", "uninstall", "--dry-run").output
    removed = cli_run("hooks", "uninstall").output
    assert f"Removed {settings_file(project)} (it held nothing but cmat's)" in removed
    assert f"Removed {project / '.mcp.json'} (it held nothing but cmat's)" in removed
    again = cli_run("hooks", "uninstall").output
    assert again.splitlines() == [
        f"Nothing to do: {path} is already as it should be."
        for path in (settings_file(project), project / ".mcp.json")]
    assert not settings_file(project).exists() and not (project / ".mcp.json").exists()


def test_someone_elses_status_line_is_never_replaced(project):
    settings_file = project / ".claude" / "settings.json"
    settings_file.write_text(json.dumps({"statusLine": {"type": "command", "command": "mine"}}))
    result = cli_run("hooks", "install", "--statusline", code=9)
    assert "already has a status line" in result.stderr
    assert "--replace-statusline" in result.stderr
    assert json.loads(settings_file.read_text())["statusLine"]["command"] == "mine"


CCUSAGE_LINE = {"type": "command", "command": "bun x ccusage statusline", "padding": 0}


def test_a_replaced_status_line_is_put_back_byte_for_byte(project):
    original = json.dumps({"statusLine": CCUSAGE_LINE, "model": "opus"}).encode()
    settings_file(project).write_bytes(original)
    cli_run("hooks", "install", "--replace-statusline")
    installed = json.loads(settings_file(project).read_text())
    assert installed["statusLine"]["command"].endswith("cmat-statusline.sh")
    cli_run("hooks", "install", "--replace-statusline")  # again: cmat's own line stays
    scope = json.loads(cli_run("hooks", "status", "--json").output)["scopes"][0]
    assert scope["statusline"]["cmats"] and scope["statusline"]["replaced"] == (
        "bun x ccusage statusline")
    assert "(in place of bun x ccusage statusline: 'cmat hooks uninstall' puts it back)" in (
        cli_run("hooks", "status").output)
    cli_run("hooks", "uninstall")
    assert settings_file(project).read_bytes() == original
    assert "bun x ccusage statusline  (not cmat's: left alone)" in cli_run(
        "hooks", "status", code=1).output


def test_a_status_line_replaced_after_the_hooks_is_put_back_beside_later_edits(project):
    settings_file(project).write_text(json.dumps({"statusLine": CCUSAGE_LINE}))
    cli_run("hooks", "install")
    edited = json.loads(settings_file(project).read_text())
    settings_file(project).write_text(json.dumps({**edited, "model": "sonnet"}))
    cli_run("hooks", "install", "--replace-statusline")
    assert json.loads(settings_file(project).read_text())["statusLine"] != CCUSAGE_LINE
    cli_run("hooks", "uninstall")
    assert json.loads(settings_file(project).read_text()) == {"statusLine": CCUSAGE_LINE,
                                                               "model": "sonnet"}


def test_a_status_line_set_by_hand_over_cmats_is_not_replaced_on_uninstall(project):
    settings_file(project).write_text(json.dumps({"statusLine": CCUSAGE_LINE}))
    cli_run("hooks", "install", "--replace-statusline")
    settings = json.loads(settings_file(project).read_text())
    settings_file(project).write_text(json.dumps({**settings, "statusLine": {
        "type": "command", "command": "mine"}}))
    cli_run("hooks", "uninstall")
    assert json.loads(settings_file(project).read_text())["statusLine"]["command"] == "mine"


def test_other_mcp_servers_are_kept_and_the_file_restored_byte_for_byte(project):
    mcp = project / ".mcp.json"
    original = b'{"mcpServers": {"db": {"command": "x"}}}'  # one line, no newline at its end
    mcp.write_bytes(original)
    cli_run("hooks", "install", "--mcp")
    assert set(json.loads(mcp.read_text())["mcpServers"]) == {"db", "cmat"}
    cli_run("hooks", "install", "--mcp")  # again: what is kept is still the file before cmat
    cli_run("hooks", "uninstall")
    assert mcp.read_bytes() == original


def test_an_mcp_file_changed_after_install_keeps_the_change(project):
    mcp = project / ".mcp.json"
    mcp.write_text('{"mcpServers": {"db": {"command": "x"}}}\n')
    cli_run("hooks", "install", "--mcp")
    document = json.loads(mcp.read_text())
    document["mcpServers"]["web"] = {"command": "y"}
    mcp.write_text(json.dumps(document))
    cli_run("hooks", "uninstall")
    assert json.loads(mcp.read_text()) == {"mcpServers": {"db": {"command": "x"},
                                                          "web": {"command": "y"}}}
    now = b'{"mcpServers":{"db":{"command":"x"},"web":{"command":"y"}}}'
    mcp.write_bytes(now)
    cli_run("hooks", "install", "--mcp")  # a new install keeps the file as it is now
    cli_run("hooks", "uninstall")
    assert mcp.read_bytes() == now


# --- settings are text to read, never commands to run (docs/security.md) --------------------


def test_status_runs_nothing_a_cloned_repositorys_settings_say(project, tmp_path):
    planted = tmp_path / "PWN"
    command = f'"$HOME/x;touch${{IFS}}{planted};/cmat/on-session-end-cost.sh"'
    hostile = {"hooks": {event: [{"hooks": [{"type": "command", "command": command.replace(
        '"', "")}]}] for event in ("SessionEnd", "PreToolUse", "UserPromptSubmit",
                                    "SubagentStop")}}
    settings_file(project).write_text(json.dumps(hostile))
    result = cli_run("hooks", "status", code=1)
    report = json.loads(cli_run("hooks", "status", "--json", code=1).output)
    assert not planted.exists()
    assert not report["scopes"][0]["hooks"][0]["installed"]  # not taken for cmat's
    assert "not cmat's: left alone" in result.output
    cli_run("hooks", "install")
    cli_run("hooks", "uninstall")
    assert json.loads(settings_file(project).read_text()) == hostile  # still there
    assert not planted.exists()


@pytest.mark.parametrize("command,plain", [
    ('"$CLAUDE_PROJECT_DIR"/.claude/hooks/cmat/on-session-end-cost.sh', True),
    ("'/a b/$(x)/cmat/on-session-end-cost.sh'", True),
    ("/a/cmat/on-session-end-cost.sh", True),
    ("/a/cmat/on-session-end-cost.sh; touch /tmp/x", False),
    ("$HOME/cmat/on-session-end-cost.sh", False),
    ('"/a/$(id)/cmat/on-session-end-cost.sh"', False),
    ("/a/`id`/cmat/on-session-end-cost.sh", False),
    ("/a/cmat/on-session-end-cost.sh > /tmp/x", False),
    ("~/cmat/on-session-end-cost.sh", False),
    ("/a/cmat/on-session-end-cost.sh arg", False),
    ("/a/cmat/on-session-end-cost.sh\ntouch /tmp/x", False),
])
def test_a_handler_is_a_plain_script_only_when_the_shell_would_run_just_it(project, command,
                                                                            plain):
    assert (plain_script(command, project) is not None) is plain


@settings(max_examples=300,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.text(alphabet="ab/. $;'\"`(){}|&*\\\n#~=", max_size=24))
def test_whatever_plain_script_accepts_the_shell_reads_as_that_one_path(tmp_path, command):
    """The parser and bash agree: a command taken for one file is, to the shell, one word
    that is that file's path (printed, not run)."""
    project = tmp_path / "p q"
    found = plain_script(command, project)
    if found is None:
        return
    shown = subprocess.run(["bash", "-c", f"printf '%s\\n' {command}"], cwd=tmp_path,
                           capture_output=True, timeout=10,
                           env={"CLAUDE_PROJECT_DIR": str(project), "PATH": "/usr/bin:/bin"})
    assert shown.stdout.decode("utf-8", "surrogateescape").endswith("\n")
    assert Path(shown.stdout.decode("utf-8", "surrogateescape")[:-1]) == found
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["p q"])


def test_status_reads_the_interpreter_from_cmats_script_and_checks_it_has_cmat(project, tmp_path):
    cli_run("hooks", "install")
    support = project / ".claude" / "hooks" / "cmat" / "cmat-hook.sh"
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    python = venv / "bin" / "python"
    python.write_text("#!/bin/sh\ntouch " + str(tmp_path / "ran") + "\n")
    python.chmod(0o755)
    text = support.read_text()
    support.write_text(text.replace(f"CMAT_INSTALLED_PYTHON={shlex.quote(os.sys.executable)}",
                                    f"CMAT_INSTALLED_PYTHON={shlex.quote(str(python))}"))
    report = json.loads(cli_run("hooks", "status", "--json", code=1).output)
    hook = report["scopes"][0]["hooks"][0]
    assert hook["runs"] == f"{python} -m cmat" and hook["imports_cmat"] is False
    assert not (tmp_path / "ran").exists()
    site = venv / "lib" / "python3.11" / "site-packages" / "cmat"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    report = json.loads(cli_run("hooks", "status", "--json", code=0).output)
    assert report["scopes"][0]["hooks"][0]["imports_cmat"] is True


def test_status_shows_a_settings_escape_sequences_as_text(project):
    """A cloned repository's hook command may hold escape sequences: on a terminal, one that
    erased its line and returned to its start could print a fake "ok" over cmat's report.
    Whatever cmat prints is terminal_safe: the sequence is shown as text, colours stay."""
    spoof = "true\x1b[2K\r\x9b1A  SessionEnd  cmat: ok"
    settings_file(project).write_text(json.dumps(
        {"hooks": {"SessionEnd": [{"hooks": [{"type": "command", "command": spoof}]}]}}))
    shown = cli_run("--color", "always", "hooks", "status", code=1).output
    assert "true\\x1b[2K\\r\\x9b1A  SessionEnd" in shown
    assert not {"\r", "\x9b"} & set(shown) and "\x1b[2K" not in shown


def test_terminal_safe_lets_cmats_colours_tabs_and_line_ends_through_and_nothing_else():
    from cmat.text import terminal_safe

    assert terminal_safe("a\x1b[1;31mred\x1b[0m\tb\r\nc\n") == "a\x1b[1;31mred\x1b[0m\tb\r\nc\n"
    assert terminal_safe("x\x1b]0;title\x07\x1b[H\x00\x7f\u2028") == \
        "x\\x1b]0;title\\x07\\x1b[H\\x00\\x7f\\u2028"
    # Colours of cmat's palette only: one that hides what follows (conceal, black on black)
    # is text.
    assert terminal_safe("t\x1b[8m\x1b[30;40m\x1b[38;5;0m") == \
        "t\\x1b[8m\\x1b[30;40m\\x1b[38;5;0m"


def test_managed_hooks_are_for_every_project_and_no_repository_switches_them_off(
        project, tmp_path, monkeypatch):
    from cmat.claude import hook_environment

    managed = tmp_path / "etc" / "claude-code" / "managed-settings.json"
    monkeypatch.setattr(hook_environment, "MANAGED_SETTINGS", str(managed))
    (project / ".claude" / "settings.json").write_text('{"disableAllHooks": true}')
    assert "Switched off" in cli_run("hooks", "status", code=1).output
    installed = cli_run("hooks", "install", "--managed")
    assert "disableAllHooks" not in installed.stderr  # managed hooks run all the same
    handlers = json.loads(managed.read_text())["hooks"]
    command = handlers["PreToolUse"][0]["hooks"][0]["command"]
    assert command == str(managed.parent / "hooks" / "cmat" / "on-pre-tool-use-budget.sh")
    assert os.access(command, os.X_OK) and oct(managed.stat().st_mode)[-3:] == "644"
    shown = json.loads(cli_run("hooks", "status", "--json").output)
    assert shown["ok"] and shown["hooks_off"] is None
    assert [s["scope"] for s in shown["scopes"]] == ["project", "user", "managed"]
    assert "not enforced" not in cli_run("budget", "set", "daily", "5").output.lower()
    cli_run("hooks", "uninstall", "--managed")
    assert not managed.exists()  # it held nothing but cmat's
    assert "Switched off" in cli_run("hooks", "status", code=1).output
    cli_run("hooks", "install", "--user", "--managed", code=2)


def test_managed_settings_that_switch_hooks_off_switch_off_managed_ones_too(
        project, tmp_path, monkeypatch):
    from cmat.claude import hook_environment

    managed = tmp_path / "managed-settings.json"
    monkeypatch.setattr(hook_environment, "MANAGED_SETTINGS", str(managed))
    cli_run("hooks", "install", "--managed")
    settings = json.loads(managed.read_text())
    managed.write_text(json.dumps({**settings, "disableAllHooks": True}))
    assert "disableAllHooks is true in" in cli_run("hooks", "status", code=1).output
    managed.write_text(json.dumps({**settings, "allowManagedHooksOnly": True}))
    cli_run("hooks", "status")  # cmat's are the managed ones: they run


def test_managed_settings_this_user_may_not_write_say_to_run_as_root(project, tmp_path,
                                                                     monkeypatch):
    from cmat.claude import hook_environment
    from cmat.claude import install as installing

    monkeypatch.setattr(hook_environment, "MANAGED_SETTINGS",
                        str(tmp_path / "managed-settings.json"))

    def refused(path, data, executable=False):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(installing, "atomic_write_bytes", refused)
    failed = cli_run("hooks", "install", "--managed", code=9)
    assert "permission denied" in failed.stderr and "run it as root (sudo)" in failed.stderr
