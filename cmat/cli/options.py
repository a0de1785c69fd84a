"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path

import click

project_option = click.option(
    "--project", "project", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Project directory (default: $CLAUDE_PROJECT_DIR, else the nearest ancestor holding "
         ".claude/, else the current directory).")

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print machine-readable JSON instead of a table.")

