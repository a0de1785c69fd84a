"""`cmat hook EVENT`: what the installed Claude Code hooks run (JSON on stdin, exit 0).

The executable reaches the runtime without click (`cmat.entry`); this group documents the
commands and serves callers that go through click, such as tests.
"""

from __future__ import annotations

import sys

import click

from cmat.claude.events import EVENTS
from cmat.errors import leave


@click.group(hidden=True)
def hook() -> None:
    """Entry points Claude Code runs; installed by `cmat hooks install`."""


def _event_command(event: str, help_text: str) -> click.Command:
    @click.pass_context
    def command(ctx: click.Context) -> None:
        from cmat.claude.runtime import run

        leave(run(event, sys.stdin))

    return click.command(event, help=help_text)(command)


for _event in EVENTS:
    hook.add_command(_event_command(_event.command, _event.summary))
