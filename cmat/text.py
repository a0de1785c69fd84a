"""Text that came from outside (an enhancement name, a task id, a model id, a path) shown
where one line is one record (the hook log, an email subject, an environment variable), on a
terminal, or in a CSV cell a spreadsheet opens.

A CR or LF there would forge a second log line or a second mail header; a NUL cannot be
passed in an environment variable at all; an escape sequence would move a terminal's cursor
and print over what cmat printed; a cell that starts like a formula is run as one.
Standard library only (and cmat.colour's palette): the hook log uses it.
"""

from __future__ import annotations

import re

from cmat.colour import STYLES

# C0 controls, DEL, C1 controls and Unicode's own line and paragraph separators.
_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` with every control character shown as an escape (`\\r`, `\\n`, `\\x00`): what it
    said stays readable, and it can no longer start a line of its own."""
    return _BREAKING.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


# A colour code (SGR: ESC [ digits m), a line end, a tab, or another control character.
_TERMINAL = re.compile("\x1b\\[[0-9;]*m|\r\n|[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What a colour code may set: cmat's own palette (cmat.colour) and the reset. Text from outside
# can use no other: conceal (8), reverse video or black on black would hide what follows it,
# the figures cmat prints after a task's title, say, until the next reset.
_PALETTE = frozenset({"", "0"} | {part for code in STYLES.values() for part in code.split(";")})


def terminal_safe(text: str, lines: bool = True) -> str:
    """`text` as cmat writes it to a terminal: the colours of cmat's palette pass, and with
    `lines` tabs and line ends too (without, as in a table's cell, they are escaped: text from
    outside cannot start a row of its own); every other control character (ESC that starts no
    such colour, a lone CR, C1's CSI) is shown as an escape, so that text from outside (a
    repository's settings, a queue's titles, a transcript's model id) cannot erase, hide,
    move over or rewrite what cmat printed."""
    def shown(match: re.Match) -> str:
        found = match.group()
        if found[0] == "\x1b" and len(found) > 1:
            if _PALETTE.issuperset(found[2:-1].split(";")):
                return found
        elif lines and found in ("\r\n", "\n", "\t"):
            return found
        return found.encode("unicode_escape").decode("ascii")

    return _TERMINAL.sub(shown, text)


# What starts a formula in a spreadsheet (OWASP's list for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell):
    """A CSV cell a spreadsheet shows as text: one starting like a formula (a project path, a
    task or enhancement name anybody could choose) gets a leading apostrophe, as OWASP advises
    for CSV injection. Numbers are left as they are (a negative number is no formula)."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell
