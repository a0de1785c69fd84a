import json
import os
import subprocess

import pytest
from click.testing import CliRunner

from cmat.cli import cli
from cmat.errors import CmatError
from cmat.queue import QueueService
from cmat.settings import HOOKS, install, target_for, uninstall
from tests.conftest import child_env
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


def cli_run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result


def test_install_into_a_project_adds_both_hooks_and_scripts(project):
    cli_run("hooks", "install")
    settings = json.loads(settings_file(project).read_text())
    for spec in HOOKS:
        handler = settings["hooks"][spec.event][0]["hooks"][0]
        assert handler == {"type": "command", "timeout": spec.timeout,
                           "command": f'"$CLAUDE_PROJECT_DIR"/.claude/hooks/{spec.script}'}
        assert os.access(project / ".claude" / "hooks" / spec.script, os.X_OK)
    support = (project / ".claude" / "hooks" / "cmat-hook.sh").read_text()
    assert f'CMAT_PYTHON="${{CMAT_PYTHON:-{os.sys.executable}}}"' in support


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
    assert not (project / ".claude" / "hooks" / "cmat-hook.sh").exists()


def test_uninstall_of_cmat_only_settings_leaves_no_empty_hooks(project):
    settings_file(project).write_text(json.dumps({"model": "opus"}))
    cli_run("hooks", "install")
    cli_run("hooks", "uninstall")
    assert json.loads(settings_file(project).read_text()) == {"model": "opus"}


def test_a_moved_or_old_cmat_entry_is_updated_in_place(project):
    old = {"hooks": {"SessionEnd": [{"hooks": [
        {"type": "command", "command": "/old/place/on-session-end-cost.sh"}]}]}}
    settings_file(project).write_text(json.dumps(old))
    install(target_for(project, False))
    groups = json.loads(settings_file(project).read_text())["hooks"]["SessionEnd"]
    assert len(groups) == 1 and groups[0]["hooks"][0]["timeout"] == 30
    assert ".claude/hooks/on-session-end-cost.sh" in groups[0]["hooks"][0]["command"]


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
    assert command == json.dumps(str(config / "hooks" / "on-session-end-cost.sh"))
    assert not settings_file(project).exists()


def test_status_reports_missing_then_healthy_then_the_last_run(project, tmp_path):
    result = cli_run("hooks", "status", code=1)
    assert "not installed" in result.output and "Not ready" in result.output
    cli_run("hooks", "install")
    report = json.loads(cli_run("hooks", "status", "--json").output)
    project_scope = report["scopes"][0]
    assert report["ok"] and all(h["installed"] and h["executable"] for h in project_scope["hooks"])
    assert project_scope["hooks"][0]["runs"] == f"{os.sys.executable} -m cmat" or \
        project_scope["hooks"][0]["runs"].endswith("cmat")

    # End a simulated Claude Code session through the installed script.
    task_id = QueueService(project).add("Installed hook")["id"]
    builder = TranscriptBuilder(session_id="installed")
    builder.response(model="claude-opus-4-6", output=1234, write_1h=1000)
    path = write_session(tmp_path, builder)
    script = project / ".claude" / "hooks" / "on-session-end-cost.sh"
    stdin = json.dumps({"session_id": "installed", "transcript_path": str(path),
                        "hook_event_name": "SessionEnd", "reason": "other"}).encode()
    subprocess.run([str(script)], input=stdin, check=True, timeout=60,
                   env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_CURRENT_TASK_ID=task_id))
    shown = cli_run("costs", "show", task_id).output
    assert f"${builder.expected_cost:,.4f}" in shown and "1,234" in shown
    assert "session installed" in cli_run("hooks", "status").output
