"""Team budgets: kept in the team database, so every member's hooks enforce the same ones.
A hook never waits on the network: it checks them against the team's totals that the last
`cmat sync` cached on this machine, plus what this machine spent since (limits.py)."""

from __future__ import annotations

from cmat import labels
from cmat.team.connect import connect
from cmat.team.schema import migrate


def set_team_budget(url: str, scope: str, limit: float | None) -> None:
    """Set (or, with None, remove) a team budget, then refresh this machine's cache."""
    from cmat.team.sync import cache_team_totals

    connection = connect(url)
    try:
        migrate(connection)
        with connection.transaction():
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
