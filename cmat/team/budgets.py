"""Team budgets: kept in the team database, so every member's hooks enforce the same ones.
A hook never waits on the network: it checks them against the team's totals that the last
`cmat sync` cached on this machine, plus what this machine spent since (limits.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from cmat import clock, labels, paths
from cmat.team.connect import connect
from cmat.team.schema import QUARTER_HOUR, migrate


def set_team_budget(url: str, scope: str, limit: float | None,
                    refuse_loosening: Callable[[str], None] | None = None) -> None:
    """Set (or, with None, remove) a team budget, then refresh this machine's cache.
    `refuse_loosening` is called (and may raise) before a limit is raised or removed."""
    connection = connect(url)
    try:
        migrate(connection)
        with connection.transaction():
            current = connection.execute("SELECT limit_usd FROM team_budgets WHERE scope = %s",
                                         (scope,)).fetchone()
            if refuse_loosening is not None and current is not None \
                    and (limit is None or limit > float(current[0])):
                refuse_loosening(f"{'removing' if limit is None else 'raising'} the team's "
                                 f"{scope}")
            if limit is None:
                connection.execute("DELETE FROM team_budgets WHERE scope = %s", (scope,))
            else:
                connection.execute(
                    "INSERT INTO team_budgets (scope, limit_usd, set_by) VALUES (%s, %s, %s)"
                    " ON CONFLICT (scope) DO UPDATE SET limit_usd = excluded.limit_usd,"
                    " set_by = excluded.set_by, set_at = now()",
                    (scope, limit, f"{labels.user()}@{labels.machine()}"))
        cache_team_totals(connection)
    finally:
        connection.close()


def spent_since(connection, start: float) -> float:
    """The team's spend from `start` (a budget period's start) on, compacted requests
    included: from the quarter-hour rollup, and only for a start between quarter hours (no
    zone's midnight since 1979) the requests up to the next one, by a scan."""
    whole = math.ceil(start / QUARTER_HOUR) * QUARTER_HOUR
    total = connection.execute("SELECT coalesce(sum(cost_usd), 0) FROM quarter_hour_spend"
                               " WHERE quarter_hour >= %s", (whole,)).fetchone()[0]
    if whole > start:
        total += connection.execute("SELECT coalesce(sum(cost_usd), 0) FROM requests"
                                    " WHERE ts >= %s AND ts < %s", (start, whole)).fetchone()[0]
    return float(total)


def cache_team_totals(connection) -> dict:
    """The team budgets and the team's spend in each of their periods, written locally so
    that a hook checks them without waiting on the network."""
    from cmat.budgets.config import load_config
    from cmat.fileio import atomic_write_bytes
    from cmat.periods import period_bounds, zone

    now = clock.now()
    budgets = dict(connection.execute("SELECT scope, limit_usd FROM team_budgets").fetchall())
    tz = zone(load_config(paths.project_dir()).timezone)
    spent = {}
    for scope in budgets:
        period = scope.removeprefix("team-")
        start = period_bounds(period, tz, now)[0]
        spent[period] = [start, spent_since(connection, start)]
    data = {"as_of": now, "budgets": budgets, "spent": spent}
    atomic_write_bytes(paths.team_cache(), json.dumps(data).encode())
    return data
