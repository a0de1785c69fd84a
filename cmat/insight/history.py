"""The requests insight works on: ledger rows of a period, as typed records."""

from __future__ import annotations

from dataclasses import dataclass

from cmat.ledger import Ledger
from cmat.usage import TokenCounts


@dataclass(frozen=True, slots=True)
class StoredRequest:
    message_id: str
    session_id: str
    ts: float
    project: str | None
    model: str
    agent: str  # as reports name it: the subagent's type, else the task's agent, else main
    agent_id: str | None  # the subagent run, None for a session's main thread
    tokens: TokenCounts
    searches: int
    speed: str | None
    geo: str | None
    cost: float | None  # None: the model is not in the catalog
    task_id: str | None
    enhancement: str | None
    task_type: str | None

    @property
    def run(self) -> tuple[str, str | None]:
        """A session's main thread, or one subagent run in it."""
        return self.session_id, self.agent_id


def load(ledger: Ledger, since: float | None, until: float | None, project: str | None = None,
         task: str | None = None, enhancement: str | None = None) -> list[StoredRequest]:
    """The requests of [since, until), oldest first, narrowed as asked."""
    return [StoredRequest(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                          TokenCounts(*row[7:12]), *row[12:])
            for row in ledger.insight_requests(since, until, project, task, enhancement)]

