"""`cmat ledger compact --team`: the team database's old requests folded into rollups, like
the local ledger's (retention.py), every token and dollar kept."""

from __future__ import annotations

import time

from cmat.ledger.queries import DIMENSION_COLUMNS
from cmat.team.connect import connect
from cmat.team.schema import SUMMED, migrate


def compact_team(url: str, older_than: str, timezone: str | None = None) -> int:
    """Fold the team's requests older than `older_than` into request_rollups (per local day
    of `timezone`, machine, user, project, model, task, enhancement, agent and task type);
    daily_usage keeps them as they were. Returns the requests folded."""
    from cmat.periods import cutoff, zone

    tz = zone(timezone)
    moment = cutoff(older_than, tz, time.time())
    keys = ("machine", "user_name", "project", "model", "task_id", "enhancement",
            DIMENSION_COLUMNS["agent"], "task_type", "project_dir")
    connection = connect(url)
    try:
        migrate(connection)
        with connection.transaction():
            connection.execute("SET LOCAL cmat.compacting = 'on'")
            connection.execute(
                f"INSERT INTO request_rollups (day, ts, machine, user_name, project, model,"
                f" task_id, enhancement, agent, task_type, project_dir, {', '.join(SUMMED)},"
                f" requests, priced, cost_usd) SELECT (to_timestamp(ts) AT TIME ZONE %s)::date,"
                f" min(ts), {', '.join(keys)}, {', '.join(f'sum({k})' for k in SUMMED)},"
                f" count(*), count(cost_usd), sum(cost_usd) FROM requests LEFT JOIN sessions"
                f" USING (session_id) WHERE ts < %s GROUP BY 1, {', '.join(keys)}",
                (tz.key, moment))
            folded = connection.execute("DELETE FROM requests WHERE ts < %s",
                                        (moment,)).rowcount
    finally:
        connection.close()
    return folded
