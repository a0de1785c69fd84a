"""`cmat ledger compact --team`: the team database's old requests deleted, their sums kept: the
daily rollups every report reads (daily_usage, session_usage: per day, machine, user,
project, model, session, agent and run, and through the session its task, enhancement and
task type, and quarter_hour_spend, which team budgets read) already hold every token and
dollar of them. The ids go to compacted_requests first, in the same transaction: the
triggers keep the sums of a deleted request whose id is there, and let a role delete
another's rows only so (only the owner, or a lead granted it, may write that table)."""

from __future__ import annotations

from cmat.team.connect import connect
from cmat.team.schema import migrate


def compact_team(url: str, older_than: str, timezone: str | None, now: float) -> int:
    """Delete the team's requests older than `older_than` before `now` (local midnight of
    `timezone`), their sums kept in the rollups; returns the requests folded."""
    from cmat.periods import cutoff, zone

    tz = zone(timezone)
    moment = cutoff(older_than, tz, now)
    connection = connect(url)
    try:
        migrate(connection)
        with connection.transaction():
            connection.execute("INSERT INTO compacted_requests SELECT message_id FROM requests"
                               " WHERE ts < %s ON CONFLICT DO NOTHING", (moment,))
            folded = connection.execute("DELETE FROM requests WHERE ts < %s",
                                        (moment,)).rowcount
    finally:
        connection.close()
    return folded
