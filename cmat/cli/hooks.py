"""`cmat hooks install|uninstall|status`: cmat's entries in Claude Code's settings."""

from __future__ import annotations

import contextlib
import difflib
from pathlib import Path

import click

from cmat import paths
from cmat.cli.options import output_options
from cmat.cli.output import echo, emit_json
from cmat.errors import OK, PROBLEMS_FOUND, leave

scope_options = [
    click.option("--project", "project", type=click.Path(file_okay=False, path_type=Path),
                 help="Project whose .claude/settings.json to change (default: the current "
                      "project)."),
    click.option("--user", is_flag=True,
                 help="Change the user's settings (~/.claude/settings.json) instead."),
    click.option("--managed", is_flag=True,
                 help="Change the machine's managed settings (/etc/claude-code/"
                      "managed-settings.json, as root) instead: hooks for every user that "
                      "no repository's settings can switch off."),
    click.option("--dry-run", is_flag=True, help="Show what would change; write nothing."),
]


def _scoped(function):
    for option in reversed(scope_options):
        function = option(function)
    return function


@click.group()
def hooks() -> None:
    """Install, remove and check cmat's Claude Code hooks."""


def _report(change, verb: str, dry_run: bool) -> None:
    from cmat.claude.install import Change

    assert isinstance(change, Change)
    if not change.changed:
        echo(f"Nothing to do: {change.settings_path} is already as it should be.")
        return

    def said(action: str) -> str:  # "Would write" on a dry run, else "Wrote"
        return f"Would {action}" if dry_run else _DONE[action]

    if change.after is None and change.before is not None:
        echo(f"{said('remove')} {change.settings_path} (it held nothing but cmat's)")
    elif change.before != change.after:
        echo(f"{said(verb)} {change.settings_path}:")
        diff = difflib.unified_diff((change.before or b"").decode().splitlines(),
                                    (change.after or b"").decode().splitlines(), "before",
                                    "after", lineterm="")
        for line in diff:
            echo(line)
    for script in change.scripts:
        echo(f"{said('remove' if verb == 'clean' else 'write')} {script}")
    for script in change.removed:
        echo(f"{said('remove')} {script} (written by an older cmat)")


_DONE = {"update": "Updated", "clean": "Cleaned", "write": "Wrote", "remove": "Removed"}


@contextlib.contextmanager
def _permitted(target):
    """A settings file or folder this user may not write: said, with what to do."""
    from cmat.errors import SettingsError

    try:
        yield
    except PermissionError as exc:
        raise SettingsError(f"cannot write {exc.filename or target.settings}: permission denied",
                            "run it as root (sudo)" if target.scope == "managed"
                            else "check who owns it") from None


def _target(project: Path | None, user: bool, managed: bool):
    """Where install and uninstall work; said when the project's settings are the user's."""
    from cmat.claude.install import target_for

    if user and managed:
        raise click.UsageError("--user or --managed, not both")
    target = target_for(project, user, managed)
    if target.scope == "user" and not user:
        echo(f"cmat: note: {target.settings} is Claude Code's user settings (this project is "
             "the home folder): working on them as --user does, for every project", err=True)
    return target


@hooks.command()
@_scoped
@click.option("--statusline", is_flag=True,
              help="Also show cmat's line in Claude Code's status bar (statusLine).")
@click.option("--replace-statusline", is_flag=True,
              help="As --statusline, in place of another tool's status line (ccusage's, "
                   "say), which `cmat hooks uninstall` puts back.")
@click.option("--mcp", "with_mcp", is_flag=True,
              help="Also register cmat's MCP server in the project's .mcp.json.")
def install(project: Path | None, user: bool, managed: bool, dry_run: bool, statusline: bool,
            replace_statusline: bool, with_mcp: bool) -> None:
    """Add cmat's hooks to Claude Code's settings.

    SessionEnd and SubagentStop record costs; UserPromptSubmit and PreToolUse enforce budgets, and
    ConfigChange keeps a settings change that would stop them out of a running session (all
    three silent while no budget is set). Copies the scripts into a folder of cmat's own next
    to the settings (.claude/hooks/cmat/) and adds one handler per event with a timeout Claude
    Code waits for. Other hooks, their scripts (CMAT's own on-session-end-cost.sh among them)
    and other settings are kept; a file cmat did not write is never replaced. Running it again
    changes nothing; `cmat hooks uninstall` restores the settings as they were.

    --managed puts them in the machine's managed settings, for every user of the machine
    (each records into their own ledger, under their own budgets): a repository's settings
    cannot switch those off (disableAllHooks). The interpreter that runs them is this one:
    install cmat where every user can run it (/opt/cmat, say), then run this as root.
    """
    from cmat.claude.install import hooks_switched_off, install_mcp, mcp_entry
    from cmat.claude.install import install as run_install

    if with_mcp and (user or managed):
        entry = mcp_entry()
        raise click.UsageError(
            "--mcp registers the server for one project; for every project run: claude mcp add "
            f"--scope user cmat -- {entry['command']} {' '.join(entry['args'])}")
    if with_mcp:  # before anything is written: all or nothing
        from cmat.extras import require

        require("mcp", "cmat hooks install --mcp (the server it registers)")
    target = _target(project, user, managed)
    with _permitted(target):
        change = run_install(target, dry_run, statusline or replace_statusline,
                             replace_statusline)
    _report(change, "update", dry_run)
    if with_mcp:
        _report(install_mcp(paths.project_dir(project), dry_run), "update", dry_run)
    switched_off = hooks_switched_off(target.project)
    if switched_off:
        echo(f"cmat: warning: {switched_off}: Claude Code runs none of these hooks in this "
             "project while it is", err=True)
    if change.changed and not dry_run:
        echo("Installed. End a Claude Code session, then: cmat hooks status")
        echo("The budget checks (UserPromptSubmit, PreToolUse) answer at once while no cmat "
             "config exists (cmat budget set creates one).")


@hooks.command()
@_scoped
def uninstall(project: Path | None, user: bool, managed: bool, dry_run: bool) -> None:
    """Remove cmat's hooks, status line and MCP entry (and only cmat's) from the settings."""
    from cmat.claude.install import uninstall as run_uninstall
    from cmat.claude.install import uninstall_mcp

    target = _target(project, user, managed)
    if not dry_run:
        from cmat.cli.by_a_person import by_a_person

        by_a_person(f"removing cmat's hooks from {target.settings} (they enforce budgets)")
    with _permitted(target):
        change = run_uninstall(target, dry_run)
    _report(change, "clean", dry_run)
    if not user and not managed:
        _report(uninstall_mcp(paths.project_dir(project), dry_run), "clean", dry_run)


@hooks.command()
@click.option("--project", "project", type=click.Path(file_okay=False, path_type=Path))
@output_options
def status(project: Path | None, as_json: bool) -> None:
    """Check the hooks: installed, executable, which cmat they run, what they last logged.

    Nothing found in a settings file is run to find this out (a cloned repository's
    settings are somebody else's text): the interpreter is read from cmat's own scripts.
    Also says when Claude Code's settings switch every hook off here (disableAllHooks), and
    which of cmat's variables the project's settings set (ignored by cmat's hooks).
    Exits 1 when no scope has every hook installed and runnable, or hooks are switched off.
    """
    from cmat.claude.install import status as run_status

    report = run_status(project)
    healthy = not report["hooks_off"] and any(all(h["installed"] and h["executable"] and h["runs"]
                      and h["imports_cmat"] is not False for h in scope["hooks"])
                  for scope in report["scopes"])
    report["ok"] = healthy
    if as_json:
        emit_json(report)
        leave(OK if healthy else PROBLEMS_FOUND)
    echo(f"Project: {report['project']}")
    if report["hooks_off"]:
        echo(f"Switched off: {report['hooks_off']}: Claude Code runs no hook and no status "
             "line here, so nothing is recorded as it happens and no budget is enforced "
             "(reports still read this project's transcripts)")
    # One column for cmat's events, as wide as the longest (UserPromptSubmit); another
    # tool's event (the settings' text) does not set it.
    width = max(len(entry["event"]) for scope in report["scopes"] for entry in scope["hooks"])
    for scope in report["scopes"]:
        echo(f"\n{scope['scope'].capitalize()} settings: {scope['settings']}")
        if scope.get("error"):
            echo(f"  problem: {scope['error']}")
        for entry in scope["hooks"]:
            if not entry["installed"]:
                echo(f"  {entry['event']:<{width}} not installed")
                continue
            state = "ok" if entry["executable"] else "script missing or not executable"
            echo(f"  {entry['event']:<{width}} {entry['command']}  "
                 f"(timeout {entry['timeout']} s): {state}")
            runs = entry["runs"] or "no cmat found: run cmat hooks install"
            if entry["runs"] and entry["imports_cmat"] is False:
                runs += " (cmat is not installed there: run cmat hooks install)"
            elif entry["runs"] and entry["imports_cmat"] is None:
                runs += " (a system interpreter: not run to check that it has cmat)"
            echo(f"  {'':<{width}} runs: {runs}")
        line = scope["statusline"]
        if line and line["cmats"]:
            echo(f"  {'status line':<{width}} {line['command'] or '(no command)'}" + (
                f"  (in place of {line['replaced']}: 'cmat hooks uninstall' puts it back)"
                if line["replaced"] else ""))
        elif line:
            echo(f"  {'status line':<{width}} {line['command'] or '(no command)'}  (not cmat's: "
                 "left alone)")
        if scope.get("scripts_current") is False:
            flag = "" if scope["scope"] == "project" else f" --{scope['scope']}"
            echo(f"  {'scripts':<{width}} older than this cmat's (they work; 'cmat hooks "
                 f"install{flag}' updates them)")
        for other in scope["others"]:
            echo(f"  {other['event']:<{width}} {other['command']}  (not cmat's: left alone)")
    echo("\nMCP server in .mcp.json: "
         + (f"{report['mcp']['command']} {' '.join(report['mcp']['args'])}" if report["mcp"]
            else "not registered (cmat hooks install --mcp)"))
    echo(f"cmat on PATH: {report['cmat_on_path'] or 'not found'}")
    if report["ignored_environment"]:
        echo("Ignored: the project's settings set " + ", ".join(report["ignored_environment"])
             + " for the programs Claude Code starts; cmat's hooks, status line and MCP "
             "server use your own values instead (docs/security.md)")
    if not report["logs"]:
        echo("Hook log: no runs recorded yet")
    for log in report["logs"]:
        echo(f"Hook log: {log['path']}\n  last: {log['last']}")
        if log["last_problem"] and log["last_problem"] != log["last"]:
            echo(f"  last problem: {log['last_problem']}")
    if report["hooks_off"]:
        echo("\nNot ready: Claude Code's settings switch hooks off here (above)."
             + ("" if "managed settings" in report["hooks_off"] else
                " Hooks in the machine's managed settings run all the same: sudo cmat "
                "hooks install --managed"))
    elif not healthy:
        echo("\nNot ready: run 'cmat hooks install' (or --user).")
    leave(OK if healthy else PROBLEMS_FOUND)
