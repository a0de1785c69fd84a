"""The events table is the one source of what each hook is: these tests hold every reader of
it (the installer, the runtime, `cmat hook`, this repository's own settings) to it."""

import json
import os

import pytest
from click.testing import CliRunner

from cmat.claude.events import BY_COMMAND, EVENTS, LIMIT_MARGIN_SECONDS
from cmat.claude.install import target_for, with_hooks
from cmat.claude.runtime import time_limit
from cmat.cli import cli
from tests.helpers import REPO


def test_this_repository_wires_its_own_hooks_as_the_table_says():
    settings = json.loads((REPO / ".claude" / "settings.json").read_text())
    for event in EVENTS:
        (handler,) = settings["hooks"][event.name][0]["hooks"]
        assert handler["command"] == f'"$CLAUDE_PROJECT_DIR"/hooks/{event.script}'
        assert handler["timeout"] == event.timeout
        assert os.access(REPO / "hooks" / event.script, os.X_OK)


def test_installed_timeouts_are_the_tables_and_a_hook_gives_up_before_them(project):
    settings = with_hooks({}, target_for(project, user=False))
    for event in EVENTS:
        (handler,) = settings["hooks"][event.name][0]["hooks"]
        assert handler["timeout"] == event.timeout
        assert time_limit(event.command) == event.timeout - LIMIT_MARGIN_SECONDS > 0


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.command)
def test_each_event_has_a_hook_command_that_explains_itself(event):
    assert BY_COMMAND[event.command] is event
    result = CliRunner().invoke(cli, ["hook", event.command, "--help"])
    assert result.exit_code == 0 and event.summary in result.output


def test_a_slow_machine_can_give_hooks_longer(monkeypatch):
    monkeypatch.setenv("CMAT_HOOK_BUDGET", "42")
    assert time_limit("session-end") == 42.0
    monkeypatch.setenv("CMAT_HOOK_BUDGET", "soon")
    assert time_limit("session-end") == BY_COMMAND["session-end"].time_limit
