"""cmat's entries in Claude Code's settings: install, uninstall, and a health check.

cmat's handlers are recognised by the script they run, so everything else in the settings
file (other hooks, other settings, their order) is left as it was, installing twice changes
nothing, and uninstalling removes only what cmat added. A settings file that is not valid
JSON is reported and never overwritten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cmat import paths
from cmat.claude import hook_environment
from cmat.claude.events import EVENTS, SCRIPTS, STATUSLINE_SCRIPT, SUPPORT_SCRIPT
from cmat.errors import SettingsError
from cmat.fileio import atomic_write_bytes, file_lock
from cmat.untrusted import (
    Unreadable,
    read_untrusted,
    read_untrusted_json,
    read_untrusted_text,
)

SCRIPTS_FOLDER = "cmat"  # cmat's scripts live in <settings dir>/hooks/cmat/, a folder of its own
OWNED_MARKER = SUPPORT_SCRIPT.encode()  # every script cmat writes names it; nobody else's does
PYTHON_LINE = "CMAT_INSTALLED_PYTHON=''"
SCRIPT_LIMIT = 64 * 1024  # a hook script of cmat's: a few KiB
MCP_SERVER_NAME = "cmat"


@dataclass(frozen=True)
class Target:
    """Where hooks are installed: a project's settings, the user's, or the machine's managed
    settings (which no repository's settings can switch off)."""

    scope: str  # "project", "user" or "managed"
    settings: Path
    scripts: Path  # cmat's own folder of scripts
    project: Path  # what $CLAUDE_PROJECT_DIR stands for when a handler runs

    def command(self, script: str) -> str:
        """The handler's command: shell words, so that nothing in a path is ever run."""
        if self.scope == "project":
            relative = self.scripts.relative_to(self.settings.parent.parent)
            return f'"$CLAUDE_PROJECT_DIR"/{shlex.quote(relative.as_posix())}/{script}'
        return shlex.quote(str(self.scripts / script))

    def script_of(self, command: str) -> Path | None:
        """The script file a handler's command runs, when it is one plain path: quoted as
        the shell quotes, led by `$CLAUDE_PROJECT_DIR` at most, and nothing else the shell
        would expand or run (a `;`, `$HOME`, `${IFS}`, a backquote). A command is text from
        a settings file, maybe a cloned repository's: it is read here, never run."""
        return plain_script(command, self.project)

    def owns(self, handler) -> bool:
        """Whether a handler is cmat's: it runs one of cmat's script names from a file cmat
        wrote (an older cmat put them beside other tools' scripts, under the same names CMAT
        uses, so the name alone proves nothing)."""
        command = handler.get("command") if isinstance(handler, dict) else None
        if not isinstance(command, str):
            return False
        script = self.script_of(command)
        if script is None or script.name not in (*SCRIPTS, STATUSLINE_SCRIPT):
            return False
        if script.parent.name == SCRIPTS_FOLDER:
            return True
        # Elsewhere only a file cmat wrote proves it: CMAT's guide wires the very same names
        # (on-session-end-cost.sh), and a handler whose file is missing proves nothing.
        return _written_by_cmat(script) is True


PROJECT_PREFIXES = ('"$CLAUDE_PROJECT_DIR"', "${CLAUDE_PROJECT_DIR}", "$CLAUDE_PROJECT_DIR")
SHELL_SPECIAL = set(";&|<>()`$*?[]{}~!#\\\n")  # outside quotes: what the shell acts on


def plain_script(command: str, project: Path) -> Path | None:
    """The one file `command` names, if the shell would run just that file (see
    Target.script_of); None for anything else."""
    for prefix in PROJECT_PREFIXES:
        if command.startswith(prefix):
            command = shlex.quote(str(project)) + command[len(prefix):]
            break
    quote = None
    for char in command:
        if quote == "'":
            quote = None if char == "'" else quote
        elif quote == '"':
            if char in '$`\\':
                return None
            quote = None if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char in SHELL_SPECIAL:
            return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    return Path(words[0]) if len(words) == 1 else None


def _written_by_cmat(path: Path) -> bool | None:
    """True for a script cmat wrote, False for anybody else's, None when there is none."""
    try:
        data = read_untrusted(path)
    except Unreadable:
        return False  # not a file cmat could have written
    return None if data is None else OWNED_MARKER in data


def target_for(project: Path | None, user: bool, managed: bool = False) -> Target:
    """The machine's managed settings with `managed`, the user's settings with `user`, else
    the project's; and the user's when the project's settings are the user's (the home
    folder's .claude/ is Claude Code's user configuration: handlers written for a project
    there, run from `$CLAUDE_PROJECT_DIR`, would fail in every other project)."""
    project = paths.project_dir(project)
    if managed:
        settings = Path(hook_environment.MANAGED_SETTINGS)
        return Target("managed", settings, settings.parent / "hooks" / SCRIPTS_FOLDER, project)
    if user or is_user_configuration(project / ".claude"):
        base = paths.user_settings_dir()
        return Target("user", base / "settings.json", base / "hooks" / SCRIPTS_FOLDER, project)
    return Target("project", project / ".claude" / "settings.json",
                  project / ".claude" / "hooks" / SCRIPTS_FOLDER, project)


def is_user_configuration(folder: Path) -> bool:
    """Whether `folder` is Claude Code's user configuration folder."""
    try:
        return folder.resolve() == paths.user_settings_dir().resolve()
    except OSError:
        return False


def load_settings(path: Path) -> dict:
    """A settings file (a project's comes with a repository: read through the safe reader)."""
    try:
        settings = read_untrusted_json(path)
    except Unreadable as exc:
        raise SettingsError(exc.message, exc.hint or "fix it by hand; cmat will not "
                                                     "overwrite it") from None
    if settings is None:
        return {}
    if not isinstance(settings, dict) or not isinstance(settings.get("hooks", {}), dict):
        raise SettingsError(f"{path}: expected an object whose 'hooks' is an object",
                            "fix it by hand; cmat will not overwrite it")
    return settings


def _handlers(settings: dict, event: str):
    """(group, index, handler) of every handler of `event` (none where the settings' hooks are
    not an object)."""
    hooks = settings.get("hooks")
    groups = (hooks.get(event) if isinstance(hooks, dict) else None) or []
    for group in groups if isinstance(groups, list) else []:
        if isinstance(group, dict) and isinstance(group.get("hooks"), list):
            for index, handler in enumerate(group["hooks"]):
                yield group, index, handler


class UnknownSettings(Exception):
    """A settings file cmat may not read (too large, not a regular file) or parse, which
    Claude Code may well apply: what it sets cannot be told."""


def _applied(path: Path | str) -> dict:
    """A settings file's top level as Claude Code would apply it ({} for none);
    UnknownSettings for one cmat may not read, or as_applied cannot tell."""
    try:
        data = read_untrusted(path)
    except Unreadable as exc:
        raise UnknownSettings(f"as far as cmat can tell: it may not read {path} "
                              f"({exc.message}), which may set disableAllHooks") from None
    return as_applied(data, path)


def as_applied(data: bytes | None, path: Path | str) -> dict:
    """Settings text as Claude Code would apply it ({} for none); UnknownSettings for text
    cmat cannot parse where Claude Code might (nested past Python's parser, comments) that
    names a switch, or has an escape that could spell one."""
    if not data:
        return {}
    try:
        settings = json.loads(data.decode("utf-8", "replace"))  # as lenient as JavaScript
    except (ValueError, RecursionError):
        if b"HooksOnly" in data or b"AllHooks" in data or b"\\u" in data:
            raise UnknownSettings(f"as far as cmat can tell: it cannot parse {path}, which "
                                  "may set disableAllHooks") from None
        return {}  # Claude Code applies nothing of it either
    return settings if isinstance(settings, dict) else {}


def hooks_switched_off(project: Path | None) -> str | None:
    """Why Claude Code runs none of cmat's hooks (nor its status line) in `project`, or None.
    As Claude Code decides: managed settings that set `disableAllHooks`; where cmat's hooks
    are not managed ones (`hooks install --managed`), also managed `allowManagedHooksOnly`,
    or `disableAllHooks` as the last of the user's, the project's and the local settings to
    set it says. A repository can switch them off this way without running anything: this
    is how cmat tells."""
    try:
        return _switched_off(paths.project_dir(project))
    except UnknownSettings as unknown:
        return str(unknown)


def _switched_off(project: Path) -> str | None:
    managed_path = hook_environment.MANAGED_SETTINGS
    managed = _applied(managed_path)
    if managed.get("disableAllHooks") is True:
        return f"disableAllHooks is true in {managed_path} (managed settings)"
    if _installed(target_for(project, False, managed=True)):
        return None  # managed hooks: nothing but managed settings switches them off
    if managed.get("allowManagedHooksOnly") is True:
        return f"allowManagedHooksOnly is true in {managed_path} (managed settings)"
    for path in reversed((target_for(project, True).settings,
                          *map(Path, hook_environment.project_settings(str(project))))):
        value = _applied(path).get("disableAllHooks")
        if value is not None:  # the last file to set it decides
            return f"disableAllHooks is true in {path}" if value is True else None
    return None


def budgets_enforced(project: Path | None) -> bool:
    """Whether Claude Code runs cmat's budget checks in this project: one of them installed
    in the project's, the user's or the managed settings; see also hooks_switched_off."""
    return any(_installed(target_for(project, user, managed), budget_checks_only=True)
               for user, managed in ((False, False), (True, False), (False, True)))


def _installed(target: Target, budget_checks_only: bool = False) -> bool:
    """Whether one of cmat's handlers (of a budget check) is in the target's settings (an
    unreadable file holds none), running cmat's own script: in the target's folder of
    cmat's scripts, or a file cmat wrote. A handler naming a script of the same name in
    another folder called `cmat` is taken for cmat's by uninstall, but proves no check runs."""
    try:
        settings = load_settings(target.settings)
    except SettingsError:
        return False
    return any(_is_ours(target, handler, spec.script) and _runs_cmats_script(target, handler)
               for spec in EVENTS if spec.checks_budgets or not budget_checks_only
               for _, _, handler in _handlers(settings, spec.name))


def _runs_cmats_script(target: Target, handler: dict) -> bool:
    script = target.script_of(handler["command"])
    return os.path.realpath(script.parent) == os.path.realpath(target.scripts) \
        or _written_by_cmat(script) is True


def note_enforcement(report: dict, project: Path) -> dict:
    """A budget status report (cmat.budgets.limits.status_report) with `not_enforced`: why
    Claude Code enforces none of its budgets in `project`, where it has any."""
    report["not_enforced"] = not_enforced_note(project) if report["budgets"] \
        or report["concurrency"] else None
    return report


def not_enforced_note(project: Path | None) -> str | None:
    """Why Claude Code enforces no budget in this project, if it does not."""
    switched_off = hooks_switched_off(project)
    if switched_off:
        return (f"Claude Code runs no hooks in this project ({switched_off}), so it enforces "
                "no budget here; spend here still counts against them elsewhere")
    if not budgets_enforced(project):
        return ("Claude Code enforces budgets through cmat's hooks, installed neither in "
                "this project nor for your user: cmat hooks install (--user: every project)")
    return None


def _is_ours(target: Target, handler, script: str) -> bool:
    return target.owns(handler) and target.script_of(handler["command"]).name == script


def with_hooks(settings: dict, target: Target, statusline: bool = False,
               replace_statusline: bool = False) -> dict:
    """`settings` with cmat's handlers present and current (pure: the input is not changed);
    with `statusline`, cmat's status line too: over somebody else's only when asked to
    (`replace_statusline`; install keeps that one for uninstall to put back)."""
    result = json.loads(json.dumps(settings))
    if statusline:
        current = result.get("statusLine")
        if current is not None and not target.owns(current) and not replace_statusline:
            raise SettingsError(f"{target.settings} already has a status line: "
                                f"{json.dumps(current)}",
                                "pass --replace-statusline to put cmat's in its place "
                                "('cmat hooks uninstall' puts this one back)")
        result["statusLine"] = {"type": "command", "command": target.command(STATUSLINE_SCRIPT),
                                "padding": 0}
    hooks = result.setdefault("hooks", {})
    for spec in EVENTS:
        wanted = {"type": "command", "command": target.command(spec.script),
                  "timeout": spec.timeout}
        groups = hooks.setdefault(spec.name, [])
        if not isinstance(groups, list):
            raise SettingsError(f"{target.settings}: hooks.{spec.name} is not a list")
        ours = [(group, index) for group, index, handler in _handlers(result, spec.name)
                if _is_ours(target, handler, spec.script)]
        if ours:
            group, index = ours[0]
            group["hooks"][index] = {**group["hooks"][index], **wanted}
        else:
            groups.append({"hooks": [wanted]})
    return result


def without_hooks(settings: dict, target: Target) -> dict:
    """`settings` with every cmat handler (and cmat's status line) removed, and any group or
    event it leaves empty."""
    result = json.loads(json.dumps(settings))
    if target.owns(result.get("statusLine")):
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
                handlers = [h for h in group["hooks"] if not target.owns(h)]
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


def _current(path: Path) -> bytes | None:
    """A settings file's bytes as they are (None: no file), read as load_settings reads it."""
    try:
        return read_untrusted(path)
    except Unreadable as exc:
        raise SettingsError(f"cannot read {exc.message}", exc.hint) from None


def _dump(settings: dict, like: bytes | None = None) -> bytes:
    """Settings as JSON, ending with a newline unless the file it replaces (`like`) did
    not: an uninstall leaves no change git would show."""
    text = json.dumps(settings, indent=2, ensure_ascii=False)
    return (text + ("" if like and not like.endswith(b"\n") else "\n")).encode("utf-8")


def _support_script() -> bytes:
    """cmat-hook.sh with this installation's interpreter written in, shell-quoted."""
    text = (paths.hook_scripts() / SUPPORT_SCRIPT).read_text()
    return text.replace(PYTHON_LINE, f"CMAT_INSTALLED_PYTHON={shlex.quote(sys.executable)}",
                        1).encode()


def _scripts(target: Target) -> dict[Path, bytes]:
    wanted = {target.scripts / SUPPORT_SCRIPT: _support_script()}
    for name in (*SCRIPTS, STATUSLINE_SCRIPT):
        wanted[target.scripts / name] = (paths.hook_scripts() / name).read_bytes()
    return wanted


def _legacy_scripts(target: Target) -> list[Path]:
    """Scripts an older cmat wrote straight into hooks/, beside other tools' (never theirs)."""
    folder = target.scripts.parent
    return [folder / name for name in (SUPPORT_SCRIPT, *SCRIPTS, STATUSLINE_SCRIPT)
            if _written_by_cmat(folder / name)]


def _backup_file(settings: Path, kind: str = "settings") -> Path:
    """Where something of a settings file is kept for uninstall: its bytes before cmat's
    first change ("settings"), or the status line cmat replaced ("statusline")."""
    digest = hashlib.sha1(str(settings.resolve()).encode()).hexdigest()[:20]
    return paths.state_home() / "backups" / f"{kind}-{digest}.json"


@dataclass
class Change:
    settings_path: Path
    before: bytes | None  # None: there was no file
    after: bytes | None  # None: there is none (removed, or never made)
    scripts: list[Path]  # written (install) or removed (uninstall)
    removed: list[Path] = dataclasses.field(default_factory=list)  # an older cmat's scripts

    @property
    def changed(self) -> bool:
        return self.before != self.after or bool(self.scripts) or bool(self.removed)


def install(target: Target, dry_run: bool = False, statusline: bool = False,
            replace_statusline: bool = False) -> Change:
    """Write cmat's scripts into its own folder and its handlers into the settings.

    A file cmat did not write is never replaced. The settings as they were before cmat's
    first install are kept aside, so that uninstalling restores them byte for byte; so is
    a status line cmat was asked to replace, which uninstalling puts back.
    """
    with file_lock(target.settings):
        before = _current(target.settings)
        settings = load_settings(target.settings)
        wanted = with_hooks(settings, target, statusline, replace_statusline)
        current_line = settings.get("statusLine")  # with_hooks replaced it only when asked
        replaced = current_line if statusline and current_line is not None \
            and not target.owns(current_line) else None
        # Already installed: the file is left as it is, not even reformatted.
        after = before if before is not None and wanted == settings else _dump(wanted, before)
        contents = _scripts(target)
        foreign = [p for p in contents if _written_by_cmat(p) is False]
        if foreign:
            raise SettingsError(f"{foreign[0]} exists and was not written by cmat",
                                "move it away; cmat never replaces another tool's file")
        scripts = [p for p, data in contents.items()
                   if not p.is_file() or p.read_bytes() != data or not os.access(p, os.X_OK)]
        if not dry_run:
            if after != before and not any(target.owns(h) for spec in EVENTS
                                           for _, _, h in _handlers(settings, spec.name)):
                _keep_original(target.settings, before)
            if replaced is not None:  # kept before it leaves the settings
                atomic_write_bytes(_backup_file(target.settings, "statusline"),
                                   json.dumps({"statusLine": replaced}).encode())
            for path in scripts:
                atomic_write_bytes(path, contents[path], executable=True)
                _make_executable(path)
            if after != before:
                atomic_write_bytes(target.settings, after)
        legacy = _legacy_scripts(target)  # the handlers now run those of cmat's own folder
        if not dry_run:
            for path in legacy:
                path.unlink()
    return Change(target.settings, before, after, scripts, legacy)


def _make_executable(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if not os.access(path, os.X_OK):
        path.chmod(mode | (mode & 0o444) >> 2)  # chmod +x, as far as the file is readable


def uninstall(target: Target, dry_run: bool = False) -> Change:
    """Remove cmat's handlers and scripts, and only cmat's; where nothing else changed in the
    settings since cmat's install, they are restored byte for byte."""
    with file_lock(target.settings):
        before = _current(target.settings)
        settings = load_settings(target.settings)
        cleaned = without_hooks(settings, target)
        replaced = _read_replaced_statusline(target.settings)
        if replaced is not None and target.owns(settings.get("statusLine")):
            cleaned["statusLine"] = replaced
        after = before if cleaned == settings and before is not None else _dump(cleaned, before)
        after = _restored(target.settings, before, cleaned, after)
        scripts = [p for p in _scripts(target) if _written_by_cmat(p)]
        scripts += _legacy_scripts(target)
        if not dry_run:
            if before is not None and after != before:
                if after is None:
                    target.settings.unlink()
                else:
                    atomic_write_bytes(target.settings, after)
            for path in scripts:
                path.unlink()
            for folder in (target.scripts, target.scripts.parent):  # hooks/cmat, hooks
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty
            for kind in ("settings", "statusline"):
                with contextlib.suppress(FileNotFoundError):
                    _backup_file(target.settings, kind).unlink()
    return Change(target.settings, before, after, scripts)


def _read_replaced_statusline(settings: Path):
    """The status line `install --replace-statusline` took out of a settings file, or None."""
    try:
        saved = json.loads(_backup_file(settings, "statusline").read_text())
    except (OSError, ValueError):
        return None
    return saved.get("statusLine") if isinstance(saved, dict) else None


def _keep_original(path: Path, before: bytes | None) -> None:
    """Keep a settings file's bytes (None: there was none) before cmat first changes it, so
    that uninstalling restores them byte for byte; kept once, until that uninstall."""
    backup = _backup_file(path)
    if not backup.exists():
        atomic_write_bytes(backup, json.dumps(
            {"path": str(path), "bytes": None if before is None else before.decode("utf-8")}
        ).encode())


def _restored(path: Path, before: bytes | None, cleaned: dict, after: bytes | None
              ) -> bytes | None:
    """What uninstalling leaves of a settings file (None: no file): its bytes from before
    cmat's first change, where nothing else changed since (`cleaned`: its settings without
    cmat's), else `after`; no file where there is none."""
    if before is None:
        return None
    original = _read_backup(_backup_file(path))
    if original is not False and json.loads(original or "{}") == cleaned:
        return original.encode() if original is not None else None  # None: cmat made it
    return after


def _read_backup(path: Path) -> str | None | bool:
    """The settings text before cmat's install (None: there was no file; False: no backup)."""
    try:
        saved = json.loads(path.read_text())
        return saved["bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


LOG_TAIL_BYTES = 64 * 1024  # the hook log's last few hundred lines


def _log_summary(log: Path) -> dict:
    """The hook log's last line, and its last warning or error among its last lines (a
    record that went untracked, a queue it could not read): what `hooks status` shows."""
    try:
        with open(log, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - LOG_TAIL_BYTES))
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        lines = []
    problems = [line for line in lines if " WARN " in line or " ERROR " in line]
    return {"path": str(log), "last": lines[-1] if lines else None,
            "last_problem": problems[-1] if problems else None}


def installed_python(support_script: Path) -> Path | None:
    """The interpreter `cmat hooks install` wrote into a cmat-hook.sh (read, never run)."""
    try:
        text = read_untrusted_text(support_script) or ""
    except Unreadable:
        return None
    for line in text.splitlines():
        if line.startswith("CMAT_INSTALLED_PYTHON="):
            try:
                words = shlex.split(line.removeprefix("CMAT_INSTALLED_PYTHON="))
            except ValueError:
                return None
            return Path(words[0]) if len(words) == 1 and words[0] else None
    return None


def launcher(script: Path) -> dict:
    """Which interpreter a hook script would start, worked out the way cmat-hook.sh chooses
    it (CMAT_PYTHON, the installed interpreter, a checkout's .venv, a python3 on PATH that
    has cmat) from the files alone:
    `cmat hooks status` runs nothing it inspects. `imports_cmat` says whether that
    interpreter has cmat: True for this very interpreter or a virtual environment with cmat
    installed, False for one without, None where that cannot be told without running it."""
    here = script.parent
    candidates = [(os.environ.get("CMAT_PYTHON") or None, "CMAT_PYTHON"),
                  (installed_python(here / SUPPORT_SCRIPT), "installed"),
                  (here.parent / ".venv" / "bin" / "python", "checkout"),
                  (here.parent.parent.parent / ".venv" / "bin" / "python", "checkout"),
                  (shutil.which("python3") or shutil.which("python"), "PATH")]
    for python, source in candidates:
        if python and os.path.isfile(python) and os.access(python, os.X_OK):
            return {"python": str(python), "source": source,
                    "imports_cmat": _has_cmat(Path(python))}
    return {"python": None, "source": None, "imports_cmat": False}


def scripts_current(target: Target) -> bool:
    """Whether the scripts a scope's hooks run are the ones this cmat installs (whatever
    interpreter was written into them): a cmat upgraded since leaves the older ones working
    until `cmat hooks install` writes them again. Read through the safe reader: they are in
    a repository's folder, and may be anything."""
    for path, wanted in _scripts(target).items():
        try:
            found = read_untrusted(path, SCRIPT_LIMIT)
        except Unreadable:
            return False
        if found is None:
            return False
        if path.name == SUPPORT_SCRIPT:
            written = installed_python(path)
            found = found.replace(f"CMAT_INSTALLED_PYTHON={shlex.quote(str(written))}".encode(),
                                  PYTHON_LINE.encode(), 1) if written else found
            wanted = (paths.hook_scripts() / SUPPORT_SCRIPT).read_bytes()
        if found != wanted:
            return False
    return True


def _has_cmat(python: Path) -> bool | None:
    with contextlib.suppress(OSError):
        if python.resolve() == Path(sys.executable).resolve() or python == Path(sys.executable):
            return True
    prefix = python.parent.parent
    if not (prefix / "pyvenv.cfg").is_file():
        return None  # a system interpreter: only running it would tell
    for site in prefix.glob("lib/python3*/site-packages"):
        if (site / "cmat" / "__init__.py").is_file() or any(site.glob("cmat_costs-*.dist-info")):
            return True
    return False


def status(project: Path | None) -> dict:
    """Everything `cmat hooks status` reports."""
    resolved_project = paths.project_dir(project)
    report: dict = {"project": str(resolved_project), "scopes": []}
    # In the home folder the project's settings are the user's: one scope, said once. The
    # managed settings are shown where the machine has them.
    scopes = [target_for(resolved_project, False), target_for(resolved_project, True)]
    managed = target_for(resolved_project, False, managed=True)
    if managed.settings.exists():
        scopes.append(managed)
    targets = {target.settings: target for target in scopes}
    for target in targets.values():
        entry: dict = {"scope": target.scope, "settings": str(target.settings), "hooks": [],
                       "others": []}
        try:
            settings = load_settings(target.settings)
        except SettingsError as exc:
            entry["error"] = str(exc)
            settings = {}
        for spec in EVENTS:
            found = list(_handlers(settings, spec.name))
            handlers = [h for _, _, h in found if _is_ours(target, h, spec.script)]
            entry["others"] += [{"event": spec.name, "command": h.get("command")}
                                for _, _, h in found if not target.owns(h)
                                and isinstance(h, dict)]
            command = handlers[0]["command"] if handlers else None
            script = target.script_of(command) if command else None
            started = launcher(script) if script else {"python": None, "imports_cmat": None}
            entry["hooks"].append({
                "event": spec.name, "installed": bool(handlers), "command": command,
                "timeout": handlers[0].get("timeout") if handlers else None,
                "script": str(script) if script else None,
                "executable": bool(script and os.access(script, os.X_OK)),
                "runs": f"{started['python']} -m cmat" if started["python"] else None,
                "imports_cmat": started["imports_cmat"],
            })
        if any(h["installed"] for h in entry["hooks"]):
            entry["scripts_current"] = scripts_current(target)
        line = settings.get("statusLine")
        replaced = _read_replaced_statusline(target.settings)
        entry["statusline"] = None if line is None else {
            "cmats": target.owns(line),
            "command": line.get("command") if isinstance(line, dict) else None,
            "replaced": replaced.get("command") if isinstance(replaced, dict)
            and target.owns(line) else None}
        report["scopes"].append(entry)
    try:
        servers = load_settings(mcp_file(resolved_project)).get("mcpServers", {})
    except SettingsError as exc:
        servers = {}
        report["mcp_error"] = str(exc)
    report["mcp"] = servers.get(MCP_SERVER_NAME) if isinstance(servers, dict) else None
    logs = [paths.hook_log_file()]
    report["logs"] = [_log_summary(log) for log in logs if log.is_file()]
    report["cmat_on_path"] = shutil.which("cmat")
    report["hooks_off"] = hooks_switched_off(resolved_project)
    report["ignored_environment"] = sorted(
        hook_environment.repository_set(str(resolved_project)))
    return report


# --- the MCP server, registered in the project's .mcp.json -------------------------------------

def mcp_file(project: Path) -> Path:
    return project / ".mcp.json"


def mcp_entry() -> dict:
    """How Claude Code starts cmat's MCP server: this installation's interpreter, `-P -m cmat`
    (-P: the project folder, a repository maybe, is not on the module path)
    (a `cmat` on PATH may be another package's program)."""
    return {"type": "stdio", "command": sys.executable, "args": ["-P", "-m", "cmat", "mcp"]}


def _edit_mcp(project: Path, dry_run: bool, installing: bool) -> Change:
    """Add cmat's server to the project's .mcp.json, or take it away: as with the hooks'
    settings, the file as it was before cmat's first entry is restored byte for byte where
    nothing else changed since (a file that held cmat's server alone goes)."""
    path = mcp_file(project)
    with file_lock(path):
        before = _current(path)
        document = load_settings(path)
        servers = document.setdefault("mcpServers", {})
        if not isinstance(servers, dict):
            raise SettingsError(f"{path}: 'mcpServers' must be an object",
                                "fix it by hand; cmat will not overwrite it")
        first = MCP_SERVER_NAME not in servers
        if installing:
            servers[MCP_SERVER_NAME] = mcp_entry()
        else:
            servers.pop(MCP_SERVER_NAME, None)
        if not servers:
            del document["mcpServers"]
        after = _dump(document, before) if document else None
        if before is not None and json.loads(before or b"{}") == document:
            after = before
        if not installing:
            after = _restored(path, before, document, after)
        if not dry_run and after != before:
            if installing and first:
                _keep_original(path, before)
            if after is None:
                path.unlink()
            else:
                atomic_write_bytes(path, after)
        if not dry_run and not installing:
            with contextlib.suppress(FileNotFoundError):
                _backup_file(path).unlink()
    return Change(path, before, after, [])


def install_mcp(project: Path, dry_run: bool = False) -> Change:
    return _edit_mcp(project, dry_run, installing=True)


def uninstall_mcp(project: Path, dry_run: bool = False) -> Change:
    return _edit_mcp(project, dry_run, installing=False)
