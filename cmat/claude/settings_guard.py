"""While a budget is set, the settings that hold the agents stay as they are in the session.

Claude Code applies a change to its settings files in the running session (a hot reload),
and asks the ConfigChange hooks first: a hook may keep the change out of the session. A
change that leaves Claude Code running none of cmat's budget checks here (`disableAllHooks`,
cmat's handlers removed) would otherwise free the very agent a budget stops: it needs only
to edit a file, with its file tools or a shell command. So while a budget is set, such a
change is kept out of the session, whoever made it; the user who meant it starts a new
session (or first runs `cmat budget unset`). The state after the change is judged, not the
edit: every other change (permissions, a hook of another tool) goes through as before.

Managed settings are applied whatever a hook answers (Claude Code's rule), and skills are no
settings: those changes are let through at once.
"""

from __future__ import annotations

import os
from pathlib import Path

GUARDED_SOURCES = ("user_settings", "project_settings", "local_settings")


def refused_change(project: Path, source: object, file_path: object) -> str | None:
    """Why Claude Code should keep this settings change out of the running session, or None.
    Only called while a budget is set (cmat.claude.runtime)."""
    if source not in GUARDED_SOURCES:
        return None
    from cmat.claude.install import not_enforced_note

    gap = not_enforced_note(project)
    if gap is None:
        return None
    from cmat.text import one_line

    changed = one_line(file_path) if isinstance(file_path, str) and file_path else source
    return (f"cmat kept this change to {changed} out of the session: a budget is set, and "
            f"after the change: {gap}. The file stays as it was written: undo the change; "
            "or, to stop enforcing budgets, remove them (cmat budget unset ...) or cmat's "
            "hooks (cmat hooks uninstall) in a terminal of your own, and start a new "
            "session.")


def refused_edit(tool: str, tool_input: dict, real: str, project: Path,
                 is_project_file: bool) -> str | None:
    """Why Claude's file tool may not make this edit of the settings file `real` while a
    budget is set, or None: an edit after which the file switches every hook off, runs fewer
    of cmat's checks, or (the user's or the managed settings, which give cmat's hooks their
    environment) sets another value of a variable cmat reads as configuration. The file as
    it would be after the edit is compared with the file as it is."""
    from cmat.text import one_line
    from cmat.untrusted import Unreadable, read_untrusted

    try:
        current = read_untrusted(real)
    except Unreadable:  # a file to replace is judged on what it gets; one to edit cannot be
        current = b"" if tool == "Write" else None
    if current is None and os.path.lexists(real) or not _whole(tool, tool_input):
        # A payload past what a hook reads whole is cut off; a file cmat may not read.
        return _cannot_tell(real)
    from cmat.claude.install import UnknownSettings, as_applied

    before = (current or b"").decode("utf-8", "replace")
    after = _edited(tool, tool_input, before)
    if after is None:
        return None  # the tool itself fails: its text is not in the file
    try:
        new = as_applied(after.encode("utf-8", "surrogatepass"), real)
    except UnknownSettings:
        return _cannot_tell(real)
    try:
        old = as_applied(before.encode("utf-8", "surrogatepass"), real)
    except UnknownSettings:
        old = {}  # taken as empty: what the edit leaves is what must be told
    changes = []
    if new.get("disableAllHooks") is True and old.get("disableAllHooks") is not True:
        changes.append("switch every hook off (disableAllHooks)")
    if _checks(new, project) < _checks(old, project):
        changes.append("take cmat's budget checks out")
    if not is_project_file:  # a project's env is not cmat's configuration anyway
        was, will_be = _configuration(old), _configuration(new)
        moved = sorted(name for name in {*was, *will_be} if was.get(name) != will_be.get(name))
        if moved:
            changes.append(f"set {', '.join(moved)} for cmat's hooks (env)")
    if not changes:
        return None
    return (f"cmat's hooks enforce the budgets: this edit of {one_line(real)} would "
            f"{' and '.join(changes)}. That is the user's to change, in a terminal of their "
            "own (cmat hooks uninstall, cmat budget ...).")


def _cannot_tell(real: str) -> str:
    from cmat.text import one_line

    return (f"cmat's hooks enforce the budgets: cmat cannot tell what this edit of "
            f"{one_line(real)} would leave. Claude Code's settings are the user's to change "
            "in a terminal of their own while a budget is set.")


def _edits(tool: str, tool_input: dict) -> list:
    return tool_input.get("edits") if tool == "MultiEdit" else [tool_input]


def _whole(tool: str, tool_input: dict) -> bool:
    """Whether the call holds all it needs to be judged: the text it writes, or each edit's
    strings. A payload larger than a hook reads whole is cut off after its leading fields
    (cmat.claude.payload.leading_fields); a call that lacks them for any other reason would
    fail in Claude Code anyway, so refusing it costs nothing."""
    if tool == "Write":
        return isinstance(tool_input.get("content"), str)
    edits = _edits(tool, tool_input)
    return isinstance(edits, list) and all(
        isinstance(edit, dict) and isinstance(edit.get("old_string"), str)
        and isinstance(edit.get("new_string"), str) for edit in edits)


def _edited(tool: str, tool_input: dict, text: str) -> str | None:
    """The file's text after Claude's file tool ran, from a whole call (None: the tool would
    fail, its text not in the file)."""
    if tool == "Write":
        return tool_input["content"]
    for edit in _edits(tool, tool_input):
        if edit["old_string"] not in text:
            return None
        text = text.replace(edit["old_string"], edit["new_string"],
                            -1 if edit.get("replace_all") is True else 1)
    return text


def _checks(settings: dict, project: Path) -> int:
    """How many handlers of cmat's checks (budget checks, this guard) the settings hold: each
    runs the check's script in one of cmat's script folders, which Claude may not write (a
    script of the same name elsewhere could do nothing)."""
    from cmat.claude.events import EVENTS
    from cmat.claude.hook_environment import script_folders
    from cmat.claude.install import _handlers, plain_script

    folders = script_folders(str(project))
    count = 0
    for event in EVENTS:
        for _, _, handler in _handlers(settings, event.name) if event.needs_budgets else ():
            command = handler.get("command") if isinstance(handler, dict) else None
            script = plain_script(command, project) if isinstance(command, str) else None
            count += script is not None and script.name == event.script \
                and os.path.dirname(os.path.realpath(script)) in folders
    return count


def _configuration(settings: dict) -> dict:
    from cmat.claude.hook_environment import is_configuration

    env = settings.get("env")
    return {name: value for name, value in env.items() if is_configuration(name)} \
        if isinstance(env, dict) else {}
