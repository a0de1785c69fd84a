"""`cmat hook EVENT`: what the installed Claude Code hooks run (JSON on stdin, exit 0)."""

from __future__ import annotations

import sys

import click


@click.group(hidden=True)
def hook() -> None:
    """Entry points Claude Code runs; installed by `cmat hooks install`."""


def _event_command(event: str, help_text: str) -> click.Command:
    @click.pass_context
    def command(ctx: click.Context) -> None:
        from cmat.hooks import run

        ctx.exit(run(event, sys.stdin))

    return click.command(event, help=help_text)(command)


hook.add_command(_event_command("session-end", "Record the ended session's cost (SessionEnd)."))
hook.add_command(_event_command("subagent-stop",
                                "Record the session's cost so far as a subagent ends (SubagentStop)."))
