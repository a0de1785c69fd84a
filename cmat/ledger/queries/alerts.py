"""Budget overrides and alerts: each alert fired once per budget, period and threshold, delivered per channel."""

from __future__ import annotations

from collections.abc import Sequence

from cmat.ledger.queries.sql import (
    Queries,
)


class AlertQueries(Queries):
    def override_active(self, scope: str, now: float) -> bool:
        return bool(self.query("SELECT 1 FROM overrides WHERE until > ? AND scope IN ('all', ?)",
                               (now, scope)))

    def add_override(self, scope: str, until: float, who: str, reason: str | None,
                     now: float) -> None:
        """Lift `scope` until `until`. The newest override of a scope decides: one that ends
        sooner (`--for 0m` ends them) shortens those before it (kept, for who and why)."""
        self.db.execute("UPDATE overrides SET until = ? WHERE until > ? AND until > ?"
                        " AND (scope = ? OR ? = 'all')", (max(until, now), until, now, scope,
                                                          scope))
        self.db.execute("INSERT INTO overrides (scope, until, created_at, created_by, reason)"
                        " VALUES (?, ?, ?, ?, ?)", (scope, until, now, who, reason))

    def overrides(self, now: float) -> list[dict]:
        return [{"scope": o[0], "until": o[1], "by": o[2], "reason": o[3]} for o in self.query(
            "SELECT scope, until, created_by, reason FROM overrides WHERE until > ?"
            " ORDER BY until", (now,))]

    def fire_alert(self, budget: str, period_start: float, threshold: int, level: str,
                   message: str, spent: float, limit: float, now: float,
                   channels: Sequence[str] = ()) -> bool:
        """Record an alert, to be delivered to `channels`; False when it had fired already
        (one per budget, period and threshold, however many hooks race to fire it)."""
        fired = bool(self.db.execute(
            "INSERT OR IGNORE INTO alerts (budget, period_start, threshold, level, message, spent,"
            " limit_value, fired_at, delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (budget, period_start, threshold, level, message, spent, limit, now,
             int(not channels))).rowcount)
        if fired:
            self.db.executemany(
                "INSERT INTO alert_deliveries (budget, period_start, threshold, channel)"
                " VALUES (?, ?, ?, ?)",
                [(budget, period_start, threshold, channel) for channel in channels])
        return fired

    def alerts_due(self, max_attempts: int, now: float) -> list[tuple]:
        """Deliveries due for a try: (budget, period_start, threshold, channel, level,
        message, spent, limit, attempts)."""
        return self.query(
            "SELECT d.budget, d.period_start, d.threshold, d.channel, a.level, a.message,"
            " a.spent, a.limit_value, d.attempts FROM alert_deliveries d JOIN alerts a USING"
            " (budget, period_start, threshold) WHERE d.delivered = 0 AND d.attempts < ? AND"
            " d.next_attempt <= ? ORDER BY a.fired_at", (max_attempts, now))

    def alert_delivered(self, key: tuple, channel: str, note: str | None = None) -> None:
        """One channel got the alert (`note`: why it was dropped instead)."""
        self.db.execute("UPDATE alert_deliveries SET delivered = 1, attempts = attempts + 1,"
                        " last_error = ? WHERE budget = ? AND period_start = ? AND"
                        " threshold = ? AND channel = ?", (note, *key, channel))
        self._sum_up_delivery(key)

    def alert_failed(self, key: tuple, channel: str, error: str, next_attempt: float) -> None:
        self.db.execute("UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?,"
                        " next_attempt = ? WHERE budget = ? AND period_start = ? AND"
                        " threshold = ? AND channel = ?", (error, next_attempt, *key, channel))
        self._sum_up_delivery(key)

    def _sum_up_delivery(self, key: tuple) -> None:
        # The alert row tells its channels' story: delivered once every one has it.
        self.db.execute(
            "UPDATE alerts SET (delivered, attempts, next_attempt, last_error) = (SELECT"
            " min(delivered), max(attempts), max(next_attempt),"
            " max(CASE WHEN delivered = 0 THEN channel || ': ' || last_error END)"
            " FROM alert_deliveries d WHERE d.budget = alerts.budget AND"
            " d.period_start = alerts.period_start AND d.threshold = alerts.threshold)"
            " WHERE budget = ? AND period_start = ? AND threshold = ?", key)

    def alerts(self, limit: int = 200) -> list[dict]:
        """The latest alerts; `channels`: how many channels it was for (0: none, such as an
        alert below a higher one that fired with it, recorded and sent nowhere)."""
        keys = ("fired_at", "level", "budget", "threshold", "message", "delivered", "attempts",
                "last_error")
        return [dict(zip((*keys, "channels"), row)) for row in self.query(
            f"SELECT {', '.join(keys)}, (SELECT count(*) FROM alert_deliveries d WHERE"
            " d.budget = alerts.budget AND d.period_start = alerts.period_start AND"
            " d.threshold = alerts.threshold) FROM alerts ORDER BY fired_at DESC LIMIT ?",
            (limit,))]

    def failing_alerts(self) -> list[dict]:
        return [{"budget": b, "threshold": t, "channel": c, "attempts": a, "last_error": e}
                for b, t, c, a, e in self.query(
                    "SELECT budget, threshold, channel, attempts, last_error FROM"
                    " alert_deliveries WHERE delivered = 0 AND last_error IS NOT NULL")]
