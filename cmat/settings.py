"""cmat's entries in Claude Code's settings: install, uninstall, and a health check.

cmat's handlers are recognised by the script they run, so everything else in the settings
file (other hooks, other settings, their order) is left as it was, installing twice changes
nothing, and uninstalling removes only what cmat added. A settings file that is not valid
JSON is reported and never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cmat import paths
from cmat.errors import CmatError
from cmat.fileio import atomic_write_bytes, file_lock

HOOK_TIMEOUT_SECONDS = 30  # raises Claude Code's 1.5 s SessionEnd budget so it waits for us
CHECK_TIMEOUT_SECONDS = 10  # budget checks answer in milliseconds and give up after 5 s
SUPPORT_SCRIPT = "cmat-hook.sh"


@dataclass(frozen=True)
class HookSpec:
    event: str  # Claude Code's event name
    script: str  # the script in hooks/ that Claude Code runs
    timeout: int = HOOK_TIMEOUT_SECONDS


HOOKS = (
    HookSpec("SessionEnd", "on-session-end-cost.sh"),
    HookSpec("SubagentStop", "on-subagent-stop-cost.sh"),
    HookSpec("UserPromptSubmit", "on-prompt-submit-budget.sh", CHECK_TIMEOUT_SECONDS),
    HookSpec("PreToolUse", "on-pre-tool-use-budget.sh", CHECK_TIMEOUT_SECONDS),
)
STATUSLINE_SCRIPT = "cmat-statusline.sh"
SCRIPT_NAMES = tuple(spec.script for spec in HOOKS)
MCP_SERVER_NAME = "cmat"


class SettingsError(CmatError):
    exit_code = 9


@dataclass(frozen=True)
class Target:
    """Where hooks are installed: a project's settings, or the user's."""

    scope: str  # "project" or "user"
    settings: Path
    scripts: Path

    def command(self, script: str) -> str:
        if self.scope == "project":
            relative = self.scripts.relative_to(self.settings.parent.parent)
            return f'"$CLAUDE_PROJECT_DIR"/{relative.as_posix()}/{script}'
        return json.dumps(str(self.scripts / script))  # quoted absolute path


def target_for(project: Path | None, user: bool) -> Target:
    if user:
        base = paths.user_settings_dir()
        return Target("user", base / "settings.json", base / "hooks")
    project = paths.project_dir(project)
    return Target("project", project / ".claude" / "settings.json", project / ".claude" / "hooks")


def load_settings(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from None
    if not text.strip():
        return {}
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})",
                            "fix it by hand; cmat will not overwrite it") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("hooks", {}), dict):
        raise SettingsError(f"{path}: expected an object whose 'hooks' is an object",
                            "fix it by hand; cmat will not overwrite it")
    return settings


def is_cmat_handler(handler) -> bool:
    command = handler.get("command") if isinstance(handler, dict) else None
    return isinstance(command, str) and any(name in command for name in SCRIPT_NAMES)


def is_cmat_statusline(value) -> bool:
    command = value.get("command") if isinstance(value, dict) else None
    return isinstance(command, str) and STATUSLINE_SCRIPT in command


def with_hooks(settings: dict, target: Target, statusline: bool = False) -> dict:
    """`settings` with cmat's handlers present and current (pure: the input is not changed);
    with `statusline`, cmat's status line too (never over somebody else's)."""
    result = json.loads(json.dumps(settings))
    if statusline:
        current = result.get("statusLine")
        if current is not None and not is_cmat_statusline(current):
            raise SettingsError(f"{target.settings} already has a status line: "
                                f"{json.dumps(current)}",
                                "remove it first; cmat will not replace it")
        result["statusLine"] = {"type": "command", "command": target.command(STATUSLINE_SCRIPT),
                                "padding": 0}
    hooks = result.setdefault("hooks", {})
    for spec in HOOKS:
        wanted = {"type": "command", "command": target.command(spec.script),
                  "timeout": spec.timeout}
        groups = hooks.setdefault(spec.event, [])
        if not isinstance(groups, list):
            raise SettingsError(f"{target.settings}: hooks.{spec.event} is not a list")
        ours = [(group, index) for group in groups if isinstance(group, dict)
                for index, handler in enumerate(group.get("hooks") or [])
                if is_cmat_handler(handler) and spec.script in handler["command"]]
        if ours:
            group, index = ours[0]
            group["hooks"][index] = {**group["hooks"][index], **wanted}
        else:
            groups.append({"hooks": [wanted]})
    return result


def without_hooks(settings: dict) -> dict:
    """`settings` with every cmat handler (and cmat's status line) removed, and any group or
    event it leaves empty."""
    result = json.loads(json.dumps(settings))
    if is_cmat_statusline(result.get("statusLine")):
        del result["statusLine"]
    hooks = result.get("hooks")
    if not isinstance(hooks, dict):
        return result
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept = []
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                handlers = [h for h in group["hooks"] if not is_cmat_handler(h)]
                if not handlers and group["hooks"]:
                    continue
                group["hooks"] = handlers
            kept.append(group)
        if kept:
            hooks[event] = kept
        elif groups:
            del hooks[event]
    if not hooks and "hooks" in settings and settings["hooks"] != {}:
        del result["hooks"]
    return result


def _dump(settings: dict) -> bytes:
    return (json.dumps(settings, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _cmat_executables() -> tuple[str, str]:
    """The cmat console script and interpreter of this installation, for the hook to call."""
    script = Path(sys.executable).with_name("cmat")
    return (str(script) if script.is_file() else "", sys.executable)


def _support_script() -> bytes:
    text = (paths.hook_scripts() / SUPPORT_SCRIPT).read_text()
    cmat_bin, python = _cmat_executables()
    text = text.replace('CMAT_BIN="${CMAT_BIN:-}"', f'CMAT_BIN="${{CMAT_BIN:-{cmat_bin}}}"')
    text = text.replace('CMAT_PYTHON="${CMAT_PYTHON:-}"',
                        f'CMAT_PYTHON="${{CMAT_PYTHON:-{python}}}"')
    return text.encode()


def _scripts(target: Target) -> dict[Path, bytes]:
    wanted = {target.scripts / SUPPORT_SCRIPT: _support_script()}
    for name in (*SCRIPT_NAMES, STATUSLINE_SCRIPT):
        wanted[target.scripts / name] = (paths.hook_scripts() / name).read_bytes()
    return wanted


@dataclass
class Change:
    settings_path: Path
    before: bytes | None
    after: bytes
    scripts: list[Path]  # written or removed

    @property
    def changed(self) -> bool:
        return self.before != self.after or bool(self.scripts)


def install(target: Target, dry_run: bool = False, statusline: bool = False) -> Change:
    with file_lock(target.settings, beside=False):
        before = target.settings.read_bytes() if target.settings.is_file() else None
        settings = load_settings(target.settings)
        wanted = with_hooks(settings, target, statusline)
        # Already installed: the file is left as it is, not even reformatted.
        after = before if before is not None and wanted == settings else _dump(wanted)
        contents = _scripts(target)
        scripts = [p for p, data in contents.items()
                   if not p.is_file() or p.read_bytes() != data or not os.access(p, os.X_OK)]
        if not dry_run:
            for path in scripts:
                atomic_write_bytes(path, contents[path])
                path.chmod(0o755)
            if after != before:
                atomic_write_bytes(target.settings, after)
    return Change(target.settings, before, after, scripts)


def uninstall(target: Target, dry_run: bool = False) -> Change:
    with file_lock(target.settings, beside=False):
        before = target.settings.read_bytes() if target.settings.is_file() else None
        settings = load_settings(target.settings)
        cleaned = without_hooks(settings)
        after = before if cleaned == settings and before is not None else _dump(cleaned)
        scripts = [p for p in _scripts(target) if p.is_file()]
        if not dry_run:
            if before is not None and after != before:
                atomic_write_bytes(target.settings, after)
            for path in scripts:
                path.unlink()
    return Change(target.settings, before, after if before is not None else b"", scripts)


def _last_log_line(log: Path) -> str | None:
    try:
        with open(log, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return None
    return lines[-1] if lines else None


def _resolved_cmat(script: Path) -> str | None:
    """The cmat a hook script would run, as the script itself decides."""
    try:
        text = script.read_text()
    except OSError:
        return None
    for variable in ("CMAT_BIN", "CMAT_PYTHON"):
        marker = f'{variable}="${{{variable}:-'
        if marker in text:
            value = text.split(marker, 1)[1].split("}", 1)[0]
            if value and os.access(value, os.X_OK):
                return value if variable == "CMAT_BIN" else f"{value} -m cmat"
    for candidate in (script.parent.parent / ".venv" / "bin" / "cmat",
                      script.parent.parent.parent / ".venv" / "bin" / "cmat"):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("cmat")


def status(project: Path | None) -> dict:
    """Everything `cmat hooks status` reports."""
    resolved_project = paths.project_dir(project)
    report: dict = {"project": str(resolved_project), "scopes": []}
    for user in (False, True):
        target = target_for(resolved_project, user)
        entry: dict = {"scope": target.scope, "settings": str(target.settings), "hooks": []}
        try:
            settings = load_settings(target.settings)
        except SettingsError as exc:
            entry["error"] = str(exc)
            settings = {}
        for spec in HOOKS:
            handlers = [h for group in settings.get("hooks", {}).get(spec.event, []) or []
                        if isinstance(group, dict) for h in group.get("hooks") or []
                        if is_cmat_handler(h) and spec.script in h.get("command", "")]
            script = _script_path(handlers[0]["command"], resolved_project) if handlers else None
            entry["hooks"].append({
                "event": spec.event, "installed": bool(handlers),
                "command": handlers[0]["command"] if handlers else None,
                "timeout": handlers[0].get("timeout") if handlers else None,
                "script": str(script) if script else None,
                "executable": bool(script and os.access(script, os.X_OK)),
                "runs": _resolved_cmat(script.parent / SUPPORT_SCRIPT) if script else None,
            })
        report["scopes"].append(entry)
    try:
        servers = load_settings(mcp_file(resolved_project)).get("mcpServers", {})
    except SettingsError as exc:
        servers = {}
        report["mcp_error"] = str(exc)
    report["mcp"] = servers.get(MCP_SERVER_NAME) if isinstance(servers, dict) else None
    logs = [paths.hook_log_file(resolved_project), paths.state_home() / "hook.log"]
    report["logs"] = [{"path": str(log), "last": _last_log_line(log)} for log in logs
                      if log.is_file()]
    report["cmat_on_path"] = shutil.which("cmat")
    return report


def _script_path(command: str, project: Path) -> Path | None:
    # Commands cmat writes are one quoted path, possibly starting with $CLAUDE_PROJECT_DIR.
    expanded = command.replace("$CLAUDE_PROJECT_DIR", str(project)).replace('"', "").strip()
    path = Path(os.path.expanduser(expanded))
    return path if path.name in SCRIPT_NAMES else None


# --- the MCP server, registered in the project's .mcp.json -------------------------------------

def mcp_file(project: Path) -> Path:
    return project / ".mcp.json"


def mcp_entry() -> dict:
    """How Claude Code starts cmat's MCP server: this installation's cmat."""
    cmat_bin, python = _cmat_executables()
    if cmat_bin:
        return {"type": "stdio", "command": cmat_bin, "args": ["mcp"]}
    return {"type": "stdio", "command": python, "args": ["-m", "cmat", "mcp"]}


def _edit_mcp(project: Path, dry_run: bool, change) -> Change:
    path = mcp_file(project)
    with file_lock(path, beside=False):
        before = path.read_bytes() if path.is_file() else None
        document = load_settings(path)
        servers = document.setdefault("mcpServers", {})
        if not isinstance(servers, dict):
            raise SettingsError(f"{path}: 'mcpServers' must be an object",
                                "fix it by hand; cmat will not overwrite it")
        change(servers)
        if not servers:
            del document["mcpServers"]
        after = _dump(document)
        if before is not None and json.loads(before or b"{}") == document:
            after = before
        if not dry_run and after != before and (before is not None or document):
            atomic_write_bytes(path, after)
    return Change(path, before, after, [])


def install_mcp(project: Path, dry_run: bool = False) -> Change:
    return _edit_mcp(project, dry_run,
                     lambda servers: servers.__setitem__(MCP_SERVER_NAME, mcp_entry()))


def uninstall_mcp(project: Path, dry_run: bool = False) -> Change:
    return _edit_mcp(project, dry_run, lambda servers: servers.pop(MCP_SERVER_NAME, None))
