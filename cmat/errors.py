"""One error hierarchy: every expected failure is a CmatError with a one-line message, and
every exit code cmat uses is here (exit_codes() lists them; docs/cli.md shows it).

The CLI turns an error into that line on stderr and its exit code; anything else is a bug
(INTERNAL_ERROR_EXIT). A hook always exits 0. A command that ends without an error leaves
through cmat.cli.output.leave with one of these codes.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs more than a hook's whole check: read only by checkers
if TYPE_CHECKING:
    from typing import NoReturn

OK = 0
PROBLEMS_FOUND = 1  # a check found something to act on: hooks status, models check, alerts
INTERNAL_ERROR_EXIT = 70


class CmatError(Exception):
    """An expected failure the user can act on."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(CmatError):
    """The command was called with arguments that cannot work."""

    exit_code = 2


class NotFound(CmatError):
    """A task, model, file or session named by the user does not exist."""

    exit_code = 3


class CatalogError(CmatError):
    """The model catalog cannot be read or does not validate."""

    exit_code = 4


class QueueError(CmatError):
    """The task queue file cannot be read, parsed or written."""

    exit_code = 5


class TranscriptError(CmatError):
    """A transcript cannot be read at all (missing, unreadable, a directory)."""

    exit_code = 6


class LockTimeout(CmatError):
    """Another process held a file lock for longer than we are willing to wait."""

    exit_code = 7


class LedgerError(CmatError):
    """The ledger cannot be opened, read or written (damaged, full, read-only, busy)."""

    exit_code = 8


class TeamDatabaseError(LedgerError):
    """The team database (PostgreSQL) cannot be reached or written: the local ledger, which
    keeps everything, is untouched."""

    exit_code = 8


class SettingsError(CmatError):
    """Claude Code's settings (or .mcp.json) cannot be read, or would not be safe to write."""

    exit_code = 9


class ConfigError(CmatError):
    """cmat's budget configuration does not parse or does not validate."""

    exit_code = 10


class BudgetExhausted(CmatError):
    """A budget is spent, or stands in the way (`cmat costs extract`, `cmat budget status`,
    `cmat budget check`)."""

    exit_code = 11


BUDGET_SPENT = BudgetExhausted.exit_code


class AgentMayNotLoosen(CmatError):
    """A command that would loosen a budget (raise or remove it, override it, price a model
    lower, remove the hooks that enforce it) was run from inside a Claude Code session, where
    the agent the budget holds could run it: run it in your own terminal."""

    exit_code = 12


def exit_codes() -> list[tuple[int, str]]:
    """Every exit code cmat uses and what it means (each error's that exits with it), in
    order."""
    errors: dict[int, list[str]] = {}
    pending = list(CmatError.__subclasses__())
    while pending:
        kind = pending.pop(0)
        errors.setdefault(kind.exit_code, []).append(" ".join(kind.__doc__.split()))
        pending += kind.__subclasses__()
    table = {OK: "Success.", PROBLEMS_FOUND: "A check found something to act on (`hooks status`,"
             " `models validate`, `models check`, `alerts deliver` that failed).",
             **{code: " ".join(meanings) for code, meanings in errors.items()},
             INTERNAL_ERROR_EXIT: "A bug in cmat: an unexpected error (CMAT_DEBUG=1 shows the"
             " traceback)."}
    return sorted(table.items())


def leave(code: int) -> NoReturn:
    """End the command with `code`, one of exit_codes()."""
    raise SystemExit(code)
