"""While a budget is set, a settings change that would stop cmat's budget checks is kept out
of the running Claude Code session (ConfigChange), whoever wrote it."""

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmat import paths
from cmat.claude import runtime
from tests.helpers import PRE_TOOL, budget_hook, cli_run, user_config

GUARD = ".claude/hooks/cmat/on-config-change-guard.sh"


def _change(project, source="project_settings", name="settings.json"):
    return {"session_id": "s1", "transcript_path": str(project / "none.jsonl"),
            "cwd": str(project), "hook_event_name": "ConfigChange", "source": source,
            "file_path": str(project / ".claude" / name)}


def _settings(project, name="settings.json"):
    return project / ".claude" / name


def _edit(path, change):
    data = json.loads(path.read_text()) if path.exists() else {}
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def guarded(project):
    """A project with cmat's hooks installed, the guard among them, and a daily budget."""
    cli_run("hooks", "install")
    user_config("[budgets]\ndaily = 50\n")
    return project


def test_install_wires_the_guard_and_uninstall_takes_it_out(project):
    cli_run("hooks", "install")
    groups = json.loads(_settings(project).read_text())["hooks"]["ConfigChange"]
    assert groups[0]["hooks"][0]["command"] == f'"$CLAUDE_PROJECT_DIR"/{GUARD}'
    assert (project / GUARD).stat().st_mode & 0o100
    cli_run("hooks", "uninstall")
    assert not _settings(project).exists() and not (project / GUARD).exists()  # as before


@pytest.mark.parametrize("how", ["disable all hooks", "remove cmat's handlers",
                                 "local settings disable them", "delete the file"])
def test_a_change_that_stops_the_budget_checks_is_kept_out(guarded, how):
    name = "settings.local.json" if how.startswith("local") else "settings.json"
    path = _settings(guarded, name)
    if how == "disable all hooks":
        _edit(path, lambda data: data.update(disableAllHooks=True))
    elif how == "remove cmat's handlers":
        _edit(path, lambda data: data.pop("hooks"))
    elif how == "local settings disable them":
        _edit(path, lambda data: data.update(disableAllHooks=True))
    else:
        path.unlink()
    source = "local_settings" if name == "settings.local.json" else "project_settings"
    answer = budget_hook(guarded / GUARD, guarded, _change(guarded, source, name))
    assert answer["decision"] == "block"
    assert f"change to {path}" in answer["reason"]
    assert "cmat hooks uninstall" in answer["reason"]
    if "disable" in how:
        assert "disableAllHooks is true" in answer["reason"]


def test_handlers_moved_to_scripts_of_the_same_names_elsewhere_are_kept_out(guarded):
    """A folder called cmat elsewhere (written by a shell) runs nothing of cmat's."""
    path = _settings(guarded)
    path.write_text(path.read_text().replace(".claude/hooks/cmat/", "tools/cmat/"))
    (guarded / "tools" / "cmat").mkdir(parents=True)
    for script in (guarded / ".claude" / "hooks" / "cmat").iterdir():
        (guarded / "tools" / "cmat" / script.name).write_text("#!/bin/sh\nexit 0\n")
    answer = budget_hook(guarded / GUARD, guarded, _change(guarded))
    assert answer["decision"] == "block" and "installed neither" in answer["reason"]


def test_every_other_change_goes_through(guarded):
    _edit(_settings(guarded), lambda data: data.update(permissions={"allow": ["Bash(ls)"]}))
    assert budget_hook(guarded / GUARD, guarded, _change(guarded)) is None
    # Hooks kept for the user: the project's copy may go.
    cli_run("hooks", "install", "--user")
    _edit(_settings(guarded), lambda data: data.pop("hooks"))
    assert budget_hook(guarded / GUARD, guarded, _change(guarded)) is None


def test_without_a_budget_nothing_is_kept_out(project):
    cli_run("hooks", "install")
    _edit(_settings(project), lambda data: data.update(disableAllHooks=True))
    assert budget_hook(project / GUARD, project, _change(project)) is None
    user_config("[alerts]\nwebhook = 'https://example.com/hook'\n")  # a config, no budget
    assert budget_hook(project / GUARD, project, _change(project)) is None


@pytest.mark.parametrize("source", ["policy_settings", "skills", None, 7])
def test_managed_settings_and_skills_are_never_kept_out(guarded, source):
    _edit(_settings(guarded), lambda data: data.update(disableAllHooks=True))
    change = _change(guarded, source)
    assert budget_hook(guarded / GUARD, guarded, change) is None


def _run_guard(payload: bytes, capsys) -> dict | None:
    assert runtime.run("config-change", io.BytesIO(payload)) == 0
    out = capsys.readouterr().out
    return json.loads(out) if out.strip() else None


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(settings_bytes=st.one_of(
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(["disableAllHooks", "hooks", "env", "x"]),
                    st.one_of(st.booleans(), st.none(), st.integers(), st.text(max_size=5),
                              st.dictionaries(st.text(max_size=12), st.lists(
                                  st.dictionaries(st.text(max_size=6), st.text(max_size=6)),
                                  max_size=2), max_size=2)),
                    max_size=4).map(lambda data: json.dumps(data).encode())),
    payload=st.dictionaries(st.sampled_from(["source", "file_path", "session_id"]),
                            st.one_of(st.text(max_size=30), st.integers(), st.none()),
                            max_size=4))
def test_any_settings_file_and_payload_get_an_answer_never_an_error(
        guarded, capsys, settings_bytes, payload):
    """Whatever a settings file or a payload holds: allowed, or kept out with a reason, and
    kept out whenever the project's settings switch every hook off."""
    _settings(guarded).write_bytes(settings_bytes)
    answer = _run_guard(json.dumps({**_change(guarded), **payload}).encode(), capsys)
    assert answer is None or (answer["decision"] == "block" and answer["reason"])
    try:
        switched_off = json.loads(settings_bytes).get("disableAllHooks") is True
    except (ValueError, AttributeError):
        switched_off = False
    if switched_off and payload.get("source", "project_settings") in (
            "project_settings", "user_settings", "local_settings"):
        assert answer is not None


def _file_call(project, tool, path, **tool_input):
    return {"session_id": "s1", "transcript_path": str(project / "none.jsonl"),
            "cwd": str(project), "hook_event_name": "PreToolUse", "tool_name": tool,
            "tool_input": {"file_path": str(path), **tool_input}}


def _denied(project, call):
    answer = budget_hook(PRE_TOOL, project, call)
    return answer and answer["hookSpecificOutput"]["permissionDecisionReason"]


def test_claudes_file_tools_may_not_edit_the_settings_into_stopping_the_checks(guarded):
    path = _settings(guarded)
    text = path.read_text()
    without = json.dumps({k: v for k, v in json.loads(text).items() if k != "hooks"})
    assert "take cmat's budget checks out" in _denied(
        guarded, _file_call(guarded, "Write", path, content=without))
    assert "disableAllHooks" in _denied(guarded, _file_call(
        guarded, "Edit", path, old_string="{", new_string='{"disableAllHooks": true, '))
    elsewhere = text.replace(".claude/hooks/cmat/", "tools/cmat/")  # same names, elsewhere
    assert "take cmat's budget checks out" in _denied(
        guarded, _file_call(guarded, "Write", path, content=elsewhere))
    local = _settings(guarded, "settings.local.json")  # a file not there yet
    assert "disableAllHooks" in _denied(guarded, _file_call(
        guarded, "Write", local, content='{"disableAllHooks": true}'))
    user = guarded.parent / "home-claude"
    user.mkdir()
    (user / "settings.json").write_text('{"env": {"EDITOR": "vi"}}')
    edits = [{"old_string": '"EDITOR"', "new_string": '"CMAT_OVERRIDE_LIMIT": "1", "EDITOR"'}]
    reason = _denied(guarded, {**_file_call(guarded, "MultiEdit", user / "settings.json",
                                            edits=edits)})
    assert reason is None  # not the user's settings here: CLAUDE_CONFIG_DIR is elsewhere
    env = {"CLAUDE_CONFIG_DIR": str(user)}
    answer = budget_hook(PRE_TOOL, guarded, _file_call(guarded, "MultiEdit",
                                                       user / "settings.json", edits=edits),
                         **env)
    assert "CMAT_OVERRIDE_LIMIT" in answer["hookSpecificOutput"]["permissionDecisionReason"]
    elsewhere = guarded.parent / "dotfiles" / "claude-settings.json"  # a link's target
    elsewhere.parent.mkdir()
    elsewhere.write_text('{"permissions": {}}')
    local.symlink_to(elsewhere)
    assert "disableAllHooks" in _denied(guarded, _file_call(
        guarded, "Write", elsewhere, content='{"disableAllHooks": true}'))

    padded = json.dumps({"x": "#" * (2 << 20), "disableAllHooks": True})  # past 1 MiB
    assert "cannot tell what this edit" in _denied(
        guarded, _file_call(guarded, "Write", path, content=padded))

    nested = '{"x": ' + "[" * 100_000 + "]" * 100_000 + ', "disableAllHooks": true}'
    assert "cannot tell what this edit" in _denied(  # past Python's parser, not JavaScript's
        guarded, _file_call(guarded, "Write", elsewhere, content=nested))
    local.unlink()
    local.write_text(json.dumps({"x": "#" * (5 << 20)}))  # more than cmat may read
    assert "cannot tell what this edit" in _denied(guarded, _file_call(
        guarded, "Edit", local, old_string='"x"', new_string='"disableAllHooks": true, "x"'))
    assert "disableAllHooks" in _denied(guarded, _file_call(
        guarded, "Write", local, content='{"disableAllHooks": true}'))


def test_claudes_file_tools_may_not_write_cmats_hook_scripts_or_task_marker(guarded):
    script = guarded / GUARD
    assert "is cmat's" in _denied(guarded, _file_call(guarded, "Write", script,
                                                      content="exit 0\n"))
    marker = paths.current_task_file(guarded)  # the task the spend counts against
    assert "is cmat's" in _denied(guarded, _file_call(guarded, "Write", marker,
                                                      content="task-with-no-budget\n"))


def test_claudes_everyday_edits_of_the_settings_go_through(guarded):
    path = _settings(guarded)
    settings_now = json.loads(path.read_text())
    allowed = json.dumps({**settings_now, "permissions": {"allow": ["Bash(ls)"]}})
    assert _denied(guarded, _file_call(guarded, "Write", path, content=allowed)) is None
    assert _denied(guarded, _file_call(guarded, "Edit", path, old_string="no such text",
                                       new_string="{}")) is None  # the tool itself fails
    # A project's env is not cmat's configuration (its hooks put it back): TZ for the tests.
    local = _settings(guarded, "settings.local.json")
    assert _denied(guarded, _file_call(guarded, "Write", local,
                                       content='{"env": {"TZ": "UTC"}}')) is None
    user_config("")  # no budget: nothing is guarded
    assert _denied(guarded, _file_call(guarded, "Write", path, content="{}")) is None


_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
                     lambda inner: st.one_of(st.lists(inner, max_size=3),
                                             st.dictionaries(st.text(max_size=8), inner,
                                                             max_size=3)), max_leaves=12)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(existing=st.one_of(st.none(), st.binary(max_size=120),
                          _JSON.map(lambda value: json.dumps(value).encode())),
       tool=st.sampled_from(["Write", "Edit", "MultiEdit", "NotebookEdit"]),
       tool_input=st.dictionaries(st.sampled_from(["content", "old_string", "new_string",
                                                   "replace_all", "edits"]), _JSON,
                                  max_size=4))
def test_any_edit_of_any_settings_file_is_judged_without_raising(guarded, existing, tool,
                                                                 tool_input):
    """A file tool's call that raised in the check would be let through unchecked."""
    from cmat.claude.own_files import denied_call

    path = _settings(guarded, "settings.local.json")
    path.unlink(missing_ok=True)
    if existing is not None:
        path.write_bytes(existing)
    call = _file_call(guarded, tool, path, **tool_input)
    assert denied_call(call) is None or "this edit of" in denied_call(call)

