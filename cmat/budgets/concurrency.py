"""How many sessions are at work at once, and whether another may start (the
`concurrent_agents` limit).

A session is at work from the first prompt or tool call a hook sees until its SessionEnd, or
until it has shown no sign of work for `active_minutes`: no prompt, no tool call and no new
line in its transcript (so a crashed session frees its slot). A session starting, or coming
back after that long, takes a slot only if one is free; its first prompt is held otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cmat.budgets.config import Config
from cmat.ledger import Ledger

FORGOTTEN_AFTER_SECONDS = 7 * 86400  # sessions unseen this long are not even looked at


@dataclass(frozen=True)
class Running:
    session_id: str
    project: str | None
    agent: str | None
    last_active: float

    def describe(self, now: float) -> str:
        where = (self.project or "?").rstrip("/").rsplit("/", 1)[-1]
        agent = f", {self.agent}" if self.agent else ""
        return f"{self.session_id[:8]} in {where}{agent}, active {_ago(now - self.last_active)}"

    def to_json(self) -> dict:
        return {"session_id": self.session_id, "project": self.project, "agent": self.agent,
                "last_active": self.last_active}


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    return "just now" if minutes < 1 else f"{minutes}m ago"


def running(ledger: Ledger, config: Config, now: float, exclude: str | None = None
            ) -> list[Running]:
    """The sessions at work now (but `exclude`), latest active first."""
    cutoff = now - config.active_minutes * 60
    found = []
    for session_id, project, agent, transcript, _started, last_seen in \
            ledger.live_sessions(now - FORGOTTEN_AFTER_SECONDS):
        if session_id == exclude:
            continue
        last = last_seen
        if transcript and last < cutoff:
            try:
                last = max(last, os.stat(transcript).st_mtime)  # still writing, no hook call
            except OSError:
                pass
        if last >= cutoff:
            found.append(Running(session_id, project, agent, last))
    return sorted(found, key=lambda r: -r.last_active)


def admit(ledger: Ledger, config: Config, session_id: str, project: str, agent: str | None,
          transcript: str | None, now: float, may_hold: bool) -> list[Running] | None:
    """Record that `session_id` is at work. When it is starting (or coming back after
    `active_minutes`) while every slot is taken, and `may_hold` (a prompt, not a tool call),
    it is not recorded: returns the sessions holding the slots. None: admitted."""
    seen = ledger.live_session(session_id)
    cutoff = now - config.active_minutes * 60
    at_work = seen is not None and seen[2] is None and seen[1] >= cutoff
    if not at_work and may_hold and config.concurrent_agents is not None:
        others = running(ledger, config, now, exclude=session_id)
        if len(others) >= config.concurrent_agents:
            return others
    with ledger.transaction():
        ledger.touch_live_session(session_id, project, agent, transcript, now,
                                  started=not at_work)
    return None


def held_message(others: list[Running], config: Config, now: float) -> str:
    limit = config.concurrent_agents
    listed = "; ".join(r.describe(now) for r in others[:8])
    more = f"; and {len(others) - 8} more" if len(others) > 8 else ""
    at_work = "1 session is" if len(others) == 1 else f"{len(others)} sessions are"
    return (f"Concurrent agent limit reached: {at_work} at work, the limit "
            f"is {limit} ({listed}{more}).\nThis session waits: send the prompt again when one "
            f"ends (a session idle for {config.active_minutes} minutes no longer counts), or "
            f"raise the limit with: cmat budget set concurrent-agents {(limit or 0) + 1}")


def status(ledger: Ledger, config: Config, now: float) -> dict | None:
    """The concurrency limit and the sessions at work, for `cmat budget status`."""
    if config.concurrent_agents is None:
        return None
    found = running(ledger, config, now)
    limit = config.concurrent_agents
    return {"scope": "concurrent-agents", "label": "Concurrent agent sessions",
            "limit": limit, "running": len(found), "full": len(found) >= limit,
            "active_minutes": config.active_minutes,
            "sessions": [r.to_json() for r in found]}
