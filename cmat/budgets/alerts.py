"""Budget alerts: fired once per budget, period and threshold; shown in Claude Code and sent
to a webhook and/or a command.

Firing is an INSERT OR IGNORE keyed on (budget, period start, threshold), so concurrent hooks
never fire one alert twice. Delivery never delays a hook: it runs in a detached
`cmat alerts deliver` process, and an alert that could not be delivered is tried again by a
later hook (up to MAX_ATTEMPTS, with a growing delay).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from cmat.budgets.config import Config
from cmat.budgets.limits import Status
from cmat.ledger import Ledger

MAX_ATTEMPTS = 5
RETRY_DELAY_SECONDS = 60.0  # times the number of attempts so far
WEBHOOK_TIMEOUT_SECONDS = 3.0
COMMAND_TIMEOUT_SECONDS = 10.0


def level(threshold: int) -> str:
    return "info" if threshold < 80 else "warning" if threshold < 95 else "critical"


def percent_level(percent: float, thresholds) -> str:
    """The alert level a share of a limit has reached: ok below every threshold."""
    if percent >= 100:
        return "exhausted"
    reached = [t for t in thresholds if percent >= t]
    return level(max(reached)) if reached else "ok"


@dataclass(frozen=True)
class Alert:
    status: Status
    threshold: int

    @property
    def level(self) -> str:
        return level(self.threshold)

    @property
    def message(self) -> str:
        status = self.status
        return (f"cmat {self.level}: {status.budget.label} at {status.percent:.0f}% "
                f"({status.amount(status.spent)} of {status.amount(status.budget.limit)}). "
                + status.reset_words())


def fire(ledger: Ledger, statuses: list[Status], thresholds: tuple[int, ...], now: float,
         channels: bool) -> list[Alert]:
    """Record every threshold newly reached; returns the highest new one per budget.

    Without `channels` (no webhook or command configured) there is nothing to deliver: the
    alerts are stored as delivered.
    """
    fired = []
    with ledger.transaction():
        for status in statuses:
            newly = []
            for threshold in thresholds:
                if status.percent < threshold:
                    continue
                alert = Alert(status, threshold)
                if ledger.fire_alert(status.budget.key, status.period_start, threshold,
                                     alert.level, alert.message, status.spent,
                                     status.budget.limit, now, delivered=not channels):
                    newly.append(alert)
            if newly:
                fired.append(max(newly, key=lambda a: a.threshold))
    return fired


def has_undelivered(ledger: Ledger, now: float) -> bool:
    return bool(ledger.alerts_due(MAX_ATTEMPTS, now))


def spawn_delivery() -> None:
    """Deliver pending alerts in a detached process: a hook never waits on the network."""
    import subprocess

    subprocess.Popen([sys.executable, "-m", "cmat", "alerts", "deliver", "--quiet"],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def _post(url: str, payload: dict) -> None:
    import json
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "cmat"})
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
        if response.status >= 300:
            raise OSError(f"webhook answered HTTP {response.status}")


def redact_url(url: str) -> str:
    """A webhook URL fit to show or log: the secret part of the path, the query and any
    credentials replaced by *** (`https://hooks.slack.com/services/T0/***`)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    segments = [s for s in parts.path.split("/") if s]
    kept = segments[:min(2, max(len(segments) - 1, 0))]
    return f"{parts.scheme}://{host}{port}/" + "/".join([*kept, "***"])


def _run_command(command: tuple[str, ...], payload: dict) -> None:
    import subprocess

    env = dict(os.environ, CMAT_ALERT_TEXT=payload["text"], CMAT_ALERT_LEVEL=payload["level"],
               CMAT_ALERT_BUDGET=payload["budget"])
    # An argv list, never a shell: nothing in a config value is ever interpreted.
    result = subprocess.run(list(command), input=payload["text"].encode(), env=env,
                            capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS)
    if result.returncode:
        raise OSError(f"alert command exited {result.returncode}: "
                      f"{result.stderr.decode(errors='replace').strip()[:200]}")


def deliver_pending(ledger: Ledger, config: Config, now: float | None = None) -> tuple[int, int]:
    """Send undelivered alerts to the webhook and command; returns (delivered, failed)."""
    now = time.time() if now is None else now
    delivered = failed = 0
    for budget, start, threshold, alert_level, message, spent, limit, attempts in \
            ledger.alerts_due(MAX_ATTEMPTS, now):
        payload = {"text": message, "level": alert_level, "budget": budget,
                   "threshold": threshold, "spent": spent, "limit": limit}
        error = None
        try:
            if config.webhook:
                _post(config.webhook, payload)
            if config.command:
                _run_command(config.command, payload)
        except Exception as exc:  # any delivery failure is recorded and retried later
            error = f"{type(exc).__name__}: {exc}"
            if config.webhook:
                error = error.replace(config.webhook, redact_url(config.webhook))
        with ledger.transaction():
            if error is None:
                ledger.alert_delivered((budget, start, threshold))
                delivered += 1
            else:
                ledger.alert_failed((budget, start, threshold), error,
                                    now + RETRY_DELAY_SECONDS * (attempts + 1))
                failed += 1
    return delivered, failed
