"""`cmat mcp`: the read-only MCP server, over stdio."""

from __future__ import annotations

from pathlib import Path

import click

from cmat import paths
from cmat.cli.options import project_option


@click.command()
@project_option
def mcp(project: Path | None) -> None:
    """Run the read-only MCP server over stdio (for Claude Code: cmat hooks install --mcp).

    Tools: get_task_cost, get_enhancement_cost, get_cost_report, get_budget_status.
    """
    import sys

    from cmat.claude.hook_environment import restore
    from cmat.mcp_server import run

    restore(str(paths.project_dir(project)))  # Claude Code starts it: as a hook (docs/security.md)

    if sys.stdin.isatty():  # a person, not an MCP client: say why nothing happens
        click.echo("cmat's MCP server, waiting for an MCP client on stdin (Claude Code starts"
                   " it: cmat hooks install --mcp). Ctrl-C quits.", err=True)
    run(paths.project_dir(project))
