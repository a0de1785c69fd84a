"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path

import click

project_option = click.option(
    "--project", "project", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Project directory (default: $CLAUDE_PROJECT_DIR, else the nearest ancestor holding "
         ".claude/, else the current directory).")

COLOUR_KEY = "cmat.colour"


def _keep_colour_mode(ctx: click.Context, _param, value: str | None) -> None:
    """Decide colour once per command line: `ctx.color` is what click.echo obeys (it would
    strip colour from a pipe even when asked for), and later contexts inherit it."""
    import sys

    from cmat.colour import wanted

    if value is not None:
        ctx.meta[COLOUR_KEY] = value  # meta is shared by the whole command line
    ctx.color = wanted(ctx.meta.get(COLOUR_KEY, "auto"), sys.stdout)


colour_option = click.option(
    "--color", type=click.Choice(["auto", "always", "never"]), default=None,
    expose_value=False, is_eager=True, callback=_keep_colour_mode,
    help="Colour in tables: auto (default: on a terminal, unless NO_COLOR is set or "
         "FORCE_COLOR asks for it), always or never.")

_json_option = click.option("--json", "as_json", is_flag=True,
                            help="Print machine-readable JSON instead of a table.")


def output_options(command):
    """--json and --color: how a command's answer is printed."""
    return _json_option(colour_option(command))

