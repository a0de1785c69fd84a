"""The `cmat` command line: a thin click layer over the library.

Command groups live in their own modules and are imported only when used, so that
`cmat --help` and the hooks start fast.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from cmat.cli.options import colour_option
from cmat.cli.output import echo
from cmat.errors import INTERNAL_ERROR_EXIT, OK, CmatError, leave
from cmat.version import __version__

COMMANDS = {
    "costs": ("cmat.cli.costs", "costs", "Price sessions, record them against tasks; today, ..."),
    "models": ("cmat.cli.models", "models", "Inspect and edit the model price catalog."),
    "queue": ("cmat.cli.queue", "queue", "A minimal CMAT task queue: add, start, finish, list."),
    "hooks": ("cmat.cli.hooks", "hooks", "Install, remove and check the Claude Code hooks."),
    "report": ("cmat.cli.report", "report", "Spend over the whole history: daily, weekly, ..."),
    "blocks": ("cmat.cli.blocks", "blocks", "5-hour usage blocks: burn rate, projection, limit."),
    # ccusage's commands, as ccusage users type them: the same as `cmat report PERIOD`.
    "daily": ("cmat.cli.report", "daily", "Spend per day (cmat report daily)."),
    "weekly": ("cmat.cli.report", "weekly", "Spend per week (cmat report weekly)."),
    "monthly": ("cmat.cli.report", "monthly", "Spend per month (cmat report monthly)."),
    "session": ("cmat.cli.report", "session", "Spend per session (cmat report session)."),
    # ccusage's per-agent reports (`ccusage codex daily`): the same with --app; hidden.
    "claude": ("cmat.cli.report", "claude", None),
    "codex": ("cmat.cli.report", "codex", None),
    "gemini": ("cmat.cli.report", "gemini", None),
    "opencode": ("cmat.cli.report", "opencode", None),
    "live": ("cmat.cli.live", "live", "Full-screen view of the 5-hour block under way."),
    "limits": ("cmat.cli.limits", "limits", "Your plan's 5-hour and weekly windows, official..."),
    "scan": ("cmat.cli.report", "scan", "Import new transcript lines into the ledger."),
    "ledger": ("cmat.cli.ledger", "ledger", "The usage ledger: info, reprice, rebuild."),
    "optimize": ("cmat.cli.insight", "optimize", "What to change to spend less, in dollars."),
    "estimate": ("cmat.cli.insight", "estimate", "What the next task or a prompt will cost."),
    "dashboard": ("cmat.cli.dashboard", "dashboard", "Local web dashboard and JSON API."),
    "sync": ("cmat.cli.team", "sync", "Push this ledger to the team database (PostgreSQL)."),
    "budget": ("cmat.cli.budget", "budget", "Budgets enforced in Claude Code: set, status, ..."),
    "alerts": ("cmat.cli.budget", "alerts", "Budget alerts that fired, and their delivery."),
    "statusline": ("cmat.cli.statusline", "statusline", "One line for Claude Code's status bar."),
    "metrics": ("cmat.cli.metrics", "metrics", "Prometheus metrics: print or serve them."),
    "mcp": ("cmat.cli.mcp", "mcp", "Read-only MCP server for Claude (stdio)."),
    "hook": ("cmat.cli.hook", "hook", None),  # run by Claude Code; hidden from --help
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; errors become one clean line."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str, str | None]] | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attribute, _ = self.lazy[name]
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table above: listing commands imports none of them.
        rows = [(name, self.lazy[name][2]) for name in sorted(self.lazy) if self.lazy[name][2]]
        rows += [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items()
                 if name not in self.lazy]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CmatError as exc:
            echo(f"cmat: error: {exc}", err=True)
            leave(exc.exit_code)
        except BrokenPipeError:
            # Output piped into `head`, which has read enough: not an error. What is still
            # buffered goes nowhere, so that flushing it at exit fails no more.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            leave(OK)
        except Exception as exc:
            sqlite3 = sys.modules.get("sqlite3")  # loaded by whatever opened the ledger
            if sqlite3 is None or not isinstance(exc, sqlite3.Error):
                raise
            from cmat.ledger import ledger_error

            error = ledger_error(exc)
            echo(f"cmat: error: {error}", err=True)
            leave(error.exit_code)


def _show_version(ctx: click.Context, _param, value: bool) -> None:
    """The version, and how transcripts are read: an install without a C compiler reads
    them in pure Python (slower, the same figures), and this is where a user can see it."""
    if not value or ctx.resilient_parsing:
        return
    from cmat.transcripts import scanner

    reader = "the compiled scanner" if scanner.available() else (
        "pure Python (CMAT_PURE_PYTHON=1)" if scanner.built() else
        "pure Python (installed without a C compiler)")
    echo(f"cmat, version {__version__}; transcripts read by {reader}")
    leave(OK)


@click.group(cls=LazyGroup, lazy=COMMANDS, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", "-v", is_flag=True, expose_value=False, is_eager=True,
              callback=_show_version, help="Show the version and exit.")
@colour_option
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Exact costs of Claude Code sessions (and Codex CLI's, Gemini CLI's and OpenCode's),
    recorded against tasks and kept within budgets.

    \b
    Quick start:
      cmat report daily                  what each day of your history cost
      cmat costs session                 the latest session's cost, subagents too
      cmat hooks install                 record every session, enforce budgets
      cmat budget set daily 50           a budget Claude Code will respect
      cmat queue add "Fix login"         a task to record costs against
      cmat costs show TASK               what a task has cost so far
    """
    if ctx.invoked_subcommand is None:  # `cmat` alone: the help, and success
        echo(ctx.get_help())


def main() -> None:
    try:
        cli.main(prog_name="cmat")
    except Exception as exc:  # a bug: say so plainly, never a bare traceback for users
        if os.environ.get("CMAT_DEBUG"):
            raise
        echo(f"cmat: internal error: {type(exc).__name__}: {exc} "
             "(set CMAT_DEBUG=1 for a traceback)", err=True)
        leave(INTERNAL_ERROR_EXIT)
