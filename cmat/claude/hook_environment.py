"""The environment cmat runs in when Claude Code starts it, freed of what a repository set.

Claude Code gives every process it starts (hooks, the status line, MCP servers) the `env` of
each settings file it applies, a project's `.claude/settings.json` and
`.claude/settings.local.json` included: files that come with a cloned repository. A variable
cmat reads set there would move cmat's configuration, ledger or cache into the repository
(`XDG_CONFIG_HOME` pointing at a folder without budgets; `XDG_CACHE_HOME` at a forged
headroom cache), switch its budgets off (`CMAT_OVERRIDE_LIMIT`), move its clock (`CMAT_NOW`,
`TZ`) or send the team sync to another database (`CMAT_TEAM_URL`), without running a line of
code. So, before it reads anything else, cmat puts each such variable back: to the value the
managed or your user settings give it, else to the one Claude Code was started with (where
Linux's /proc tells), else unset (cmat's default). The task labels
(`CMAT_CURRENT_TASK_ID`, `CMAT_ENHANCEMENT`, `CMAT_AGENT`) stay: a repository's task marker
names the task anyway (docs/security.md).

Standard library `os` only, plus the safe reader: it runs before every tool call.
"""

from __future__ import annotations

import os

from cmat.untrusted import Unreadable, read_untrusted

MANAGED_SETTINGS = "/etc/claude-code/managed-settings.json"  # Claude Code's, on Linux
PROJECT_SETTINGS = ("settings.json", "settings.local.json")  # in the project's .claude/
LABELS = ("CMAT_CURRENT_TASK_ID", "CMAT_ENHANCEMENT", "CMAT_AGENT")
NAME_SCAN_LIMIT = 64 * 1024 * 1024  # of a settings file past the safe reader's cap
# Every variable cmat reads that says where its files are, what time it is, or what to
# check: besides these, any CMAT_ name but the labels. (tests/test_hook_environment.py holds
# every variable cmat reads to this list or to the ones that are not configuration.)
CONFIGURATION = ("HOME", "TZ", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
                 "XDG_CACHE_HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "OPENCODE_DATA_DIR")


def is_configuration(name: str) -> bool:
    return name in CONFIGURATION or (name.startswith("CMAT_") and name not in LABELS)


def settings_env(path: str, untrusted: bool = False) -> dict[str, str]:
    """The `env` a settings file gives Claude Code's processes, as strings (what Claude Code
    passes on); nothing from a file that does not exist. An `untrusted` one that cmat cannot
    parse the way Claude Code might (comments, nesting past the parser, past the size cap)
    counts as setting every configuration variable it names in quotes (escapes decoded), to
    "": guessing that it sets none would let it through."""
    try:
        data = read_untrusted(path)
    except Unreadable:
        return _named_in_large(path) if untrusted else {}
    if not data or b'"env"' not in data and b"\\" not in data:  # no key, unless escaped
        return {}
    try:
        from cmat.claude.headroom import parse_json

        env = parse_json(data.decode("utf-8")).get("env")
    except (ValueError, RecursionError, AttributeError):
        return {name: "" for name in _quoted_names(data)} if untrusted else {}
    if not isinstance(env, dict):
        return {}
    return {name: value if isinstance(value, str) else _text(value)
            for name, value in env.items() if isinstance(name, str)
            and isinstance(value, (str, int, float, bool))}


def _named_in_large(path: str) -> dict[str, str]:
    """What an untrusted settings file the safe reader refused may set: the names quoted in
    it where it is a regular file (over the size cap: read up to NAME_SCAN_LIMIT); every
    configuration variable in the environment where it is not one, or larger still."""
    from cmat.untrusted import open_untrusted

    data = b""
    try:
        handle = open_untrusted(path)
    except Unreadable:
        handle = None
    else:
        if handle is None:
            return {}  # gone since
        with handle:
            data = handle.read(NAME_SCAN_LIMIT + 1)
    if handle is not None and len(data) <= NAME_SCAN_LIMIT:
        return {name: "" for name in _quoted_names(data)}
    return {name: "" for name in os.environ if is_configuration(name)}


def _text(value) -> str:
    """A JSON scalar as the text an environment variable gets from it (JavaScript's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _quoted_names(data: bytes) -> list[str]:
    if b"\\u" in data:  # a name may be spelt with escapes: CMAT\u005fNOW
        import re

        data = re.sub(rb"\\u([0-9a-fA-F]{4})",
                      lambda match: chr(int(match[1], 16)).encode("utf-8", "replace"), data)
    names = [name for name in CONFIGURATION if b'"%s"' % name.encode() in data]
    start = data.find(b'"CMAT_')
    while start >= 0:
        end = data.find(b'"', start + 1)
        name = data[start + 1:end].decode("ascii", "replace") if end > 0 else ""
        if name and is_configuration(name):
            names.append(name)
        start = data.find(b'"CMAT_', start + 1)
    return names


def project_settings(project: str) -> list[str]:
    return [os.path.join(project, ".claude", name) for name in PROJECT_SETTINGS]


def user_settings() -> str:
    """The user's settings file, as Claude Code finds it (cmat.paths.user_settings_dir)."""
    folder = (os.environ.get("CLAUDE_CONFIG_DIR") or "").split(",")[0].strip()
    return os.path.join(os.path.expanduser(folder or "~/.claude"), "settings.json")


def script_folders(project: str) -> list[str]:
    """The folders of cmat's hook scripts beside each settings file that may name them,
    resolved: the project's, the user's and the managed ones (cmat.claude.install.Target)."""
    return [os.path.realpath(os.path.join(folder, "hooks", "cmat"))
            for folder in (os.path.join(project, ".claude"), os.path.dirname(user_settings()),
                           os.path.dirname(MANAGED_SETTINGS))]


def repository_set(project: str) -> dict[str, str]:
    """The configuration variables a project's settings files set (the local file's value
    where both do, as Claude Code merges them)."""
    found: dict[str, str] = {}
    for path in project_settings(project):
        found.update((name, value) for name, value in settings_env(path, True).items()
                     if is_configuration(name))
    return found


def restore(project: str | None = None) -> list[str]:
    """Put back each configuration variable in effect from `project`'s settings (module
    docstring; by default the project Claude Code names, else the current folder); the names
    put back. Never raises: a hook must answer."""
    try:
        return _restore(project or os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd())
    except Exception:  # noqa: BLE001 - what could not be read was not set by it either
        return []


def _restore(project: str) -> list[str]:
    set_there = {name: value for name, value in repository_set(project).items()
                 if name in os.environ and (value == "" or os.environ[name] == value)}
    if not set_there:
        return []
    started = started_with(sorted(set_there))
    for name in set_there:  # first, so that the user's settings are found where they are
        del os.environ[name]
    trusted = {name: value for name, value in (started or {}).items() if value is not None}
    trusted.update(settings_env(user_settings()))  # Claude Code's order: yours, then managed
    trusted.update(settings_env(MANAGED_SETTINGS))
    for name in set_there:
        if name in trusted:
            os.environ[name] = trusted[name]
    return sorted(set_there)


def started_with(names: list[str]) -> dict[str, str | None] | None:
    """The values `names` had when Claude Code started (None: not set), where Linux's /proc
    can tell; else None.

    Claude Code applies its settings' `env` to its own environment after it starts, while
    /proc keeps each process's environment as it started: the nearest process above this one
    whose starting environment differs from ours in any of `names` is Claude Code, and holds
    the values your shell gave it. (Where your own value is the very one the project sets,
    the process found is one further up: its value, or none.)"""
    ours = {name: os.environ.get(name) for name in names}
    pid = os.getppid()
    for _ in range(16):
        if pid <= 0:
            break
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                raw = handle.read(1 << 20)
            with open(f"/proc/{pid}/stat", "rb") as handle:
                parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break  # another user's process, or no /proc
        env = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        values = {name: _decoded(env.get(name.encode())) for name in names}
        if values != ours:
            return values
        pid = parent
    return None


def _decoded(value: bytes | None) -> str | None:
    return None if value is None else os.fsdecode(value)
