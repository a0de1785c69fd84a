"""Claude's file tools may not write cmat's own files while a budget holds it.

The check before every tool call (PreToolUse) denies a Write, Edit, MultiEdit or NotebookEdit
of a file in cmat's configuration or data folder, or of the ledger or catalog its variables
name: where budgets, prices and overrides live; of cmat's hook scripts or the project's
current-task marker (which task the spend counts against); and an edit of Claude Code's
settings that would stop cmat's checks (cmat.claude.settings_guard). An agent stopped by a
budget (or the main thread its subagent reports to) would otherwise raise the limit by editing
config.toml, as it may not with `cmat budget set` (cmat.cli.budget). A shell command can still
write there: Claude Code's permission for that command is the guard (docs/security.md).

`os` alone (but for an edit of Claude Code's settings): it runs before every tool call.
"""

from __future__ import annotations

import os

FILE_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")
PATH_KEYS = ("file_path", "notebook_path")
REASON = ("cmat's budgets, prices and ledger are not Claude's to edit: {path} is cmat's. The "
          "user changes them (cmat budget set ..., in a terminal of their own).")


def _cmat_folder(variable: str, *below_home: str) -> str:
    """cmat's folder in an XDG base folder: `variable`'s, else ~/`below_home`."""
    base = os.environ.get(variable) or os.path.join(os.path.expanduser("~"), *below_home)
    return os.path.join(base, "cmat")


def config_folder() -> str:
    """cmat's configuration folder (cmat.paths.config_home, with `os` alone)."""
    return _cmat_folder("XDG_CONFIG_HOME", ".config")


def _protected(project: str) -> tuple[list[str], list[str]]:
    """(folders, files) of cmat's, resolved: its configuration and data folders, the
    folders of its hook scripts (the project's, the user's, the managed ones); the project's
    current-task marker; the ledger and the catalog where a variable puts them elsewhere."""
    from cmat.claude.hook_environment import script_folders

    folders = [os.path.realpath(place) for place in (
        config_folder(), _cmat_folder("XDG_DATA_HOME", ".local", "share"))]
    folders += script_folders(project)
    # The current-task marker (cmat.paths.current_task_file): the task spend counts against.
    files = [os.path.realpath(os.path.join(project, ".claude", "data", "cmat-current-task"))]
    for name in ("CMAT_LEDGER", "CMAT_MODELS"):
        if os.environ.get(name):
            place = os.path.realpath(os.path.expanduser(os.environ[name]))
            files += [place, place + "-wal", place + "-shm", place + "-journal"]
    return folders, files


def writes_cmat_files(raw: bytes) -> bool:
    """Whether a raw PreToolUse payload may write one of cmat's files (denied_call), or
    cannot be told apart from one: the full check then decides. Only a payload that names a
    file tool is parsed. Never raises."""
    if not any(b'"%s"' % tool.encode() in raw for tool in FILE_TOOLS):
        return False
    try:
        call = _call(raw)
        return call is None or denied_call(call) is not None
    except Exception:  # noqa: BLE001 - any doubt is the full check's to settle
        return True


def denied_call(call: dict) -> str | None:
    """The reason to deny a PreToolUse call, when it writes one of cmat's files; else None."""
    tool_input = call.get("tool_input")
    if call.get("tool_name") not in FILE_TOOLS or not isinstance(tool_input, dict):
        return None
    target = next((tool_input[key] for key in PATH_KEYS
                   if isinstance(tool_input.get(key), str) and tool_input[key]), None)
    if target is None:
        return None
    cwd = call.get("cwd") if isinstance(call.get("cwd"), str) else os.getcwd()
    real = os.path.realpath(os.path.join(cwd, os.path.expanduser(target)))
    project = os.environ.get("CLAUDE_PROJECT_DIR") or cwd
    folders, files = _protected(project)
    if real in files or any(real == folder or real.startswith(folder + os.sep)
                            for folder in folders):
        return REASON.format(path=target)
    from cmat.claude.hook_environment import (
        MANAGED_SETTINGS,
        PROJECT_SETTINGS,
        project_settings,
        user_settings,
    )

    # The user's and the managed settings; any project's (this project's through a link).
    trusted = real in (os.path.realpath(user_settings()), os.path.realpath(MANAGED_SETTINGS))
    in_project = not trusted and (
        os.path.basename(real) in PROJECT_SETTINGS
        and os.path.basename(os.path.dirname(real)) == ".claude"
        or real in map(os.path.realpath, project_settings(project)))
    if trusted or in_project:
        from pathlib import Path  # rare: only for Claude Code's settings is more imported

        from cmat.claude.settings_guard import refused_edit

        return refused_edit(call["tool_name"], tool_input, real, Path(project),
                            is_project_file=in_project)
    return None


def _call(raw: bytes) -> dict | None:
    """The payload; for one cut at MAX_STDIN_BYTES (a large Write), its fields before the
    cut, as the full check reads it (Claude Code writes the path before the content)."""
    from cmat.claude.headroom import parse_json

    try:
        call = parse_json(raw.decode("utf-8", "surrogatepass"))
        return call if isinstance(call, dict) else None
    except (ValueError, RecursionError):
        from cmat.claude.events import MAX_STDIN_BYTES
        from cmat.claude.payload import PayloadError, leading_fields

        try:
            return leading_fields(raw[:MAX_STDIN_BYTES])
        except PayloadError:
            return None
