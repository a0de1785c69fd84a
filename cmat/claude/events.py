"""The Claude Code events cmat hooks into: one table that the runtime, the installer, the
`cmat hook` commands and the executable's fast path all read.

Standard library only and no imports at all: the budget hooks consult it before every tool call.
"""

LIMIT_MARGIN_SECONDS = 5  # a hook gives up this long before Claude Code's timeout kills it
MAX_STDIN_BYTES = 1024 * 1024  # of a payload, read whole; past it only the leading fields
DRAIN_CHUNK_BYTES = 1024 * 1024
SUPPORT_SCRIPT = "cmat-hook.sh"
STATUSLINE_SCRIPT = "cmat-statusline.sh"


def read_stdin() -> bytes:
    """A payload on stdin, read whole up to MAX_STDIN_BYTES (+1, to tell a larger one) and the
    rest read past: Claude Code's write must not meet a closed pipe. Empty when there is no
    stdin or it is a terminal."""
    import sys  # loaded with the interpreter: importing it costs nothing

    if sys.stdin is None or sys.stdin.isatty():
        return b""
    raw = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    while sys.stdin.buffer.read(DRAIN_CHUNK_BYTES):
        pass
    return raw


RECORDS, CHECKS_BUDGETS, GUARDS_SETTINGS = "records", "checks budgets", "guards settings"


class HookEvent:
    """One event: Claude Code's name, the `cmat hook` command, the script Claude Code runs,
    the timeout written into the settings, what kind of work the hook does (RECORDS,
    CHECKS_BUDGETS, GUARDS_SETTINGS) and what it does, in a sentence."""

    __slots__ = ("name", "command", "script", "timeout", "kind", "summary", "failure")

    def __init__(self, name: str, command: str, script: str, timeout: int, kind: str,
                 summary: str, failure: str):
        self.name = name
        self.command = command
        self.script = script
        self.timeout = timeout  # seconds Claude Code waits (its SessionEnd default is 1.5 s)
        self.kind = kind
        self.summary = summary
        self.failure = failure  # what the user reads when the hook cannot do its work

    @property
    def checks_budgets(self) -> bool:
        return self.kind == CHECKS_BUDGETS

    @property
    def needs_budgets(self) -> bool:
        """Whether the hook has nothing to do while no budget can be set (no cmat config)."""
        return self.kind != RECORDS

    @property
    def time_limit(self) -> float:
        """Seconds the hook may run before it gives up (and allows)."""
        return float(self.timeout - LIMIT_MARGIN_SECONDS)


EVENTS = (
    HookEvent("SessionEnd", "session-end", "on-session-end-cost.sh", 30, RECORDS,
              "Record the ended session's cost (SessionEnd).", "cost not recorded"),
    HookEvent("SubagentStop", "subagent-stop", "on-subagent-stop-cost.sh", 30, RECORDS,
              "Record the session's cost so far as a subagent ends (SubagentStop).",
              "cost not recorded"),
    HookEvent("UserPromptSubmit", "prompt-submit", "on-prompt-submit-budget.sh", 10,
              CHECKS_BUDGETS,
              "Refuse a new prompt when a budget is exhausted (UserPromptSubmit).",
              "budget not checked, prompt allowed"),
    HookEvent("PreToolUse", "pre-tool-use", "on-pre-tool-use-budget.sh", 10,
              CHECKS_BUDGETS,
              "Deny the next tool call when a budget is exhausted (PreToolUse).",
              "budget not checked, tool allowed"),
    HookEvent("ConfigChange", "config-change", "on-config-change-guard.sh", 10,
              GUARDS_SETTINGS,
              "Keep settings that stop the budget checks out of a session (ConfigChange).",
              "settings change not checked, applied"),
)
BY_COMMAND = {event.command: event for event in EVENTS}
SCRIPTS = tuple(event.script for event in EVENTS)
