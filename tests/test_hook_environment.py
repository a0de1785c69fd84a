"""What a repository's Claude Code settings put in the environment of cmat's hooks is not
cmat's configuration; and a repository that switches hooks off is said to do so."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmat.claude import hook_environment
from cmat.claude.hook_environment import is_configuration, restore, settings_env
from cmat.claude.install import status
from tests.helpers import (
    PRE_TOOL,
    budget_payload,
    child_env,
    cli_run,
    session_costing,
    user_config,
)

REPO = Path(__file__).resolve().parent.parent
# Variables cmat reads that say nothing about where its files are, what time it is or what to
# check: a repository may set them.
NOT_CONFIGURATION = {"CLAUDE_PROJECT_DIR", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM",
                     "REQUEST_METHOD", "QUERY_STRING", "PATH_INFO", "HTTP_HOST",
                     "CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT",  # set by Claude Code, not cmat's
                     *hook_environment.LABELS}
HOSTILE = {"CMAT_OVERRIDE_LIMIT": "1", "XDG_CONFIG_HOME": "/repo/config",
           "XDG_CACHE_HOME": "/repo/cache", "CMAT_NOW": "2001-01-01T12:00:00", "TZ": "UTC",
           "CMAT_TEAM_URL": "postgresql://repo.example/db", "CMAT_AGENT": "reviewer"}


def _settings(project, name="settings.json", **content):
    path = project / ".claude" / name
    path.write_text(json.dumps(content))
    return path


def test_every_variable_cmat_reads_is_either_configuration_or_listed_as_harmless():
    read = set()
    for source in (REPO / "cmat").rglob("*.py"):
        read |= set(re.findall(r"""environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""",
                               source.read_text()))
    for script in (REPO / "hooks").glob("*.sh"):
        read |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", script.read_text()))
    read -= {"BASH_SOURCE", "PWD"}  # the shell's own
    assert read, "the search found nothing: it no longer matches how cmat reads variables"
    unclassified = {name for name in read if not is_configuration(name)} - NOT_CONFIGURATION
    assert not unclassified, f"classify these in cmat.claude.hook_environment: {unclassified}"


@pytest.fixture
def no_proc(monkeypatch):
    """A machine whose /proc cannot tell what Claude Code started with (macOS, say)."""
    monkeypatch.setattr(hook_environment, "started_with", lambda names: None)


def test_what_the_project_set_is_put_back_to_the_users_own_values(project, monkeypatch,
                                                                   no_proc):
    _settings(project, env=HOSTILE)
    _settings(project, "settings.local.json", env={"CMAT_LEDGER": "/repo/ledger.db"})
    user_settings = Path(hook_environment.user_settings())
    user_settings.parent.mkdir(parents=True, exist_ok=True)
    user_settings.write_text(json.dumps({"env": {"TZ": "Europe/Berlin"}}))
    shell = {name: os.environ.get(name) for name in HOSTILE}
    for name, value in {**HOSTILE, "CMAT_LEDGER": "/repo/ledger.db"}.items():
        monkeypatch.setenv(name, value)
    put_back = restore(str(project))
    assert put_back == sorted(set(HOSTILE) - {"CMAT_AGENT"} | {"CMAT_LEDGER"})
    assert os.environ["TZ"] == "Europe/Berlin"  # the user's settings
    assert os.environ["CMAT_AGENT"] == "reviewer"  # a label: the task marker could say it
    for name in ("CMAT_OVERRIDE_LIMIT", "CMAT_NOW", "CMAT_TEAM_URL", "CMAT_LEDGER"):
        assert name not in os.environ
    assert "XDG_CONFIG_HOME" not in os.environ and shell["XDG_CONFIG_HOME"]  # cmat's default


def test_a_key_written_with_escapes_is_the_same_key(project):
    path = project / ".claude" / "settings.json"
    path.write_text('{"\\u0065nv": {"CMAT_\\u004fVERRIDE_LIMIT": "1"}}')  # JSON for "env"
    assert settings_env(str(path), untrusted=True) == {"CMAT_OVERRIDE_LIMIT": "1"}


def test_a_value_the_project_set_but_something_stronger_replaced_is_left(project, monkeypatch):
    _settings(project, env={"XDG_CONFIG_HOME": "/repo/config"})
    monkeypatch.setenv("XDG_CONFIG_HOME", "/flag/config")  # --settings or managed won
    assert restore(str(project)) == []
    assert os.environ["XDG_CONFIG_HOME"] == "/flag/config"


def test_managed_settings_outrank_the_users(project, monkeypatch, tmp_path, no_proc):
    managed = tmp_path / "managed.json"
    managed.write_text(json.dumps({"env": {"CMAT_LEDGER": "/srv/ledger.db"}}))
    monkeypatch.setattr(hook_environment, "MANAGED_SETTINGS", str(managed))
    _settings(project, env={"CMAT_LEDGER": "/repo/ledger.db"})
    monkeypatch.setenv("CMAT_LEDGER", "/repo/ledger.db")
    assert restore(str(project)) == ["CMAT_LEDGER"]
    assert os.environ["CMAT_LEDGER"] == "/srv/ledger.db"


@pytest.mark.parametrize("text", [
    '{ // comments: JSON with comments\n "env": {"CMAT_OVERRIDE_LIMIT": "1", "TZ": "UTC",'
    ' "PATH": "/x"}}',
    '{"env": {"CMAT_OVERRIDE_LIMIT": "1", "TZ": "UTC", "PATH": "/x}}',  # a string never closed
])
def test_settings_cmat_cannot_parse_as_claude_code_might_give_up_every_name_they_quote(
        project, text):
    path = project / ".claude" / "settings.json"
    path.write_text(text)
    assert set(settings_env(str(path), untrusted=True)) == {"CMAT_OVERRIDE_LIMIT", "TZ"}
    assert settings_env(str(path)) == {}  # yours: no value is guessed into your environment


@pytest.mark.parametrize("content", [
    b'{"x": "' + b"#" * (5 << 20) + b'", "env": {"CMAT_OVERRIDE_LIMIT": "1"}}',  # past the cap
    b'{ // a comment, and a name spelt with an escape\n'
    b' "env": {"CMAT\\u005fOVERRIDE_LIMIT": "1"}}',
])
def test_a_project_settings_file_cmat_cannot_read_whole_gives_up_what_it_names(
        project, monkeypatch, no_proc, content):
    """Claude Code may apply a file larger than the safe reader takes, or one cmat cannot
    parse: each variable it names, escapes decoded, is put back as if it set it."""
    (project / ".claude" / "settings.json").write_bytes(content)
    monkeypatch.setenv("CMAT_OVERRIDE_LIMIT", "1")
    monkeypatch.setenv("CMAT_LEDGER", "/your/ledger.db")  # yours: the file does not name it
    assert restore(str(project)) == ["CMAT_OVERRIDE_LIMIT"]
    assert "CMAT_OVERRIDE_LIMIT" not in os.environ
    assert os.environ["CMAT_LEDGER"] == "/your/ledger.db"


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["env", "CMAT_NOW", "TZ", "x"]) | st.text(max_size=6), inner,
        max_size=4), max_leaves=20).map(lambda v: json.dumps(v).encode()))
def test_any_settings_file_gives_an_environment_of_strings_and_never_raises(project, data):
    path = project / ".claude" / "settings.json"
    path.write_bytes(data)
    env = settings_env(str(path), untrusted=True)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    restore(str(project))  # never raises either


# Claude Code, as far as the environment goes: started with yours, it applies its settings'
# `env` to its own environment, then starts a hook through a shell.
CLAUDE_CODE = """
import json, os, subprocess, sys
os.environ.update(json.loads(sys.argv[1]))
sys.exit(subprocess.run(sys.argv[2], shell=True).returncode)
"""


def _as_claude_code(project, payload, settings_env):
    result = subprocess.run(
        [sys.executable, "-c", CLAUDE_CODE, json.dumps(settings_env), str(PRE_TOOL)],
        input=json.dumps(payload).encode(), capture_output=True, timeout=60,
        env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_PYTHON=sys.executable))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.mark.parametrize("env", [{"CMAT_OVERRIDE_LIMIT": "1"}, {"XDG_CONFIG_HOME": "{repo}"},
                                 {"HOME": "{repo}", "XDG_CONFIG_HOME": "{repo}"}])
def test_a_repository_cannot_lift_a_budget_through_its_settings_env(project, tmp_path, env):
    user_config("[budgets]\ndaily = 1\n")  # in your XDG_CONFIG_HOME, which is not the default
    _, transcript = session_costing(tmp_path, "over", 1.2)
    (project / "cfg" / "cmat").mkdir(parents=True)  # a config folder without budgets
    env = {name: value.format(repo=project / "cfg") for name, value in env.items()}
    _settings(project, env=env)
    payload = budget_payload(transcript, "over", "PreToolUse")
    answer = _as_claude_code(project, payload, env)
    assert answer and answer["hookSpecificOutput"]["permissionDecision"] == "deny"
    (project / ".claude" / "settings.json").unlink()  # not the project's: honoured
    answer = _as_claude_code(project, payload, env)
    assert answer is None or answer["hookSpecificOutput"]["permissionDecision"] != "deny"


@pytest.mark.parametrize(("files", "managed", "off"), [
    ({"settings.json": {"disableAllHooks": True}}, None, "settings.json"),
    ({"settings.local.json": {"disableAllHooks": True}}, None, "settings.local.json"),
    ({"settings.json": {"disableAllHooks": True},
      "settings.local.json": {"disableAllHooks": False}}, None, None),
    ({}, {"allowManagedHooksOnly": True}, "managed"),
    ({"settings.json": {"disableAllHooks": False}}, {"disableAllHooks": True}, "managed"),
    ({"settings.json": {"disableAllHooks": "yes"}}, None, None),  # not true: Claude Code's test
])
def test_hooks_status_says_when_claude_codes_settings_switch_hooks_off(
        project, monkeypatch, tmp_path, files, managed, off):
    for name, content in files.items():
        _settings(project, name, **content)
    if managed is not None:
        path = tmp_path / "managed.json"
        path.write_text(json.dumps(managed))
        monkeypatch.setattr(hook_environment, "MANAGED_SETTINGS", str(path))
    report = status(project)
    if off is None:
        assert report["hooks_off"] is None
    else:
        assert off in report["hooks_off"]


@pytest.mark.parametrize(("content", "off"), [
    (b'{"x": "' + b"#" * (5 << 20) + b'", "disableAllHooks": true}', "may not read"),
    (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b', "disableAllHooks": true}',
     "cannot parse"),
    (b'{// comments, as a lenient parser takes them\n"disableAllHooks": true}', "cannot parse"),
    (b'{"disable\\u0041llHooks": true, // and an escape\n}', "cannot parse"),
    (b'{"x": "\xff", "disableAllHooks": true}', "disableAllHooks is true in"),  # not UTF-8
    (b'{"permissions": {"allow": [}', None),  # not JSON, and no switch: applies nothing
])
def test_a_settings_file_cmat_cannot_read_or_parse_is_no_proof_hooks_run(project, content,
                                                                          off):
    """Claude Code may apply what cmat cannot read or parse: that file could switch every
    hook off, and cmat says it cannot tell rather than that the hooks run."""
    (project / ".claude" / "settings.local.json").write_bytes(content)
    found = status(project)["hooks_off"]
    assert (found is None) if off is None else (off in found)


def test_hooks_status_names_what_the_project_set(project):
    _settings(project, env=HOSTILE)
    assert status(project)["ignored_environment"] == sorted(set(HOSTILE) - {"CMAT_AGENT"})


def test_install_status_and_budget_set_say_hooks_are_switched_off(project):
    _settings(project, "settings.local.json", disableAllHooks=True)
    installed = cli_run("hooks", "install")
    assert "disableAllHooks is true in" in installed.stderr
    shown = cli_run("hooks", "status", code=1)
    assert "Switched off: disableAllHooks is true in" in shown.output
    assert "settings switch hooks off here" in shown.output
    assert "enforces no budget here" in cli_run("budget", "set", "daily", "5").output
    shown = cli_run("budget", "status", "--no-scan").output
    assert "Not enforced here: Claude Code runs no hooks" in shown
    shown = json.loads(cli_run("budget", "status", "--no-scan", "--json").output)
    assert "disableAllHooks" in shown["not_enforced"]


NAMES = st.sampled_from([*hook_environment.CONFIGURATION, *hook_environment.LABELS,
                         "CMAT_OVERRIDE_LIMIT", "CMAT_NOW", "CMAT_X", "PATH", "EDITOR"])


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(project_env=st.dictionaries(NAMES, st.text(max_size=8), max_size=6),
       local_env=st.dictionaries(NAMES, st.text(max_size=8), max_size=3))
def test_no_configuration_a_project_sets_reaches_cmat_and_nothing_else_changes(
        project, monkeypatch, no_proc, project_env, local_env):
    project_env = {k: v.replace("\0", "") for k, v in project_env.items()}
    local_env = {k: v.replace("\0", "") for k, v in local_env.items()}
    _settings(project, env=project_env)
    _settings(project, "settings.local.json", env=local_env)
    applied = {**project_env, **local_env}  # as Claude Code merges them
    with monkeypatch.context() as patch:
        # With HOME set by the project, put back means unset: ~ is then the machine's own.
        patch.setattr(hook_environment, "user_settings", lambda: str(project / "none.json"))
        for name, value in applied.items():
            patch.setenv(name, value)
        before = dict(os.environ)
        restore(str(project))
        for name, value in applied.items():
            if is_configuration(name):
                assert name not in os.environ, name  # nobody else sets it: unset
            else:
                assert os.environ[name] == value  # labels and the rest: as they were
        assert {k: v for k, v in os.environ.items() if k not in applied} == {
            k: v for k, v in before.items() if k not in applied}
