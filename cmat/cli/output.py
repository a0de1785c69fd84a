"""Rendering helpers: numbers, tables and JSON, the same way in every command."""

from __future__ import annotations

import os
import sys
import time

from cmat.colour import visible_length
from cmat.money import usd


def echo(message: str | None = None, err: bool = False, nl: bool = True) -> None:
    """click.echo, for everything cmat prints for a person to read: text from outside in it
    is terminal_safe (cmat.text). JSON goes out by emit_json, CSV whole; both escape control
    characters their own way."""
    import click

    from cmat.text import terminal_safe

    click.echo(terminal_safe(message) if isinstance(message, str) else message, err=err,
               nl=nl)


def count(value: int, noun: str | None = None) -> str:
    """`value` with thousands separators; with `noun`, followed by it, plural but for 1
    ("1 request", "2 requests")."""
    if noun is None:
        return f"{value:,}"
    return f"{value:,} {noun}" + ("" if value == 1 else "s")


def emit_json(data) -> None:
    import orjson  # here: `cmat --help` and every error message import this module

    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def colour_on() -> bool:
    """Whether this command's output is coloured (see cmat.colour for the rules)."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.color is not None:
        return ctx.color
    from cmat.colour import wanted

    return wanted("auto", sys.stdout)


def styled(text: str, style: str | None) -> str:
    """`text` in `style` (a cmat.colour style or alert level) when output is coloured."""
    from cmat.colour import paint

    return paint(text, style, colour_on())


def terminal_width() -> int | None:
    """The width tables must fit: $COLUMNS, else the terminal's; None when printing to a
    pipe or a file (scripts get every column whole)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        import shutil  # here: it imports bz2 and lzma, 4 ms of every error message

        return shutil.get_terminal_size().columns
    return None


def wrapped(label: str, value: str) -> str:
    """`label` then `value`, the value wrapped under itself to the terminal's width."""
    width = terminal_width()
    if not width or len(label) + len(value) <= width:
        return label + value
    import textwrap

    return textwrap.fill(value, width=max(width, len(label) + 20), initial_indent=label,
                         subsequent_indent=" " * len(label), break_long_words=True,
                         break_on_hyphens=False)


def times_in(zone_name: str | None = None) -> str:
    """The note under a table of times: the zone they are in (default: the machine's)."""
    from cmat.periods import local_zone

    return f"Times in {zone_name or local_zone().key}."


def local_minute(iso_utc: str, zone_name: str | None = None) -> str:
    """A time given in UTC (ISO 8601), as the minute it was in `zone_name` (default: the
    machine's zone, the one times_in names)."""
    from datetime import datetime

    from cmat.periods import zone

    return datetime.fromisoformat(iso_utc).astimezone(zone(zone_name)).strftime(
        "%Y-%m-%d %H:%M")


def field_text(value) -> str:
    """A field's value as `show` commands print it: '-' for none, yes or no for a flag,
    JSON for a list or an object (a queue's, say), never Python's spelling."""
    if value is None or value == "":
        return "-"
    if value is True or value is False:
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, ensure_ascii=False)
    return str(value)


def short_count(value: int) -> str:
    """A count in at most 6 characters: 812, 45.3k, 1.21M, 3.40B."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            scaled = value / limit
            return f"{scaled:.2f}{suffix}" if scaled < 10 else f"{scaled:.1f}{suffix}" \
                if scaled < 100 else f"{scaled:.0f}{suffix}"
    return str(value)


NARROWEST_TEXT = 6  # a text column is never cut below this
COLUMN_GAP = 2  # spaces between two columns (_plain_head: padding of 1 each side, collapsed)


def table(rows: list[list], headers: list[str], numeric_from: int = 1,
          width: int | None = -1, cut: tuple[int, ...] | None = None) -> str:
    """A table (drawn by rich) whose lines fit `width` (default: the terminal's; None: as
    wide as it needs). When too wide, its widest text columns (`cut`; default: those before
    `numeric_from`) are cut, each cell ending in an ellipsis: a row stays one line, and
    numbers are never cut. Cells may hold colour (cmat.colour): it never moves a column."""
    width = terminal_width() if width == -1 else width
    cells, titles, widths = _cells(rows, headers)
    cuttable = cut if cut is not None else tuple(range(numeric_from))
    excess = _uncut_width(widths) - (width or 10**9)
    if excess > 0:
        _narrow(widths, cuttable, excess)
    while True:  # drawn to check: cut again if it is still too wide
        text = _render(cells, titles, widths, numeric_from)
        excess = max(map(visible_length, text.splitlines()), default=0) - (width or 10**9)
        if excess <= 0 or not _narrow(widths, cuttable, excess):
            return text  # fits; or only numbers are left, wider than the screen


def table_width(rows: list[list], headers: list[str]) -> int:
    """How wide `table` draws these rows when nothing is cut (colour codes aside): every
    column as wide as its widest cell, COLUMN_GAP between them. Worked out, not drawn."""
    return _uncut_width(_cells(rows, headers)[2])


def _uncut_width(widths: list[int]) -> int:
    return sum(widths) + COLUMN_GAP * (len(widths) - 1)


def _cells(rows: list[list], headers: list[str]):
    """The rows' cells and the headers, and each column's width uncut. A cell of plain text
    (no colour, no control characters) stays a str, laid out without rich (_plain_line); any
    other is decoded into rich Text, which costs ten times more: its colours, with every other
    control character (a line end from outside too) shown as an escape."""
    from rich.text import Text

    from cmat.text import terminal_safe

    def cell_of(value):
        value = str(value)
        return value if value.isprintable() else Text.from_ansi(terminal_safe(value, False))

    cells = [[cell_of(cell) for cell in row] for row in rows]
    titles = [cell_of(header) for header in headers]
    widths = [max(_plain_width(cell) if cell.__class__ is str else cell.cell_len
                  for cell in (titles[i], *(row[i] for row in cells)))
              for i in range(len(headers))]
    return cells, titles, widths


def _plain_width(cell: str) -> int:
    """How many columns a cell of plain text takes: its length when it is ASCII (printable,
    as _cells keeps them), else as rich measures it (wide and zero-width characters)."""
    if cell.isascii():
        return len(cell)
    from rich.cells import cell_len

    return cell_len(cell)


def _narrow(widths: list[int], cuttable: tuple[int, ...], excess: int) -> bool:
    """Narrow the widest text columns in `cuttable`, one step at a time, until the lines are
    `excess` shorter or none can be narrowed more; False if none could be. A column of fixed
    width narrowed by n makes every line n shorter, so this is worked out without drawing the
    table (drawing it takes longer than reading a whole history's new lines)."""
    narrowed = False
    while excess > 0:
        narrowable = [i for i in cuttable if i < len(widths) and widths[i] > NARROWEST_TEXT]
        if not narrowable:
            break
        widest = max(narrowable, key=lambda i: widths[i])
        others = [widths[i] for i in narrowable if i != widest]
        step = max(1, min(excess, widths[widest] - max(others, default=NARROWEST_TEXT)))
        narrower = max(widths[widest] - step, NARROWEST_TEXT)
        excess -= widths[widest] - narrower
        widths[widest] = narrower
        narrowed = True
    return narrowed


def _render(cells, titles, widths: list[int], numeric_from: int) -> str:
    """The table, drawn by rich, but for its rows of plain text (no colour, no control
    characters), which are laid out here as rich lays them out: drawing a row costs rich
    0.4 ms, a report of 3,000 sessions more than a second (tests/test_reports.py holds the
    two ways equal)."""
    plain = [all(cell.__class__ is str
                 and (width > 1 or _plain_width(cell) <= width)  # rich drops what it cannot cut
                 for cell, width in zip(row, widths)) for row in cells]
    drawn = _draw([row for row, alone in zip(cells, plain) if not alone], titles, widths,
                  numeric_from)
    if len(drawn) != 2 + plain.count(False):  # not a header, its rule and a line a row
        drawn, plain = _draw(cells, titles, widths, numeric_from), [False] * len(cells)
    lines, drawn_rows = drawn[:2], iter(drawn[2:])
    for row, alone in zip(cells, plain):
        lines.append(_plain_line(row, widths, numeric_from) if alone else next(drawn_rows))
    return _trimmed(lines)


def _trimmed(lines: list[str]) -> str:
    """The table's lines without trailing padding (also where a colour's reset code follows
    it) and without blank lines around them."""
    import re

    # Without colour codes, the same as the pattern (both strip what str.isspace calls space).
    lines = [re.sub(r"(?:\s|\x1b\[[0-9;]*m)+$", "", line) if "\x1b" in line
             else line.rstrip() for line in lines]
    lines = [line + ("\x1b[0m" if "\x1b[" in line else "") for line in lines]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def _draw(cells, titles, widths: list[int], numeric_from: int) -> list[str]:
    """The table's lines as rich draws them: the header, its rule, a line a row."""
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def text(cell) -> Text:
        return Text(cell) if cell.__class__ is str else cell

    titles = [text(title) for title in titles]
    cells = [[text(cell) for cell in row] for row in cells]
    colour = colour_on()
    grid = Table(box=_plain_head(), show_edge=False, pad_edge=False, collapse_padding=True,
                 header_style="", padding=(0, 1))
    for index, title in enumerate(titles):
        if colour:  # the words bold, not the padding around them
            title = title.copy()
            title.stylize("bold")
        grid.add_column(title, justify="right" if index >= numeric_from else "left",
                        no_wrap=True, overflow="ellipsis", width=widths[index])
    for row in cells:
        grid.add_row(*row)
    console = Console(file=io.StringIO(), width=sum(widths) + 3 * len(widths) + 2,
                      color_system="standard" if colour else None, force_terminal=colour,
                      no_color=not colour, highlight=False, emoji=False, markup=False)
    console.print(grid)
    return console.file.getvalue().splitlines()


def _plain_line(row, widths: list[int], numeric_from: int) -> str:
    """A row of plain text (str cells) as rich draws it: each cell cut to its column's width with an
    ellipsis (a right-aligned one stripped of trailing spaces first), padded on the side
    away from its alignment, COLUMN_GAP spaces between."""
    parts = []
    for index, (cell, width) in enumerate(zip(row, widths)):
        right = index >= numeric_from
        if right:
            cell = cell.rstrip()
        size = _plain_width(cell)
        if size > width:
            from rich.cells import set_cell_size

            cell = set_cell_size(cell, width - 1) + "…"
            size = _plain_width(cell)
        padding = " " * (width - size)
        parts.append(padding + cell if right else cell + padding)
    return (" " * COLUMN_GAP).join(parts)


def _plain_head():
    from rich.box import Box

    # No borders; the header underlined with ASCII dashes, two spaces between columns.
    return Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


def show_session(path, session_id: str | None, as_json: bool) -> None:
    """One transcript (and its subagents') priced: `cmat costs session`, and ccusage's
    `session --id`."""
    from cmat.reports import session_report

    report = session_report(path, session_id)
    extra = len(report["files"]) - 1
    print_session(report, as_json, str(path) + (
        f" + {extra} subagent file{'s' if extra != 1 else ''}" if extra else ""))


def print_session(report: dict, as_json: bool, origin: str) -> None:
    """One session's totals (session_report's shape), `origin` saying where they come from."""
    if as_json:
        emit_json(report)
        return
    echo(f"Session {report['session_id']}  ({origin})")
    if report["started"]:
        echo(f"From {report['started']} to {report['ended']}")
    echo()
    echo(summary_text(report))


def summary_text(report: dict) -> str:
    """Token totals, cost, a per-model table when several models were used, and warnings."""
    tokens = report["tokens"]
    writes = count(tokens["cache_creation"])
    if tokens.get("cache_creation_1h"):
        writes += f" (1-hour: {count(tokens['cache_creation_1h'])})"
    lines = [
        f"Input tokens:        {count(tokens['input'])}",
        f"Output tokens:       {count(tokens['output'])}",
        f"Cache write tokens:  {writes}",
        f"Cache read tokens:   {count(tokens['cache_read'])}",
    ]
    if report.get("web_search_requests"):
        lines.append(f"Web searches:        {count(report['web_search_requests'])}")
    lines.append(f"Requests:            {count(report['requests'])}")
    unpriced = sum(m["requests"] for m in report.get("models", []) if m["total_usd"] is None)
    lines.append(f"Total cost:          {usd(report['total_usd'], unpriced=unpriced)}")
    models = report.get("models", [])
    if len(models) > 1:
        rows = [[m.get("name") or m["model"], count(m["requests"]), count(m["tokens"]["input"]),
                 count(m["tokens"]["output"]), count(m["tokens"]["cache_creation"]),
                 count(m["tokens"]["cache_read"]), usd(m["total_usd"])] for m in models]
        lines += ["", table(rows, ["Model", "Requests", "Input", "Output", "Cache write",
                                   "Cache read", "Cost"])]
    for model in report.get("unpriced_models", []):
        lines.append(f"\nwarning: model {model!r} is not in the price catalog; its tokens are "
                     f"counted but not its cost. Add it with: cmat models add {model} "
                     "--input PRICE --output PRICE")
    if report.get("skipped_lines"):
        lines.append(f"\nnote: {report['skipped_lines']} line(s) could not be read and were "
                     "skipped")
    return "\n".join(lines)


class TerminalProgress:
    """A progress bar on stderr (rich's, sized to the terminal so it never wraps), shown only
    once a scan has run for a while; rich is imported only then."""

    def __init__(self, delay: float = 0.5, console=None):
        self.start = time.monotonic()
        self.delay = delay
        self.console = console
        self.bar = None

    def __call__(self, files_done: int, files: int, bytes_done: int, total: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.start < self.delay:
                return
            self._show()
        self.bar.update(self.task, completed=bytes_done, total=max(total, 1),
                        files=f"{files_done}/{files} files, {bytes_done / 1e6:,.0f} MB")

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self.bar = Progress(TextColumn("scanning"), BarColumn(bar_width=None),
                            TaskProgressColumn(), TextColumn("{task.fields[files]}"),
                            console=self.console or Console(stderr=True), transient=True,
                            expand=True)
        self.task = self.bar.add_task("scan", total=1, files="")
        self.bar.start()

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.stop()
