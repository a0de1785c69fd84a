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
    from cmat.mcp_server import run

    run(paths.project_dir(project))
