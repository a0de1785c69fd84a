"""Every path cmat reads or writes, resolved in one place: explicit argument, then environment,
then the XDG defaults. Nothing here touches the disk beyond `stat`-like checks."""

from __future__ import annotations

import os
from pathlib import Path

from cmat.errors import NotFound

QUEUE_RELATIVE = Path(".claude") / "data" / "task_queue.json"
PROJECT_CATALOG_RELATIVE = Path(".claude") / "data" / "models.json"
CURRENT_TASK_RELATIVE = Path(".claude") / "data" / "cmat-current-task"


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def home() -> Path:
    return Path(os.path.expanduser("~"))


def project_dir(override: str | os.PathLike | None = None) -> Path:
    """The project cmat works on.

    `--project DIR`, else `$CLAUDE_PROJECT_DIR`, else the nearest ancestor of the current
    directory holding `.claude/`, else the current directory. The home directory is skipped in
    the ancestor search: its `.claude/` is Claude Code's configuration, not a project marker.
    """
    if override:
        return Path(override).expanduser().resolve()
    env = _env_path("CLAUDE_PROJECT_DIR")
    if env:
        return env.resolve()
    try:
        cwd = Path.cwd().resolve()
    except FileNotFoundError:
        raise NotFound("the current directory no longer exists",
                       "cd into a project, or pass --project DIR") from None
    user_home = home().resolve()
    for candidate in (cwd, *cwd.parents):
        if candidate == user_home:
            continue
        if (candidate / ".claude").is_dir():
            return candidate
    return cwd


def queue_file(project: Path) -> Path:
    return project / QUEUE_RELATIVE


def current_task_file(project: Path) -> Path:
    return project / CURRENT_TASK_RELATIVE


def hook_log_file() -> Path:
    return state_home() / "hook.log"


def bundled_catalog() -> Path:
    """The catalog shipped with cmat: package data in a wheel, `data/models.json` in a checkout."""
    packaged = Path(__file__).parent / "data" / "models.json"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "data" / "models.json"


def hook_scripts() -> Path:
    """The hook scripts shipped with cmat: package data in a wheel, `hooks/` in a checkout."""
    packaged = Path(__file__).parent / "hook_scripts"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "hooks"


def user_settings_dir() -> Path:
    """Claude Code's user configuration folder: the first CLAUDE_CONFIG_DIR entry, else
    ~/.claude."""
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    if env and env.split(",")[0].strip():
        return Path(env.split(",")[0].strip()).expanduser()
    return home() / ".claude"


def user_catalog() -> Path:
    """The user's own catalog layer (`cmat models add|set-default|update` write it):
    $CMAT_MODELS, else ~/.config/cmat/models.json."""
    return _env_path("CMAT_MODELS") or config_home() / "models.json"


def project_catalog(project: Path) -> Path:
    """A project's catalog layer (CMAT keeps its own catalog there): it may add models."""
    return project / PROJECT_CATALOG_RELATIVE


def data_home() -> Path:
    return (_env_path("XDG_DATA_HOME") or home() / ".local" / "share") / "cmat"


def cache_home() -> Path:
    return (_env_path("XDG_CACHE_HOME") or home() / ".cache") / "cmat"


def state_home() -> Path:
    return (_env_path("XDG_STATE_HOME") or home() / ".local" / "state") / "cmat"


def team_cache() -> Path:
    """The team's budgets and totals as the last `cmat sync` left them (the hooks read it)."""
    return state_home() / "team.json"


def config_home() -> Path:
    return (_env_path("XDG_CONFIG_HOME") or home() / ".config") / "cmat"


def user_config_file() -> Path:
    """The user's configuration: budgets, alerts, the team database, retention."""
    return config_home() / "config.toml"


def project_config_file(project: Path) -> Path:
    """What a project adds to the user's configuration (it comes with a repository)."""
    return project / ".claude" / "cmat.toml"


def ledger_file() -> Path:
    return _env_path("CMAT_LEDGER") or data_home() / "ledger.db"


def claude_config_dirs() -> list[Path]:
    """Claude Code's configuration roots: every `CLAUDE_CONFIG_DIR` entry, else the defaults
    (`~/.claude` and `${XDG_CONFIG_HOME:-~/.config}/claude`) that exist."""
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    if env:
        return [Path(p.strip()).expanduser() for p in env.split(",") if p.strip()]
    xdg = _env_path("XDG_CONFIG_HOME") or home() / ".config"
    return [p for p in (home() / ".claude", xdg / "claude") if p.is_dir()]


def searched_folders() -> list[Path]:
    """Where transcripts are looked for, whether or not those folders exist (for messages)."""
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    if env:
        roots = [Path(p.strip()).expanduser() for p in env.split(",") if p.strip()]
    else:
        roots = [home() / ".claude", (_env_path("XDG_CONFIG_HOME") or home() / ".config")
                 / "claude"]
    return [root / "projects" for root in roots]


def transcript_roots(extra: list[Path] | None = None) -> list[Path]:
    """Claude Code's `projects/` folders that exist, plus any `--path` folders."""
    roots = [root / "projects" for root in claude_config_dirs()]
    return [r for r in roots + list(extra or []) if r.is_dir()]
