"""Budget alerts: fired once per budget, period and threshold; shown in Claude Code and sent
to a webhook, a command and/or by email, each channel at thresholds of its own.

Firing is an INSERT OR IGNORE keyed on (budget, period start, threshold), so concurrent hooks
never fire one alert twice. Delivery never delays a hook: it runs in a detached
`cmat alerts deliver` process, and a channel that could not be reached is tried again by a
later hook (up to MAX_ATTEMPTS, with a growing delay), the others not sent twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cmat.budgets.config import Config, EmailSettings, render_message
from cmat.budgets.limits import Status
from cmat.colour import level
from cmat.ledger import Ledger
from cmat.text import one_line

MAX_ATTEMPTS = 5
RETRY_DELAY_SECONDS = 60.0  # times the number of attempts so far
WEBHOOK_TIMEOUT_SECONDS = 3.0
COMMAND_TIMEOUT_SECONDS = 10.0
SMTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Alert:
    status: Status
    threshold: int
    template: str | None = None  # the user's message for this threshold

    @property
    def level(self) -> str:
        return level(self.threshold)

    @property
    def message(self) -> str:
        status = self.status
        if self.template:
            fields = {"percent": f"{status.percent:.0f}", "threshold": self.threshold,
                      "budget": status.budget.label[0].lower() + status.budget.label[1:],
                      "spent": status.amount(status.spent),
                      "limit": status.amount(status.budget.limit),
                      "remaining": status.amount(status.remaining), "level": self.level,
                      "reset": status.reset_words()}
            try:
                return render_message(self.template, fields)
            except (KeyError, IndexError, ValueError, TypeError):
                pass  # checked at load; never the reason an alert or a check fails
        return (f"cmat {self.level}: {status.budget.label} at {status.percent:.0f}% "
                f"({status.amount(status.spent)} of {status.amount(status.budget.limit)}). "
                + status.reset_words())


def fire(ledger: Ledger, statuses: list[Status], config: Config, now: float) -> list[Alert]:
    """Record every threshold newly reached, to be delivered to the channels that take it;
    returns the highest new one per budget among those shown in Claude Code."""
    channels = config.channels
    shown = []
    with ledger.transaction():
        for status in statuses:
            newly = []
            served: set[str] = set()  # channels told of a higher threshold: not of this one
            for threshold in sorted(config.all_thresholds, reverse=True):
                if status.percent < threshold:
                    continue
                alert = Alert(status, threshold, config.messages.get(threshold))
                taking = {name for name, at in channels.items() if threshold in at}
                # Crossing 50, 80 and 95 % in one step is one alert, the highest: the lower
                # ones are recorded (they never fire later) but sent nowhere.
                if ledger.fire_alert(status.budget.key, status.period_start, threshold,
                                     alert.level, alert.message, status.spent,
                                     status.budget.limit, now, sorted(taking - served)) \
                        and threshold in config.thresholds:
                    newly.append(alert)
                served |= taking
            if newly:
                shown.append(max(newly, key=lambda a: a.threshold))
    return shown


def has_undelivered(ledger: Ledger, now: float) -> bool:
    return bool(ledger.alerts_due(MAX_ATTEMPTS, now))


def spawn_delivery() -> None:
    """Deliver pending alerts in a detached process: a hook never waits on the network."""
    from cmat.detached import start_detached

    start_detached(["cmat", "alerts", "deliver", "--quiet"])


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

    env = dict(os.environ, CMAT_ALERT_TEXT=one_line(payload["text"]),
               CMAT_ALERT_LEVEL=payload["level"], CMAT_ALERT_BUDGET=one_line(payload["budget"]))
    # An argv list, never a shell: nothing in a config value is ever interpreted.
    result = subprocess.run(list(command), input=payload["text"].encode("utf-8", "replace"),
                            env=env,
                            capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS)
    if result.returncode:
        raise OSError(f"alert command exited {result.returncode}: "
                      f"{result.stderr.decode(errors='replace').strip()[:200]}")


def send_email(settings: EmailSettings, payload: dict) -> None:
    """Send one alert by SMTP: STARTTLS before any password is sent (unless switched off
    for a server on this machine), the password from the environment or the keyring."""
    import smtplib
    import ssl
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = one_line(f"cmat {payload['level']}: {payload['budget']} at "
                                  f"{payload['threshold']}%")
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message.set_content(payload["text"] + "\n")
    with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context(cafile=settings.cafile))
        if settings.username:
            if not settings.starttls:
                raise OSError("refusing to send the SMTP password without STARTTLS")
            smtp.login(settings.username, _smtp_password(settings))
        smtp.send_message(message)


def _smtp_password(settings: EmailSettings) -> str:
    password = os.environ.get(settings.password_env)
    if password:
        return password
    try:
        import keyring  # optional: the system keyring, where the user keeps secrets
    except ImportError:
        keyring = None
    stored = keyring.get_password("cmat", settings.username) if keyring else None
    if not stored:
        raise OSError(f"no SMTP password: set {settings.password_env}, or keep it in the "
                      f"system keyring (service cmat, user {settings.username})")
    return stored


def deliver_pending(ledger: Ledger, config: Config, now: float) -> tuple[int, int]:
    """Send undelivered alerts due at `now` to their channels; returns (delivered, failed)
    deliveries."""
    senders = {"webhook": lambda p: _post(config.webhook, p),
               "command": lambda p: _run_command(config.command, p),
               "email": lambda p: send_email(config.email, p)}
    configured = config.channels
    delivered = failed = 0
    for budget, start, threshold, channel, alert_level, message, spent, limit, attempts in \
            ledger.alerts_due(MAX_ATTEMPTS, now):
        key = (budget, start, threshold)
        if channel not in configured:
            with ledger.transaction():
                ledger.alert_delivered(key, channel, "dropped: channel no longer configured")
            continue
        payload = {"text": message, "level": alert_level, "budget": budget,
                   "threshold": threshold, "spent": spent, "limit": limit}
        error = None
        try:
            senders[channel](payload)
        except Exception as exc:  # any delivery failure is recorded and retried later
            error = f"{type(exc).__name__}: {exc}"
            if config.webhook:
                error = error.replace(config.webhook, redact_url(config.webhook))
        with ledger.transaction():
            if error is None:
                ledger.alert_delivered(key, channel)
                delivered += 1
            else:
                ledger.alert_failed(key, channel, error,
                                    now + RETRY_DELAY_SECONDS * (attempts + 1))
                failed += 1
    return delivered, failed
