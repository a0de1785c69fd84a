"""Budget and alert configuration: TOML, the project's over the user's.

`${XDG_CONFIG_HOME:-~/.config}/cmat/config.toml` for the user, `<project>/.claude/cmat.toml`
for a project; a project value overrides the user's value for the same key. Read with
`tomllib`; validated by hand (the hooks read it before every tool call, and pydantic's import
alone would take longer than the whole check); written with `tomli_w`.

    timezone = "Europe/Paris"

    [budgets]
    daily = 50.0            # USD, all projects
    weekly = 200.0
    monthly = 800.0
    daily_tokens = 5000000

    [budgets.project]       # this project
    daily = 20.0
    monthly = 300.0

    [budgets.task]          # "default" applies to every task without its own
    default = 5.0
    task_1767031596_45196 = 12.0

    [budgets.enhancement]
    add-power-function = 40.0

    [budgets.session]
    default = 10.0

    [alerts]
    thresholds = [50, 80, 95]
    webhook = "https://hooks.slack.com/services/..."
    command = "notify-send cmat"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cmat import paths
from cmat.errors import CmatError, UsageError

DEFAULT_THRESHOLDS = (50, 80, 95)
GLOBAL_PERIODS = ("daily", "weekly", "monthly")
PROJECT_PERIODS = ("daily", "monthly")
KEYED_SCOPES = ("task", "enhancement", "session")


class ConfigError(CmatError):
    exit_code = 10


@dataclass
class Config:
    timezone: str | None = None
    global_usd: dict[str, float] = field(default_factory=dict)  # period -> limit
    daily_tokens: int | None = None
    project_usd: dict[str, float] = field(default_factory=dict)  # period -> limit
    keyed: dict[str, dict[str, float]] = field(default_factory=dict)  # scope -> key -> limit
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    webhook: str | None = None
    command: str | None = None
    sources: list[str] = field(default_factory=list)

    @property
    def has_budgets(self) -> bool:
        return bool(self.global_usd or self.daily_tokens is not None or self.project_usd
                    or any(self.keyed.values()))

    def keyed_limit(self, scope: str, key: str | None) -> float | None:
        limits = self.keyed.get(scope, {})
        if key is not None and key in limits:
            return limits[key]
        return limits.get("default")


def user_config_file() -> Path:
    return paths.config_home() / "config.toml"


def project_config_file(project: Path) -> Path:
    return project / ".claude" / "cmat.toml"


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _amount(path: Path, name: str, value, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
            integer and not float(value).is_integer()):
        kind = "a whole number of tokens" if integer else "an amount in USD"
        raise ConfigError(f"{path}: {name} must be {kind}, 0 or more (found {value!r})")
    return int(value) if integer else float(value)


def _table(path: Path, data: dict, name: str) -> dict:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return value


def _apply(config: Config, path: Path, data: dict) -> None:
    """Overlay one file's values on `config`, validating every field it names."""
    known = {"timezone", "budgets", "alerts"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
    if "timezone" in data:
        if not isinstance(data["timezone"], str):
            raise ConfigError(f"{path}: timezone must be an IANA name such as 'Europe/Paris'")
        config.timezone = data["timezone"]
    budgets = _table(path, data, "budgets")
    for key, value in budgets.items():
        where = f"budgets.{key}"
        if key in GLOBAL_PERIODS:
            config.global_usd[key] = _amount(path, where, value)
        elif key == "daily_tokens":
            config.daily_tokens = int(_amount(path, where, value, integer=True))
        elif key == "project":
            table = _table(path, budgets, "project")
            for period, limit in table.items():
                if period not in PROJECT_PERIODS:
                    raise ConfigError(f"{path}: budgets.project.{period}: periods are "
                                      f"{', '.join(PROJECT_PERIODS)}")
                config.project_usd[period] = _amount(path, f"budgets.project.{period}", limit)
        elif key in KEYED_SCOPES:
            for name, limit in _table(path, budgets, key).items():
                config.keyed.setdefault(key, {})[name] = _amount(path, f"{where}.{name}", limit)
        else:
            raise ConfigError(f"{path}: unknown budget {where!r}")
    alerts = _table(path, data, "alerts")
    for key, value in alerts.items():
        if key == "thresholds":
            if not isinstance(value, list) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 100
                    for v in value):
                raise ConfigError(f"{path}: alerts.thresholds must be percentages in (0, 100]")
            config.thresholds = tuple(sorted(set(int(v) for v in value)))
        elif key in ("webhook", "command"):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}: alerts.{key} must be a non-empty string")
            if key == "webhook" and not value.startswith(("http://", "https://")):
                raise ConfigError(f"{path}: alerts.webhook must be an http(s) URL")
            setattr(config, key, value)
        else:
            raise ConfigError(f"{path}: unknown alert setting 'alerts.{key}'")


def load_config(project: Path) -> Config:
    """The user's configuration with the project's over it."""
    config = Config()
    for path in (user_config_file(), project_config_file(project)):
        data = read_toml(path)
        if data:
            _apply(config, path, data)
            config.sources.append(str(path))
    return config


# --- writing ----------------------------------------------------------------------------------

SCOPES = ("daily", "weekly", "monthly", "daily-tokens", "project", "task", "enhancement",
          "session")


def budget_path(scope: str, period: str | None, key: str | None) -> list[str]:
    """Where a `cmat budget set` scope lives in the TOML document."""
    if scope in GLOBAL_PERIODS:
        return ["budgets", scope]
    if scope == "daily-tokens":
        return ["budgets", "daily_tokens"]
    if scope == "project":
        if period not in PROJECT_PERIODS:
            raise UsageError(f"project budgets take --period {' or '.join(PROJECT_PERIODS)}")
        return ["budgets", "project", period]
    if scope in KEYED_SCOPES:
        return ["budgets", scope, key or "default"]
    raise UsageError(f"scope must be one of {', '.join(SCOPES)}")


def edit_config(path: Path, change) -> None:
    """Apply `change(document)` to a config file, validated before it is written."""
    import tomli_w

    from cmat.fileio import atomic_write_bytes, file_lock

    with file_lock(path, beside=False):
        document = read_toml(path)
        change(document)
        _apply(Config(), path, document)  # refuse anything invalid before writing it
        atomic_write_bytes(path, tomli_w.dumps(document).encode())


def set_value(document: dict, keys: list[str], value) -> None:
    for key in keys[:-1]:
        document = document.setdefault(key, {})
        if not isinstance(document, dict):
            raise ConfigError(f"{'.'.join(keys[:-1])} is not a table in the config")
    document[keys[-1]] = value


def unset_value(document: dict, keys: list[str]) -> bool:
    tables = [document]
    for key in keys[:-1]:
        nxt = tables[-1].get(key)
        if not isinstance(nxt, dict):
            return False
        tables.append(nxt)
    removed = tables[-1].pop(keys[-1], None) is not None
    for table, key in zip(reversed(tables[:-1]), reversed(keys[:-1])):
        if table.get(key) == {}:
            del table[key]  # no empty tables left behind
    return removed
