"""`cmat ledger compact --team`: the team database's old requests folded into rollups, like
the local ledger's (retention.py), every token and dollar kept."""

from __future__ import annotations

import time

from cmat.ledger.queries import compaction_sql
from cmat.team.connect import connect
from cmat.team.schema import migrate


def compact_team(url: str, older_than: str, timezone: str | None = None) -> int:
    """Fold the team's requests older than `older_than` into request_rollups (per local day
    of `timezone`, machine, user, project, model, task, enhancement, agent and task type);
    daily_usage keeps them as they were. Returns the requests folded."""
    from cmat.periods import cutoff, zone

    tz = zone(timezone)
    moment = cutoff(older_than, tz, time.time())
    connection = connect(url)
    try:
        migrate(connection)
        with connection.transaction():
            connection.execute("SET LOCAL cmat.compacting = 'on'")
            connection.execute(compaction_sql("(to_timestamp(ts) AT TIME ZONE %s)::date",
                                              "requests.ts < %s", "IS NOT DISTINCT FROM"),
                               (tz.key, moment))
            folded = connection.execute("DELETE FROM requests WHERE ts < %s",
                                        (moment,)).rowcount
    finally:
        connection.close()
    return folded
