"""What only a person may do: loosen what holds the agents, not from inside their sessions.

Claude Code gives its Bash tool `CLAUDECODE` (and `CLAUDE_CODE_ENTRYPOINT`). A refusal names
the command that raises the budget, and a subagent stopped by its run limit reports it to the
main thread, which is not stopped: without this, that agent could lift the limit (raise or
remove a budget, override it, price its model lower) with the very command. Tightening stays
open to it. A repository's settings may set these variables empty, not remove them: present
at all counts (docs/security.md).
"""

from __future__ import annotations

import os

from cmat.errors import AgentMayNotLoosen


def by_a_person(what: str) -> None:
    """Refuse `what`, which loosens a budget or what it counts, inside a Claude Code session."""
    if os.environ.get("CLAUDECODE") is not None \
            or os.environ.get("CLAUDE_CODE_ENTRYPOINT") is not None:
        raise AgentMayNotLoosen(
            f"{what} loosens a budget, and this runs inside a Claude Code session "
            "(CLAUDECODE is set), where the agent the budget holds could run it",
            "the user runs it in a terminal of their own")
