"""The team database: which one (`--to`, else CMAT_TEAM_URL, else `team.url` in the user's
config), and a connection to it. Any libpq connection string or URI; the password comes
from ~/.pgpass or PGPASSWORD (libpq's own rules), never from a file cmat writes, and sslmode
and the rest are libpq's to honour."""

from __future__ import annotations

from pathlib import Path

from cmat.errors import ConfigError, TeamDatabaseError

CONNECT_TIMEOUT_SECONDS = 10


def team_url(explicit: str | None, project: Path | None = None) -> str:
    from cmat import paths
    from cmat.budgets.config import load_config

    url = explicit or load_config(paths.project_dir(project)).team_database
    if not url:
        raise ConfigError("no team database: pass --to postgresql://HOST/DB, set "
                          "CMAT_TEAM_URL, or team.url in ~/.config/cmat/config.toml")
    return url


def describe(url: str) -> str:
    """The database a URL names, fit to show: no password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 (an unparsable URL is said as such)
        return "the team database"
    where = parts.get("host") or "localhost"
    return f"{parts.get('dbname') or parts.get('user') or 'postgres'} on {where}"


def connect(url: str):
    """An autocommit connection (transactions are explicit); TeamDatabaseError when psycopg
    is missing or the server cannot be reached."""
    from cmat.extras import require

    require("team", "the team database")
    import psycopg
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                               application_name="cmat")
    except psycopg.Error as exc:
        raise TeamDatabaseError(f"cannot reach {describe(url)}: {error_line(exc)}",
                                "nothing was lost: the local ledger keeps every request, and "
                                "the next sync sends it") from None


def error_line(exc: Exception) -> str:
    """What the server said of an error, fit for one line: its first line, else its kind."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
