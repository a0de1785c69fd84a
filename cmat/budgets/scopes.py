"""Where a budget lives: which config file a scope is written to, which keys name it, and
which options go with which scope. `cmat budget set|unset` asks; the policy is here, so that
every writer of a budget follows the same rules (a project file never sets a user-wide one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cmat import paths
from cmat.budgets.config import (
    APP_SCOPES,
    PROJECT_PERIODS,
    RUN_SCOPES,
    TEAM_SCOPES,
    TOKEN_SCOPES,
    USER_WIDE_SCOPES,
    app_key,
)
from cmat.budgets.edit import budget_path
from cmat.errors import UsageError
from cmat.usage import APPS


@dataclass(frozen=True)
class Placement:
    """A budget, placed: the file it is written to, its keys there, whether it counts whole
    units (tokens, sessions) rather than dollars."""

    file: Path
    keys: list[str]
    whole: bool


def is_team_scope(scope: str, team: bool) -> bool:
    """Whether `scope` is a team budget (kept in the team database, never in a file)."""
    if scope not in TEAM_SCOPES:
        if team:
            raise UsageError(f"--team goes with {', '.join(TEAM_SCOPES)}")
        return False
    if not team:
        raise UsageError(f"{scope} lives in the team database: add --team")
    return True


def place(scope: str, *, period: str | None = None, key_id: str | None = None,
          key_name: str | None = None, key_agent: str | None = None,
          key_app: str | None = None, user: bool = False, in_project: bool = False,
          project: str | None = None, count: str | None = None) -> Placement:
    """Where `scope` (with its options as `cmat budget set` takes them) is written.

    `project` (a folder, or "" for the current project) after a user-wide period makes it
    that project's budget (`daily --project` is the project's daily budget).
    """
    folder = paths.project_dir(Path(project) if project else None)
    if project is not None and scope in USER_WIDE_SCOPES:
        if scope not in PROJECT_PERIODS:
            raise UsageError(f"{scope} has no per-project budget (project budgets: "
                             f"{', '.join(PROJECT_PERIODS)})")
        if period and period != scope:
            raise UsageError(f"{scope} --project is the project's {scope} budget: "
                             "leave out --period")
        scope, period = "project", scope
    if count and scope not in TOKEN_SCOPES and period != "daily-tokens":
        raise UsageError("--count goes with token budgets (daily-tokens, run-tokens)")
    if key_name and scope != "enhancement" or key_id and scope not in ("task", "session") \
            or key_agent and scope not in RUN_SCOPES or key_app and scope not in APP_SCOPES:
        raise UsageError("--id goes with task and session, --name with enhancement, "
                         "--agent with run and run-tokens, --app with app-daily, app-weekly "
                         "and app-monthly")
    if key_app and not app_key(key_app):
        raise UsageError(f"--app takes a coding agent ({', '.join(APPS)}) or provider:NAME, "
                         f"not {key_app!r}")
    keys = budget_path(scope, period, key_id or key_name or key_agent or key_app)
    if user and in_project:
        raise UsageError("--user and --in-project exclude each other")
    if in_project and scope in USER_WIDE_SCOPES:
        raise UsageError(f"{scope} budgets cover every project: only the user's config may "
                         "set them (a project file may not)")
    every_project = scope in (*USER_WIDE_SCOPES, *APP_SCOPES)
    file = paths.user_config_file() if user or (every_project and not in_project) \
        else paths.project_config_file(folder)
    whole = scope in (*TOKEN_SCOPES, "concurrent-agents") or period == "daily-tokens"
    return Placement(file, keys, whole)
