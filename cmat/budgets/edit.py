"""Writing a config file: where a budget lives in the TOML document, and a change applied
under the file's lock, validated by the same schema that reads it, written atomically.
Reading is cmat.budgets.config's (the hooks load only that)."""

from __future__ import annotations

from pathlib import Path

from cmat.budgets.config import (
    APP_SCOPES,
    KEYED_SCOPES,
    PROJECT_PERIODS,
    RUN_SCOPES,
    SCOPES,
    USER_WIDE_SCOPES,
    Config,
    apply_file,
    read_toml,
    toml_key,
)
from cmat.errors import ConfigError, UsageError
from cmat.fileio import atomic_write_bytes, file_lock


def budget_path(scope: str, period: str | None, key: str | None) -> list[str]:
    """Where a `cmat budget set` scope lives in the TOML document."""
    if scope in USER_WIDE_SCOPES:
        return ["budgets", toml_key(scope)]
    if scope == "project":
        if period not in PROJECT_PERIODS:
            raise UsageError(f"project budgets take --period {', '.join(PROJECT_PERIODS)}")
        return ["budgets", "project", toml_key(period)]
    if scope in (*KEYED_SCOPES, *RUN_SCOPES):
        return ["budgets", toml_key(scope), key or "default"]
    if scope in APP_SCOPES:
        if not key:
            raise UsageError(f"{scope} budgets name what they count: --app APP "
                             "(claude-code, codex, ...) or --app provider:NAME")
        return ["budgets", toml_key(scope), key]
    raise UsageError(f"scope must be one of {', '.join(SCOPES)}")


def edit_config(path: Path, change) -> None:
    """Apply `change(document)` to a config file under its lock, validated before it is
    written; nothing is written when `change` raises (a check of the value it replaces)."""
    import tomli_w

    with file_lock(path):
        document = read_toml(path)
        change(document)
        apply_file(Config(), path, document)  # refuse anything invalid before writing it
        atomic_write_bytes(path, tomli_w.dumps(document).encode())


def set_value(document: dict, keys: list[str], value) -> None:
    for key in keys[:-1]:
        document = document.setdefault(key, {})
        if not isinstance(document, dict):
            raise ConfigError(f"{'.'.join(keys[:-1])} is not a table in the config")
    document[keys[-1]] = value


def value_at(document: dict, keys: list[str]):
    """The value at `keys` in a config document (None: not set)."""
    value = document
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


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
