"""Options shared by several commands, declared once."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

project_option = click.option(
    "--project", "project", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Project directory (default: $CLAUDE_PROJECT_DIR, else the nearest ancestor holding "
         ".claude/, else the current directory).")

COLOUR_KEY = "cmat.colour"


def options(*groups):
    """Decorate a command with groups of options, in the order given."""
    def decorate(function):
        for group in reversed(groups):
            for option in reversed(group):
                function = option(function)
        return function
    return decorate


def did_you_mean(word: str, known) -> str:
    """' (did you mean X?)' for the closest of `known` to a mistyped `word`, else ''."""
    import difflib

    known = list(known)
    close = difflib.get_close_matches(word, known, n=3, cutoff=0.6) or \
        [k for k in known if word and word.lower() in k.lower()][:3]
    return f" (did you mean {' or '.join(close)}?)" if close else ""


class Choice(click.Choice):
    """click.Choice that names the closest choice to a mistyped value."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is not one of {', '.join(self.choices)}"
                      f"{did_you_mean(str(value), self.choices)}", param, ctx)


class OutputFile(click.Path):
    """A file a command writes. A value that starts with '-' is an option typed after the one
    that takes a file (`--html -q`), not a name: writing a file called -q would surprise."""

    def __init__(self):
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.startswith("-"):
            self.fail(f"{value!r} looks like an option, not a file to write (a file of that "
                      f"name: ./{value})", param, ctx)
        return super().convert(value, param, ctx)


class Amount(click.ParamType):
    """A limit: a finite number, 0 or more (a negative one reaches here as a value, not as
    an unknown option: the commands taking one ignore unknown options), written as people
    write dollars too: '$50', '1,000'."""

    name = "amount"

    def convert(self, value, param, ctx):
        import math
        import re

        text = value.strip().removeprefix("$") if isinstance(value, str) else value
        if isinstance(text, str) and "," in text:
            # 1,500 is fifteen hundred; 1,5 is a fraction in much of Europe, and taken for
            # fifteen it would set a limit ten times the one meant.
            if not re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d*)?", text):
                self.fail(f"{value!r}: a comma groups thousands (1,500); a fraction takes a "
                          "point (1.5)", param, ctx)
            text = text.replace(",", "")
        try:
            number = float(text)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or number < 0:
            self.fail(f"must be a number, 0 or more (got {value})", param, ctx)
        return number


def _keep_colour_mode(ctx: click.Context, _param, value: str | None) -> None:
    """Decide colour once per command line: `ctx.color` is what click.echo obeys (it would
    strip colour from a pipe even when asked for), and later contexts inherit it."""
    import sys

    from cmat.colour import wanted

    if value is not None:
        ctx.meta[COLOUR_KEY] = value  # meta is shared by the whole command line
    ctx.color = wanted(ctx.meta.get(COLOUR_KEY, "auto"), sys.stdout)


_colour_mode = click.option(
    "--color", type=click.Choice(["auto", "always", "never"]), default=None,
    is_flag=False, flag_value="always", expose_value=False, is_eager=True,
    callback=_keep_colour_mode,
    help="Colour in tables: auto (default: on a terminal, unless NO_COLOR is set or "
         "FORCE_COLOR asks for it), always (--color alone) or never.")
# ccusage's spelling of --color never, for its users' scripts.
_no_colour = click.option(
    "--no-color", is_flag=True, flag_value="never", default=None, hidden=True,
    expose_value=False, is_eager=True, callback=_keep_colour_mode)


def colour_option(command):
    """--color [auto|always|never] (and --no-color)."""
    return _no_colour(_colour_mode(command))


_json_option = click.option("--json", "-j", "as_json", is_flag=True,
                            help="Print machine-readable JSON instead of a table.")


def output_options(command):
    """--json and --color: how a command's answer is printed."""
    return _json_option(colour_option(command))


def json_or_ccusage_option(ccusage_note: str = ""):
    """--json, or --json=ccusage for JSON in the shape ccusage 20 prints (`ccusage_note`:
    what of the command has that shape)."""
    return click.option(
        "--json", "-j", "as_json", type=click.Choice(["cmat", "ccusage"]), is_flag=False,
        flag_value="cmat", default=None,
        help="Print JSON instead of a table; --json=ccusage: in the shape ccusage 20 prints"
             f"{ccusage_note}, for its scripts.")


@contextlib.contextmanager
def team_connection(team: bool, team_url: str | None, project: Path | None = None):
    """With --team, a connection to the team database (--to, else the configured one),
    closed after; else None."""
    if team_url and not team:
        raise click.UsageError("--to goes with --team")
    if not team:
        yield None
        return
    from cmat.team.connect import connect
    from cmat.team.connect import team_url as resolve_url

    connection = connect(resolve_url(team_url, project))
    try:
        yield connection
    finally:
        connection.close()
